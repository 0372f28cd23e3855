using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using Microsoft.Extensions.Logging;
using Npgsql;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Restore;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Database;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Checksums;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Pitr;

/// <summary>What a point-in-time restore is asked to do.</summary>
/// <param name="Target">Where recovery stops.</param>
/// <param name="From">local, s3, or null (the local store, else S3).</param>
/// <param name="Timeline">The timeline to recover along; null: the newest stored timeline that descends from the base.</param>
/// <param name="Base">A base backup to start from (its name); null chooses the newest one old enough for the target.</param>
/// <param name="SourceUrl">An <c>s3://bucket[/node]</c> to restore from instead (a site failure).</param>
public sealed record PitrRestoreRequest(PitrTarget Target, string? From = null, uint? Timeline = null, string? Base = null, string? SourceUrl = null);

/// <summary>One step of a restore and how long it took.</summary>
public sealed record PitrStep(string Name, TimeSpan Duration);

/// <summary>How a recovery ended.</summary>
/// <param name="Timeline">The new timeline the server promoted to.</param>
/// <param name="SwitchPoint">Where the new timeline begins (the end of replay).</param>
/// <param name="StoppedAt">The server's reason (e.g. <c>before 2026-11-23 09:55:00+00</c>, <c>no recovery target specified</c>).</param>
public sealed record PitrOutcome(uint Timeline, Lsn? SwitchPoint, string? StoppedAt);

/// <summary>What a scratch restore (<c>--target-dir</c>, the drill) found.</summary>
/// <param name="Directory">Where the recovered cluster is (kept for inspection unless it was a drill).</param>
/// <param name="Port">The port its temporary server used.</param>
/// <param name="Base">The base backup restored.</param>
/// <param name="Outcome">Where recovery ended.</param>
/// <param name="Tables">Tables of the configured database and their rows (the sanity query).</param>
/// <param name="Steps">Each step's time.</param>
/// <param name="Total">The whole restore.</param>
/// <param name="StartCommand">How to start the kept copy again to look inside (as the server's user).</param>
public sealed record PitrScratchReport(string Directory, int Port, string Base, PitrOutcome Outcome, IReadOnlyList<RestoredTable> Tables, IReadOnlyList<PitrStep> Steps, TimeSpan Total, string StartCommand);

/// <summary>
/// A restore plan: the base backup and every WAL file it needs, verified and staged, the target checked against the
/// WAL itself. Nothing live has been touched while one exists; disposing removes the staged files.
/// </summary>
public sealed class PitrPlan : IDisposable
{
    internal PitrPlan(IArtifactStore store, PitrBase @base, WalCoverage coverage, PitrTarget target, long segmentSize, StagedArtifact archive, string walDirectory, ServerUser user, DateTimeOffset? lastCommit)
    {
        Store = store;
        Base = @base;
        Coverage = coverage;
        Target = target;
        SegmentSize = segmentSize;
        Archive = archive;
        WalDirectory = walDirectory;
        User = user;
        LastCommit = lastCommit;
    }

    public IArtifactStore Store { get; }
    public PitrBase Base { get; }
    public WalCoverage Coverage { get; }
    public PitrTarget Target { get; }
    public long SegmentSize { get; }
    public StagedArtifact Archive { get; }

    /// <summary>The staged, verified WAL (each file with its .sha256), readable by the server's user.</summary>
    public string WalDirectory { get; }

    public ServerUser User { get; }

    /// <summary>The newest commit in the stored WAL, when pg_waldump found one.</summary>
    public DateTimeOffset? LastCommit { get; }

    public void Dispose()
    {
        Archive.Dispose();
        if (Directory.Exists(WalDirectory))
        {
            Directory.Delete(WalDirectory, recursive: true);
        }
    }
}

/// <summary>
/// Point-in-time recovery of the PostgreSQL cluster, the runbook's Option A. Everything slow or risky happens before
/// anything stops: the newest base backup old enough for the target is chosen, its archive and every WAL file from its
/// start to the end (along the target timeline's lineage) are verified against their checksums and staged where the
/// server's user can read them, the gap-free continuity of that WAL is checked, and the target is looked up in the WAL
/// itself (<see cref="WalDump"/>), so an unreachable target is one line, not a server that will not start. Then, live:
/// PostgreSQL is stopped, its data directory moved aside (never deleted), the base extracted in its place with the
/// recovery settings, PostgreSQL started and awaited until it promoted, the slot created again. Or, with a target
/// directory, the same into that directory with a temporary server on a free port, the live system untouched.
/// </summary>
public sealed partial class PitrRestorer
{
    private const string Marker = "# veloz-backup restore pitr";
    private static readonly TimeSpan RecoveryPoll = TimeSpan.FromMilliseconds(250);
    private readonly BackupOptions _options;
    private readonly RestoreSources _sources;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ILoggerFactory _loggerFactory;
    private readonly PgTools _tools;
    private readonly List<PitrStep> _steps = [];

    public PitrRestorer(BackupOptions options, RestoreSources sources, TimeProvider time, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _options = options;
        _sources = sources;
        _time = time;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<PitrRestorer>();
        _tools = new PgTools(options.Database);
    }

    internal BackupOptions Options => _options;

    internal ILogger Logger => _logger;

    /// <summary>A step begins (for the terminal).</summary>
    public event Action<string>? Step;

    /// <summary>Every step so far with its time.</summary>
    public IReadOnlyList<PitrStep> Steps => _steps;

    /// <summary>How the restore_command is run: this program with pg-wal-get (set by the host; the tests' binary runs through dotnet).</summary>
    public string? AgentCommand { get; init; }

    /// <summary>
    /// Where scratch restores of the drill go: beside the live data directory when the agent is root (the server's user
    /// must own it, on the database's own disk), else the agent's state directory (the agent then runs the server itself).
    /// </summary>
    public static string ScratchRoot(BackupOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return ServerUser.AgentIsRoot
            ? Path.GetDirectoryName(Path.GetFullPath(options.Pitr.DataDirectory)) ?? Path.GetTempPath()
            : Path.Combine(options.StateDirectory, "verify");
    }

    /// <summary>Chooses, verifies and stages everything a restore needs into <paramref name="walDirectory"/>; touches nothing live.</summary>
    public async Task<PitrPlan> PlanAsync(PitrRestoreRequest request, string walDirectory, ServerUser user, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(user);
        var reasons = new List<string>();
        foreach (var store in Stores(request))
        {
            PitrCatalog catalog;
            try
            {
                catalog = await Timed($"reading the PITR catalog of {Describe(store)}", () => PitrCatalog.LoadAsync(store, cancellationToken));
            }
            catch (StoreException ex)
            {
                reasons.Add($"{Describe(store)}: {ex.Message}");
                continue;
            }

            var usable = catalog.Bases.Where(b => b.ArchiveSize is not null && (request.Base is null || Matches(b, request.Base))).ToList();
            if (usable.Count == 0)
            {
                reasons.Add(request.Base is null ? $"{Describe(store)} holds no complete base backup" : $"{Describe(store)} holds no base backup {request.Base}");
                continue;
            }

            return await PlanFromAsync(store, catalog, usable, request, walDirectory, user, reasons, cancellationToken);
        }

        throw new RestoreException($"no point-in-time restore possible: {string.Join("; ", reasons)}; nothing was stopped");
    }

    private async Task<PitrPlan> PlanFromAsync(IArtifactStore store, PitrCatalog catalog, List<PitrBase> bases, PitrRestoreRequest request, string walDirectory, ServerUser user,
        List<string> reasons, CancellationToken cancellationToken)
    {
        var target = request.Target;
        var segmentSize = catalog.SegmentSize;
        var tried = new List<string>();
        PitrBase? chosen = null;
        WalCoverage? coverage = null;
        foreach (var candidate in bases)
        {
            var info = candidate.Info;
            var cov = WalContinuity.Check(catalog.Inventory, info.Timeline, info.Start, request.Timeline, target.Kind == PitrTargetKind.Lsn ? target.Position : null);
            if (cov.Problem is { } problem && cov.Steps.Count == 0)
            {
                tried.Add($"{info.Archive}: {problem}");
                continue;
            }

            var early = target.Kind switch
            {
                PitrTargetKind.Time => info.StopTime > target.Time,
                PitrTargetKind.Lsn => info.Stop > target.Position,
                _ => false,
            };
            if (early)
            {
                tried.Add(string.Create(CultureInfo.InvariantCulture, $"{info.Archive} is consistent only from {PitrTarget.FormatTime(info.StopTime)} ({info.StopLsn})"));
                continue;
            }

            chosen = candidate;
            coverage = cov;
            break;
        }

        if (chosen is null || coverage is null)
        {
            var oldest = bases[^1].Info;
            throw new RestoreException(string.Create(CultureInfo.InvariantCulture,
                $"the target {target.Describe()} is before the oldest usable base backup in {Describe(store)} ({oldest.Archive}, consistent from {PitrTarget.FormatTime(oldest.StopTime)}, WAL {oldest.StopLsn}): it cannot be restored; nothing was stopped ({string.Join("; ", tried)})"));
        }

        CheckCoverage(chosen, coverage, store);
        PrivateDirectory.Create(walDirectory);
        user.Own(walDirectory);
        StagedArtifact? archive = null;
        try
        {
            // From the store that holds it, so a local archive is verified in place rather than copied, and the report names it.
            var holder = store is Stores.LocalFirstArtifactStore both ? await both.HolderAsync(BackupKinds.Pitr, chosen.Info.Archive, cancellationToken) : store;
            archive = await Timed($"verifying base backup {chosen.Info.Archive} ({Bytes(chosen.ArchiveSize ?? 0)})",
                () => _sources.StageAsync(new ArtifactRef(holder, BackupKinds.Pitr, chosen.Info.Archive), cancellationToken));
            if (!string.Equals(archive.Sha256, chosen.Info.ArchiveSha256, StringComparison.OrdinalIgnoreCase))
            {
                throw new RestoreIntegrityException($"{chosen.Info.Archive} has sha256 {archive.Sha256}, but its metadata {chosen.InfoName} records {chosen.Info.ArchiveSha256}; refusing to restore from it; nothing was stopped");
            }

            var readBefore = (store as Stores.LocalFirstArtifactStore)?.RemoteReads ?? 0;
            await Timed($"verifying and staging {coverage.Steps.Count} WAL segments ({coverage.Start} to {coverage.End}, timeline {coverage.TargetTimeline})",
                () => StageWalAsync(store, catalog, coverage, segmentSize, walDirectory, cancellationToken));
            if (store is Stores.LocalFirstArtifactStore merged && merged.RemoteReads > readBefore)
            {
                Log.FromS3(_logger, merged.RemoteReads - readBefore, merged.Local.Root);
            }

            user.Own(walDirectory);

            var dump = new WalDump(_tools.ServerToolPath("pg_waldump", MajorOf(chosen.Info)), _loggerFactory.CreateLogger<WalDump>());
            var last = await Timed("reading the target in the WAL", () => CheckTargetAsync(dump, target, chosen, coverage, segmentSize, walDirectory, bases, cancellationToken));
            if (target.Kind == PitrTargetKind.LastCommit)
            {
                // A time target needs a later commit to stop before; the newest commit's own position needs none.
                target = last?.Position is { } position ? new PitrTarget(PitrTargetKind.Lsn, Position: position) : PitrTarget.Latest;
            }

            return new PitrPlan(store, chosen, coverage, target, segmentSize, archive, walDirectory, user, last?.Time);
        }
        catch
        {
            archive?.Dispose();
            if (Directory.Exists(walDirectory))
            {
                Directory.Delete(walDirectory, recursive: true);
            }

            throw;
        }
    }

    private static void CheckCoverage(PitrBase chosen, WalCoverage coverage, IArtifactStore store)
    {
        if (coverage.Problem is { } problem)
        {
            throw new RestoreIntegrityException($"WAL from {chosen.Info.Archive} cannot be replayed: {problem}; nothing was stopped");
        }

        if (coverage.Gaps.Count > 0)
        {
            throw new RestoreIntegrityException(
                $"WAL needed after {chosen.Info.Archive} is missing in {store.Target}: {string.Join("; ", coverage.Gaps.Take(3).Select(g => g.Description))}; a restore would stop at {coverage.End}; nothing was stopped");
        }

        if (coverage.End < chosen.Info.Stop)
        {
            throw new RestoreIntegrityException(
                $"the stored WAL ends at {coverage.End}, before {chosen.Info.Archive} is consistent ({chosen.Info.StopLsn}); nothing was stopped");
        }
    }

    /// <summary>Every WAL file of the replay (whole, or assembled from its pieces), and the lineage's history files, each verified and with a sidecar.</summary>
    private async Task StageWalAsync(IArtifactStore store, PitrCatalog catalog, WalCoverage coverage, long segmentSize, string directory, CancellationToken cancellationToken)
    {
        var done = 0;
        foreach (var step in coverage.Steps)
        {
            var path = Path.Combine(directory, step.File.ToString());
            string sha;
            try
            {
                sha = await WalFetch.WriteSegmentAsync(store, step, segmentSize, path, cancellationToken);
            }
            catch (ArtifactIntegrityException ex)
            {
                throw new RestoreIntegrityException($"WAL {step.File} in {store.Target}: {ex.Message}; refusing to restore; nothing was stopped", ex);
            }

            await PrivateFiles.WriteAllBytesAsync(path + Sha256Sidecar.Suffix, Sha256Sidecar.FormatBytes(sha, step.File.ToString()), cancellationToken);
            if (++done % 64 == 0)
            {
                Log.Staged(_logger, done, coverage.Steps.Count);
            }
        }

        foreach (var timeline in coverage.Lineage.Select(l => l.Timeline).Where(t => t > 1).Distinct())
        {
            var name = PitrArtifact.HistoryName(timeline);
            if (!catalog.Inventory.Names.Contains(name))
            {
                continue;
            }

            var path = Path.Combine(directory, name);
            await using (var input = await store.OpenReadAsync(BackupKinds.Pitr, name, cancellationToken))
            await using (var output = PrivateFiles.Open(path, FileMode.Create, options: FileOptions.Asynchronous))
            {
                await input.CopyToAsync(output, cancellationToken);
            }

            await PrivateFiles.WriteAllBytesAsync(path + Sha256Sidecar.Suffix, Sha256Sidecar.FormatBytes(await RestoreSources.HashFileAsync(path, cancellationToken), name), cancellationToken);
        }
    }

    /// <summary>Checks the target against the WAL; returns the newest commit found (null when none was found).</summary>
    private static async Task<WalEvent?> CheckTargetAsync(WalDump dump, PitrTarget target, PitrBase chosen, WalCoverage coverage, long segmentSize, string directory,
        IReadOnlyList<PitrBase> bases, CancellationToken cancellationToken)
    {
        switch (target.Kind)
        {
            case PitrTargetKind.Latest:
            case PitrTargetKind.LastCommit:
            case PitrTargetKind.Time:
            {
                // The newest commit: in the last two segments, else anywhere since the base.
                var tail = coverage.Steps.Count > 2 ? coverage.Steps[^2].File.StartLsn(segmentSize) : coverage.Start;
                var events = await dump.EventsAsync(directory, coverage.Steps, segmentSize, tail, coverage.End, cancellationToken);
                if (!events.Any(e => e.Time is not null) && tail > coverage.Start)
                {
                    events = await dump.EventsAsync(directory, coverage.Steps, segmentSize, coverage.Start, coverage.End, cancellationToken);
                }

                var last = events.Where(e => e.Time is not null).MaxBy(e => e.Time);
                // PostgreSQL stops a time target before the first commit later than it: without one, recovery runs off
                // the end of the WAL and the server refuses to start ("recovery ended before … target was reached").
                if (target.Kind == PitrTargetKind.Time && (last is null || target.Time >= last.Time))
                {
                    throw new RestoreException(last?.Time is { } l
                        ? $"the target {target.Describe()} is not before the newest commit in the stored WAL ({PitrTarget.FormatTime(l)}, WAL to {coverage.End}): PostgreSQL stops a time target at the first commit after it, and there is none; restore to the end of the WAL (no target) to keep every commit; nothing was stopped"
                        : $"the target {target.Describe()} is after the end of the stored WAL ({coverage.End}): no transaction committed after {chosen.Info.Archive}; restore to the end of the WAL (no target); nothing was stopped");
                }

                return last;
            }

            default:
            {
                var events = await dump.EventsAsync(directory, coverage.Steps, segmentSize, coverage.Start, coverage.End, cancellationToken);
                var found = target.Kind == PitrTargetKind.Xid
                    ? events.FirstOrDefault(e => e.Xid == target.Xid && e.Time is not null)
                    : events.FirstOrDefault(e => e.RestorePoint == target.Name);
                if (found is null)
                {
                    var older = bases.SkipWhile(b => b != chosen).Skip(1).FirstOrDefault();
                    throw new RestoreException(
                        $"{target.Describe()} is not in the stored WAL from {chosen.Info.Archive} ({coverage.Start} to {coverage.End}){(older is null ? "" : $"; if it is older, start from an earlier base backup with --base {older.Info.Archive}")}; nothing was stopped");
                }

                if (found.Position < chosen.Info.Stop)
                {
                    throw new RestoreException(
                        $"{target.Describe()} is at {found.Position}, before {chosen.Info.Archive} is consistent ({chosen.Info.StopLsn}): start from an earlier base backup with --base; nothing was stopped");
                }

                return events.Where(e => e.Time is not null).MaxBy(e => e.Time);
            }
        }
    }

    /// <summary>
    /// Live: extracts the base beside the data directory and writes the recovery settings (nothing stops); committing
    /// stops PostgreSQL, swaps the directories, starts it and waits for promotion.
    /// </summary>
    public async Task<PreparedPitr> PrepareLiveAsync(PitrRestoreRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var clock = Stopwatch.StartNew();
        var pgdata = Path.GetFullPath(_options.Pitr.DataDirectory);
        var user = ServerUser.For(pgdata);
        var stamp = Stamp();
        var restoring = $"{pgdata}.restoring-{stamp}";
        var plan = await PlanAsync(request, $"{pgdata}.restore-wal-{stamp}", user, cancellationToken);
        try
        {
            await ExtractAsync(plan, restoring, cancellationToken);
            await VerifyBackupAsync(plan, restoring, cancellationToken);
            WriteRecoverySettings(plan, restoring, scratch: null);
            user.Own(restoring);
            return new PreparedPitr(this, plan, pgdata, restoring, stamp, clock.Elapsed);
        }
        catch
        {
            if (Directory.Exists(restoring))
            {
                Directory.Delete(restoring, recursive: true);
            }

            plan.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Scratch: the same restore into <paramref name="directory"/> (absent or empty), recovered by a temporary server on
    /// a free loopback port and stopped again; the live cluster is never touched. <paramref name="keep"/> false removes
    /// the directory afterwards (the drill).
    /// </summary>
    public async Task<PitrScratchReport> RestoreIntoAsync(PitrRestoreRequest request, string directory, bool keep, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var clock = Stopwatch.StartNew();
        var target = Path.GetFullPath(directory);
        if (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any())
        {
            throw new ArgumentException($"--target-dir {target} is not empty: give an empty or new directory");
        }

        var user = ServerUser.For(Path.GetFullPath(_options.Pitr.DataDirectory));
        var parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        using var plan = await PlanAsync(request, $"{target}.restore-wal-{Stamp()}", user, cancellationToken);
        var port = FreePort();
        var log = target + ".log";

        // While it recovers, the temporary server takes connections on a private socket only (no TCP at all), and lets the
        // agent in without a password there: a password file may name only the live server's host and port.
        var socket = Path.Combine(Path.GetTempPath(), "veloz-pg-" + Guid.NewGuid().ToString("N")[..8]);
        PrivateDirectory.Create(socket);
        user.Own(socket);
        try
        {
            await ExtractAsync(plan, target, cancellationToken);
            await VerifyBackupAsync(plan, target, cancellationToken);
            WriteRecoverySettings(plan, target, new ScratchServer(port, socket));
            user.Own(target);

            // pg_ctl opens the log as the server's user.
            PrivateFiles.WriteAllText(log, "");
            user.Own(log);
            var pgCtl = _tools.ServerToolPath("pg_ctl", MajorOf(plan.Base.Info));
            var outcome = await Timed($"recovering with a temporary server (port {port}, private socket only)", async () =>
            {
                try
                {
                    await user.RunAsync(pgCtl, ["-D", target, "-l", log, "-w", "-t", "600", "start"], "pg_ctl start", _logger, cancellationToken);
                }
                catch (BackupSourceException ex)
                {
                    throw new RestoreException($"the temporary server did not start: {ServerLogTail(log) ?? ex.Message}", ex);
                }

                return await WaitForPromotionAsync(ScratchConnection(socket, port), target, log, cancellationToken);
            });
            var tables = await Timed("checking the recovered database", () => CountRowsAsync(ScratchConnection(socket, port), cancellationToken));
            await Timed("stopping the temporary server", () => user.RunAsync(pgCtl, ["-D", target, "-m", "fast", "-w", "stop"], "pg_ctl stop", _logger, cancellationToken));
            RemoveRecoverySettings(target, keepScratchSettings: false);
            WriteInspectionSettings(target, port);
            user.Own(target);
            var again = $"{pgCtl} -D {Shell(target)} -l {Shell(log)} start";
            return new PitrScratchReport(target, port, plan.Base.Info.Archive, outcome, tables, Steps, clock.Elapsed,
                ServerUser.AgentIsRoot ? $"runuser -u {user.Name} -- {again}" : again);
        }
        catch
        {
            await StopQuietlyAsync(user, target);
            throw;
        }
        finally
        {
            if (Directory.Exists(socket))
            {
                Directory.Delete(socket, recursive: true);
            }

            if (!keep)
            {
                await StopQuietlyAsync(user, target);
                if (Directory.Exists(target))
                {
                    Directory.Delete(target, recursive: true);
                }

                File.Delete(log);
            }
        }
    }

    /// <summary>
    /// Removes what an interrupted drill left in <paramref name="root"/> (its scratch cluster, log and staged WAL, all
    /// named <paramref name="prefix"/>…), stopping a temporary server still running there first.
    /// </summary>
    public async Task RemoveLeftoversAsync(string root, string prefix)
    {
        if (!Directory.Exists(root))
        {
            return;
        }

        foreach (var path in Directory.EnumerateFileSystemEntries(root, prefix + "*").ToList())
        {
            try
            {
                if (Directory.Exists(path))
                {
                    if (File.Exists(Path.Combine(path, "postmaster.pid")))
                    {
                        await StopQuietlyAsync(ServerUser.For(path), path);
                    }

                    Directory.Delete(path, recursive: true);
                }
                else
                {
                    File.Delete(path);
                }

                Log.LeftoverRemoved(_logger, path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Log.StopFailed(_logger, path, ex.Message);
            }
        }
    }

    private async Task StopQuietlyAsync(ServerUser user, string directory)
    {
        if (!File.Exists(Path.Combine(directory, "postmaster.pid")))
        {
            return;
        }

        try
        {
            await user.RunAsync(_tools.ServerToolPath("pg_ctl", 15), ["-D", directory, "-m", "immediate", "-w", "stop"], "pg_ctl stop", _logger, CancellationToken.None);
        }
        catch (BackupSourceException ex)
        {
            Log.StopFailed(_logger, directory, ex.Message);
        }
    }

    private async Task ExtractAsync(PitrPlan plan, string directory, CancellationToken cancellationToken)
    {
        await Timed($"extracting {plan.Base.Info.Archive} into {directory}", async () =>
        {
            var file = new FileStream(plan.Archive.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.Asynchronous | FileOptions.SequentialScan);
            await using (file)
            {
                Stream tar = plan.Base.Info.Compression == "gzip" ? new GZipStream(file, CompressionMode.Decompress, leaveOpen: true) : file;
                await using (tar)
                {
                    const UnixFileMode Owner = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
                    using var tree = await SafeTarExtractor.ExtractAsync(tar, directory, new TarExtractOptions
                    {
                        DirectoryMode = Owner,
                        ImpliedDirectoryMode = Owner,
                        Owner = ServerUser.AgentIsRoot ? (plan.User.Uid, plan.User.Gid) : null,
                    }, plan.Base.Info.Archive, cancellationToken);
                    tree.Commit();
                }
            }

            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }

            // The server's user owns its data directory: pg_verifybackup and the server run as it.
            plan.User.Own(directory);
            return true;
        });
    }

    private async Task VerifyBackupAsync(PitrPlan plan, string directory, CancellationToken cancellationToken)
    {
        var tool = _tools.ServerToolPath("pg_verifybackup", MajorOf(plan.Base.Info));
        await Timed("pg_verifybackup of the extracted base", async () =>
        {
            try
            {
                await plan.User.RunAsync(tool, [directory], "pg_verifybackup", _logger, cancellationToken, installHint: "pg_verifybackup comes with the PostgreSQL client tools (e.g. postgresql-client-15)");
            }
            catch (BackupSourceException ex)
            {
                throw new RestoreIntegrityException($"the extracted base backup {plan.Base.Info.Archive} does not verify against its manifest: {ex.Message}; nothing was stopped", ex);
            }

            return true;
        });
    }

    /// <summary>Where a scratch copy's temporary server listens while it recovers.</summary>
    private sealed record ScratchServer(int Port, string Socket);

    /// <summary>The recovery settings, appended to postgresql.auto.conf (which wins over postgresql.conf), and recovery.signal.</summary>
    private void WriteRecoverySettings(PitrPlan plan, string directory, ScratchServer? scratch)
    {
        var settings = new List<(string Key, string Value)>
        {
            ("restore_command", RestoreCommand(plan.WalDirectory)),
            ("recovery_target_timeline", plan.Coverage.TargetTimeline.ToString(CultureInfo.InvariantCulture)),
            ("recovery_target_action", "promote"),
        };
        if (plan.Target.Setting() is { } target)
        {
            settings.Add(target);
        }

        if (scratch is not null)
        {
            // A scratch copy must never reach production: no TCP, a socket in a directory only its server's user (and
            // root) can enter, no archiving, no upstream.
            var hba = Path.Combine(directory, "veloz_scratch_hba.conf");
            PrivateFiles.WriteAllText(hba, "# veloz-backup scratch restore, while it recovers: the private socket only\nlocal all all trust\n");
            PrivateFiles.WriteAllText(Path.Combine(directory, "veloz_scratch_ident.conf"), "");
            settings.AddRange(ScratchSettings(directory, scratch.Port, listen: "", socket: scratch.Socket));
            var conf = Path.Combine(directory, "postgresql.conf");
            if (!File.Exists(conf))
            {
                // A cluster configured outside its data directory (Debian's /etc/postgresql) has none in the backup.
                PrivateFiles.WriteAllText(conf, "# veloz-backup scratch restore: the backup held no postgresql.conf\n");
            }
        }

        AppendBlock(directory, "recovery settings, removed again after promotion", settings);
        PrivateFiles.WriteAllText(Path.Combine(directory, "recovery.signal"), "");
        File.Delete(Path.Combine(directory, "standby.signal"));
    }

    private static IEnumerable<(string Key, string Value)> ScratchSettings(string directory, int port, string listen, string socket) =>
    [
        ("port", port.ToString(CultureInfo.InvariantCulture)), ("listen_addresses", listen), ("unix_socket_directories", socket),
        ("archive_mode", "off"), ("archive_command", ""), ("primary_conninfo", ""), ("primary_slot_name", ""),
        ("hba_file", Path.Combine(directory, "veloz_scratch_hba.conf")), ("ident_file", Path.Combine(directory, "veloz_scratch_ident.conf")),
        ("logging_collector", "off"),
    ];

    /// <summary>
    /// A kept scratch copy, for someone to look inside: loopback TCP on its port with password logins (the cluster's own
    /// roles), no socket, no archiving, no upstream.
    /// </summary>
    private void WriteInspectionSettings(string directory, int port)
    {
        PrivateFiles.WriteAllText(Path.Combine(directory, "veloz_scratch_hba.conf"), "# veloz-backup scratch restore: password logins on loopback only\nhost all all 127.0.0.1/32 md5\n");
        AppendBlock(directory, "a scratch copy: loopback only, archiving off", ScratchSettings(directory, port, listen: "127.0.0.1", socket: ""));
    }

    private void AppendBlock(string directory, string what, IEnumerable<(string Key, string Value)> settings)
    {
        var text = new StringBuilder();
        text.Append('\n').Append(Marker).Append(' ').Append(Stamp()).Append(": ").Append(what).Append('\n');
        foreach (var (key, value) in settings)
        {
            text.Append(key).Append(" = '").Append(value.Replace("'", "''", StringComparison.Ordinal)).Append("'\n");
        }

        text.Append(Marker).Append(" end\n");
        using var conf = PrivateFiles.Open(Path.Combine(directory, "postgresql.auto.conf"), FileMode.Append);
        conf.Write(Encoding.UTF8.GetBytes(text.ToString()));
    }

    /// <summary>Takes our block out of postgresql.auto.conf again (a scratch copy keeps its port and loopback-only settings).</summary>
    internal static void RemoveRecoverySettings(string directory, bool keepScratchSettings)
    {
        var path = Path.Combine(directory, "postgresql.auto.conf");
        if (!File.Exists(path))
        {
            return;
        }

        var kept = new List<string>();
        var inside = false;
        foreach (var line in File.ReadAllLines(path))
        {
            if (line.StartsWith(Marker, StringComparison.Ordinal))
            {
                inside = !line.EndsWith(" end", StringComparison.Ordinal);
                continue;
            }

            if (inside && (!keepScratchSettings || line.StartsWith("restore_command", StringComparison.Ordinal) || line.StartsWith("recovery_target", StringComparison.Ordinal)))
            {
                continue;
            }

            kept.Add(line);
        }

        var temp = path + ".veloz-tmp";
        File.WriteAllLines(temp, kept);
        if (!OperatingSystem.IsWindows() && FileStatus.TryStat(path, followLinks: true) is { } status)
        {
            File.SetUnixFileMode(temp, status.Permissions & (UnixFileMode)0x1FF);
            if (ServerUser.AgentIsRoot)
            {
                Owners.LChown(temp, status.Uid, status.Gid);
            }
        }

        File.Move(temp, path, overwrite: true);
    }

    private string RestoreCommand(string walDirectory)
    {
        var agent = AgentCommand ?? DefaultAgentCommand();
        return $"{agent} pg-wal-get %f %p --staged {Shell(walDirectory)}";
    }

    /// <summary>This program as a shell command: its own executable, or <c>dotnet &lt;dll&gt;</c> when it runs through the dotnet host.</summary>
    public static string DefaultAgentCommand()
    {
        var process = Environment.ProcessPath ?? "veloz-backup";
        if (Path.GetFileNameWithoutExtension(process) == "dotnet")
        {
            var dll = Path.Combine(AppContext.BaseDirectory, "veloz-backup.dll");
            return $"{Shell(process)} {Shell(dll)}";
        }

        return Shell(process);
    }

    private static string Shell(string value) =>
        value.All(c => char.IsAsciiLetterOrDigit(c) || c is '/' or '.' or '-' or '_' or '+' or ':') ? value : "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <summary>
    /// Polls until the server has left recovery (promoted). A server that stops meanwhile is a failure whose reason
    /// comes from its log when the agent can read it, else from pg_controldata.
    /// </summary>
    internal async Task<PitrOutcome> WaitForPromotionAsync(string connectionString, string dataDirectory, string? logFile, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        var timeout = _options.Pitr.RecoveryTimeout;
        var downSince = (Stopwatch?)null;
        string last = "no answer yet";
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                await using var db = new NpgsqlConnection(connectionString);
                await db.OpenAsync(cancellationToken);
                await using var command = new NpgsqlCommand("SELECT pg_is_in_recovery()", db);
                downSince = null;
                if (await command.ExecuteScalarAsync(cancellationToken) is false)
                {
                    return ReadOutcome(dataDirectory);
                }

                last = "still replaying WAL";
            }
            catch (PostgresException ex) when (ex.SqlState.StartsWith("28", StringComparison.Ordinal) || ex.SqlState == PostgresErrorCodes.InvalidCatalogName)
            {
                // It answers, but refuses the login (or lacks the database): waiting would not change that.
                throw new RestoreException($"PostgreSQL is up but refuses the agent's connection ({ex.MessageText}): check Backup:Database:ConnectionString and the password (pgpass entries must match this host and port); recovery itself may well have finished");
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException && !cancellationToken.IsCancellationRequested)
            {
                last = ex is PostgresException pg ? pg.MessageText : ex.Message.Split('\n')[0];
                if (!File.Exists(Path.Combine(dataDirectory, "postmaster.pid")))
                {
                    downSince ??= Stopwatch.StartNew();
                    if (downSince.Elapsed > TimeSpan.FromSeconds(3))
                    {
                        throw new RestoreException($"PostgreSQL stopped during recovery: {ServerLogTail(logFile) ?? await ControlStateAsync(dataDirectory, cancellationToken)}");
                    }
                }
            }

            if (deadline.Elapsed > timeout)
            {
                throw new RestoreException($"recovery did not finish within {timeout} (Backup:Pitr:RecoveryTimeout); last: {last}");
            }

            await Task.Delay(RecoveryPoll, cancellationToken);
        }
    }

    /// <summary>The new timeline and where it began, from its history file in pg_wal.</summary>
    internal static PitrOutcome ReadOutcome(string dataDirectory)
    {
        var wal = Path.Combine(dataDirectory, "pg_wal");
        var newest = Directory.Exists(wal)
            ? Directory.EnumerateFiles(wal, "*.history").Select(p => PitrArtifact.Classify(Path.GetFileName(p))).OfType<PitrArtifact>().MaxBy(a => a.Timeline)
            : null;
        if (newest is null)
        {
            return new PitrOutcome(1, null, null);
        }

        try
        {
            var history = TimelineHistory.Parse(newest.Timeline, File.ReadAllText(Path.Combine(wal, newest.Name)));
            var last = history.Switches.Count > 0 ? history.Switches[^1] : null;
            return new PitrOutcome(newest.Timeline, last?.SwitchPoint, last?.Reason);
        }
        catch (Exception ex) when (ex is FormatException or IOException)
        {
            return new PitrOutcome(newest.Timeline, null, null);
        }
    }

    private async Task<string> ControlStateAsync(string dataDirectory, CancellationToken cancellationToken)
    {
        try
        {
            var output = await ServerUser.For(dataDirectory).RunAsync(_tools.ServerToolPath("pg_controldata", 15), [dataDirectory], "pg_controldata", _logger, cancellationToken);
            var state = output.Split('\n').FirstOrDefault(l => l.StartsWith("Database cluster state:", StringComparison.Ordinal))?.Split(':', 2)[1].Trim();
            return state == "in archive recovery"
                ? "it stopped while still in archive recovery, most likely because recovery ended before the target was reached (the server log says why)"
                : $"cluster state {state ?? "unknown"} (the server log says why)";
        }
        catch (BackupSourceException ex)
        {
            return $"the server log says why ({ex.Message})";
        }
    }

    /// <summary>The FATAL/PANIC lines at the end of the server log the agent can read, or null.</summary>
    internal static string? ServerLogTail(string? logFile)
    {
        if (logFile is null || !File.Exists(logFile))
        {
            return null;
        }

        try
        {
            var lines = File.ReadLines(logFile).TakeLast(200).ToList();
            var fatal = lines.Where(l => l.Contains("FATAL:", StringComparison.Ordinal) || l.Contains("PANIC:", StringComparison.Ordinal)).TakeLast(2).ToList();
            if (fatal.Count == 0)
            {
                fatal = lines.Where(l => l.Trim().Length > 0).TakeLast(2).ToList();
                return fatal.Count == 0 ? null : $"the server log {logFile} ends: " + string.Join(" / ", fatal.Select(l => l.Trim()));
            }

            return string.Join(" / ", fatal.Select(l => l[(l.IndexOf("FATAL:", StringComparison.Ordinal) is var f and >= 0 ? f : l.IndexOf("PANIC:", StringComparison.Ordinal))..].Trim()));
        }
        catch (IOException)
        {
            return null;
        }
    }

    private string ScratchConnection(string socket, int port)
    {
        var connection = PgConnectionInfo.Parse(_options.Database.ConnectionString, Environment.GetEnvironmentVariable);
        return new NpgsqlConnectionStringBuilder(connection.PrecheckConnectionString())
        {
            Host = socket, Port = port, Timeout = 5, Password = null, Passfile = null, SslMode = SslMode.Disable,
        }.ConnectionString;
    }

    internal string LiveConnection()
    {
        var connection = PgConnectionInfo.Parse(_options.Database.ConnectionString, Environment.GetEnvironmentVariable);
        return new NpgsqlConnectionStringBuilder(connection.PrecheckConnectionString()) { Timeout = 5 }.ConnectionString;
    }

    private static async Task<IReadOnlyList<RestoredTable>> CountRowsAsync(string connectionString, CancellationToken cancellationToken)
    {
        await using var db = new NpgsqlConnection(connectionString);
        await db.OpenAsync(cancellationToken);
        var names = new List<string>();
        await using (var list = new NpgsqlCommand(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " +
            "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1", db))
        await using (var reader = await list.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                names.Add(reader.GetString(0));
            }
        }

        var tables = new List<RestoredTable>();
        foreach (var name in names)
        {
            await using var count = new NpgsqlCommand($"SELECT count(*) FROM {name}", db) { CommandTimeout = 0 };
            tables.Add(new RestoredTable(name, (long)(await count.ExecuteScalarAsync(cancellationToken))!));
        }

        return tables;
    }

    private IEnumerable<IArtifactStore> Stores(PitrRestoreRequest request)
    {
        if (request.SourceUrl is { } url)
        {
            return [_sources.S3Store(url)];
        }

        // A node of a cluster holds only the WAL it archived while it held the receiver; S3's shared prefix holds every
        // node's. Read both as one, the local copy first; S3 unreachable: the local store alone, as before.
        if (request.From is null && _options.Cluster.Enabled && _sources.Remote is { } remote)
        {
            return [new Stores.LocalFirstArtifactStore(_sources.Local, remote), _sources.Local];
        }

        return request.From switch
        {
            "local" => [_sources.Local],
            "s3" => [_sources.Remote ?? throw new ArgumentException("--from s3: S3 is disabled (Backup:S3:Enabled)")],
            null => _sources.Remote is null ? [_sources.Local] : [_sources.Local, _sources.Remote],
            _ => throw new ArgumentException($"--from must be local or s3: {request.From}"),
        };
    }

    private static bool Matches(PitrBase candidate, string name) =>
        candidate.InfoName == name || candidate.Info.Archive == name || candidate.InfoName == name + PitrArtifact.BaseInfoSuffix;

    private static int MajorOf(BaseBackupInfo info) => info.ServerVersionNum / 10000;

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    private string Stamp() => _time.GetUtcNow().ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);

    private static string Describe(IArtifactStore store) => store switch
    {
        LocalArtifactStore l => $"the local store {l.Root}",
        Stores.LocalFirstArtifactStore both => $"the local store {both.Local.Root} and S3 ({both.Remote.Target}, the cluster's shared prefix)",
        _ => $"S3 ({store.Target})",
    };

    internal async Task<T> Timed<T>(string step, Func<Task<T>> work)
    {
        Step?.Invoke(step);
        var clock = Stopwatch.StartNew();
        try
        {
            return await work();
        }
        finally
        {
            _steps.Add(new PitrStep(step, clock.Elapsed));
            Log.StepDone(_logger, step, clock.Elapsed.TotalSeconds);
        }
    }

    internal Task Timed(string step, Func<Task> work) => Timed(step, async () =>
    {
        await work();
        return true;
    });

    private static string Bytes(long bytes) => bytes >= 1L << 30
        ? string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):0.0} GiB")
        : string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):0.0} MiB");

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Pitr.RestoreStep, LogLevel.Information, "restore pitr: {Step} took {Seconds:0.0} s")]
        public static partial void StepDone(ILogger logger, string step, double seconds);

        [LoggerMessage(LogEvents.Pitr.RestoreStaged, LogLevel.Debug, "restore pitr: staged {Done} of {Total} WAL segments")]
        public static partial void Staged(ILogger logger, int done, int total);

        [LoggerMessage(LogEvents.Pitr.RestoreLeftoverRemoved, LogLevel.Information, "restore pitr: removed {Path}, left by an interrupted drill")]
        public static partial void LeftoverRemoved(ILogger logger, string path);

        [LoggerMessage(LogEvents.Pitr.RestoreFromS3, LogLevel.Information, "restore pitr: {Count} WAL files the local store {Root} lacks were read from S3 (archived by another node of the cluster), verified")]
        public static partial void FromS3(ILogger logger, int count, string root);

        [LoggerMessage(LogEvents.Pitr.RestoreStopFailed, LogLevel.Warning, "restore pitr: could not stop the temporary server in {Directory}: {Reason}")]
        public static partial void StopFailed(ILogger logger, string directory, string reason);
    }
}
