using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Sources;

/// <summary>
/// A run that stored complete, valid artifacts but failed at a later step (e.g. the dump is stored, the cluster
/// globals beside it are not). The artifacts stand: they are checksummed, queued for S3 and count as backups;
/// the run is still reported as failed, with this one line, so the missing part is noticed.
/// </summary>
public sealed class PartialBackupException : BackupSourceException
{
    public PartialBackupException(IReadOnlyList<ArtifactInfo> stored, string message, Exception innerException)
        : base(message, innerException)
    {
        Stored = stored;
    }

    public PartialBackupException()
    {
        Stored = [];
    }

    public PartialBackupException(string message)
        : base(message)
    {
        Stored = [];
    }

    public PartialBackupException(string message, Exception innerException)
        : base(message, innerException)
    {
        Stored = [];
    }

    /// <summary>What this run did store before it failed.</summary>
    public IReadOnlyList<ArtifactInfo> Stored { get; }
}
