using System.Diagnostics.Metrics;
using VelozBackupAgent.Host.Cli;
using VelozBackupAgent.Telemetry;

namespace VelozBackupAgent.Host.Daemon;

/// <summary>
/// The cluster's series (<c>Backup:Cluster:Enabled</c>), on the agent's meter beside <see cref="BackupMetrics"/>, each
/// with this node's <c>node</c> label: <c>veloz_backup_cluster_node_info</c>, the live nodes this node sees, whether any
/// node holds the WAL receiver (the server's view: the <c>VelozBackupClusterNoReceiver</c> alert), whether this node is
/// the receiver's standby (so <c>VelozBackupPitrReceiverDown</c> leaves it alone), its clock against the server's, and
/// whether it can reach the cluster's tables.
/// </summary>
internal sealed class ClusterMetrics : IDisposable
{
    private readonly Meter _meter = new(BackupMetrics.MeterName);

    public ClusterMetrics(ClusterState state, AgentContext agent)
    {
        var node = new KeyValuePair<string, object?>("node", agent.Options.NodeName);
        var streaming = agent.Options.Pitr.Enabled && agent.Options.Pitr.Streaming;
        _meter.CreateObservableGauge("veloz_backup_cluster_node_info", () => new Measurement<long>(1, node), "1",
            "1 for this node of the agents sharing the database; its node label is Backup:NodeName");
        _meter.CreateObservableGauge("veloz_backup_cluster_nodes", () => Seen(state, v => v.Nodes.Count(n => n.Alive), node), "{node}",
            "Nodes that checked in within CheckinInterval + CheckinMisfireThreshold, as this node sees the node table");
        _meter.CreateObservableGauge("veloz_backup_cluster_receiver_held", () => Seen(state, v => v.ReceiverHolder is null ? 0 : 1, node), "1",
            "1 while some node's WAL receiver streams through the replication slot (pg_stat_replication), 0 while none does");
        _meter.CreateObservableGauge("veloz_backup_cluster_receiver_standby",
            () => new Measurement<long>(streaming && agent.Receiver.Standby ? 1 : 0, node), "1",
            "1 while this node's WAL receiver waits because another node holds the replication slot");
        _meter.CreateObservableGauge("veloz_backup_cluster_clock_skew_seconds", () => new Measurement<double>(state.SkewSeconds, node), "s",
            "This node's clock minus the database server's (Quartz clustering needs the nodes within a second)");
        _meter.CreateObservableGauge("veloz_backup_cluster_database_up", () => new Measurement<long>(state.DatabaseReachable ? 1 : 0, node), "1",
            "1 while this node's last check-in with the cluster's tables succeeded");
    }

    public void Dispose() => _meter.Dispose();

    private static IEnumerable<Measurement<long>> Seen(ClusterState state, Func<Cluster.ClusterView, long> value, KeyValuePair<string, object?> node)
    {
        if (state.View is { } view)
        {
            yield return new Measurement<long>(value(view), node);
        }
    }
}
