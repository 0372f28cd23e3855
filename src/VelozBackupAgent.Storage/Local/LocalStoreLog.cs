using Microsoft.Extensions.Logging;

namespace VelozBackupAgent.Storage.Local;

/// <summary>The local store's log lines, with fixed event ids (1000-1099).</summary>
internal static partial class LocalStoreLog
{
    [LoggerMessage(LogEvents.LocalStore.ReplacingOrphan, LogLevel.Warning, "Replacing {Path}: it had no checksum sidecar (an interrupted earlier write)")]
    public static partial void ReplacingOrphan(ILogger logger, string path);

    [LoggerMessage(LogEvents.LocalStore.BadSidecar, LogLevel.Warning, "Checksum sidecar unreadable: {Problem}")]
    public static partial void BadSidecar(ILogger logger, string problem);

    [LoggerMessage(LogEvents.LocalStore.RemovingDebris, LogLevel.Warning, "Removing the remains of an interrupted write: {Path}")]
    public static partial void RemovingDebris(ILogger logger, string path);

    [LoggerMessage(LogEvents.LocalStore.TighteningMode, LogLevel.Warning, "Tightening {Directory} to mode 0700")]
    public static partial void TighteningMode(ILogger logger, string directory);

    [LoggerMessage(LogEvents.LocalStore.CouldNotRemove, LogLevel.Warning, "Could not remove {Path}")]
    public static partial void CouldNotRemove(ILogger logger, Exception exception, string path);
}
