using Microsoft.Extensions.Logging;

namespace VelozBackupAgent.Sources.Wal;

/// <summary>The watcher side of the WAL source: file events become change-triggered runs, spaced and backed off.</summary>
public sealed partial class WalSource
{
    public async Task WatchAsync(Func<CancellationToken, Task> changed, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(changed);
        var watcher = new DebouncedWatcher(_directory, _time, _loggerFactory.CreateLogger<DebouncedWatcher>())
        {
            Relevant = path => _naming.IsWatched(Path.GetFileName(path)),
            Quiet = WatchQuiet,
            MaxDelay = WatchMaxDelay,
            RenamedWithin = OnRenamedWithin,
        };
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _watching = true;
        var watching = watcher.RunAsync(_ =>
        {
            _replan.Writer.TryWrite(true);
            return Task.CompletedTask;
        }, stop.Token);
        try
        {
            await DispatchAsync(changed, watching, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            try
            {
                await watching.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Stopped with us.
            }

            await SaveIndexOnStopAsync().ConfigureAwait(false);
            _watching = false;
            SaveChainCache(Volatile.Read(ref _tip));
        }
    }

    private async Task DispatchAsync(Func<CancellationToken, Task> changed, Task watching, CancellationToken cancellationToken)
    {
        DateTimeOffset? due = null;
        var notBefore = DateTimeOffset.MinValue;
        var skipped = 0;
        while (true)
        {
            await WaitAsync(due, watching, cancellationToken).ConfigureAwait(false);
            if (watching.IsCompleted)
            {
                await watching.ConfigureAwait(false); // rethrows why the watcher stopped
                return;
            }

            _replan.Reader.TryRead(out _);
            var now = _time.GetUtcNow();
            var plan = PlanChange(now);
            due = plan.RecheckAt;
            if (!plan.Work)
            {
                continue;
            }

            // Asked for before the check: a run that ends between the two still sees the request and signals.
            Interlocked.Exchange(ref _replanAfterRun, 1);
            if (Interlocked.Read(ref _runsInProgress) > 0)
            {
                // A run is under way: it signals when it ends, and we look again.
                continue;
            }

            if (now < notBefore)
            {
                due = WalPlanner.Earliest(due, notBefore);
                continue;
            }

            var before = Interlocked.Read(ref _runsCompleted);
            try
            {
                await changed(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                WalLog.ChangeRunFailed(_logger, ex);
            }

            now = _time.GetUtcNow();
            if (Interlocked.Read(ref _runsCompleted) != before)
            {
                skipped = 0;
                var failures = (int)Math.Min(Interlocked.Read(ref _changeFailures), 16);
                notBefore = now + (failures > 0 ? Backoff(failures) : MinRunSpacing);
            }
            else
            {
                // No run happened here (another process holds the kind's lock, or the run was queued): look
                // again later rather than lose the change.
                notBefore = now + Backoff(++skipped);
                due = WalPlanner.Earliest(due, notBefore);
            }
        }
    }

    private async Task WaitAsync(DateTimeOffset? due, Task watching, CancellationToken cancellationToken)
    {
        using var wake = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var signalled = _replan.Reader.WaitToReadAsync(wake.Token).AsTask();
        var delay = due is { } d ? d - _time.GetUtcNow() : Timeout.InfiniteTimeSpan;
        var timer = Task.Delay(delay < TimeSpan.Zero && delay != Timeout.InfiniteTimeSpan ? TimeSpan.Zero : delay, _time, wake.Token);
        await Task.WhenAny(signalled, timer, watching).ConfigureAwait(false);
        await wake.CancelAsync().ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
    }

    /// <summary>
    /// A segment that appeared by a rename within the directory is complete: it is marked settled in the state it has
    /// now, and the dispatcher plans at once instead of after the watcher's quiet time. See <see cref="SettleTracker.MarkRenamed"/>.
    /// </summary>
    private void OnRenamedWithin(string path)
    {
        var name = Path.GetFileName(path);
        if (!_naming.IsSegment(name))
        {
            return;
        }

        try
        {
            var file = new FileInfo(path);
            if (file.Exists)
            {
                _settle.MarkRenamed(name, WalFileState.Of(file));
                _replan.Writer.TryWrite(true);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Renamed away again, or unreadable: the debounced pass and the settle time take it from here.
        }
    }

    private WalPlan PlanChange(DateTimeOffset now)
    {
        List<WalListedFile> segments;
        WalListedFile? active = null;
        try
        {
            if (!Directory.Exists(_directory))
            {
                return default;
            }

            segments = ListSegments();
            var file = new FileInfo(Path.Combine(_directory, _naming.ActiveFile));
            if (file.Exists)
            {
                active = new WalListedFile(_naming.ActiveFile, WalFileState.Of(file));
            }
        }
        catch (Exception ex) when (ex is BackupSourceException or IOException or UnauthorizedAccessException)
        {
            // The scheduled run reports it with the key to fix.
            WalLog.PlanFailed(_logger, _directory, ex.Message);
            return default;
        }

        return WalPlanner.Plan(segments, active, Volatile.Read(ref _known), _settle, now);
    }

    private static TimeSpan Backoff(int attempt)
    {
        var seconds = Math.Pow(2, Math.Max(0, attempt - 1));
        return seconds >= MaxBackoff.TotalSeconds ? MaxBackoff : TimeSpan.FromSeconds(seconds);
    }
}
