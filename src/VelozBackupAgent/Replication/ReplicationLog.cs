using Microsoft.Extensions.Logging;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Replication;

/// <summary>The replicator's log lines, with fixed event ids (2000-2099).</summary>
internal static partial class ReplicationLog
{
    [LoggerMessage(LogEvents.Replication.Uploaded, LogLevel.Information, "Replicated {Kind}/{Name} to {Target} ({Bytes} bytes in {Seconds:F2} s)")]
    public static partial void Uploaded(ILogger logger, string kind, string name, string target, long bytes, double seconds);

    [LoggerMessage(LogEvents.Replication.Unavailable, LogLevel.Warning, "{Target} is unavailable, {Count} artifacts ({Bytes} bytes) wait in the upload queue; next attempt in {Delay}: {Reason}")]
    public static partial void Unavailable(ILogger logger, string target, int count, long bytes, TimeSpan delay, string reason);

    [LoggerMessage(LogEvents.Replication.Available, LogLevel.Information, "{Target} is available again; draining {Count} queued artifacts")]
    public static partial void Available(ILogger logger, string target, int count);

    [LoggerMessage(LogEvents.Replication.ItemFailed, LogLevel.Error, "Cannot replicate {Kind}/{Name} to {Target}: {Reason}")]
    public static partial void ItemFailed(ILogger logger, string kind, string name, string target, string reason);

    [LoggerMessage(LogEvents.Replication.Reconciled, LogLevel.Information, "Reconciliation queued {Count} local artifacts missing from {Target}")]
    public static partial void Reconciled(ILogger logger, int count, string target);

    [LoggerMessage(LogEvents.Replication.LocalGone, LogLevel.Debug, "{Kind}/{Name} is gone from the local store; dropped from the upload queue")]
    public static partial void LocalGone(ILogger logger, string kind, string name);

    [LoggerMessage(LogEvents.Replication.PassFailed, LogLevel.Error, "Replication pass failed: {Reason}")]
    public static partial void PassFailed(ILogger logger, string reason);
}
