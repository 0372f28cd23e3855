using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Cluster;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Restore;
using VelozBackupAgent.Sources.Wal;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Verification;

/// <summary>PASS, FAIL or SKIP (not applicable, or not asked for).</summary>
public enum CheckStatus
{
    Pass,
    Fail,
    Skip,
}

/// <summary>One line of the seeds' Backup Verification Checklist.</summary>
/// <param name="Item">The checklist item, e.g. <c>Database backup within 24h</c>.</param>
/// <param name="Status">PASS, FAIL or SKIP.</param>
/// <param name="Detail">The figure behind it.</param>
public sealed record CheckResult(string Item, CheckStatus Status, string Detail);

/// <summary>The whole checklist.</summary>
/// <param name="Time">When it ran.</param>
/// <param name="Checks">One per item, in the checklist's order.</param>
/// <param name="TestRestore">The test restore's outcome, when one ran.</param>
public sealed record VerifyReport(DateTimeOffset Time, IReadOnlyList<CheckResult> Checks, RestoreTestResult? TestRestore)
{
    public bool Passed => Checks.All(c => c.Status != CheckStatus.Fail);

    /// <summary>
    /// What interrupted writes (a killed backup, say) left in the local store: not a failed check, since every
    /// artifact is whole, but disk space the next backup of that kind (or the daemon's next start) gives back.
    /// </summary>
    public IReadOnlyList<Leftover> Leftovers { get; init; } = [];
}

/// <summary>What <c>verify</c> is asked to do.</summary>
/// <param name="TestRestore">Restore every kind into scratch locations and check it (and time it against the RTOs).</param>
/// <param name="ReadData">Re-hash the bytes of every S3 copy too (the local copies are always re-hashed).</param>
public sealed record VerifyRequest(bool TestRestore, bool ReadData);

/// <summary>
/// The runbook's Backup Verification Checklist as code: freshness of each kind against its objective, the S3 copy,
/// every checksum, a real test restore of each kind into scratch locations (never the live system), point-in-time
/// recovery (the WAL stream, base backups, WAL continuity, a scratch restore to the newest stored commit) and the
/// measured recovery times against the RTOs. Every figure comes from the stores themselves.
/// </summary>
public sealed partial class Verifier
{
    private readonly BackupOptions _options;
    private readonly LocalArtifactStore _local;
    private readonly IArtifactStore? _remote;
    private readonly Replicator? _replicator;
    private readonly Restorer _restorer;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public Verifier(BackupOptions options, LocalArtifactStore local, IArtifactStore? remote, Replicator? replicator, Restorer restorer, TimeProvider time, ILogger logger)
    {
        _options = options;
        _local = local;
        _remote = remote;
        _replicator = replicator;
        _restorer = restorer;
        _time = time;
        _logger = logger;
    }

    /// <summary>Called with the kind of every checksum mismatch found (the metrics count them).</summary>
    public event Action<string>? IntegrityError;

    /// <summary>Runs the checklist; with <see cref="VerifyRequest.TestRestore"/> records the outcome in <c>.state/restore-test.json</c>.</summary>
    public async Task<VerifyReport> RunAsync(VerifyRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var now = _time.GetUtcNow();
        var checks = new List<CheckResult>();
        // The local store is listed once per kind (a WAL listing reads thousands of sidecars) and shared by the checks.
        var local = new Dictionary<string, IReadOnlyList<CatalogEntry>>(StringComparer.Ordinal);
        foreach (var kind in BackupKinds.All)
        {
            local[kind] = await BackupCatalog.ListAsync(_local, kind, cancellationToken).ConfigureAwait(false);
        }

        // Backup:Cluster: the database-wide kinds are judged cluster-wide, whichever node did the work.
        var (cluster, clusterCheck) = _options.Cluster.Enabled ? await ClusterAsync(cancellationToken).ConfigureAwait(false) : (null, null);
        foreach (var (kind, item) in new[]
        {
            (BackupKinds.Wal, "WAL backup fresh"), (BackupKinds.Config, "Configuration backup fresh"),
            (BackupKinds.Database, "Database backup fresh"), (BackupKinds.Secrets, "Secrets backup fresh"),
        })
        {
            checks.Add(Freshness(kind, item, local[kind], now, cluster));
        }

        var pitr = new Pitr.PitrChecks(_options, _time) { Cluster = cluster };
        var pitrLocal = _options.Pitr.Enabled ? await Pitr.PitrCatalog.LoadAsync(_local, cancellationToken).ConfigureAwait(false) : null;
        // A node of a cluster holds only the WAL (and base backups) it made itself: what a restore on it reads is the
        // local store and the shared prefix in S3 together, so that is what the base and continuity checks look at.
        var pitrRestorable = pitrLocal is not null && _options.Cluster.Enabled && _remote is not null
            ? await ClusterCatalogAsync(pitrLocal, cancellationToken).ConfigureAwait(false)
            : pitrLocal;
        if (pitrLocal is not null)
        {
            checks.Add(await pitr.StreamAsync(pitrLocal, cancellationToken).ConfigureAwait(false));
            checks.Add(pitr.Base(pitrRestorable!));
        }

        if (clusterCheck is not null)
        {
            checks.Add(clusterCheck);
        }

        checks.Add(await S3CopyAsync(local, now, cancellationToken).ConfigureAwait(false));
        checks.Add(await ChecksumsAsync(local, request.ReadData, cancellationToken).ConfigureAwait(false));
        checks.Add(await WalChainsAsync(local[BackupKinds.Wal], cancellationToken).ConfigureAwait(false));
        if (pitrLocal is not null)
        {
            checks.Add(pitr.Continuity(pitrRestorable!));
            if (_remote is not null)
            {
                checks.Add(await RemoteContinuityAsync(pitr, cancellationToken).ConfigureAwait(false));
            }
        }

        RestoreTestResult? test = null;
        CheckResult pitrTest;
        if (request.TestRestore)
        {
            var (check, result, pitrCheck) = await TestRestoreAsync(cancellationToken).ConfigureAwait(false);
            checks.Add(check);
            test = result;
            pitrTest = pitrCheck;
            RestoreTestState.Write(_options.StateDirectory, result);
        }
        else
        {
            checks.Add(new CheckResult("Test restore successful", CheckStatus.Skip, "run verify --test-restore (the daemon's drill does, monthly by default)"));
            pitrTest = new CheckResult(PitrTestLabel, CheckStatus.Skip, _options.Pitr.Enabled
                ? "run verify --test-restore: a scratch point-in-time restore to the newest stored commit"
                : "point-in-time recovery is disabled (Backup:Pitr:Enabled); WAL restores to any sync time are covered by restore wal --at");
        }

        checks.Add(pitrTest);
        checks.Add(RecoveryTime(test, now));
        var report = new VerifyReport(now, checks, test) { Leftovers = _local.FindLeftovers() };
        foreach (var c in checks)
        {
            Log.Check(_logger, c.Status.ToString().ToUpperInvariant(), c.Item, c.Detail);
        }

        return report;
    }

    private async Task<Pitr.PitrCatalog> ClusterCatalogAsync(Pitr.PitrCatalog local, CancellationToken cancellationToken)
    {
        try
        {
            return await Pitr.PitrCatalog.LoadAsync(new Stores.LocalFirstArtifactStore(_local, _remote!), cancellationToken).ConfigureAwait(false);
        }
        catch (StoreException)
        {
            // S3 unusable: the local store alone (the S3 continuity check says why).
            return local;
        }
    }

    private async Task<CheckResult> RemoteContinuityAsync(Pitr.PitrChecks pitr, CancellationToken cancellationToken)
    {
        try
        {
            return pitr.Continuity(await Pitr.PitrCatalog.LoadAsync(_remote!, cancellationToken).ConfigureAwait(false));
        }
        catch (StoreException ex)
        {
            return new CheckResult("WAL continuity (s3: no gap from the newest base backup to the newest WAL)", CheckStatus.Fail, $"S3 unusable: {ex.Message}");
        }
    }

    /// <summary>
    /// "Cluster nodes' clocks within …": the cluster's tables (the nodes alive, their clocks against the database
    /// server's, who holds the WAL receiver); any live node further off than Backup:Cluster:MaxClockSkew fails it, as
    /// unreadable tables do.
    /// </summary>
    private async Task<(ClusterView? View, CheckResult Check)> ClusterAsync(CancellationToken cancellationToken)
    {
        var max = _options.Cluster.MaxClockSkew;
        var label = $"Cluster nodes' clocks within {Human(max)} of the database server's";
        var database = new ClusterDatabase(_options);
        ClusterView view;
        try
        {
            view = await database.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or TimeoutException)
        {
            var reason = ex is Npgsql.PostgresException pg ? $"{pg.SqlState}: {pg.MessageText}" : ex.Message;
            return (null, new CheckResult(label, CheckStatus.Fail, database.Scrub($"cannot read the cluster's tables in {database.Describe()}: {reason}")));
        }

        var alive = view.Nodes.Where(n => n.Alive).ToList();
        var clocks = string.Join(", ", alive.Select(n => $"{n.Node} {ClusterDatabase.FormatSkew(n.SkewSeconds)}"));
        var receiver = _options.Pitr.Enabled && _options.Pitr.Streaming ? $"; WAL receiver held by {view.ReceiverHolder ?? "NO NODE"}" : "";
        var skewed = ClockSkew.SkewedNodes(view, max);
        return (view, skewed.Count == 0
            ? new CheckResult(label, CheckStatus.Pass, string.Create(CultureInfo.InvariantCulture, $"{alive.Count} of {view.Nodes.Count} nodes alive: {clocks}{receiver}"))
            : new CheckResult(label, CheckStatus.Fail, string.Create(CultureInfo.InvariantCulture,
                $"{string.Join("; ", skewed.Select(n => $"node {n.Node}'s clock is {ClusterDatabase.FormatSkew(n.SkewSeconds)} off"))} (more than {Human(max)}: Quartz clustering needs the nodes' clocks within a second, fix NTP there); {alive.Count} of {view.Nodes.Count} nodes alive: {clocks}{receiver}")));
    }

    private CheckResult Freshness(string kind, string item, IReadOnlyList<CatalogEntry> entries, DateTimeOffset now, ClusterView? cluster)
    {
        var options = _options.Kind(kind);
        var label = $"{item} (objective {Human(options.FreshnessObjective)})";
        if (!options.Enabled)
        {
            return new CheckResult(label, CheckStatus.Skip, $"disabled (Backup:{Pascal(kind)}:Enabled)");
        }

        var newest = _restorer.Sources.NewestIn(entries, _local, kind, null);
        var time = newest is null ? null : ArtifactTime(newest.Name);
        var running = Sources.KindLock.BackupRunningSince(_options.StateDirectory, kind);
        if (cluster is not null && ClusterFreshness.IsDatabaseWide(kind))
        {
            // Whichever node took it: this node's newest or the cluster's last successful run.
            var pick = ClusterFreshness.Newest(time is { } t ? new NodeBackup(t, _options.NodeName, newest!.Name) : null, ClusterFreshness.LastSuccess(cluster, kind));
            var shared = Catalog.Freshness.Evaluate(_options, kind, pick?.Time, now, running ?? ClusterFreshness.RunningSince(cluster, kind));
            var note = RunNote(shared);
            return pick is null
                ? new CheckResult(label, CheckStatus.Fail, $"no {kind} backup on any node (this node's store {_local.Root}, the cluster's runs){note}")
                : new CheckResult(label, shared.Stale || shared.RunOverdue ? CheckStatus.Fail : CheckStatus.Pass,
                    $"newest {pick.Artifact ?? kind + " backup"} by node {pick.Node}{(pick.Node == _options.NodeName ? " (this node)" : "")}, {Human(shared.Age!.Value)} old{(shared.Stale ? $", {Human(shared.Overdue!.Value)} past the objective" : "")}{note}");
        }

        var status = Catalog.Freshness.Evaluate(_options, kind, time, now, running);
        var run = RunNote(status);
        return status.LastSuccess is null
            ? new CheckResult(label, CheckStatus.Fail, $"no {kind} backup in {_local.Root}{run}")
            : new CheckResult(label, status.Stale || status.RunOverdue ? CheckStatus.Fail : CheckStatus.Pass,
                $"newest {newest!.Name}, {Human(status.Age!.Value)} old{(status.Stale ? $", {Human(status.Overdue!.Value)} past the objective" : "")}{run}");
    }

    /// <summary>What a freshness line adds about a run in progress: kept fresh by it, or hung past its bound.</summary>
    internal static string RunNote(Catalog.FreshnessStatus status) => status switch
    {
        { RunOverdue: true } => $"; a run in progress for {Human(status.RunningFor!.Value)}, past its MaxRunDuration {Human(status.MaxRun!.Value)} (hung?)",
        { KeptFreshByRun: true } => $"; a run started on time is in progress ({Human(status.RunningFor!.Value)} so far, MaxRunDuration {Human(status.MaxRun!.Value)})",
        { RunningSince: not null } => $"; a run is in progress ({Human(status.RunningFor!.Value)} so far)",
        _ => "",
    };

    private async Task<CheckResult> S3CopyAsync(Dictionary<string, IReadOnlyList<CatalogEntry>> local, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var label = $"S3 copy current (lag under {Human(_options.Verify.S3MaxLag)})";
        if (_remote is null)
        {
            return new CheckResult(label, CheckStatus.Skip, "S3 replication is disabled (Backup:S3:Enabled)");
        }

        var problems = new List<string>();
        var backlog = _replicator?.RefreshBacklog() ?? ReplicationBacklog.Empty;
        if (backlog.OldestEnqueuedAt is { } oldest && now - oldest > _options.Verify.S3MaxLag)
        {
            problems.Add($"oldest queued upload waiting {Human(now - oldest)}");
        }

        try
        {
            foreach (var kind in BackupKinds.All.Where(k => _options.Kind(k).Enabled))
            {
                var newest = _restorer.Sources.NewestIn(local[kind], _local, kind, null);
                if (newest is null || ArtifactTime(newest.Name) is not { } t || now - t <= _options.Verify.S3MaxLag)
                {
                    continue;
                }

                if (await _remote.StatAsync(kind, newest.Name, cancellationToken).ConfigureAwait(false) is null)
                {
                    problems.Add($"{kind}/{newest.Name} ({Human(now - t)} old) is not in S3");
                }
            }
        }
        catch (StoreException ex)
        {
            return new CheckResult(label, CheckStatus.Fail, $"S3 unusable: {ex.Message}");
        }

        var figures = string.Create(CultureInfo.InvariantCulture, $"backlog {backlog.Artifacts} artifacts, {backlog.Bytes} bytes");
        return problems.Count == 0
            ? new CheckResult(label, CheckStatus.Pass, $"newest artifact of each kind is in S3; {figures}")
            : new CheckResult(label, CheckStatus.Fail, $"{string.Join("; ", problems)}; {figures}; run veloz-backup replicate");
    }

    /// <summary>
    /// Every WAL delta manifest's chain back to a full manifest: each parent present, with the checksum its child recorded,
    /// within <see cref="WalManifestChain.MaxChainLength"/>; in S3 too, for the deltas S3 holds.
    /// </summary>
    private async Task<CheckResult> WalChainsAsync(IReadOnlyList<CatalogEntry> wal, CancellationToken cancellationToken)
    {
        const string Label = "WAL manifest chains complete (every delta's parents present, checksums as recorded)";
        var manifests = wal.Where(e => e.Time is not null && WalNaming.IsManifest(e.Name)).ToDictionary(e => e.Name, StringComparer.Ordinal);
        var parents = new Dictionary<string, WalManifestParent?>(StringComparer.Ordinal);
        var bad = new List<string>();
        foreach (var name in manifests.Keys.Order(StringComparer.Ordinal))
        {
            try
            {
                var input = await _local.OpenReadAsync(BackupKinds.Wal, name, cancellationToken).ConfigureAwait(false);
                await using (input.ConfigureAwait(false))
                {
                    var manifest = await WalManifest.ReadAsync(input, cancellationToken).ConfigureAwait(false);
                    parents[name] = manifest.IsDelta ? manifest.Parent : null;
                }
            }
            catch (Exception ex) when (ex is StoreException or IOException or InvalidDataException or System.Text.Json.JsonException)
            {
                bad.Add($"local {name}: not a readable WAL manifest ({ex.Message})");
            }
        }

        foreach (var (name, parent) in parents.Where(p => p.Value is not null))
        {
            var link = parent;
            var at = name;
            for (var steps = 1; link is not null; steps++)
            {
                if (steps >= WalManifestChain.MaxChainLength)
                {
                    bad.Add(string.Create(CultureInfo.InvariantCulture, $"local {name}: chain longer than {WalManifestChain.MaxChainLength} manifests"));
                    break;
                }

                if (!manifests.TryGetValue(link.Name, out var entry))
                {
                    bad.Add($"local {at}: its parent {link.Name} is missing");
                    break;
                }

                if (!string.Equals(entry.Sha256, link.Sha256, StringComparison.OrdinalIgnoreCase))
                {
                    bad.Add($"local {at}: its parent {link.Name} has sha256 {entry.Sha256?[..Math.Min(12, entry.Sha256.Length)]}…, {at} recorded {link.Sha256[..Math.Min(12, link.Sha256.Length)]}…");
                    break;
                }

                at = link.Name;
                if (!parents.TryGetValue(link.Name, out link))
                {
                    break; // unreadable: reported above
                }
            }
        }

        var deltas = parents.Count(p => p.Value is not null);
        var remote = "";
        if (_remote is not null && deltas > 0)
        {
            try
            {
                var s3 = (await BackupCatalog.ListAsync(_remote, BackupKinds.Wal, cancellationToken).ConfigureAwait(false))
                    .Where(e => WalNaming.IsManifest(e.Name)).ToDictionary(e => e.Name, StringComparer.Ordinal);
                foreach (var (name, parent) in parents.Where(p => p.Value is not null && s3.ContainsKey(p.Key)))
                {
                    if (!s3.TryGetValue(parent!.Name, out var copy))
                    {
                        bad.Add($"s3 {name}: its parent {parent.Name} is missing from S3");
                    }
                    else if (copy.Sha256 is { } sum && !string.Equals(sum, parent.Sha256, StringComparison.OrdinalIgnoreCase))
                    {
                        bad.Add($"s3 {name}: its parent {parent.Name} has sha256 {sum[..Math.Min(12, sum.Length)]}… in S3, {name} recorded {parent.Sha256[..Math.Min(12, parent.Sha256.Length)]}…");
                    }
                }

                remote = "; S3 copies checked too";
            }
            catch (StoreException ex)
            {
                bad.Add($"s3: cannot check: {ex.Message}");
            }
        }

        // Deltas sharing a broken link report it once.
        bad = [.. bad.Distinct(StringComparer.Ordinal)];
        var figures = string.Create(CultureInfo.InvariantCulture, $"{manifests.Count} manifests, {deltas} deltas{remote}");
        return bad.Count == 0
            ? new CheckResult(Label, CheckStatus.Pass, figures)
            : new CheckResult(Label, CheckStatus.Fail, string.Create(CultureInfo.InvariantCulture,
                $"{bad.Count} broken: {string.Join("; ", bad.Take(5))}{(bad.Count > 5 ? "; …" : "")} ({figures}); a restore to those syncs fails, run backup wal for a fresh full manifest"));
    }

    private async Task<CheckResult> ChecksumsAsync(Dictionary<string, IReadOnlyList<CatalogEntry>> listings, bool readData, CancellationToken cancellationToken)
    {
        var label = readData ? "Checksums valid for all backups (local and S3 bytes re-hashed)" : "Checksums valid for all backups (local bytes re-hashed, S3 metadata)";
        var bad = new List<string>();
        int local = 0, remote = 0;
        long bytes = 0;
        foreach (var kind in BackupKinds.All)
        {
            var localSums = new Dictionary<string, string?>(StringComparer.Ordinal);
            foreach (var entry in listings[kind])
            {
                localSums[entry.Name] = entry.Sha256;
                local++;
                bytes += entry.Size;
                if (await RehashAsync(_local, kind, entry.Name, entry.Size, cancellationToken).ConfigureAwait(false) is { } problem)
                {
                    bad.Add(problem);
                    IntegrityError?.Invoke(kind);
                }
            }

            if (_remote is null)
            {
                continue;
            }

            try
            {
                foreach (var entry in await BackupCatalog.ListAsync(_remote, kind, cancellationToken).ConfigureAwait(false))
                {
                    remote++;
                    string? problem;
                    if (readData)
                    {
                        problem = await RehashAsync(_remote, kind, entry.Name, entry.Size, cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        var stat = await _remote.StatAsync(kind, entry.Name, cancellationToken).ConfigureAwait(false);
                        problem = stat is null ? $"s3 {kind}/{entry.Name}: vanished while checked"
                            : localSums.TryGetValue(entry.Name, out var sum) && sum is not null && !string.Equals(sum, stat.Sha256, StringComparison.OrdinalIgnoreCase)
                                ? $"s3 {kind}/{entry.Name}: recorded sha256 {stat.Sha256?[..12]}… differs from the local copy's {sum[..12]}…"
                                : null;
                    }

                    if (problem is not null)
                    {
                        bad.Add(problem);
                        IntegrityError?.Invoke(kind);
                    }
                }
            }
            catch (ArtifactIntegrityException ex)
            {
                bad.Add($"s3 {kind}: {ex.Message}");
                IntegrityError?.Invoke(kind);
            }
            catch (StoreException ex)
            {
                bad.Add($"s3 {kind}: cannot check: {ex.Message}");
            }
        }

        var figures = string.Create(CultureInfo.InvariantCulture, $"{local} local artifacts ({bytes} bytes){(_remote is null ? "" : $", {remote} in S3")}");
        return bad.Count == 0
            ? new CheckResult(label, CheckStatus.Pass, figures + " all match their checksums")
            : new CheckResult(label, CheckStatus.Fail, string.Create(CultureInfo.InvariantCulture, $"{bad.Count} bad: {string.Join("; ", bad.Take(5))}{(bad.Count > 5 ? "; …" : "")} ({figures})"));
    }

    /// <summary>Bytes re-hashed so far of each artifact (<c>re-hashing s3 KIND/NAME</c>), for a terminal's progress; null reports nothing.</summary>
    public IProgress<TransferProgress>? Progress { get; set; }

    private async Task<string?> RehashAsync(IArtifactStore store, string kind, string name, long size, CancellationToken cancellationToken)
    {
        try
        {
            var input = await store.OpenReadAsync(kind, name, cancellationToken).ConfigureAwait(false);
            await using (input.ConfigureAwait(false))
            {
                if (Progress is not { } progress)
                {
                    await input.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
                    return null;
                }

                var step = $"re-hashing {store.Target} {kind}/{name}";
                var buffer = new byte[1 << 17];
                long done = 0;
                progress.Report(new TransferProgress(step, 0, size));
                int read;
                while ((read = await input.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                {
                    done += read;
                    progress.Report(new TransferProgress(step, done, size));
                }
            }

            return null;
        }
        catch (ArtifactIntegrityException ex)
        {
            return ex.Message;
        }
        catch (ArtifactNotFoundException ex)
        {
            return ex.Message;
        }
    }

    private const string PitrTestLabel = "PITR tested to specific time";

    /// <summary>
    /// The checklist's PITR line: a scratch point-in-time restore to the newest commit the stored WAL holds, recovered by
    /// a temporary server and queried, timed against RtoDatabase; the scratch copy is removed again.
    /// </summary>
    private async Task<(CheckResult Check, string? Failure)> TestPitrAsync(CancellationToken cancellationToken)
    {
        var label = $"{PitrTestLabel} (within {Human(_options.Verify.RtoDatabase)})";
        var stamp = _time.GetUtcNow().ToString("yyyyMMdd'T'HHmmss", CultureInfo.InvariantCulture);
        var root = Pitr.PitrRestorer.ScratchRoot(_options);
        var directory = Path.Combine(root, "veloz-pitr-drill-" + stamp);
        if (Path.GetFullPath(root).StartsWith(Path.GetFullPath(_options.StateDirectory) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            // Under the state directory (the agent is not root and runs the scratch server itself): private like the rest.
            PrivateFiles.CreateDirectory(root);
        }

        await _restorer.Pitr.RemoveLeftoversAsync(root, "veloz-pitr-drill-").ConfigureAwait(false);
        try
        {
            var report = await _restorer.Pitr.RestoreIntoAsync(new Pitr.PitrRestoreRequest(Pitr.PitrTarget.LastCommit), directory, keep: false, cancellationToken).ConfigureAwait(false);
            var rows = report.Tables.Sum(t => t.Rows);
            var within = report.Total <= _options.Verify.RtoDatabase;
            var detail = string.Create(CultureInfo.InvariantCulture,
                $"restored {report.Base} to {report.Outcome.StoppedAt ?? "the end of the WAL"} (timeline {report.Outcome.Timeline}) in a scratch cluster: {report.Tables.Count} tables, {rows} rows; {report.Total.TotalSeconds:0.0} s {(within ? "<=" : "OVER")} {Human(_options.Verify.RtoDatabase)}; removed again");
            return (new CheckResult(label, within ? CheckStatus.Pass : CheckStatus.Fail, detail), within ? null : $"pitr: {detail}");
        }
        catch (Exception ex) when (ex is RestoreException or StoreException or IOException or Sources.BackupSourceException or ArgumentException or UnauthorizedAccessException)
        {
            if (ex is RestoreIntegrityException)
            {
                IntegrityError?.Invoke(BackupKinds.Pitr);
            }

            return (new CheckResult(label, CheckStatus.Fail, ex.Message), $"pitr: {ex.Message}");
        }
    }

    private async Task<(CheckResult Check, RestoreTestResult Result, CheckResult Pitr)> TestRestoreAsync(CancellationToken cancellationToken)
    {
        const string Label = "Test restore successful";
        var durations = new Dictionary<string, double>(StringComparer.Ordinal);
        var details = new List<string>();
        string? failure = null;
        var scratch = Path.Combine(_options.StateDirectory, "verify", _time.GetUtcNow().ToString("yyyyMMdd'T'HHmmss", CultureInfo.InvariantCulture));
        PrivateFiles.CreateDirectory(scratch);
        var total = Stopwatch.StartNew();
        try
        {
            // A PITR test restore is the checklist's own line ("PITR tested to specific time").
            foreach (var kind in BackupKinds.All.Where(k => _options.Kind(k).Enabled && k != BackupKinds.Pitr))
            {
                var clock = Stopwatch.StartNew();
                try
                {
                    details.Add(await TestRestoreKindAsync(kind, scratch, cancellationToken).ConfigureAwait(false));
                }
                catch (Exception ex) when (ex is RestoreException or StoreException or IOException or Sources.BackupSourceException or ArgumentException)
                {
                    if (ex is RestoreIntegrityException)
                    {
                        IntegrityError?.Invoke(kind);
                    }

                    failure ??= $"{kind}: {ex.Message}";
                    details.Add($"{kind} FAILED");
                }

                durations[kind] = Math.Round(clock.Elapsed.TotalSeconds, 3);
            }
        }
        finally
        {
            if (Directory.Exists(scratch))
            {
                Directory.Delete(scratch, recursive: true);
            }
        }

        var pitr = new CheckResult(PitrTestLabel, CheckStatus.Skip, "point-in-time recovery is disabled (Backup:Pitr:Enabled)");
        string? pitrFailure = null;
        if (_options.Pitr.Enabled)
        {
            var clock = Stopwatch.StartNew();
            (pitr, pitrFailure) = await TestPitrAsync(cancellationToken).ConfigureAwait(false);
            durations[BackupKinds.Pitr] = Math.Round(clock.Elapsed.TotalSeconds, 3);
        }

        durations["total"] = Math.Round(total.Elapsed.TotalSeconds, 3);

        // The PITR drill has its own checklist line; the recorded test restore (the metrics) counts it with the rest.
        var result = new RestoreTestResult(_time.GetUtcNow(), failure is null && pitrFailure is null, durations, failure ?? pitrFailure);
        return (new CheckResult(Label, failure is null ? CheckStatus.Pass : CheckStatus.Fail, failure ?? string.Join("; ", details)), result, pitr);
    }

    private async Task<string> TestRestoreKindAsync(string kind, string scratch, CancellationToken cancellationToken)
    {
        var artifact = await _restorer.Sources.LatestAsync(kind, null, null, cancellationToken).ConfigureAwait(false);
        using var staged = await _restorer.Sources.StageAsync(artifact, cancellationToken).ConfigureAwait(false);
        switch (kind)
        {
            case BackupKinds.Database:
                var db = await _restorer.Database.TestRestoreAsync(staged, _options.Restore.Jobs, cancellationToken).ConfigureAwait(false);
                if (db.Tables.Count == 0)
                {
                    throw new RestoreException($"{artifact.Name} restored to an empty database (no tables)");
                }

                return string.Create(CultureInfo.InvariantCulture, $"database {artifact.Name}: {db.Tables.Count} tables, {db.Rows} rows in a scratch database (dropped)");

            case BackupKinds.Config:
                using (var tree = await ArchiveRestorer.ExtractConfigAsync(staged, Path.Combine(scratch, "config"), cancellationToken).ConfigureAwait(false))
                {
                    var c = await ArchiveRestorer.CompareAsync(tree, _options.Config.Root, cancellationToken).ConfigureAwait(false);
                    return $"config {artifact.Name}: {c.Files} files extracted{Drift(c)}";
                }

            case BackupKinds.Secrets:
                var s = await _restorer.Archives.CompareSecretsAsync(staged, _options.Secrets.Directory, cancellationToken).ConfigureAwait(false);
                return $"secrets {artifact.Name}: {s.Files} files decrypted (compared in memory, never written){Drift(s)}";

            default:
                var prepared = await _restorer.Wal.PrepareAsync(staged, artifact.Store ?? _local, Path.Combine(scratch, "wal"), cancellationToken).ConfigureAwait(false);
                await using (prepared.ConfigureAwait(false))
                {
                    var r = await prepared.CommitAsync(cancellationToken).ConfigureAwait(false);
                    return $"wal {artifact.Name}: {r.Summary.Replace(r.Target + " ", "", StringComparison.Ordinal)}";
                }
        }
    }

    private static string Drift(ArchiveComparison c) =>
        c.Differ.Count + c.Missing.Count == 0 ? ", identical to the live files"
        : string.Create(CultureInfo.InvariantCulture, $", {c.Differ.Count} changed and {c.Missing.Count} removed since (e.g. {string.Join(", ", c.Differ.Concat(c.Missing).Take(3))})");

    private CheckResult RecoveryTime(RestoreTestResult? test, DateTimeOffset now)
    {
        const string Label = "Recovery time within RTO";
        var source = "this test restore";
        if (test is null)
        {
            test = RestoreTestState.Read(_options.StateDirectory).LastSuccess;
            source = test is null ? "" : $"the last passing test restore, {Human(now - test.Time)} ago";
        }

        if (test is null)
        {
            return new CheckResult(Label, CheckStatus.Skip, "no test restore yet: run verify --test-restore");
        }

        var v = _options.Verify;
        var limits = new[]
        {
            (BackupKinds.Wal, v.RtoSingleNode, "single node failure"), (BackupKinds.Database, v.RtoDatabase, "database corruption"),
            (BackupKinds.Pitr, v.RtoDatabase, "database corruption, point in time"), ("total", v.RtoSiteFailure, "complete site failure"),
        };
        var parts = new List<string>();
        var over = false;
        foreach (var (key, rto, scenario) in limits)
        {
            if (test.DurationSeconds.TryGetValue(key, out var seconds))
            {
                var within = TimeSpan.FromSeconds(seconds) <= rto;
                over |= !within;
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"{key} {seconds:0.0} s {(within ? "<=" : "OVER")} {Human(rto)} ({scenario})"));
            }
        }

        return new CheckResult(Label, over ? CheckStatus.Fail : CheckStatus.Pass, $"{string.Join(", ", parts)} — from {source}");
    }

    private static DateTimeOffset? ArtifactTime(string name) => ArtifactName.TryParse(name, out _, out var time, out _, out _) ? time : null;

    private static string Pascal(string kind) => char.ToUpperInvariant(kind[0]) + kind[1..];

    internal static string Human(TimeSpan t) =>
        t.TotalSeconds < 120 ? string.Create(CultureInfo.InvariantCulture, $"{t.TotalSeconds:0}s")
        : t.TotalMinutes < 120 ? string.Create(CultureInfo.InvariantCulture, $"{t.TotalMinutes:0}m")
        : t.TotalHours < 48 ? string.Create(CultureInfo.InvariantCulture, $"{t.TotalHours:0.#}h")
        : string.Create(CultureInfo.InvariantCulture, $"{t.TotalDays:0.#}d");

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Verify.Check, LogLevel.Information, "verify {Status} {Item}: {Detail}")]
        public static partial void Check(ILogger logger, string status, string item, string detail);
    }
}
