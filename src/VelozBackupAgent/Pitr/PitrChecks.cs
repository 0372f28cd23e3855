using System.Globalization;
using VelozBackupAgent.Cluster;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Database;
using VelozBackupAgent.Verification;

namespace VelozBackupAgent.Pitr;

/// <summary>
/// The checklist lines of point-in-time recovery: the WAL stream is current (the recovery point within its objective),
/// a recent base backup exists, and the stored WAL continues without a gap from the newest base backup on every
/// timeline. Shared by <c>verify</c> and the drill.
/// </summary>
public sealed class PitrChecks
{
    private readonly BackupOptions _options;
    private readonly TimeProvider _time;

    public PitrChecks(BackupOptions options, TimeProvider time)
    {
        _options = options;
        _time = time;
    }

    private PitrOptions Pitr => _options.Pitr;

    /// <summary>
    /// With Backup:Cluster, the cluster's tables as read for this check (null: clustering off, or unreadable). The WAL
    /// stream and the base backups are then judged cluster-wide (<see cref="ClusterFreshness"/>): a standby passes on
    /// the receiver holder's recovery point and on a base backup another node took, and fails when no node holds the
    /// receiver.
    /// </summary>
    public ClusterView? Cluster { get; init; }

    private ClusterView? View => _options.Cluster.Enabled ? Cluster : null;

    /// <summary>"PITR WAL current": the recovery point the daemon's receiver last reported, against the objective.</summary>
    public async Task<CheckResult> StreamAsync(PitrCatalog local, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(local);
        var label = $"PITR WAL current (recovery point within {Human(Pitr.FreshnessObjective)})";
        if (!Pitr.Enabled)
        {
            return new CheckResult(label, CheckStatus.Skip, "disabled (Backup:Pitr:Enabled)");
        }

        var now = _time.GetUtcNow();
        if (!Pitr.Streaming)
        {
            return await ArchivedAsync(label, local, now, cancellationToken);
        }

        if (View is { } view && view.ReceiverHolder != _options.NodeName)
        {
            return ClusterStream(label, view, now);
        }

        var status = PitrStatus.Load(Path.Combine(_options.StateDirectory, "pitr", "status.json"));
        if (status is null)
        {
            return new CheckResult(label, CheckStatus.Fail, "the WAL receiver has never reported: is the daemon (veloz-backup run) running?");
        }

        var limit = Pitr.FreshnessObjective + _options.FreshnessGrace;
        if (status.CheckedAt is not { } checkedAt || now - checkedAt > limit)
        {
            return new CheckResult(label, CheckStatus.Fail,
                $"the WAL receiver last polled the server {(status.CheckedAt is { } c ? Human(now - c) + " ago" : "never")}: is the daemon running? {status.LastError ?? ""}".TrimEnd());
        }

        var point = status.RecoveryPoint;
        var figures = string.Create(CultureInfo.InvariantCulture,
            $"stored up to {status.StoredLsn ?? "-"}, server at {status.ServerLsn ?? "-"}, lag {status.LagBytes} bytes, slot holds {status.SlotRetainedBytes} bytes");
        if (point is null || now - point > limit)
        {
            return new CheckResult(label, CheckStatus.Fail,
                $"recovery point {(point is { } p ? Human(now - p) + " old" : "unknown")}; {figures}{(status.ReceiverUp ? "" : "; receiver down: " + status.LastError)}");
        }

        return new CheckResult(label, status.ReceiverUp ? CheckStatus.Pass : CheckStatus.Fail,
            $"recovery point {Human(now - point.Value)} old; {figures}{(status.ReceiverUp ? "" : "; receiver down: " + status.LastError)}");
    }

    /// <summary>"PITR base backup fresh": the newest complete base backup against <c>BaseFreshnessObjective</c>.</summary>
    public CheckResult Base(PitrCatalog local)
    {
        ArgumentNullException.ThrowIfNull(local);
        var label = $"PITR base backup fresh (objective {Human(Pitr.BaseFreshnessObjective)})";
        if (!Pitr.Enabled)
        {
            return new CheckResult(label, CheckStatus.Skip, "disabled (Backup:Pitr:Enabled)");
        }

        var own = local.Bases.FirstOrDefault(b => b.ArchiveSize is not null);
        var running = Sources.KindLock.BackupRunningSince(_options.StateDirectory, BackupKinds.Pitr);
        if (View is { } view
            && ClusterFreshness.Newest(own is null ? null : new NodeBackup(own.Time, _options.NodeName, own.Info.Archive), ClusterFreshness.LastSuccess(view, BackupKinds.Pitr)) is { } pick
            && (own is null || pick.Node != _options.NodeName))
        {
            // Another node took the newest base backup: its store and S3 prefix hold it.
            var other = Catalog.Freshness.Evaluate(BackupKinds.Pitr, pick.Time, Pitr.BaseFreshnessObjective, _options.FreshnessGrace, _time.GetUtcNow(),
                running ?? ClusterFreshness.RunningSince(view, BackupKinds.Pitr), Pitr.MaxRunDuration);
            return new CheckResult(label, other.Stale || other.RunOverdue ? CheckStatus.Fail : CheckStatus.Pass,
                $"newest {pick.Artifact ?? "base backup"} by node {pick.Node}, {Human(other.Age!.Value)} old (the cluster's last base backup; {(own is not null && own.Info.Archive == pick.Artifact ? "this node reads it through the shared S3 prefix" : $"this node's store: {own?.Info.Archive ?? "none"}")}){Verification.Verifier.RunNote(other)}");
        }

        if (own is not { } newest)
        {
            return new CheckResult(label, CheckStatus.Fail, $"no complete base backup in the local store{(View is null ? "" : " nor on any other node")}: run veloz-backup backup pitr{Problems(local)}");
        }

        var status = Catalog.Freshness.Evaluate(BackupKinds.Pitr, newest.Time, Pitr.BaseFreshnessObjective, _options.FreshnessGrace, _time.GetUtcNow(),
            running ?? ClusterFreshness.RunningSince(View, BackupKinds.Pitr), Pitr.MaxRunDuration);
        return new CheckResult(label, status.Stale || status.RunOverdue ? CheckStatus.Fail : CheckStatus.Pass,
            $"newest {newest.Info.Archive}{(View is null ? "" : $" by node {_options.NodeName} (this node)")}, {Human(status.Age!.Value)} old, timeline {newest.Info.Timeline}, WAL {newest.Info.StartLsn} to {newest.Info.StopLsn}{Problems(local)}{Verification.Verifier.RunNote(status)}");
    }

    /// <summary>
    /// "WAL continuity": from the newest base backup's start, every segment (and the history file of every timeline)
    /// up to the newest stored WAL is there, on every timeline that descends from it.
    /// </summary>
    public CheckResult Continuity(PitrCatalog catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var label = $"WAL continuity ({catalog.Store.Target}: no gap from the newest base backup to the newest WAL)";
        if (!Pitr.Enabled)
        {
            return new CheckResult(label, CheckStatus.Skip, "disabled (Backup:Pitr:Enabled)");
        }

        if (catalog.Bases.FirstOrDefault(b => b.ArchiveSize is not null) is not { } newest)
        {
            if (ClusterFreshness.LastSuccess(View, BackupKinds.Pitr) is { } other && other.Node != _options.NodeName)
            {
                return new CheckResult(label, CheckStatus.Skip,
                    $"this node's {catalog.Store.Target} store holds no base backup: node {other.Node} took the cluster's newest ({other.Artifact ?? "base backup"}), its store holds the WAL from it (run verify there){Problems(catalog)}");
            }

            return new CheckResult(label, CheckStatus.Fail, $"no complete base backup in {catalog.Store.Target} to replay from{Problems(catalog)}");
        }

        var coverages = WalContinuity.CheckEveryTimeline(catalog.Inventory, newest.Info.Timeline, newest.Info.Start);
        var broken = coverages.Where(c => !c.Complete).ToList();
        var parts = coverages.Select(c => string.Create(CultureInfo.InvariantCulture,
            $"timeline {c.TargetTimeline}: {c.Start} to {c.End} ({c.Steps.Count} segments)")).ToList();
        if (broken.Count == 0 && coverages.Count > 0 && coverages.Min(c => c.End) >= newest.Info.Stop)
        {
            return new CheckResult(label, CheckStatus.Pass, $"from {newest.Info.Archive}: {string.Join("; ", parts)}{Problems(catalog)}");
        }

        var why = broken.SelectMany(c => c.Gaps.Select(g => g.Description).Concat(c.Problem is null ? [] : [c.Problem])).ToList();
        if (why.Count == 0)
        {
            why.Add($"the stored WAL does not reach the end of {newest.Info.Archive} ({newest.Info.StopLsn}): a restore from it could not become consistent");
        }

        return new CheckResult(label, CheckStatus.Fail, $"from {newest.Info.Archive}: {string.Join("; ", why.Take(5))}{(why.Count > 5 ? "; …" : "")}{Problems(catalog)}");
    }

    /// <summary>
    /// On a node that does not hold the receiver (Backup:Cluster): the holder's recovery point as it reported it at its
    /// last check-in, against the objective; no holder at all fails, whatever this node's store holds.
    /// </summary>
    private CheckResult ClusterStream(string label, ClusterView view, DateTimeOffset now)
    {
        var limit = Pitr.FreshnessObjective + _options.FreshnessGrace;
        var newest = ClusterFreshness.RecoveryPoint(view);
        if (view.ReceiverHolder is not { } holder)
        {
            return new CheckResult(label, CheckStatus.Fail,
                $"no node holds the WAL receiver (pg_stat_replication shows no veloz-backup receiver): nothing committed since {(newest is { } p ? $"the recovery point {Human(Age(now, p.Time))} ago (node {p.Node})" : "the last recovery point")} is stored anywhere; veloz-backup status on each node says why its receiver waits");
        }

        var node = view.Nodes.FirstOrDefault(n => n.Node == holder);
        var point = node?.RecoveryPoint ?? newest?.Time;
        var seen = node is null ? "" : $", as it checked in {Human(Age(now, node.LastSeen))} ago";
        if (point is not { } rp || Age(now, rp) > limit)
        {
            return new CheckResult(label, CheckStatus.Fail,
                $"node {holder} holds the WAL receiver, its recovery point is {(point is { } q ? Human(Age(now, q)) + " old" : "unknown")}{seen}: veloz-backup status on node {holder}");
        }

        return new CheckResult(label, CheckStatus.Pass,
            $"node {holder} holds the WAL receiver (this node {_options.NodeName} is not the holder): recovery point {Human(Age(now, rp))} old{seen}");
    }

    private static TimeSpan Age(DateTimeOffset now, DateTimeOffset then) => now > then ? now - then : TimeSpan.Zero;

    /// <summary>Without streaming (archive_command): the newest archived segment against the server's position now.</summary>
    private async Task<CheckResult> ArchivedAsync(string label, PitrCatalog local, DateTimeOffset now, CancellationToken cancellationToken)
    {
        _ = now;
        var connection = PgConnectionInfo.Parse(_options.Database.ConnectionString, Environment.GetEnvironmentVariable);
        Lsn serverLsn;
        try
        {
            var server = new PgServer(connection);
            var db = await server.OpenAsync(cancellationToken);
            await using (db)
            {
                serverLsn = (await PgServer.PositionAsync(db, Pitr.Slot, cancellationToken)).ServerLsn;
            }
        }
        catch (BackupSourceException ex)
        {
            return new CheckResult(label, CheckStatus.Fail, $"cannot compare with the server: {ex.Message}");
        }

        var segmentSize = local.SegmentSize;
        WalFileName? newest = null;
        foreach (var name in local.Inventory.Names)
        {
            if (WalFileName.TryParse(name, out var file) && (newest is null || file.SegmentNumber(segmentSize) > newest.Value.SegmentNumber(segmentSize)))
            {
                newest = file;
            }
        }

        if (newest is null)
        {
            return new CheckResult(label, CheckStatus.Fail, "no WAL segment archived yet (archive_command = 'veloz-backup pg-wal-push %p'?)");
        }

        var end = newest.Value.StartLsn(segmentSize) + segmentSize;
        var behind = serverLsn - end;
        return new CheckResult(label, behind > segmentSize ? CheckStatus.Fail : CheckStatus.Pass,
            string.Create(CultureInfo.InvariantCulture, $"archive_command mode: newest archived segment {newest}, server at {serverLsn} ({Math.Max(0, behind)} bytes beyond it; the segment being written is only archived when complete)"));
    }

    private static string Problems(PitrCatalog catalog) =>
        catalog.Problems.Count == 0 ? "" : $"; problems: {string.Join("; ", catalog.Problems.Take(3))}";

    private static string Human(TimeSpan t) => Verifier.Human(t);
}
