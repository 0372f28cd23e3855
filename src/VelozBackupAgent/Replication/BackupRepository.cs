using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Replication;

/// <summary>
/// Where backups are written: the local store first, then (when a replica is configured) a marker in
/// the durable upload queue. Writing never waits on the replica.
/// </summary>
public sealed class BackupRepository
{
    public BackupRepository(LocalArtifactStore local, Replicator? replicator = null)
    {
        Local = local;
        Replicator = replicator;
    }

    /// <summary>The primary store.</summary>
    public LocalArtifactStore Local { get; }

    /// <summary>The replicator, when S3 is enabled.</summary>
    public Replicator? Replicator { get; }

    /// <summary>Stores <paramref name="content"/> locally and queues it for the replica.</summary>
    public async Task<ArtifactInfo> StoreAsync(string kind, string name, Stream content, string? expectedSha256 = null, CancellationToken cancellationToken = default)
    {
        var info = await Local.WriteAsync(kind, name, content, expectedSha256, cancellationToken);
        Replicator?.Enqueue(kind, name);
        return info;
    }
}
