using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Sources;

/// <summary>Why a backup run started.</summary>
public enum BackupTrigger
{
    /// <summary>The kind's cron schedule fired.</summary>
    Scheduled,

    /// <summary>A fire was missed while the agent was down; runs once at start-up and behaves like <see cref="Scheduled"/>.</summary>
    MissedAtStartup,

    /// <summary>A watched source changed. Sources write only when something differs from the newest artifact.</summary>
    Change,

    /// <summary><c>veloz-backup backup KIND</c>: behaves like <see cref="Scheduled"/>.</summary>
    Manual,
}

/// <summary>How a run ended.</summary>
public enum BackupOutcome
{
    /// <summary>At least one artifact was written.</summary>
    Succeeded,

    /// <summary>Nothing differed from what is already stored, so nothing was written (change-triggered runs, WAL with nothing new).</summary>
    Unchanged,

    /// <summary>The run failed; no partial artifact was left and earlier artifacts are untouched.</summary>
    Failed,

    /// <summary>Another run of the same kind (in this or another process) was in progress; this one did nothing.</summary>
    Busy,
}

/// <summary>What a source produced: the artifacts it stored and a short human detail for the run's log line.</summary>
public sealed record BackupOutput(IReadOnlyList<ArtifactInfo> Artifacts, string? Detail = null)
{
    public static BackupOutput Nothing(string? detail = null) => new([], detail);
}

/// <summary>
/// One backup kind: reads its source and writes artifacts through a <see cref="Replication.BackupRepository"/>
/// (local first, S3 queued). Sources are thin over the store: streaming, no whole-file buffers. They throw
/// <see cref="BackupSourceException"/> (one operator-readable line) for expected failures. The
/// <see cref="BackupRunner"/> serialises runs per kind, times them and logs one line per run.
/// </summary>
public interface IBackupSource
{
    /// <summary>One of <see cref="BackupKinds"/>.</summary>
    string Kind { get; }

    /// <summary>Runs once. <paramref name="trigger"/> decides how much work is due (see <see cref="BackupTrigger"/>).</summary>
    Task<BackupOutput> RunAsync(BackupTrigger trigger, CancellationToken cancellationToken);
}

/// <summary>
/// A source that removes its kind's leftovers of interrupted writes itself, from a listing of the store it makes anyway
/// (<see cref="BackupRunner"/> then does not list the kind's directory a second time before each run).
/// </summary>
internal interface ICleansOwnLeftovers;

/// <summary>A source that can watch its files and ask for a change-triggered run.</summary>
public interface IWatchableSource : IBackupSource
{
    /// <summary>
    /// Watches until cancelled, calling <paramref name="changed"/> (already debounced) whenever a
    /// <see cref="BackupTrigger.Change"/> run is due; a watcher overflow also calls it, so the run does a full scan.
    /// </summary>
    Task WatchAsync(Func<CancellationToken, Task> changed, CancellationToken cancellationToken);
}

/// <summary>An expected failure of a backup source, with a message fit for one line on an operator's terminal.</summary>
public class BackupSourceException : Exception
{
    public BackupSourceException(string message)
        : base(message)
    {
    }

    public BackupSourceException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public BackupSourceException()
    {
    }
}
