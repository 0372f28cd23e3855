using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Sources;

/// <summary>
/// Watches a directory and calls back once changes settle: after <see cref="Quiet"/> without a new event,
/// or at the latest <see cref="MaxDelay"/> after the first pending one (so a file appended to without pause
/// still gets picked up). A watcher error (the kernel queue overflowed) also calls back: the callback does a
/// full scan, so nothing is missed. A directory that does not exist yet is retried, not fatal.
/// Timing uses the injected <see cref="TimeProvider"/>.
/// </summary>
public sealed partial class DebouncedWatcher
{
    private readonly string _directory;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public DebouncedWatcher(string directory, TimeProvider time, ILogger logger)
    {
        _directory = directory;
        _time = time;
        _logger = logger;
    }

    public bool IncludeSubdirectories { get; init; }

    /// <summary>Which paths matter (full path in); null means all. Events for other paths are ignored.</summary>
    public Func<string, bool>? Relevant { get; init; }

    /// <summary>
    /// Called at once, on the watcher's thread, for a file renamed within the directory (full new path in; the
    /// kernel's IN_MOVED_FROM/IN_MOVED_TO pair), before the debounced callback. Must be quick and must not throw.
    /// A file moved in from elsewhere is reported by .NET as created, not renamed, and does not come here.
    /// </summary>
    public Action<string>? RenamedWithin { get; init; }

    public TimeSpan Quiet { get; init; } = TimeSpan.FromSeconds(2);

    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How often a missing directory is looked for again.</summary>
    public TimeSpan RetryMissingEvery { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Runs until cancelled.</summary>
    public async Task RunAsync(Func<CancellationToken, Task> changed, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(changed);
        var signals = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
        var reportedMissing = false;
        while (!cancellationToken.IsCancellationRequested)
        {
            if (!Directory.Exists(_directory))
            {
                if (!reportedMissing)
                {
                    Log.Missing(_logger, _directory);
                    reportedMissing = true;
                }

                await Task.Delay(RetryMissingEvery, _time, cancellationToken).ConfigureAwait(false);
                continue;
            }

            reportedMissing = false;
            using var watcher = new FileSystemWatcher(_directory)
            {
                IncludeSubdirectories = IncludeSubdirectories,
                NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.Attributes,
                InternalBufferSize = 64 * 1024,
            };
            void OnEvent(object? sender, FileSystemEventArgs e)
            {
                if (Relevant is null || Relevant(e.FullPath) || (e is RenamedEventArgs r && Relevant(r.OldFullPath)))
                {
                    if (e.ChangeType == WatcherChangeTypes.Renamed && (Relevant is null || Relevant(e.FullPath)))
                    {
                        RenamedWithin?.Invoke(e.FullPath);
                    }

                    signals.Writer.TryWrite(true);
                }
            }

            var broken = false;
            watcher.Created += OnEvent;
            watcher.Changed += OnEvent;
            watcher.Deleted += OnEvent;
            watcher.Renamed += OnEvent;
            watcher.Error += (_, e) =>
            {
                Log.Overflow(_logger, _directory, e.GetException().Message);
                broken = !Directory.Exists(_directory);
                signals.Writer.TryWrite(true);
            };
            watcher.EnableRaisingEvents = true;

            // Anything that happened before the watcher started is caught by a first pass.
            signals.Writer.TryWrite(true);
            while (!cancellationToken.IsCancellationRequested && !broken)
            {
                await signals.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                await SettleAsync(signals.Reader, cancellationToken).ConfigureAwait(false);
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
                    Log.CallbackFailed(_logger, ex, _directory);
                }
            }
        }

        cancellationToken.ThrowIfCancellationRequested();
    }

    private async Task SettleAsync(ChannelReader<bool> signals, CancellationToken cancellationToken)
    {
        var first = _time.GetTimestamp();
        while (true)
        {
            var left = MaxDelay - _time.GetElapsedTime(first);
            if (left <= TimeSpan.Zero)
            {
                return;
            }

            using var quiet = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var wait = Task.Delay(Quiet < left ? Quiet : left, _time, quiet.Token);
            var next = signals.WaitToReadAsync(quiet.Token).AsTask();
            var done = await Task.WhenAny(wait, next).ConfigureAwait(false);
            await quiet.CancelAsync().ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            if (done == wait)
            {
                return;
            }

            signals.TryRead(out _);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Sources.WatchedDirectoryMissing, LogLevel.Warning, "watched directory {Directory} does not exist; the scheduled run still reports it, watching resumes when it appears")]
        public static partial void Missing(ILogger logger, string directory);

        [LoggerMessage(LogEvents.Sources.WatcherOverflow, LogLevel.Warning, "file watcher on {Directory} lost events ({Reason}); running a full scan")]
        public static partial void Overflow(ILogger logger, string directory, string reason);

        [LoggerMessage(LogEvents.Sources.WatcherRunFailed, LogLevel.Error, "change-triggered backup of {Directory} failed")]
        public static partial void CallbackFailed(ILogger logger, Exception exception, string directory);
    }
}
