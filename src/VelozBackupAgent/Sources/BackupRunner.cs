using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Sources;

/// <summary>The result of one run of one kind, as logged and (later) exported as metrics.</summary>
public sealed record BackupRunResult(
    string Kind,
    BackupTrigger Trigger,
    BackupOutcome Outcome,
    IReadOnlyList<ArtifactInfo> Artifacts,
    DateTimeOffset StartedAt,
    TimeSpan Duration,
    string? Detail)
{
    public long Bytes => Artifacts.Sum(a => a.Size);
}

/// <summary>
/// Runs backup sources: one run per kind at a time (in-process and across processes through
/// <see cref="KindLock"/>), timed with the injected clock, every failure caught and turned into a
/// <see cref="BackupOutcome.Failed"/> result so one kind never stops another, and one structured log line
/// per run: kind, outcome, artifact, bytes, duration. The Quartz jobs, the watchers and the
/// <c>backup</c> verb all go through here.
/// </summary>
public sealed partial class BackupRunner
{
    private readonly Dictionary<string, IBackupSource> _sources;
    private readonly string _stateDirectory;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly LocalArtifactStore? _local;
    private readonly ConcurrentDictionary<string, BackupRunResult> _last = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _inProcess = new(StringComparer.Ordinal);

    /// <param name="sources">The enabled kinds.</param>
    /// <param name="stateDirectory">Where the kinds' locks are.</param>
    /// <param name="timeProvider">The clock; defaults to the system clock.</param>
    /// <param name="logger">Where the run lines go.</param>
    /// <param name="local">When given, a run first removes what interrupted writes of its kind left there (a killed
    /// <c>veloz-backup backup</c> leaves a hidden temporary file up to the size of a partial dump, which would otherwise
    /// stay until the daemon's next start).</param>
    public BackupRunner(IEnumerable<IBackupSource> sources, string stateDirectory, TimeProvider? timeProvider = null, ILogger<BackupRunner>? logger = null, LocalArtifactStore? local = null)
    {
        _local = local;
        _sources = sources.ToDictionary(s => s.Kind, StringComparer.Ordinal);
        _stateDirectory = stateDirectory;
        _time = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger<BackupRunner>.Instance;
    }

    /// <summary>Raised after every run, whatever its outcome.</summary>
    public event EventHandler<BackupRunResult>? Completed;

    /// <summary>The enabled sources, in <see cref="BackupKinds.All"/> order.</summary>
    public IReadOnlyList<IBackupSource> Sources => [.. BackupKinds.All.Where(_sources.ContainsKey).Select(k => _sources[k])];

    public bool Has(string kind) => _sources.ContainsKey(kind);

    /// <summary>The last result of <paramref name="kind"/> in this process, if it ran.</summary>
    public BackupRunResult? LastResult(string kind) => _last.GetValueOrDefault(kind);

    /// <summary>
    /// Runs <paramref name="kind"/> once. Never throws for a failed backup (the result says so); cancellation
    /// aborts the run cleanly (no partial artifact) and is reported as a failed run "cancelled".
    /// </summary>
    public async Task<BackupRunResult> RunAsync(string kind, BackupTrigger trigger, CancellationToken cancellationToken = default)
    {
        if (!_sources.TryGetValue(kind, out var source))
        {
            throw new ArgumentException($"backup kind {kind} is not enabled (Backup:{Capitalised(kind)}:Enabled)", nameof(kind));
        }

        var startedAt = _time.GetUtcNow();
        var started = _time.GetTimestamp();
        var gate = _inProcess.GetOrAdd(kind, _ => new SemaphoreSlim(1, 1));
        if (!await gate.WaitAsync(0, CancellationToken.None).ConfigureAwait(false))
        {
            return Finish(new BackupRunResult(kind, trigger, BackupOutcome.Busy, [], startedAt, TimeSpan.Zero, "a run of this kind is already in progress"));
        }

        try
        {
            using var crossProcess = KindLock.TryAcquire(_stateDirectory, kind, out var holder, startedAt);
            if (crossProcess is null)
            {
                var by = holder is int pid ? $" (pid {pid})" : "";
                return Finish(new BackupRunResult(kind, trigger, BackupOutcome.Busy, [], startedAt, TimeSpan.Zero, $"another process{by} is backing up {kind}"));
            }

            if (source is not ICleansOwnLeftovers)
            {
                RemoveLeftovers(kind);
            }

            BackupOutput output;
            try
            {
                output = await source.RunAsync(trigger, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return Finish(Failed("cancelled (the agent is stopping); nothing partial was kept", null));
            }
            catch (PartialBackupException ex)
            {
                // What was stored stands (checksummed, queued for S3); the run still failed, and says why.
                return Finish(Failed(ex.Message, null) with { Artifacts = ex.Stored });
            }
            catch (Exception ex) when (ex is BackupSourceException or StoreException)
            {
                return Finish(Failed(ex.Message, null));
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                return Finish(Failed($"{ex.GetType().Name}: {ex.Message}", ex));
            }

            var outcome = output.Artifacts.Count > 0 ? BackupOutcome.Succeeded : BackupOutcome.Unchanged;
            return Finish(new BackupRunResult(kind, trigger, outcome, output.Artifacts, startedAt, _time.GetElapsedTime(started), output.Detail));
        }
        finally
        {
            gate.Release();
        }

        BackupRunResult Failed(string detail, Exception? ex)
        {
            if (ex is not null)
            {
                Log.UnexpectedFailure(_logger, ex, kind);
            }

            return new BackupRunResult(kind, trigger, BackupOutcome.Failed, [], startedAt, _time.GetElapsedTime(started), detail);
        }
    }

    /// <summary>
    /// Called holding the kind's lock. A temporary file of a writer that still runs (the daemon's WAL receiver writing
    /// pitr, say) is never removed: only the dead writers' (see <see cref="LocalArtifactStore.FindLeftovers"/>).
    /// </summary>
    private void RemoveLeftovers(string kind)
    {
        if (_local is null)
        {
            return;
        }

        try
        {
            var removed = _local.RemoveLeftovers(kind);
            if (removed.Count > 0)
            {
                Log.RemovedLeftovers(_logger, kind, removed.Count, removed.Sum(r => r.Size));
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Housekeeping never fails a backup; the daemon's start and verify report what stays.
            Log.LeftoversNotRemoved(_logger, kind, ex.Message);
        }
    }

    private BackupRunResult Finish(BackupRunResult result)
    {
        _last[result.Kind] = result;
        var artifact = result.Artifacts.Count switch
        {
            0 => "-",
            1 => result.Artifacts[0].Name,
            _ => $"{result.Artifacts[^1].Name} (+{result.Artifacts.Count - 1} more)",
        };
        var seconds = Math.Round(result.Duration.TotalSeconds, 3);
        if (result.Outcome == BackupOutcome.Failed)
        {
            Log.RunFailed(_logger, result.Kind, result.Outcome, result.Trigger, artifact, result.Bytes, seconds, result.Detail ?? "");
        }
        else
        {
            Log.RunFinished(_logger, result.Kind, result.Outcome, result.Trigger, artifact, result.Bytes, seconds, result.Detail ?? "");
        }

        Completed?.Invoke(this, result);
        return result;
    }

    private static string Capitalised(string kind) => kind.Length == 0 ? kind : char.ToUpperInvariant(kind[0]) + kind[1..];

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Sources.RunFinished, LogLevel.Information, "backup {Kind} {Outcome} ({Trigger}): {Artifact}, {Bytes} bytes in {DurationSeconds} s {Detail}")]
        public static partial void RunFinished(ILogger logger, string kind, BackupOutcome outcome, BackupTrigger trigger, string artifact, long bytes, double durationSeconds, string detail);

        [LoggerMessage(LogEvents.Sources.RunFailed, LogLevel.Error, "backup {Kind} {Outcome} ({Trigger}): {Artifact}, {Bytes} bytes in {DurationSeconds} s: {Detail}")]
        public static partial void RunFailed(ILogger logger, string kind, BackupOutcome outcome, BackupTrigger trigger, string artifact, long bytes, double durationSeconds, string detail);

        [LoggerMessage(LogEvents.Sources.RemovedLeftovers, LogLevel.Warning, "backup {Kind}: removed {Count} leftovers of interrupted writes ({Bytes} bytes)")]
        public static partial void RemovedLeftovers(ILogger logger, string kind, int count, long bytes);

        [LoggerMessage(LogEvents.Sources.LeftoversNotRemoved, LogLevel.Warning, "backup {Kind}: could not look for leftovers of interrupted writes: {Reason}")]
        public static partial void LeftoversNotRemoved(ILogger logger, string kind, string reason);

        [LoggerMessage(LogEvents.Sources.UnexpectedFailure, LogLevel.Error, "backup {Kind}: unexpected failure")]
        public static partial void UnexpectedFailure(ILogger logger, Exception exception, string kind);
    }
}
