using Microsoft.Extensions.Logging;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Sources.Wal;

/// <summary>The WAL source's log lines (event ids 4401–4419).</summary>
internal static partial class WalLog
{
    [LoggerMessage(LogEvents.Wal.Conflict, LogLevel.Error, "ALARM: WAL segment {Segment} changed after it was stored: the backup holds {StoredSize} bytes (sha256 {StoredSha256}), the source now has {SourceSize} bytes (sha256 {SourceSha256}); the stored copy is kept and was not overwritten")]
    public static partial void Conflict(ILogger logger, string segment, long storedSize, string storedSha256, long sourceSize, string sourceSha256);

    [LoggerMessage(LogEvents.Wal.ConflictResolved, LogLevel.Information, "WAL segment {Segment} matches its stored copy again; the conflict is over")]
    public static partial void ConflictResolved(ILogger logger, string segment);

    [LoggerMessage(LogEvents.Wal.Unreadable, LogLevel.Error, "WAL segment {Path} cannot be read and is not backed up: {Reason}; the other segments still are")]
    public static partial void Unreadable(ILogger logger, string path, string reason);

    [LoggerMessage(LogEvents.Wal.IndexMissing, LogLevel.Information, "WAL index {Path} does not exist yet; known segments are recognised from the stored checksums, nothing stored is re-read")]
    public static partial void IndexMissing(ILogger logger, string path);

    [LoggerMessage(LogEvents.Wal.IndexCorrupt, LogLevel.Warning, "WAL index {Path} is not usable ({Problem}); rebuilding it from the stored checksums, nothing stored is re-read")]
    public static partial void IndexCorrupt(ILogger logger, string path, string problem);

    [LoggerMessage(LogEvents.Wal.IndexSaveFailed, LogLevel.Warning, "WAL index {Path} could not be saved ({Reason}); the next run rebuilds what it lacks from the stored checksums")]
    public static partial void IndexSaveFailed(ILogger logger, string path, string reason);

    [LoggerMessage(LogEvents.Wal.ActiveShrank, LogLevel.Warning, "active WAL file {Path} shrank from {OldSize} to {NewSize} bytes with no new segment sealed since its last snapshot (truncated or replaced in place); snapshotting its new content, earlier snapshots are kept")]
    public static partial void ActiveShrank(ILogger logger, string path, long oldSize, long newSize);

    [LoggerMessage(LogEvents.Wal.ActiveSnapshotFailed, LogLevel.Warning, "active WAL file could not be snapshotted: {Reason}")]
    public static partial void ActiveSnapshotFailed(ILogger logger, string reason);

    [LoggerMessage(LogEvents.Wal.StillChanging, LogLevel.Debug, "WAL segment {Segment} is still being written: {Reason}")]
    public static partial void StillChanging(ILogger logger, string segment, string reason);

    [LoggerMessage(LogEvents.Wal.StoredCopyMissing, LogLevel.Warning, "WAL segment {Segment} is recorded as stored but missing from the local store; storing it again")]
    public static partial void StoredCopyMissing(ILogger logger, string segment);

    [LoggerMessage(LogEvents.Wal.StoredSidecarDamaged, LogLevel.Error, "the checksum sidecar of stored WAL segment {Segment} is damaged ({Reason}); the stored copy is kept and not overwritten, run verify")]
    public static partial void StoredSidecarDamaged(ILogger logger, string segment, string reason);

    [LoggerMessage(LogEvents.Wal.ChangeRunFailed, LogLevel.Error, "WAL watcher: the change-triggered run failed")]
    public static partial void ChangeRunFailed(ILogger logger, Exception exception);

    [LoggerMessage(LogEvents.Wal.PlanFailed, LogLevel.Debug, "WAL watcher: cannot list {Directory}: {Reason}")]
    public static partial void PlanFailed(ILogger logger, string directory, string reason);

    [LoggerMessage(LogEvents.Wal.ActiveRotated, LogLevel.Debug, "active WAL file {Path} was rotated ({OldSize} bytes at the last snapshot, {NewSize} now, new segments sealed since); snapshotting the new file")]
    public static partial void ActiveRotated(ILogger logger, string path, long oldSize, long newSize);

    [LoggerMessage(LogEvents.Wal.ManifestChainUnusable, LogLevel.Warning, "the newest WAL manifest {Manifest} cannot be followed ({Reason}); this sync writes a full manifest, run verify")]
    public static partial void ManifestChainUnusable(ILogger logger, string manifest, string reason);

    [LoggerMessage(LogEvents.Wal.RemovedLeftovers, LogLevel.Warning, "backup wal: removed {Count} leftovers of interrupted writes ({Bytes} bytes)")]
    public static partial void RemovedLeftovers(ILogger logger, int count, long bytes);
}
