using System.Diagnostics;
using System.Globalization;
using VelozBackupAgent.Restore;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Database;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Pitr;

/// <summary>
/// A live point-in-time restore with the base extracted beside the data directory and the WAL staged: committing stops
/// PostgreSQL (<c>Backup:Pitr:StopCommand</c>), moves the data directory aside as <c>&lt;PGDATA&gt;.pre-restore-&lt;time&gt;</c>
/// (never deleted), renames the restored one into place, starts PostgreSQL (<c>StartCommand</c>), waits until it has
/// replayed to the target and promoted, takes the recovery settings out again and creates the replication slot for the
/// new timeline. The WAL receiver is paused meanwhile. Disposing an uncommitted one removes what it staged.
/// </summary>
public sealed class PreparedPitr : IPreparedRestore
{
    private readonly PitrRestorer _owner;
    private readonly string _pgdata;
    private readonly string _restoring;
    private readonly string _stamp;
    private readonly TimeSpan _prepared;
    private bool _committed;

    internal PreparedPitr(PitrRestorer owner, PitrPlan plan, string pgdata, string restoring, string stamp, TimeSpan prepared)
    {
        _owner = owner;
        Plan = plan;
        _pgdata = pgdata;
        _restoring = restoring;
        _stamp = stamp;
        _prepared = prepared;
    }

    public PitrPlan Plan { get; }

    public string Kind => BackupKinds.Pitr;

    public string Artifact => Plan.Base.Info.Archive;

    /// <summary>Where the data directory as it was before the restore is kept.</summary>
    public string SetAside => $"{_pgdata}.pre-restore-{_stamp}";

    /// <summary>Where recovery ended; set once committed.</summary>
    public PitrOutcome? Outcome { get; private set; }

    public async Task<RestoreResult> CommitAsync(CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var options = _owner.Options;
        var warnings = new List<string>();
        using var pause = ReceiverPause.Begin(options.StateDirectory);
        await _owner.Timed("stopping PostgreSQL (Backup:Pitr:StopCommand)", async () =>
        {
            try
            {
                await Shell.RunAsync(options.Pitr.StopCommand, "Backup:Pitr:StopCommand", _owner.Logger, cancellationToken);
            }
            catch (RestoreException ex) when (!PostmasterRuns(_pgdata))
            {
                // pg_ctl stop (1) and pg_ctlcluster stop (2) fail on a server that is not running: a new host, a crashed one.
                warnings.Add($"the stop command failed, but no PostgreSQL runs on {_pgdata}: going on ({ex.Message})");
            }
        });
        var hadData = Directory.Exists(_pgdata);
        await _owner.Timed($"moving {_pgdata} aside to {Path.GetFileName(SetAside)}, the restored copy into place", () =>
        {
            if (hadData)
            {
                Directory.Move(_pgdata, SetAside);
            }

            try
            {
                Directory.Move(_restoring, _pgdata);
            }
            catch when (hadData)
            {
                // Never leave the cluster without its data directory.
                Directory.Move(SetAside, _pgdata);
                throw;
            }

            FileSync.FsyncDirectory(Path.GetDirectoryName(_pgdata)!);
            return Task.CompletedTask;
        });
        _committed = true;
        var rollback = hadData
            ? $"the data directory as it was before the restore is kept at {SetAside}: to roll back, `{options.Pitr.StopCommand}`, `mv {_pgdata} {_pgdata}.failed-{_stamp} && mv {SetAside} {_pgdata}`, `{options.Pitr.StartCommand}`"
            : $"there was no data directory at {_pgdata} before";
        try
        {
            await _owner.Timed("starting PostgreSQL (Backup:Pitr:StartCommand)", async () =>
            {
                try
                {
                    await Shell.RunAsync(options.Pitr.StartCommand, "Backup:Pitr:StartCommand", _owner.Logger, cancellationToken);
                }
                catch (RestoreException)
                {
                    // pg_ctl -w fails when the server stops during recovery; the wait below says why.
                }
            });
            Outcome = await _owner.Timed($"replaying WAL to {Plan.Target.Describe()} (timeline {Plan.Coverage.TargetTimeline})",
                () => _owner.WaitForPromotionAsync(_owner.LiveConnection(), _pgdata, options.Pitr.ServerLog, cancellationToken));
        }
        catch (RestoreException ex)
        {
            throw new RestoreException($"{ex.Message}; {rollback}", ex);
        }

        PitrRestorer.RemoveRecoverySettings(_pgdata, keepScratchSettings: false);
        Directory.Delete(Plan.WalDirectory, recursive: true);
        if (options.Pitr.Streaming)
        {
            await _owner.Timed($"creating the replication slot {options.Pitr.Slot} for timeline {Outcome.Timeline}", async () =>
            {
                var server = new PgServer(PgConnectionInfo.Parse(options.Database.ConnectionString, Environment.GetEnvironmentVariable));
                try
                {
                    await server.CreateSlotAsync(options.Pitr.Slot, cancellationToken);
                }
                catch (BackupSourceException ex)
                {
                    warnings.Add($"the replication slot could not be created ({ex.Message}): the receiver creates it when it reconnects");
                }

                ReceiverPause.SetSpoolAside(options.StateDirectory, _stamp);
            });
        }

        if (hadData)
        {
            warnings.Add($"the previous data directory is kept at {SetAside}; remove it when satisfied");
        }

        var summary = string.Create(CultureInfo.InvariantCulture,
            $"cluster {_pgdata} restored from {Plan.Base.Info.Archive} to {Plan.Target.Describe()}: now timeline {Outcome.Timeline}, from {(Outcome.SwitchPoint is { } p ? p.ToString() : "?")} (recovery: {Outcome.StoppedAt ?? "end of WAL"})");
        return new RestoreResult(Kind, Artifact, _pgdata, summary, _prepared, clock.Elapsed, warnings) { Details = Outcome };
    }

    /// <summary>True while a postmaster's pid file in <paramref name="pgdata"/> names a living process.</summary>
    internal static bool PostmasterRuns(string pgdata)
    {
        try
        {
            var pidFile = Path.Combine(pgdata, "postmaster.pid");
            return File.Exists(pidFile) && File.ReadLines(pidFile).FirstOrDefault() is { } first
                && int.TryParse(first.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && Processes.Exists(pid);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return true;
        }
    }

    public ValueTask DisposeAsync()
    {
        if (!_committed && Directory.Exists(_restoring))
        {
            Directory.Delete(_restoring, recursive: true);
        }

        Plan.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// Keeps the daemon's WAL receiver away from the cluster while a restore replaces it: a pause file with the restoring
/// process's pid (<c>.state/pitr/pause</c>); the receiver stops streaming while it exists and that process lives.
/// </summary>
public sealed class ReceiverPause : IDisposable
{
    private readonly string _path;

    private ReceiverPause(string path) => _path = path;

    /// <summary>The pause file.</summary>
    public static string PathIn(string stateDirectory) => Path.Combine(stateDirectory, "pitr", "pause");

    public static ReceiverPause Begin(string stateDirectory)
    {
        var path = PathIn(stateDirectory);
        PrivateDirectory.Create(Path.GetDirectoryName(path)!);
        PrivateFiles.WriteAllText(path, Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\n");
        return new ReceiverPause(path);
    }

    /// <summary>True while a living process holds the pause.</summary>
    public static bool Active(string stateDirectory)
    {
        var path = PathIn(stateDirectory);
        try
        {
            return File.Exists(path) && int.TryParse(File.ReadAllText(path).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && Processes.Exists(pid);
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Moves the receiver's spool aside: it holds the old timeline, ahead of the restored server's history.</summary>
    public static void SetSpoolAside(string stateDirectory, string stamp)
    {
        var spool = Path.Combine(stateDirectory, "pitr", "spool");
        if (Directory.Exists(spool) && Directory.EnumerateFileSystemEntries(spool).Any())
        {
            Directory.Move(spool, Path.Combine(stateDirectory, "pitr", "spool-before-restore-" + stamp));
        }
    }

    public void Dispose() => File.Delete(_path);
}

/// <summary>Runs the operator's service commands (<c>/bin/sh -c</c>); an empty one is skipped.</summary>
internal static class Shell
{
    public static async Task RunAsync(string command, string key, Microsoft.Extensions.Logging.ILogger logger, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(command))
        {
            return;
        }

        await using var child = ChildProcess.Start(new ChildProcessSpec("/bin/sh", ["-c", command], key) { Inherit = InheritedVariables.Service | InheritedVariables.Libpq }, logger);
        try
        {
            await child.ReadAllTextAsync(cancellationToken);
        }
        catch (BackupSourceException ex)
        {
            throw new RestoreException($"{key} `{command}` failed: {ex.Message}", ex);
        }
    }
}
