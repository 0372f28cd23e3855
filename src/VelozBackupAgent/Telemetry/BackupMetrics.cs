using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Pitr;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Retention;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Wal;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Verification;

namespace VelozBackupAgent.Telemetry;

/// <summary>
/// The agent's metrics, defined once on the <see cref="MeterName"/> meter and exposed in the Prometheus text
/// format by <see cref="Scrape"/>. Fed by what the agent already does: <see cref="BackupRunner.Completed"/>
/// (runs, durations, last success and failure, bytes stored locally), the <see cref="Replicator"/> (bytes and
/// artifacts copied to S3, refused copies, the backlog), <see cref="Pruner.Deleted"/>, the WAL source's status,
/// the restore-test record (read at every scrape) and an in-memory inventory of each store, filled from the
/// catalog at start-up and then on a cadence and on changes by other processes (<see cref="RunRefreshLoopAsync"/>),
/// and kept exact in between by the same events, so a scrape never lists a store and an unreachable S3 never
/// slows or fails one.
/// </summary>
/// <remarks>
/// Every known series exists from start-up: counters at zero, timestamps at zero ("never") or the catalog's
/// value. After a restart the freshness series come back from the names of the newest artifacts (for the WAL,
/// the newest manifest), not from "never". Timestamps are Unix seconds, as Prometheus practice wants.
/// </remarks>
public sealed partial class BackupMetrics : IDisposable
{
    /// <summary>The meter every instrument is defined on.</summary>
    public const string MeterName = "VelozBackupAgent";

    /// <summary>Bucket bounds of the run duration histogram, seconds: a WAL sync takes well under a second, a large dump an hour.</summary>
    internal static readonly double[] DurationBuckets = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200];

    private const string DurationName = "veloz_backup_duration_seconds";
    private const string DurationHelp = "Duration of backup runs (not counting busy ones), by kind.";

    private static readonly string[] Outcomes = ["succeeded", "unchanged", "failed", "busy"];

    private readonly BackupOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly MetricsPipeline _pipeline;
    private readonly Meter _meter;
    private readonly Counter<long> _runs;
    private readonly Counter<long> _bytes;
    private readonly Counter<long> _integrityErrors;
    private readonly Counter<long> _retentionDeleted;
    private readonly Histogram<double> _duration;
    private readonly IReadOnlyList<string> _enabledKinds;
    private readonly IReadOnlyList<string> _freshKinds;
    private readonly IReadOnlyList<IArtifactStore> _stores;
    private readonly Dictionary<string, StoreInventory> _inventories = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _lastRunSuccess = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _lastFailure = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Kind, string Name), bool> _refusedCounted = new();
    private readonly Lock _scrapeGate = new();
    private readonly Lock _walGate = new();
    private readonly List<Action> _detach = [];
    private Replicator? _replicator;
    private WalSource? _wal;
    private Func<PitrStatus>? _pitrStatus;
    private PitrStatus? _pitrScraped;
    private Counter<long>? _pitrFailures;
    private readonly Dictionary<string, long> _pitrFailuresCounted = new(StringComparer.Ordinal);
    private long _walConflictsCounted;
    private RestoreTestRecord _restoreTest = new(null, null);
    private Func<Cluster.ClusterView?>? _clusterView;
    private Func<double>? _clusterSkew;

    /// <param name="options">Enabled kinds, objectives, the state directory.</param>
    /// <param name="local">The local store.</param>
    /// <param name="remote">The S3 store, when replication is on.</param>
    /// <param name="timeProvider">The clock (for <c>/health</c> and the refresh cadence).</param>
    /// <param name="logger">Where listing problems are logged.</param>
    /// <param name="meterName">The meter's name; tests give each instance its own.</param>
    public BackupMetrics(BackupOptions options, IArtifactStore local, IArtifactStore? remote, TimeProvider? timeProvider = null, ILogger<BackupMetrics>? logger = null, string meterName = MeterName)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(local);
        _options = options;
        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _stores = remote is null ? [local] : [local, remote];
        _localRoot = local is LocalArtifactStore localStore ? localStore.Root : options.LocalRoot;
        foreach (var store in _stores)
        {
            _inventories[store.Target] = new StoreInventory(store.Target);
        }

        _enabledKinds = [.. BackupKinds.All.Where(k => options.Kind(k).Enabled)];

        // PITR's freshness is the recovery point the receiver measures. Through archive_command (no streaming) PostgreSQL
        // pushes a segment when it completes one, and without the server's position an idle server and a stuck
        // archive_command look the same: the agent claims no recovery point then (its base backups are judged as
        // pitr-base; PostgreSQL's pg_stat_archiver watches the archiving), rather than the newest base backup's time
        // held to the WAL's 5-minute objective, which made every such agent stale.
        _freshKinds = [.. _enabledKinds.Where(k => k != BackupKinds.Pitr || options.Pitr.Streaming)];

        // The provider listens before the first measurement, so the zeros below are not lost.
        _pipeline = new MetricsPipeline(meterName);
        _meter = new Meter(meterName);

        _runs = _meter.CreateCounter<long>("veloz_backup_runs", "{run}", "Backup runs by kind and outcome (succeeded, unchanged, failed, busy).");
        _bytes = _meter.CreateCounter<long>("veloz_backup_bytes", "By", "Bytes of artifacts written, by kind and target (local: by backup runs; s3: copied and verified).");
        _integrityErrors = _meter.CreateCounter<long>("veloz_backup_integrity_errors", "{error}",
            "Integrity problems detected: a copy the replica stored differently or holds other bytes for, a checksum mismatch on read, a stored WAL segment whose source changed, a failed verification.");
        _retentionDeleted = _meter.CreateCounter<long>("veloz_backup_retention_deleted", "{artifact}", "Artifacts deleted by retention, by kind and target.");
        _duration = _meter.CreateHistogram(DurationName, "s", DurationHelp,
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });

        _meter.CreateObservableGauge("veloz_backup_last_success_timestamp_seconds", ObserveLastSuccess, "s",
            "When the newest successful backup of the kind was taken in the target (Unix seconds; 0: never). For the WAL, its newest manifest (full sync); for pitr, the recovery point (only while streaming).");
        _meter.CreateObservableGauge("veloz_backup_last_failure_timestamp_seconds", ObserveLastFailure, "s",
            "When the last failed run of the kind ended in this process (Unix seconds; 0: none since the agent started).");
        _meter.CreateObservableGauge("veloz_backup_freshness_objective_seconds", ObserveObjectives, "s",
            "How old the newest successful backup of the kind may be (Backup:<Kind>:FreshnessObjective).");
        _meter.CreateObservableGauge("veloz_backup_running_since_timestamp_seconds", ObserveRunningSince, "s",
            "When the backup run of the kind in progress (in any process) started (Unix seconds; 0: none runs). For pitr, a base backup.");
        _meter.CreateObservableGauge("veloz_backup_max_run_duration_seconds", ObserveMaxRunDurations, "s",
            "How long a run of the kind may take and still keep it fresh (Backup:<Kind>:MaxRunDuration); past it the run counts as hung.");
        _meter.CreateObservableGauge("veloz_backup_artifacts", () => ObserveInventory(t => t.Artifacts), "{artifact}", "Artifacts stored, by kind and target.");
        _meter.CreateObservableGauge("veloz_backup_stored_bytes", () => ObserveInventory(t => t.Bytes), "By", "Bytes stored (artifacts, not sidecars), by kind and target.");
        _meter.CreateObservableGauge("veloz_backup_upload_backlog_artifacts", () => Backlog().Artifacts, "{artifact}", "Artifacts waiting in the upload queue for S3.");
        _meter.CreateObservableGauge("veloz_backup_upload_backlog_bytes", () => Backlog().Bytes, "By", "Bytes waiting in the upload queue for S3.");
        _meter.CreateObservableGauge("veloz_backup_upload_backlog_oldest_timestamp_seconds", () => Seconds(Backlog().OldestEnqueuedAt), "s",
            "When the oldest artifact still waiting for S3 was queued (Unix seconds; 0: the queue is empty).");
        _meter.CreateObservableGauge("veloz_backup_wal_segments_pending", ObserveWalPending, "{segment}",
            "WAL segments in the WAL directory not stored yet: still being written (settling) or unreadable at the last run.");
        _meter.CreateObservableGauge("veloz_backup_restore_test_last_success_timestamp_seconds", () => Seconds(_restoreTest.LastSuccess?.Time), "s",
            "When the newest test restore that passed finished (Unix seconds; 0: none yet).");
        _meter.CreateObservableGauge("veloz_backup_restore_test_last_run_timestamp_seconds", () => Seconds(_restoreTest.Last?.Time), "s",
            "When the newest test restore, passed or not, finished (Unix seconds; 0: none yet). Newer than the last success: the newest one failed.");
        _meter.CreateObservableGauge("veloz_backup_restore_test_duration_seconds", ObserveRestoreDurations, "s",
            "How long each kind took in the newest test restore that passed (total: the whole restore).");
        _meter.CreateObservableGauge("veloz_backup_restore_test_objective_seconds", ObserveRestoreObjectives, "s",
            "Recovery time objective a test restore is held to: wal (Backup:Verify:RtoSingleNode), database and pitr (RtoDatabase), total (RtoSiteFailure).");

        var targets = _stores.Select(s => s.Target).ToList();
        if (options.Pitr.Enabled)
        {
            CreatePitrInstruments();
        }

        foreach (var kind in _enabledKinds)
        {
            foreach (var outcome in Outcomes)
            {
                _runs.Add(0, Tag("kind", kind), Tag("outcome", outcome));
            }

            foreach (var target in targets)
            {
                _bytes.Add(0, Tag("kind", kind), Tag("target", target));
            }
        }

        foreach (var kind in BackupKinds.All)
        {
            _integrityErrors.Add(0, Tag("kind", kind));
            foreach (var target in targets)
            {
                _retentionDeleted.Add(0, Tag("kind", kind), Tag("target", target));
            }
        }
    }

    /// <summary>The targets this agent writes: <c>local</c>, and <c>s3</c> when replication is on.</summary>
    public IEnumerable<string> Targets => _stores.Select(s => s.Target);

    /// <summary>
    /// Subscribes to the events of the agent's parts. Call once, before the daemon starts running backups.
    /// </summary>
    public void Attach(BackupRunner runner, Pruner pruner, Replicator? replicator)
    {
        ArgumentNullException.ThrowIfNull(runner);
        ArgumentNullException.ThrowIfNull(pruner);
        if (_detach.Count > 0)
        {
            throw new InvalidOperationException("the metrics are already attached");
        }

        EventHandler<BackupRunResult> completed = (_, result) => RecordRun(result);
        runner.Completed += completed;
        _detach.Add(() => runner.Completed -= completed);

        EventHandler<PruneAction> deleted = (_, action) => RecordDeletion(action);
        pruner.Deleted += deleted;
        _detach.Add(() => pruner.Deleted -= deleted);

        if (replicator is not null)
        {
            _replicator = replicator;
            EventHandler<ReplicatedArtifact> uploaded = (_, artifact) => RecordUpload(artifact);
            EventHandler<ReplicationRefusal> refused = (_, refusal) => RecordRefusal(refusal);
            replicator.Uploaded += uploaded;
            replicator.Refused += refused;
            _detach.Add(() =>
            {
                replicator.Uploaded -= uploaded;
                replicator.Refused -= refused;
            });
        }

        _wal = runner.Sources.OfType<WalSource>().FirstOrDefault();
    }

    /// <summary>
    /// Follows point-in-time recovery: the WAL files <paramref name="archive"/> stores (into the inventory) and the
    /// receiver's <paramref name="status"/> (null without streaming: archive_command mode), read at every scrape.
    /// </summary>
    public void AttachPitr(WalArchive archive, Func<PitrStatus>? status)
    {
        ArgumentNullException.ThrowIfNull(archive);
        EventHandler<ArchivedWal> stored = (_, wal) =>
        {
            lock (_scrapeGate)
            {
                _inventories[_stores[0].Target].Added(BackupKinds.Pitr, wal.Artifact.Name, wal.Artifact.Size);
                _bytes.Add(wal.Artifact.Size, Tag("kind", BackupKinds.Pitr), Tag("target", _stores[0].Target));
            }
        };
        EventHandler<string> removed = (_, name) =>
        {
            lock (_scrapeGate)
            {
                _inventories[_stores[0].Target].Removed(BackupKinds.Pitr, name);
            }
        };
        archive.Stored += stored;
        archive.Removed += removed;
        _detach.Add(() =>
        {
            archive.Stored -= stored;
            archive.Removed -= removed;
        });
        _pitrStatus = status;
    }

    /// <summary>
    /// Counts one integrity problem of <paramref name="kind"/> (<c>veloz_backup_integrity_errors_total</c>): restore
    /// and verify call this for every artifact whose bytes do not match their checksum or do not restore.
    /// </summary>
    public void RecordIntegrityError(string kind)
    {
        if (!BackupKinds.IsKnown(kind))
        {
            throw new ArgumentException($"unknown backup kind '{kind}'", nameof(kind));
        }

        lock (_scrapeGate)
        {
            _integrityErrors.Add(1, Tag("kind", kind));
        }
    }

    /// <summary>One backup run finished (<see cref="BackupRunner.Completed"/>).</summary>
    public void RecordRun(BackupRunResult result)
    {
        ArgumentNullException.ThrowIfNull(result);

        // Not during a scrape: a collection runs the gauges' callbacks before it reads the counters, so a run
        // recorded in between would show as counted but not yet as the last failure (or success).
        lock (_scrapeGate)
        {
            RecordRunCore(result);
        }
    }

    private void RecordRunCore(BackupRunResult result)
    {
        var kind = Tag("kind", result.Kind);
        _runs.Add(1, kind, Tag("outcome", OutcomeLabel(result.Outcome)));
        if (result.Outcome != BackupOutcome.Busy)
        {
            _duration.Record(result.Duration.TotalSeconds, kind);
        }

        switch (result.Outcome)
        {
            case BackupOutcome.Succeeded or BackupOutcome.Unchanged:
                var inventory = _inventories[_stores[0].Target];
                foreach (var artifact in result.Artifacts)
                {
                    inventory.Added(result.Kind, artifact.Name, artifact.Size);
                }

                if (result.Bytes > 0)
                {
                    _bytes.Add(result.Bytes, kind, Tag("target", _stores[0].Target));
                }

                // A change-triggered WAL run ships segments but writes no manifest: only a full sync counts
                // as a WAL backup, the same rule the catalog applies after a restart.
                if (result.Kind != BackupKinds.Wal || result.Trigger != BackupTrigger.Change)
                {
                    _lastRunSuccess.AddOrUpdate(result.Kind, result.StartedAt, (_, old) => result.StartedAt > old ? result.StartedAt : old);
                }

                break;
            case BackupOutcome.Failed:
                // A run may fail after storing complete artifacts (the dump stands, its globals do not): they count.
                foreach (var artifact in result.Artifacts)
                {
                    _inventories[_stores[0].Target].Added(result.Kind, artifact.Name, artifact.Size);
                }

                var ended = result.StartedAt + result.Duration;
                _lastFailure.AddOrUpdate(result.Kind, ended, (_, old) => ended > old ? ended : old);
                break;
        }

        if (result.Kind == BackupKinds.Wal)
        {
            CountWalConflicts();
        }
    }

    /// <summary>Retention deleted an artifact (<see cref="Pruner.Deleted"/>).</summary>
    public void RecordDeletion(PruneAction action)
    {
        ArgumentNullException.ThrowIfNull(action);
        lock (_scrapeGate)
        {
            _retentionDeleted.Add(1, Tag("kind", action.Kind), Tag("target", action.Target));
            if (_inventories.TryGetValue(action.Target, out var inventory))
            {
                inventory.Removed(action.Kind, action.Name);
            }
        }
    }

    /// <summary>An artifact reached the replica (<see cref="Replicator.Uploaded"/>).</summary>
    public void RecordUpload(ReplicatedArtifact artifact)
    {
        ArgumentNullException.ThrowIfNull(artifact);
        var target = _stores.Count > 1 ? _stores[1].Target : "s3";
        lock (_scrapeGate)
        {
            _bytes.Add(artifact.Bytes, Tag("kind", artifact.Kind), Tag("target", target));
            if (_inventories.TryGetValue(target, out var inventory))
            {
                inventory.Added(artifact.Kind, artifact.Name, artifact.Bytes);
            }
        }
    }

    /// <summary>
    /// The replica refused a copy (<see cref="Replicator.Refused"/>): it stored other bytes than were sent, holds
    /// other bytes under that name, or the local copy did not match its checksum. Counted once per artifact per
    /// process, not at every retry of the queue.
    /// </summary>
    public void RecordRefusal(ReplicationRefusal refusal)
    {
        ArgumentNullException.ThrowIfNull(refusal);
        if (BackupKinds.IsKnown(refusal.Kind) && _refusedCounted.TryAdd((refusal.Kind, refusal.Name), true))
        {
            lock (_scrapeGate)
            {
                _integrityErrors.Add(1, Tag("kind", refusal.Kind));
            }
        }
    }

    /// <summary>
    /// <c>Backup:Cluster:Enabled</c>: the database-wide kinds are judged cluster-wide (<see cref="Cluster.ClusterFreshness"/>):
    /// their local last success (the dump, the newest base backup, the recovery point) is the newest of this node's store
    /// and the cluster's, whichever node did the work, in <c>/health</c> and the freshness series alike; and this node's
    /// clock skew past <c>Backup:Cluster:MaxClockSkew</c> is a <c>/health</c> problem.
    /// </summary>
    /// <param name="view">The last view of the cluster's tables (null until the first check-in).</param>
    /// <param name="skewSeconds">This node's clock minus the database server's, at the last check-in.</param>
    public void AttachCluster(Func<Cluster.ClusterView?> view, Func<double> skewSeconds)
    {
        ArgumentNullException.ThrowIfNull(view);
        ArgumentNullException.ThrowIfNull(skewSeconds);
        _clusterView = view;
        _clusterSkew = skewSeconds;
    }

    /// <summary>
    /// The newest of this node's own and the cluster's (with Backup:Cluster, for the database-wide kinds in the local
    /// store) and the node that did it; for pitr-base the base backups, for pitr the recovery point.
    /// </summary>
    private Cluster.NodeBackup? ClusterNewest(string kind, DateTimeOffset? local)
    {
        if (_clusterView is null)
        {
            return local is { } t ? new Cluster.NodeBackup(t, _options.NodeName, null) : null;
        }

        var view = _clusterView();
        var cluster = kind == BackupKinds.Pitr ? Cluster.ClusterFreshness.RecoveryPoint(view)
            : Cluster.ClusterFreshness.LastSuccess(view, kind == PitrBaseKind ? BackupKinds.Pitr : kind);
        return Cluster.ClusterFreshness.Newest(local, _options.NodeName, cluster);
    }

    /// <summary>
    /// The newest successful backup of <paramref name="kind"/> in <paramref name="target"/>: the newest
    /// run-marking artifact in the inventory, or a later successful run of this process (an unchanged run writes
    /// nothing but proves the newest backup current). For PITR the recovery point the receiver reports for the target
    /// (null while it knows none, and without streaming).
    /// </summary>
    public DateTimeOffset? LastSuccess(string kind, string target) => LastSuccess(kind, target, _pitrStatus?.Invoke());

    private DateTimeOffset? LastSuccess(string kind, string target, PitrStatus? pitr)
    {
        var own = OwnLastSuccess(kind, target, pitr);
        if (_clusterView is null || !Cluster.ClusterFreshness.IsDatabaseWide(kind))
        {
            return own;
        }

        if (target == _stores[0].Target)
        {
            return ClusterNewest(kind, own)?.Time;
        }

        // S3: the dump's copy is the newest any node reported (a dump made before Backup:Cluster:SharedPrefix is under the
        // prefix of the node that took it); the streamed WAL's is the receiver's holder's upload, as it checked in.
        return kind == BackupKinds.Database
            ? Cluster.ClusterFreshness.Newest(own, _options.NodeName, Cluster.ClusterFreshness.S3Dump(_clusterView()))?.Time
            : Cluster.ClusterFreshness.Newest(own, _options.NodeName, Cluster.ClusterFreshness.S3RecoveryPoint(_clusterView()))?.Time;
    }

    /// <summary>The newest dump in this node's own S3 prefix (what it reports at its check-ins); null without S3 or dumps.</summary>
    public DateTimeOffset? OwnS3Dump() => _stores.Count > 1 ? OwnLastSuccess(BackupKinds.Database, _stores[1].Target, null) : null;

    private DateTimeOffset? OwnLastSuccess(string kind, string target, PitrStatus? pitr)
    {
        if (kind == BackupKinds.Pitr)
        {
            // The streamed WAL's freshness is its recovery point: an idle server writes no WAL, and is still current.
            // A base backup is not a recovery point (the base backups have their own series and health entry).
            return pitr is null ? null : target == _stores[0].Target ? pitr.RecoveryPoint : pitr.RecoveryPointS3;
        }

        DateTimeOffset? newest = _inventories.TryGetValue(target, out var inventory) ? inventory.Totals(kind).NewestRun : null;
        if (target == _stores[0].Target && _lastRunSuccess.TryGetValue(kind, out var run) && (newest is null || run > newest))
        {
            newest = run;
        }

        return newest;
    }

    /// <summary>When the backup run of <paramref name="kind"/> in progress (this process or another) started; null when none runs.</summary>
    public DateTimeOffset? RunningSince(string kind) => Sources.KindLock.BackupRunningSince(_options.StateDirectory, kind);

    /// <summary>
    /// The <c>/health</c> verdict now: the scheduler's state and every enabled kind's freshness in the local store (pitr:
    /// the recovery point, only while streaming; pitr-base: the newest base backup).
    /// </summary>
    public HealthReport Health(SchedulerState scheduler)
    {
        var now = _time.GetUtcNow();
        var pitr = _pitrStatus?.Invoke();
        var view = _clusterView?.Invoke();
        // pitr's own freshness is the recovery point, which no run produces; its runs are base backups (pitr-base).
        var kinds = _freshKinds.Select(k =>
        {
            var clustered = _clusterView is not null && Cluster.ClusterFreshness.IsDatabaseWide(k);
            var newest = clustered ? ClusterNewest(k, OwnLastSuccess(k, _stores[0].Target, pitr)) : null;
            var running = k == BackupKinds.Pitr ? null : RunningSince(k) ?? (clustered ? Cluster.ClusterFreshness.RunningSince(view, k) : null);
            return clustered
                ? Freshness.Evaluate(_options, k, newest?.Time, now, running) with { Node = newest?.Node }
                : Freshness.Evaluate(_options, k, LastSuccess(k, _stores[0].Target, pitr), now, running);
        }).ToList();
        if (_options.Pitr.Enabled)
        {
            var clustered = _clusterView is not null;
            var newest = ClusterNewest(PitrBaseKind, OwnNewestBase(_stores[0].Target));
            kinds.Add(Freshness.Evaluate(PitrBaseKind, newest?.Time, _options.Pitr.BaseFreshnessObjective, _options.FreshnessGrace, now,
                RunningSince(BackupKinds.Pitr) ?? (clustered ? Cluster.ClusterFreshness.RunningSince(view, BackupKinds.Pitr) : null), _options.Pitr.MaxRunDuration)
                with { Node = clustered ? newest?.Node : null });
        }

        var problems = new List<string>();
        if (_clusterSkew?.Invoke() is { } skew && Cluster.ClockSkew.IsSkewed(skew, _options.Cluster.MaxClockSkew))
        {
            problems.Add($"cluster: this node's clock is {Cluster.ClusterDatabase.FormatSkew(skew)} off the database server's, more than Backup:Cluster:MaxClockSkew ({HealthReport.Duration(_options.Cluster.MaxClockSkew)}): Quartz clustering needs the nodes' clocks within a second (fix NTP)");
        }

        return HealthReport.Evaluate(scheduler, kinds, problems);
    }

    /// <summary>
    /// Collects every instrument now and returns the Prometheus text exposition. Collections are serialized with
    /// each other and with the events, so one scrape is one consistent moment.
    /// </summary>
    public string Scrape()
    {
        var restoreTest = RestoreTestState.Read(_options.StateDirectory);
        IReadOnlyList<MetricFamily> families;
        lock (_scrapeGate)
        {
            _restoreTest = restoreTest;
            // One status for the whole collection: the receiver polls every few seconds, and a scrape whose
            // server and stored positions (or recovery point and last success) came from two polls would disagree.
            _pitrScraped = _pitrStatus?.Invoke();
            CountWalConflicts();
            CountPitrFailures();
            families = _pipeline.Collect();
        }

        return PrometheusTextFormat.Write(WithEmptyHistograms(families));
    }

    public void Dispose()
    {
        foreach (var detach in _detach)
        {
            detach();
        }

        _detach.Clear();
        _meter.Dispose();
        _pipeline.Dispose();
    }

    private static KeyValuePair<string, object?> Tag(string key, string value) => new(key, value);

    private static double Seconds(DateTimeOffset? time) => time is { } t ? t.ToUnixTimeMilliseconds() / 1000.0 : 0;

    private static string OutcomeLabel(BackupOutcome outcome) => outcome switch
    {
        BackupOutcome.Succeeded => "succeeded",
        BackupOutcome.Unchanged => "unchanged",
        BackupOutcome.Failed => "failed",
        _ => "busy",
    };

    private ReplicationBacklog Backlog() => _replicator?.Backlog ?? ReplicationBacklog.Empty;

    private void CountWalConflicts()
    {
        if (_wal is null)
        {
            return;
        }

        lock (_walGate)
        {
            var detected = _wal.Status.ConflictsDetected;
            if (detected > _walConflictsCounted)
            {
                _integrityErrors.Add(detected - _walConflictsCounted, Tag("kind", BackupKinds.Wal));
                _walConflictsCounted = detected;
            }
        }
    }

    /// <summary>The health entry of PITR base backups (the streamed WAL is the kind <c>pitr</c> itself).</summary>
    public const string PitrBaseKind = "pitr-base";

    private void CreatePitrInstruments()
    {
        _pitrFailures = _meter.CreateCounter<long>("veloz_backup_pitr_failures", "{failure}",
            $"Times WAL streaming stopped or a WAL file could not be stored, by reason ({string.Join(", ", PgTools.Labels)}).");
        foreach (var reason in PgTools.Labels)
        {
            _pitrFailures.Add(0, Tag("reason", reason));
        }

        _meter.CreateObservableGauge("veloz_backup_pitr_receiver_up", () => PitrGauge(s => s.ReceiverUp ? 1 : 0), "1",
            "1 while pg_receivewal streams the server's WAL into the store, 0 otherwise.");
        _meter.CreateObservableGauge("veloz_backup_pitr_receiver_restarts", () => PitrGauge(s => s.Restarts), "{restart}",
            "How often the receiver was started again after it stopped, since the agent started.");
        _meter.CreateObservableGauge("veloz_backup_pitr_server_wal_position_bytes", () => PitrGauge(s => Position(s.ServerLsn)), "By",
            "The server's current WAL position (LSN as a byte position) at the last poll.");
        _meter.CreateObservableGauge("veloz_backup_pitr_received_wal_position_bytes", () => PitrGauge(s => Position(s.ReceivedLsn)), "By",
            "How far the receiver has received and flushed the server's WAL (the slot's restart_lsn, which it reports).");
        _meter.CreateObservableGauge("veloz_backup_pitr_received_timestamp_seconds", () => PitrGauge(s => Seconds(s.LastReceivedAt)), "s",
            "When the receiver was last found to have received new WAL, or to be level with the server (Unix seconds; 0: never).");
        _meter.CreateObservableGauge("veloz_backup_pitr_stored_wal_position_bytes", ObservePitrStored, "By",
            "How far the WAL stored in the target reaches (local: stored; s3: everything before it copied).");
        _meter.CreateObservableGauge("veloz_backup_pitr_stored_timestamp_seconds", () => PitrGauge(s => Seconds(s.LastStoredAt)), "s",
            "When a WAL segment or piece was last stored locally (Unix seconds; 0: never).");
        _meter.CreateObservableGauge("veloz_backup_pitr_recovery_point_timestamp_seconds", ObservePitrRecoveryPoint, "s",
            "The newest moment all of whose WAL is stored in the target: how far a restore to the latest point reaches (Unix seconds; 0: unknown).");
        _meter.CreateObservableGauge("veloz_backup_pitr_lag_bytes", ObservePitrLag, "By",
            "Bytes of WAL the server has that the target does not hold yet.");
        _meter.CreateObservableGauge("veloz_backup_pitr_slot_retained_bytes", () => PitrGauge(s => s.SlotRetainedBytes), "By",
            "WAL the replication slot keeps on the server (server position minus what the receiver flushed).");
        _meter.CreateObservableGauge("veloz_backup_pitr_slot_retained_objective_bytes", () => _options.Pitr.MaxRetainedWalMiB * 1024L * 1024L, "By",
            "How much WAL the slot may hold back before it is an alert (Backup:Pitr:MaxRetainedWalMiB).");
        _meter.CreateObservableGauge("veloz_backup_pitr_base_backup_timestamp_seconds", ObservePitrBase, "s",
            "When the newest complete base backup in the target started (Unix seconds; 0: none).");
        _meter.CreateObservableGauge("veloz_backup_pitr_base_backup_objective_seconds", () => _options.Pitr.BaseFreshnessObjective.TotalSeconds, "s",
            "How old the newest base backup may be (Backup:Pitr:BaseFreshnessObjective).");
    }

    private IEnumerable<Measurement<long>> PitrGauge(Func<PitrStatus, long> value)
    {
        if (_pitrScraped is { } status)
        {
            yield return new Measurement<long>(value(status));
        }
    }

    private IEnumerable<Measurement<double>> PitrGauge(Func<PitrStatus, double> value)
    {
        if (_pitrScraped is { } status)
        {
            yield return new Measurement<double>(value(status));
        }
    }

    private static long Position(string? lsn) => PitrStatus.Position(lsn) is { } l ? (long)l.Value : 0;

    private IEnumerable<Measurement<long>> ObservePitrStored()
    {
        if (_pitrScraped is not { } status)
        {
            yield break;
        }

        yield return new Measurement<long>(Position(status.StoredLsn), Tag("target", _stores[0].Target));
        if (_stores.Count > 1)
        {
            yield return new Measurement<long>(Position(status.StoredLsnS3), Tag("target", _stores[1].Target));
        }
    }

    private IEnumerable<Measurement<double>> ObservePitrRecoveryPoint()
    {
        if (_pitrScraped is not { } status)
        {
            yield break;
        }

        // With Backup:Cluster the receiver's holder's, on every node (LastSuccess): the same time as /health's pitr entry.
        yield return new Measurement<double>(Seconds(LastSuccess(BackupKinds.Pitr, _stores[0].Target, status)), Tag("target", _stores[0].Target));
        if (_stores.Count > 1)
        {
            yield return new Measurement<double>(Seconds(LastSuccess(BackupKinds.Pitr, _stores[1].Target, status)), Tag("target", _stores[1].Target));
        }
    }

    private IEnumerable<Measurement<long>> ObservePitrLag()
    {
        if (_pitrScraped is not { } status)
        {
            yield break;
        }

        yield return new Measurement<long>(status.LagBytes, Tag("target", _stores[0].Target));
        if (_stores.Count > 1)
        {
            yield return new Measurement<long>(status.LagBytesS3 ?? 0, Tag("target", _stores[1].Target));
        }
    }

    private IEnumerable<Measurement<double>> ObservePitrBase() =>
        _stores.Select(store => new Measurement<double>(Seconds(NewestBase(store.Target)), Tag("target", store.Target)));

    private DateTimeOffset? NewestBase(string target) =>
        target == _stores[0].Target && _clusterView is not null ? ClusterNewest(PitrBaseKind, OwnNewestBase(target))?.Time : OwnNewestBase(target);

    private DateTimeOffset? OwnNewestBase(string target) =>
        _inventories.TryGetValue(target, out var inventory) ? inventory.Totals(BackupKinds.Pitr).NewestRun : null;

    private void CountPitrFailures()
    {
        if (_pitrScraped is null || _pitrFailures is null)
        {
            return;
        }

        foreach (var (reason, count) in _pitrScraped.Failures)
        {
            var counted = _pitrFailuresCounted.GetValueOrDefault(reason);
            if (count > counted)
            {
                _pitrFailures.Add(count - counted, Tag("reason", reason));
                _pitrFailuresCounted[reason] = count;
            }
        }
    }

    private IEnumerable<Measurement<double>> ObserveLastSuccess()
    {
        foreach (var kind in _freshKinds)
        {
            foreach (var store in _stores)
            {
                yield return new Measurement<double>(Seconds(LastSuccess(kind, store.Target, _pitrScraped)), Tag("kind", kind), Tag("target", store.Target));
            }
        }
    }

    private IEnumerable<Measurement<double>> ObserveLastFailure() =>
        _enabledKinds.Select(k => new Measurement<double>(Seconds(_lastFailure.TryGetValue(k, out var t) ? t : null), Tag("kind", k)));

    private IEnumerable<Measurement<double>> ObserveRunningSince() =>
        _enabledKinds.Select(k => new Measurement<double>(Seconds(RunningSince(k)), Tag("kind", k)));

    private IEnumerable<Measurement<double>> ObserveMaxRunDurations() =>
        _enabledKinds.Select(k => new Measurement<double>(_options.Kind(k).MaxRunDuration.TotalSeconds, Tag("kind", k)));

    private IEnumerable<Measurement<double>> ObserveObjectives() =>
        _freshKinds.Select(k => new Measurement<double>(_options.Kind(k).FreshnessObjective.TotalSeconds, Tag("kind", k)));

    private IEnumerable<Measurement<long>> ObserveInventory(Func<KindTotals, long> value)
    {
        foreach (var kind in BackupKinds.All)
        {
            foreach (var store in _stores)
            {
                yield return new Measurement<long>(value(_inventories[store.Target].Totals(kind)), Tag("kind", kind), Tag("target", store.Target));
            }
        }
    }

    private IEnumerable<Measurement<long>> ObserveWalPending()
    {
        if (_wal is not null)
        {
            var status = _wal.Status;
            yield return new Measurement<long>(status.Settling.Count + status.Unreadable.Count);
        }
        else if (_options.Wal.Enabled)
        {
            yield return new Measurement<long>(0);
        }
    }

    private IEnumerable<Measurement<double>> ObserveRestoreDurations() =>
        (_restoreTest.LastSuccess?.DurationSeconds ?? new Dictionary<string, double>())
        .Where(d => d.Key == "total" || BackupKinds.IsKnown(d.Key))
        .Select(d => new Measurement<double>(d.Value, Tag("kind", d.Key)));

    private IEnumerable<Measurement<double>> ObserveRestoreObjectives()
    {
        yield return new Measurement<double>(_options.Verify.RtoSingleNode.TotalSeconds, Tag("kind", BackupKinds.Wal));
        yield return new Measurement<double>(_options.Verify.RtoDatabase.TotalSeconds, Tag("kind", BackupKinds.Database));
        if (_options.Pitr.Enabled)
        {
            // The drill's scratch point-in-time restore is held to the database corruption RTO too.
            yield return new Measurement<double>(_options.Verify.RtoDatabase.TotalSeconds, Tag("kind", BackupKinds.Pitr));
        }

        yield return new Measurement<double>(_options.Verify.RtoSiteFailure.TotalSeconds, Tag("kind", "total"));
    }

    /// <summary>
    /// A histogram series exists only once something was recorded; the duration series of every enabled kind is
    /// a known series, so it is written empty (all buckets zero) until the kind's first run.
    /// </summary>
    private IEnumerable<MetricFamily> WithEmptyHistograms(IReadOnlyList<MetricFamily> families)
    {
        var seen = false;
        foreach (var family in families)
        {
            if (family.Type != MetricFamilyType.Histogram || family.Name != DurationName)
            {
                yield return family;
                continue;
            }

            seen = true;
            yield return family with { Histograms = [.. family.Histograms, .. EmptyDurations(family.Histograms)] };
        }

        if (!seen)
        {
            yield return new MetricFamily(DurationName, DurationHelp, MetricFamilyType.Histogram, [], [.. EmptyDurations([])]);
        }
    }

    private IEnumerable<HistogramSample> EmptyDurations(IReadOnlyList<HistogramSample> present)
    {
        var kinds = present.Select(h => h.Labels.FirstOrDefault(l => l.Key == "kind").Value).ToHashSet(StringComparer.Ordinal);
        return _enabledKinds.Where(k => !kinds.Contains(k))
            .Select(k => new HistogramSample([KeyValuePair.Create("kind", k)], DurationBuckets, new long[DurationBuckets.Length + 1], 0, 0));
    }

}
