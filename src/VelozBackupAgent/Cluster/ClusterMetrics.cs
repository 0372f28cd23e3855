using System.Diagnostics.Metrics;
using VelozBackupAgent.Telemetry;

namespace VelozBackupAgent.Cluster;

/// <summary>
/// The cluster's series (<c>Backup:Cluster:Enabled</c>), on the agent's meter beside <see cref="BackupMetrics"/>, each
/// with this node's <c>node</c> label: <c>veloz_backup_cluster_node_info</c>, the live nodes this node sees, whether any
/// node holds the WAL receiver (the server's view: the <c>VelozBackupClusterNoReceiver</c> alert), whether this node is
/// the receiver's standby (so <c>VelozBackupPitrReceiverDown</c> leaves it alone), its clock against the server's, and
/// whether it can reach the cluster's tables.
/// </summary>
public sealed class ClusterMetrics : IDisposable
{
    private readonly Meter _meter;

    /// <param name="node">This node's name (Backup:NodeName), the <c>node</c> label of every series.</param>
    /// <param name="view">The last view of the cluster's tables, null until the first check-in.</param>
    /// <param name="skewSeconds">This node's clock minus the server's.</param>
    /// <param name="databaseUp">Whether the last check-in succeeded.</param>
    /// <param name="standby">Whether this node's receiver waits for another node's slot.</param>
    /// <param name="meterName">The meter, <see cref="BackupMetrics.MeterName"/> unless a test gives its own.</param>
    public ClusterMetrics(string node, Func<ClusterView?> view, Func<double> skewSeconds, Func<bool> databaseUp, Func<bool> standby, string meterName = BackupMetrics.MeterName)
    {
        ArgumentNullException.ThrowIfNull(view);
        ArgumentNullException.ThrowIfNull(skewSeconds);
        ArgumentNullException.ThrowIfNull(databaseUp);
        ArgumentNullException.ThrowIfNull(standby);
        _meter = new Meter(meterName);
        var label = new KeyValuePair<string, object?>("node", node);
        _meter.CreateObservableGauge("veloz_backup_cluster_node_info", () => new Measurement<long>(1, label), "1",
            "1 for this node of the agents sharing the database; its node label is Backup:NodeName");
        _meter.CreateObservableGauge("veloz_backup_cluster_nodes", () => Seen(view, v => v.Nodes.Count(n => n.Alive), label), "{node}",
            "Nodes that checked in within CheckinInterval + CheckinMisfireThreshold, as this node sees the node table");
        _meter.CreateObservableGauge("veloz_backup_cluster_receiver_held", () => Seen(view, v => v.ReceiverHolder is null ? 0 : 1, label), "1",
            "1 while some node's WAL receiver streams through the replication slot (pg_stat_replication), 0 while none does");
        _meter.CreateObservableGauge("veloz_backup_cluster_receiver_standby",
            () => new Measurement<long>(standby() ? 1 : 0, label), "1",
            "1 while this node's WAL receiver waits because another node holds the replication slot");
        _meter.CreateObservableGauge("veloz_backup_cluster_clock_skew_seconds", () => new Measurement<double>(skewSeconds(), label), "s",
            "This node's clock minus the database server's (Quartz clustering needs the nodes within a second)");
        _meter.CreateObservableGauge("veloz_backup_cluster_database_up", () => new Measurement<long>(databaseUp() ? 1 : 0, label), "1",
            "1 while this node's last check-in with the cluster's tables succeeded");
    }

    public void Dispose() => _meter.Dispose();

    private static IEnumerable<Measurement<long>> Seen(Func<ClusterView?> view, Func<ClusterView, long> value, KeyValuePair<string, object?> label)
    {
        if (view() is { } seen)
        {
            yield return new Measurement<long>(value(seen), label);
        }
    }
}
