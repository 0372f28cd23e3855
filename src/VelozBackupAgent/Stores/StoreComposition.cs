using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Stores;

/// <summary>Builds the stores from configuration in one place, so wrappers are composed once.</summary>
public static class StoreComposition
{
    /// <summary>The S3 replica under <c>&lt;NodeName&gt;/&lt;kind&gt;/</c>; credentials from the AWS default chain.</summary>
    public static IArtifactStore CreateS3(BackupOptions options, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(options);
        throw new NotSupportedException("S3 store not merged yet");
    }
}
