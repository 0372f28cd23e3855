using VelozBackupAgent.Catalog;

namespace VelozBackupAgent.Cluster;

/// <summary>The newest backup of a database-wide kind, and the node that took it (this node or another).</summary>
/// <param name="Time">When it was taken (the artifact's time), or for the WAL stream its recovery point.</param>
/// <param name="Node">The node that took it.</param>
/// <param name="Artifact">Its artifact name, when known.</param>
public sealed record NodeBackup(DateTimeOffset Time, string Node, string? Artifact);

/// <summary>
/// With <c>Backup:Cluster:Enabled</c> the database-wide kinds (the dump, the PITR base backup, the streamed WAL) are done
/// by one node for all: a node judges their freshness by the newest of its own store's and the cluster's (the last
/// successful run in <c>veloz_runs</c>, the recovery points the receiver's holder reports at its check-ins), whichever
/// node did the work, and then by <see cref="Freshness"/>'s rule as ever. <c>/health</c>, <c>verify</c> and the freshness
/// metrics all take their times from here, so they agree.
/// </summary>
public static class ClusterFreshness
{
    /// <summary>The kinds done once for the cluster: the dump and PITR (its base backups; its WAL through the receiver's holder).</summary>
    public static bool IsDatabaseWide(string kind) => kind is BackupKinds.Database or BackupKinds.Pitr;

    /// <summary>The cluster's last successful run of <paramref name="kind"/> (<c>database</c>, or <c>pitr</c> for base backups); null when none is recorded.</summary>
    public static NodeBackup? LastSuccess(ClusterView? view, string kind)
    {
        if (view?.Runs.FirstOrDefault(r => r.Kind == kind)?.LastSuccess is not { } success)
        {
            return null;
        }

        // The artifact's own time, as the local stores are judged by; the run's start when the name has none.
        var time = success.Artifact is { } name && ArtifactName.TryParse(name, out _, out var taken, out _, out _) ? taken : success.StartedAt;
        return new NodeBackup(time, success.Node, success.Artifact);
    }

    /// <summary>When the cluster's run of <paramref name="kind"/> in progress started (on whichever node); null when none runs.</summary>
    public static DateTimeOffset? RunningSince(ClusterView? view, string kind) =>
        view?.Runs.FirstOrDefault(r => r.Kind == kind) is { FinishedAt: null, Outcome: "running" } run ? run.StartedAt : null;

    /// <summary>
    /// The newest recovery point any node reported at its check-in (the receiver's holder's, while one streams), and who
    /// reported it; null when none did. With no holder it stops moving, so it goes stale like a stopped local receiver.
    /// </summary>
    public static NodeBackup? RecoveryPoint(ClusterView? view) =>
        view?.Nodes.Where(n => n.RecoveryPoint is not null).OrderByDescending(n => n.RecoveryPoint).Select(n => new NodeBackup(n.RecoveryPoint!.Value, n.Node, null)).FirstOrDefault();

    /// <summary>
    /// The newest dump in any node's own S3 prefix, as the nodes reported at their check-ins, and whose prefix; null when
    /// none did. The dump is in the S3 prefix of the node that took it, which the others do not list.
    /// </summary>
    public static NodeBackup? S3Dump(ClusterView? view) =>
        view?.Nodes.Where(n => n.S3Dump is not null).OrderByDescending(n => n.S3Dump).Select(n => new NodeBackup(n.S3Dump!.Value, n.Node, null)).FirstOrDefault();

    /// <summary>
    /// The newest recovery point in S3 any node reported at its check-in (the receiver's holder's upload), and who
    /// reported it; null when none did. Like <see cref="RecoveryPoint"/> it stops moving when no node streams.
    /// </summary>
    public static NodeBackup? S3RecoveryPoint(ClusterView? view) =>
        view?.Nodes.Where(n => n.S3RecoveryPoint is not null).OrderByDescending(n => n.S3RecoveryPoint).Select(n => new NodeBackup(n.S3RecoveryPoint!.Value, n.Node, null)).FirstOrDefault();

    /// <summary>
    /// The newer of this node's own (<paramref name="local"/>) and the cluster's; this node's when they are as new, except
    /// when both are the same artifact (this node sees another's through the shared S3 prefix): the cluster's record
    /// knows which node took it.
    /// </summary>
    public static NodeBackup? Newest(NodeBackup? local, NodeBackup? cluster) =>
        local is null ? cluster
        : cluster is null ? local
        : local.Artifact is not null && string.Equals(local.Artifact, cluster.Artifact, StringComparison.Ordinal) ? cluster
        : local.Time >= cluster.Time ? local : cluster;

    /// <summary><see cref="Newest(NodeBackup?, NodeBackup?)"/> with this node's time only.</summary>
    public static NodeBackup? Newest(DateTimeOffset? local, string node, NodeBackup? cluster) =>
        Newest(local is { } t ? new NodeBackup(t, node, null) : null, cluster);
}
