using System.Diagnostics;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Restore;

/// <summary>What the operator asked to restore: one kind.</summary>
/// <param name="Kind">wal, config, database or secrets.</param>
/// <param name="Source">latest (or null), a file, or an s3:// URL.</param>
/// <param name="At">With latest: the newest artifact at or before this time.</param>
/// <param name="From">With latest: local or s3 (null: local, then S3).</param>
/// <param name="Target">Restore into this directory instead of the configured one (wal, config, secrets).</param>
/// <param name="Database">For the database: side by side, replace, jobs.</param>
/// <param name="ManageService">Run the stop/start commands and wait for health around the switch-over.</param>
public sealed record RestoreRequest(string Kind, string? Source, DateTimeOffset? At, string? From, string? Target, DatabaseRestoreRequest? Database, bool ManageService);

/// <summary>The service steps of a restore and how long they took.</summary>
/// <param name="Stopped">The stop command ran.</param>
/// <param name="Started">The start command ran.</param>
/// <param name="HealthyAfter">How long VeloZ took to report healthy; null when not waited for.</param>
/// <param name="Downtime">From the stop command to healthy (or to the start command).</param>
public sealed record ServiceReport(bool Stopped, bool Started, TimeSpan? HealthyAfter, TimeSpan Downtime);

/// <summary>A whole restore: each kind's result, the service steps, the total against the RTO.</summary>
/// <param name="Results">Per kind, in restore order.</param>
/// <param name="Service">The service steps, when managed.</param>
/// <param name="Total">Wall time of the whole restore.</param>
/// <param name="Objective">The runbook's RTO for the scenario.</param>
/// <param name="Skipped">Kinds not restored and why (disabled, nothing stored).</param>
public sealed record RestoreReport(IReadOnlyList<RestoreResult> Results, ServiceReport? Service, TimeSpan Total, TimeSpan Objective, IReadOnlyList<string> Skipped);

/// <summary>
/// The runbook's restore procedures. Every restore first does the slow and risky work beside the live system —
/// artifacts located, downloaded and checksum-verified, archives decrypted and extracted into staging, the dump
/// restored into a scratch database, the WAL assembled beside its directory — while VeloZ keeps running; only then
/// is VeloZ stopped (<c>Backup:Restore:StopCommand</c>), everything switched over with renames, VeloZ started and
/// its health URL awaited. A failure before the switch-over leaves the live system exactly as it was. Each kind's
/// lock is held throughout, so no backup or prune of that kind runs meanwhile.
/// </summary>
public sealed partial class Restorer
{
    private static readonly TimeSpan LockWait = TimeSpan.FromSeconds(60);
    private readonly BackupOptions _options;
    private readonly RestoreSources _sources;
    private readonly ILogger _logger;
    private readonly WalRestorer _wal;
    private readonly ArchiveRestorer _archives;
    private readonly DatabaseRestorer _database;
    private readonly ServiceControl _service;

    public Restorer(BackupOptions options, RestoreSources sources, TimeProvider time, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _options = options;
        _sources = sources;
        _logger = loggerFactory.CreateLogger<Restorer>();
        _wal = new WalRestorer(options, time, loggerFactory.CreateLogger<WalRestorer>());
        _archives = new ArchiveRestorer(options, loggerFactory.CreateLogger<ArchiveRestorer>());
        _database = new DatabaseRestorer(options.Database, time, loggerFactory.CreateLogger<DatabaseRestorer>())
        {
            Globals = new GlobalsRestorer(options, sources, loggerFactory.CreateLogger<GlobalsRestorer>()),
        };
        _service = new ServiceControl(options.Restore, loggerFactory.CreateLogger<ServiceControl>());
        Pitr = new Pitr.PitrRestorer(options, sources, time, loggerFactory);
        Pitr.Step += line => OnStep(line);
    }

    /// <summary>Point-in-time recovery of the cluster (live, or into a scratch directory).</summary>
    public Pitr.PitrRestorer Pitr { get; }

    /// <summary>Takes a new base backup after a point-in-time restore (the daemon's base backup source); null: none is taken.</summary>
    public Func<CancellationToken, Task<string>>? FreshBaseBackup { get; init; }

    /// <summary>
    /// The runbook's Option A on the live cluster: everything verified and staged first, then VeloZ and PostgreSQL
    /// stopped, the cluster restored to <paramref name="request"/>'s target, PostgreSQL started until it promoted, VeloZ
    /// started and healthy; then a new base backup for the new timeline.
    /// </summary>
    public async Task<RestoreReport> RestorePitrAsync(Pitr.PitrRestoreRequest request, bool manageService, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var clock = Stopwatch.StartNew();
        using var kindLock = await LockAsync(BackupKinds.Pitr, cancellationToken).ConfigureAwait(false);
        var prepared = await Pitr.PrepareLiveAsync(request, cancellationToken).ConfigureAwait(false);
        await using (prepared.ConfigureAwait(false))
        {
            var (results, service) = await SwitchOverAsync([prepared], manageService, cancellationToken).ConfigureAwait(false);
            var total = clock.Elapsed;
            var (line, warning) = await NewBaseAsync(cancellationToken).ConfigureAwait(false);
            return new RestoreReport([.. results.Select(r => WithNewBase(r, line, warning))], service, total, _options.Verify.RtoDatabase, []);
        }
    }

    /// <summary>
    /// A new base backup once the restored cluster runs (after VeloZ is back: it is not part of the downtime), so the next
    /// restore does not depend on the old timeline's WAL. Returns a line for the summary, or a warning.
    /// </summary>
    private async Task<(string? Line, string? Warning)> NewBaseAsync(CancellationToken cancellationToken)
    {
        if (FreshBaseBackup is null)
        {
            return (null, "no new base backup was taken: take one with veloz-backup backup pitr");
        }

        try
        {
            var detail = await Pitr.Timed("taking a new base backup of the restored cluster", () => FreshBaseBackup(cancellationToken)).ConfigureAwait(false);
            return ($"new base backup: {detail}", null);
        }
        catch (Exception ex) when (ex is BackupSourceException or Storage.StoreException or IOException)
        {
            return (null, $"the new base backup failed ({ex.Message}): run veloz-backup backup pitr now, restores to points after this one need it");
        }
    }

    private static RestoreResult WithNewBase(RestoreResult result, string? line, string? warning) =>
        result.Kind != BackupKinds.Pitr ? result : result with
        {
            Summary = line is null ? result.Summary : $"{result.Summary}; {line}",
            Warnings = warning is null ? result.Warnings : [.. result.Warnings, warning],
        };

    /// <summary>Step lines (<c>verifying …</c>, <c>stopping VeloZ</c>) as they begin, for the terminal.</summary>
    public event Action<string>? Step;

    public RestoreSources Sources => _sources;

    public WalRestorer Wal => _wal;

    public ArchiveRestorer Archives => _archives;

    public DatabaseRestorer Database => _database;

    /// <summary>Restores one kind as <paramref name="request"/> says.</summary>
    public async Task<RestoreReport> RestoreAsync(RestoreRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var clock = Stopwatch.StartNew();
        using var kindLock = await LockAsync(request.Kind, cancellationToken).ConfigureAwait(false);
        var artifact = await _sources.ResolveAsync(request.Kind, request.Source, request.At, request.From, cancellationToken).ConfigureAwait(false);
        var prepared = await PrepareAsync(artifact, request.Target, request.Database, cancellationToken).ConfigureAwait(false);
        await using (prepared.ConfigureAwait(false))
        {
            var (results, service) = await SwitchOverAsync([prepared], request.ManageService, cancellationToken).ConfigureAwait(false);
            return new RestoreReport(results, service, clock.Elapsed, ObjectiveOf(request.Kind), []);
        }
    }

    /// <summary>
    /// The site-failure path: the newest secrets, configuration, database and WAL (in that order) from
    /// <paramref name="sourceUrl"/> (an <c>s3://bucket[/node]</c>), or else from the local store, falling back to
    /// the configured S3 per kind when the local store has none. Replaces the configured database.
    /// </summary>
    public async Task<RestoreReport> RestoreFullAsync(string? sourceUrl, bool manageService, CancellationToken cancellationToken, string? databaseFrom = null)
    {
        // With PITR on, the database comes back with its whole cluster at the newest stored WAL (an RPO of seconds);
        // the daily dump stays the runbook's Option B.
        var pitr = (databaseFrom ?? (_options.Pitr.Enabled ? "pitr" : "dump")) == "pitr";
        if (pitr && !_options.Pitr.Enabled)
        {
            throw new ArgumentException("--database-from pitr needs Backup:Pitr:Enabled; use --database-from dump");
        }

        var clock = Stopwatch.StartNew();
        var store = sourceUrl is null ? null : _sources.S3Store(sourceUrl);
        var locks = new List<KindLock>();
        var prepared = new List<IPreparedRestore>();
        var skipped = new List<string>();
        try
        {
            foreach (var kind in BackupKinds.All)
            {
                if (!_options.Kind(kind).Enabled)
                {
                    skipped.Add($"{kind}: disabled in the configuration");
                    continue;
                }

                if (kind == BackupKinds.Pitr && !pitr)
                {
                    skipped.Add("pitr: the database comes from its newest dump (--database-from dump)");
                    continue;
                }

                if (kind == BackupKinds.Database && pitr)
                {
                    skipped.Add("database: restored with its cluster by point-in-time recovery to the newest WAL (--database-from dump for the dump)");
                    continue;
                }

                locks.Add(await LockAsync(kind, cancellationToken).ConfigureAwait(false));
                if (kind == BackupKinds.Pitr)
                {
                    prepared.Add(await Pitr.PrepareLiveAsync(new Pitr.PitrRestoreRequest(global::VelozBackupAgent.Pitr.PitrTarget.Latest, SourceUrl: sourceUrl), cancellationToken).ConfigureAwait(false));
                    continue;
                }

                var artifact = store is null
                    ? await _sources.LatestAsync(kind, null, null, cancellationToken).ConfigureAwait(false)
                    : await _sources.NewestInAsync(store, kind, null, cancellationToken).ConfigureAwait(false)
                      ?? throw new RestoreException($"no {kind} backup under {sourceUrl}; nothing was restored");
                prepared.Add(await PrepareAsync(artifact, null, new DatabaseRestoreRequest(null, Replace: true, _options.Restore.Jobs), cancellationToken).ConfigureAwait(false));
            }

            var (results, service) = await SwitchOverAsync(prepared, manageService, cancellationToken).ConfigureAwait(false);
            var total = clock.Elapsed;
            if (pitr)
            {
                var (line, warning) = await NewBaseAsync(cancellationToken).ConfigureAwait(false);
                results = [.. results.Select(r => WithNewBase(r, line, warning))];
            }

            return new RestoreReport(results, service, total, _options.Verify.RtoSiteFailure, skipped);
        }
        finally
        {
            foreach (var p in prepared)
            {
                await p.DisposeAsync().ConfigureAwait(false);
            }

            foreach (var l in locks)
            {
                l.Dispose();
            }
        }
    }

    /// <summary>Stages and prepares one artifact (nothing live is touched).</summary>
    public async Task<IPreparedRestore> PrepareAsync(ArtifactRef artifact, string? target, DatabaseRestoreRequest? database, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(artifact);
        OnStep($"{artifact.Kind}: verifying {artifact.Label}");
        using var staged = await _sources.StageAsync(artifact, cancellationToken).ConfigureAwait(false);
        OnStep($"{artifact.Kind}: preparing {artifact.Name} beside the live copy");
        return artifact.Kind switch
        {
            BackupKinds.Wal => await _wal.PrepareAsync(staged, artifact.Store ?? _sources.Local, target, cancellationToken).ConfigureAwait(false),
            BackupKinds.Config => await _archives.PrepareConfigAsync(staged, target, cancellationToken).ConfigureAwait(false),
            BackupKinds.Secrets => await _archives.PrepareSecretsAsync(staged, target, cancellationToken).ConfigureAwait(false),
            BackupKinds.Database => await _database.PrepareAsync(staged, database ?? new DatabaseRestoreRequest(null, Replace: false, _options.Restore.Jobs), cancellationToken).ConfigureAwait(false),
            _ => throw new ArgumentException($"unknown kind '{artifact.Kind}'"),
        };
    }

    private async Task<(IReadOnlyList<RestoreResult> Results, ServiceReport? Service)> SwitchOverAsync(IReadOnlyList<IPreparedRestore> prepared, bool manageService, CancellationToken cancellationToken)
    {
        var results = new List<RestoreResult>();
        if (!manageService)
        {
            foreach (var p in prepared)
            {
                OnStep($"{p.Kind}: putting {p.Artifact} in place");
                results.Add(await p.CommitAsync(cancellationToken).ConfigureAwait(false));
            }

            return (results, null);
        }

        var downtime = Stopwatch.StartNew();
        OnStep($"stopping VeloZ: {_options.Restore.StopCommand}");
        await _service.StopAsync(cancellationToken).ConfigureAwait(false);
        Exception? failure = null;
        try
        {
            foreach (var p in prepared)
            {
                OnStep($"{p.Kind}: putting {p.Artifact} in place");
                results.Add(await p.CommitAsync(cancellationToken).ConfigureAwait(false));
            }
        }
        catch (Exception ex)
        {
            failure = ex;
        }

        // Start VeloZ again whatever happened: a failed switch-over left the previous state in place.
        OnStep($"starting VeloZ: {_options.Restore.StartCommand}");
        await _service.StartAsync(cancellationToken).ConfigureAwait(false);
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }

        OnStep($"waiting for {_options.Restore.HealthUrl}");
        var healthy = await _service.WaitHealthyAsync(cancellationToken).ConfigureAwait(false);
        return (results, new ServiceReport(true, true, healthy, downtime.Elapsed));
    }

    private TimeSpan ObjectiveOf(string kind) => kind switch
    {
        BackupKinds.Wal => _options.Verify.RtoSingleNode,
        BackupKinds.Database or BackupKinds.Pitr => _options.Verify.RtoDatabase,
        _ => _options.Verify.RtoSiteFailure,
    };

    private async Task<KindLock> LockAsync(string kind, CancellationToken cancellationToken)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            if (KindLock.TryAcquire(_options.StateDirectory, kind, out var holder) is { } acquired)
            {
                return acquired;
            }

            if (waited.Elapsed >= LockWait)
            {
                throw new RestoreException($"a backup, prune or restore of {kind} is running{(holder is int pid ? $" (pid {pid})" : "")} and did not finish within {LockWait.TotalSeconds:0} s; try again when it has");
            }

            if (waited.Elapsed < TimeSpan.FromMilliseconds(300))
            {
                OnStep($"{kind}: waiting for the running {kind} job to finish");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken).ConfigureAwait(false);
        }
    }

    private void OnStep(string line)
    {
        Log.Step(_logger, line);
        Step?.Invoke(line);
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Restore.Step, LogLevel.Information, "restore: {Line}")]
        public static partial void Step(ILogger logger, string line);
    }
}
