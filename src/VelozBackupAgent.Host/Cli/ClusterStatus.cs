using System.Globalization;
using Npgsql;
using VelozBackupAgent.Cluster;

namespace VelozBackupAgent.Host.Cli;

/// <summary>The cluster part of <c>veloz-backup status</c> (<c>Backup:Cluster:Enabled</c>): nodes, who ran the last dump and base backup, who holds the receiver.</summary>
internal static class ClusterStatus
{
    /// <summary>The cluster's tables, or the one-line reason they cannot be read; nothing when clustering is off.</summary>
    public static async Task<(ClusterView? View, string? Error)> ReadAsync(AgentContext agent, CancellationToken cancellationToken)
    {
        if (!agent.Options.Cluster.Enabled)
        {
            return (null, null);
        }

        var cluster = new ClusterDatabase(agent.Options);
        try
        {
            return (await cluster.ReadAsync(cancellationToken), null);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            var reason = ex is PostgresException pg ? $"{pg.SqlState}: {pg.MessageText}" : ex.Message;
            return (null, cluster.Scrub($"cannot read the cluster's tables in {cluster.Describe()}: {reason}"));
        }
    }

    public static IEnumerable<string> Lines(AgentContext agent, ClusterView? view, string? error, DateTimeOffset now)
    {
        if (!agent.Options.Cluster.Enabled)
        {
            yield break;
        }

        if (view is null)
        {
            yield return $"Cluster: ERROR: {error}";
            yield break;
        }

        var alive = view.Nodes.Count(n => n.Alive);
        yield return string.Create(CultureInfo.InvariantCulture, $"Cluster: {alive} of {view.Nodes.Count} nodes alive (this node: {agent.Options.NodeName}); WAL receiver held by {view.ReceiverHolder ?? "NO NODE"}");
        foreach (var n in view.Nodes)
        {
            var skew = ClockSkew.IsSkewed(n.SkewSeconds, agent.Options.Cluster.MaxClockSkew) ? $"clock {ClusterDatabase.FormatSkew(n.SkewSeconds)} SKEWED" : $"clock {ClusterDatabase.FormatSkew(n.SkewSeconds)}";
            yield return string.Create(CultureInfo.InvariantCulture,
                $"  node {n.Node}: {(n.Alive ? "alive" : "DEAD")}, checked in {Format.Age(Since(now, n.LastSeen, agent.Options.Cluster.MaxClockSkew))} ago, {skew}{(n.Node == view.ReceiverHolder ? ", streams WAL" : "")}{(n.Node == view.ReceiverHolder && n.RecoveryPoint is { } rp ? $" (recovery point {Format.Age(Since(now, rp, agent.Options.Cluster.MaxClockSkew))} ago)" : "")}");
        }

        foreach (var r in view.Runs)
        {
            var what = r.Kind == BackupKinds.Pitr ? "base backup" : r.Kind == BackupKinds.Database ? "dump" : r.Kind;
            yield return string.Create(CultureInfo.InvariantCulture,
                $"  last {what}: node {r.Node}, started {Format.IsoUtc(r.StartedAt)}, {r.Outcome}{(r.Artifact is { } a ? $" ({a})" : "")}{LastSuccess(r)}");
        }
    }

    /// <summary>
    /// How long ago a node checked in; a check-in stamped less than the allowed skew after this process read its clock
    /// (it just happened: the clocks agree only that closely) is "0s", not "in the future".
    /// </summary>
    private static TimeSpan Since(DateTimeOffset now, DateTimeOffset lastSeen, TimeSpan maxSkew) =>
        now >= lastSeen ? now - lastSeen : lastSeen - now <= maxSkew ? TimeSpan.Zero : now - lastSeen;

    // The run above is not the kind's last success (it failed, or runs now): say which was, and where.
    private static string LastSuccess(ClusterRun r) =>
        r.LastSuccess is not { } s ? (r.Outcome == "succeeded" ? "" : "; no successful run recorded")
        : s.StartedAt == r.StartedAt && s.Node == r.Node ? ""
        : $"; last success: node {s.Node}, started {Format.IsoUtc(s.StartedAt)}{(s.Artifact is { } a ? $" ({a})" : "")}";

    public static object? Json(AgentContext agent, ClusterView? view, string? error) => !agent.Options.Cluster.Enabled ? null : new
    {
        node = agent.Options.NodeName,
        error,
        receiverHolder = view?.ReceiverHolder,
        nodes = view?.Nodes.Select(n => new
        {
            node = n.Node, alive = n.Alive, lastSeen = Format.IsoUtc(n.LastSeen), skewSeconds = Math.Round(n.SkewSeconds, 3),
            skewed = ClockSkew.IsSkewed(n.SkewSeconds, agent.Options.Cluster.MaxClockSkew), recoveryPoint = Format.IsoUtc(n.RecoveryPoint),
        }),
        lastRuns = view?.Runs.Select(r => new
        {
            kind = r.Kind, node = r.Node, startedAt = Format.IsoUtc(r.StartedAt), finishedAt = Format.IsoUtc(r.FinishedAt), outcome = r.Outcome, artifact = r.Artifact,
            lastSuccess = r.LastSuccess is { } s ? new { node = s.Node, startedAt = Format.IsoUtc(s.StartedAt), artifact = s.Artifact } : null,
        }),
    };
}
