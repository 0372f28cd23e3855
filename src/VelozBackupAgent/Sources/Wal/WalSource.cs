using System.Diagnostics.CodeAnalysis;
using System.IO.Enumeration;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Sources.Wal;

/// <summary>What the WAL source knows beyond one run's result, for metrics and <c>status</c>.</summary>
/// <param name="ConflictsDetected">How many times a stored segment was found changed in the source since the agent started (a counter).</param>
/// <param name="Conflicts">Segments whose source differs from the stored copy now (the stored copy is kept).</param>
/// <param name="Unreadable">Segments that could not be read at the last attempt, so are not backed up.</param>
/// <param name="Settling">Segments seen at the last run but not stored yet because they were still being written.</param>
/// <param name="SegmentsStored">Segments this process stored.</param>
/// <param name="SourceBytesRead">Bytes this process read from the WAL directory (copies, comparisons, snapshots).</param>
/// <param name="SourceFilesOpened">Files this process opened in the WAL directory.</param>
/// <param name="LastManifest">The newest manifest this process wrote.</param>
public sealed record WalStatus(
    long ConflictsDetected,
    IReadOnlyList<string> Conflicts,
    IReadOnlyList<string> Unreadable,
    IReadOnlyList<string> Settling,
    long SegmentsStored,
    long SourceBytesRead,
    long SourceFilesOpened,
    string? LastManifest);

/// <summary>
/// The order WAL (<c>Backup:Wal</c>). Sealed segments (<c>orders_&lt;16 digits&gt;.wal</c>) are immutable: each is
/// stored once under its own name, after it has settled (not written for <see cref="WalOptions.SettleTime"/>),
/// and never overwritten; a stored segment whose source later differs is an alarm (logged at error, counted,
/// listed in the run's detail, the manifest and <see cref="Status"/>), not a reason to stop. The active file
/// VeloZ appends to is stored as prefix snapshots <c>orders_current_YYYYMMDD_HHMMSS.wal</c>, each exactly the
/// first N bytes where N was its length when opened, only when it changed. The watcher ships segments seconds
/// after they appear (<see cref="BackupTrigger.Change"/>: segments and, once writes pause, the active file);
/// scheduled runs are the safety net (full scan, anything missing from the store shipped again, active
/// snapshot) and write <c>wal-manifest_YYYYMMDD_HHMMSS.json</c>, listing what the directory held, so it can be
/// restored as it was at any sync. Nothing is ever deleted here: a deletion in the source only drops the
/// segment from later manifests.
/// </summary>
/// <remarks>
/// Cheap at scale: <c>&lt;state&gt;/wal-index.json</c> remembers each segment's size, mtime and checksum, trusted
/// while size and mtime match, so a sync with nothing new lists the directory and reads no file. Without it
/// (first run, lost or corrupt index, a crash before it was saved) a segment already in the store is
/// recognised from its sidecar when the stored copy is newer than the source's mtime; stored data is never
/// re-read. Only a segment that changed after it was stored is read again, to tell a touch from a conflict.
/// </remarks>
[SuppressMessage("Design", "CA1001:Types that own disposable fields should be disposable", Justification = "The SemaphoreSlim's wait handle is never used, so it holds nothing to dispose; the source lives as long as the agent.")]
public sealed partial class WalSource : IWatchableSource, ICleansOwnLeftovers
{
    private const string IndexFileName = "wal-index.json";

    /// <summary>Events are gathered this long after the last one (a seal is a rename plus the first write to the new active file).</summary>
    private static readonly TimeSpan WatchQuiet = TimeSpan.FromMilliseconds(250);

    /// <summary>An active file appended to without pause still gets looked at this often (a listing, no reads).</summary>
    private static readonly TimeSpan WatchMaxDelay = TimeSpan.FromSeconds(1);

    /// <summary>Least time between two change-triggered runs, whatever happens.</summary>
    private static readonly TimeSpan MinRunSpacing = TimeSpan.FromMilliseconds(500);

    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    /// <summary>A group commit of new segments is made durable at most this many segments (or <see cref="BatchMaxBytes"/>) at a time.</summary>
    internal const int BatchMaxSegments = 256;

    /// <summary>A group commit of new segments is made durable at most this many bytes (or <see cref="BatchMaxSegments"/>) at a time.</summary>
    internal const long BatchMaxBytes = 256L << 20;

    /// <summary>A change-triggered run writes the index at most this often; scheduled runs always do. A lost update only costs a sidecar read.</summary>
    private static readonly TimeSpan ChangeRunIndexSaveInterval = TimeSpan.FromSeconds(30);

    private static readonly EnumerationOptions ListOptions = new()
    {
        RecurseSubdirectories = false,
        MatchType = MatchType.Simple,
        MatchCasing = MatchCasing.CaseSensitive,
        IgnoreInaccessible = false,
    };

    private readonly string _directory;
    private readonly string _nodeName;
    private readonly int _fullManifestInterval;
    private readonly WalNaming _naming;
    private readonly BackupRepository _repository;
    private readonly TimeProvider _time;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly WalIndexFile _indexFile;
    private readonly string _stateDirectory;
    private readonly SettleTracker _settle;
    private readonly WalReadCounter _reads = new();
    private readonly SemaphoreSlim _runGate = new(1, 1);
    private readonly Channel<bool> _replan = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    // Run state: only touched inside a run (under _runGate).
    private readonly Dictionary<string, (WalFileState State, string Reason)> _unreadable = new(StringComparer.Ordinal);
    private WalIndex? _index;
    private long _savedVersion = -1;
    private long _lastSaveTimestamp;
    private long _unreadableVersion;
    private long _publishedIndexVersion = -1;
    private long _publishedUnreadableVersion = -1;
    private WalFileState? _activeFailedState;

    /// <summary>The newest manifest this process wrote or read back, resolved: the next delta's parent.</summary>
    private WalChainTip? _tip;

    // While the daemon watches the directory it keeps the tip in memory for its own syncs, so wal-chain.json (for the
    // next process) is written once when it stops, not after every sync: a no-op sync writes no extra file.
    private volatile bool _watching;

    // Shared with the watcher and readers of Status.
    private WalKnownState _known = WalKnownState.Empty;
    private WalStatus _status = new(0, [], [], [], 0, 0, 0, null);
    private long _runsInProgress;

    /// <summary>Set by the watcher when it found work while a run was under way: the run's end then wakes it.</summary>
    private int _replanAfterRun;
    private long _runsCompleted;
    private long _changeFailures;
    private long _conflictsDetected;
    private long _segmentsStored;
    private string? _lastManifest;

    public WalSource(BackupOptions options, BackupRepository repository, TimeProvider time, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(repository);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _directory = Path.GetFullPath(options.Wal.Directory);
        _nodeName = options.NodeName;
        _fullManifestInterval = options.Wal.FullManifestInterval;
        _naming = new WalNaming(options.Wal);
        _repository = repository;
        _time = time;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<WalSource>();
        _indexFile = new WalIndexFile(Path.Combine(options.StateDirectory, IndexFileName));
        _stateDirectory = options.StateDirectory;
        _settle = new SettleTracker(options.Wal.SettleTime, time);
    }

    public string Kind => BackupKinds.Wal;

    /// <summary>Conflicts, unreadable and settling segments as of the last run, and this process's counters.</summary>
    public WalStatus Status => Volatile.Read(ref _status) with
    {
        ConflictsDetected = Interlocked.Read(ref _conflictsDetected),
        SegmentsStored = Interlocked.Read(ref _segmentsStored),
        SourceBytesRead = _reads.Bytes,
        SourceFilesOpened = _reads.Opens,
        LastManifest = Volatile.Read(ref _lastManifest),
    };

    public async Task<BackupOutput> RunAsync(BackupTrigger trigger, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _runsInProgress);
        try
        {
            await _runGate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                var output = await RunCoreAsync(new Run(trigger), cancellationToken).ConfigureAwait(false);
                if (trigger == BackupTrigger.Change)
                {
                    Interlocked.Exchange(ref _changeFailures, 0);
                }

                return output;
            }
            catch when (trigger == BackupTrigger.Change)
            {
                Interlocked.Increment(ref _changeFailures);
                throw;
            }
            finally
            {
                _runGate.Release();
            }
        }
        finally
        {
            Interlocked.Decrement(ref _runsInProgress);
            Interlocked.Increment(ref _runsCompleted);

            // The watcher looks again after its own runs (what they left settling); after a scheduled run only when it
            // put off work because this run was under way: a plan lists the whole directory (10,000 stat calls), and
            // a scheduled sync with nothing new must not cost two listings.
            if (trigger == BackupTrigger.Change || Interlocked.Exchange(ref _replanAfterRun, 0) != 0)
            {
                _replan.Writer.TryWrite(true);
            }
        }
    }

    // ------------------------------------------------------------------------------------------ one run

    private async Task<BackupOutput> RunCoreAsync(Run run, CancellationToken cancellationToken)
    {
        run.ListedAt = _time.GetUtcNow();

        // A scheduled run needs three things that do not depend on one another: the WAL directory's listing (one stat
        // per segment), the index, and the store's own listing (a stored copy that went missing is stored again instead
        // of being trusted from the index). The WAL directory is listed on another thread while this one loads the
        // index and lists the store: a sync with nothing new costs the longest of them, not their sum (issue 16, P6).
        // A change-triggered run lists the WAL directory alone, here.
        var listingTask = run.Full ? Task.Run(() => ListSegments(run.Modes), CancellationToken.None) : Task.FromResult(ListSegments());
        WalIndex index;
        HashSet<string>? stored;
        try
        {
            index = await LoadIndexAsync(cancellationToken).ConfigureAwait(false);
            stored = run.Full ? ListStoredNames() : null;
        }
        finally
        {
            // Never left running behind a failure; its own failure (the directory is missing) is reported below.
            await ((Task)listingTask).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        // As before the listing went to another thread: a directory that cannot be listed fails the run before the
        // index is saved or anything published.
        var listing = await listingTask.ConfigureAwait(false);
        run.StoredNames = stored;
        try
        {
            await ProcessAsync(listing, index, stored, run, cancellationToken).ConfigureAwait(false);
            if (run.Full && run.Settling.Count > 0)
            {
                await RetrySettlingAsync(index, stored, run, cancellationToken).ConfigureAwait(false);
            }

            run.Processed = true;
            await SnapshotActiveAsync(index, run, cancellationToken).ConfigureAwait(false);
            if (run.Full)
            {
                Prune(index, listing);
                await WriteManifestAsync(run, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            // A commit still in flight (the run failed or was cancelled while it ran) is awaited, never left running; whatever
            // is still staged is deleted and never counted.
            await AbandonInFlightCommitAsync(index, run).ConfigureAwait(false);
            run.Batch?.Dispose();
            SaveIndex(index, force: run.Full);
            Publish(index, run);
        }

        if (run.Full && (run.Unreadable.Count > 0 || run.ActiveUnreadable))
        {
            throw new BackupSourceException(UnreadableLine(run));
        }

        return new BackupOutput(run.Artifacts, Describe(run));
    }

    private List<WalListedFile> ListSegments(WalModeTally? modes = null)
    {
        var segments = new List<WalListedFile>();
        try
        {
            if (OperatingSystem.IsLinux())
            {
                ListSegmentsLinux(segments, modes);
            }
            else
            {
                ListSegmentsPortable(segments, modes);
            }
        }
        catch (DirectoryNotFoundException)
        {
            throw new BackupSourceException($"Backup:Wal:Directory does not exist: {_directory}");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new BackupSourceException($"Backup:Wal:Directory cannot be read: {_directory} ({ex.Message})", ex);
        }

        // Oldest first (the numbers are zero-padded): an interrupted run has stored the oldest segments.
        segments.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return segments;
    }

    /// <summary>
    /// Names from the directory listing alone, then one <c>statx</c> per segment (size, mtime and mode in one call):
    /// no <see cref="FileInfo"/> per file, no second system call for the mode. 10,000 segments: one listing and
    /// 10,000 stat calls, as <c>rsync -a</c> makes.
    /// </summary>
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private void ListSegmentsLinux(List<WalListedFile> segments, WalModeTally? modes)
    {
        var listing = new FileSystemEnumerable<string>(_directory, static (ref FileSystemEntry e) => e.FileName.ToString(), ListOptions)
        {
            ShouldIncludePredicate = static (ref FileSystemEntry e) => !e.IsDirectory,
        };
        foreach (var name in listing)
        {
            if (!_naming.IsSegment(name))
            {
                continue;
            }

            // As FileInfo sees it: a link to a segment is the segment; a link that dangles is the link itself (listed,
            // then unreadable: it is named, not silently skipped); one deleted or renamed since the listing is not there.
            if ((FileStatus.TryStatIn(_directory, name, followLinks: true) ?? FileStatus.TryStatIn(_directory, name, followLinks: false))
                is not { Kind: not FileKind.Directory } status)
            {
                continue;
            }

            segments.Add(new WalListedFile(name, WalFileState.Of(status)));
            modes?.Count(status.Permissions);
        }
    }

    private void ListSegmentsPortable(List<WalListedFile> segments, WalModeTally? modes)
    {
        foreach (var file in new DirectoryInfo(_directory).EnumerateFiles("*", ListOptions))
        {
            if (!_naming.IsSegment(file.Name))
            {
                continue;
            }

            try
            {
                segments.Add(new WalListedFile(file.Name, WalFileState.Of(file)));
                modes?.Count(file);
            }
            catch (FileNotFoundException)
            {
                // Deleted or renamed between the listing and the stat.
            }
        }
    }

    private async Task ProcessAsync(IEnumerable<WalListedFile> files, WalIndex index, HashSet<string>? stored, Run run, CancellationToken cancellationToken)
    {
        foreach (var (name, state) in files)
        {
            cancellationToken.ThrowIfCancellationRequested();
            index.Segments.TryGetValue(name, out var entry);
            if (entry is not null && entry.State == state)
            {
                if (entry.IsConflict)
                {
                    run.Conflicts[name] = entry;
                    continue;
                }

                if (stored is null || stored.Contains(name))
                {
                    run.Ok[name] = entry;
                    continue;
                }

                WalLog.StoredCopyMissing(_logger, name);
                index.Remove(name);
                entry = null;
            }

            var path = Path.Combine(_directory, name);
            if (!WalNaming.IsStorable(name))
            {
                MarkUnreadable(run, name, state, path, "its name cannot be stored (letters, digits, '.', '-' and '_' only)");
                continue;
            }

            // A change-triggered run does not retry an unreadable file that has not changed (permissions fixed
            // by chmod do not change the mtime: the scheduled run retries every time).
            if (!run.Full && _unreadable.TryGetValue(name, out var bad) && bad.State == state)
            {
                run.Unreadable[name] = bad;
                continue;
            }

            if (!_settle.IsSettled(name, state, _time.GetUtcNow()))
            {
                run.Settling[name] = state;
                continue;
            }

            await ReadingAsync(name, path, state, run, () => ExamineAsync(name, path, state, entry, index, run, cancellationToken)).ConfigureAwait(false);
        }

        await CommitAsync(index, run, cancellationToken).ConfigureAwait(false);
    }

    private async Task ExamineAsync(string name, string path, WalFileState state, WalIndexEntry? entry, WalIndex index, Run run, CancellationToken cancellationToken)
    {
        ArtifactInfo? stored;
        try
        {
            stored = await _repository.Local.StatAsync(Kind, name, cancellationToken).ConfigureAwait(false);
        }
        catch (ArtifactIntegrityException ex)
        {
            // The stored copy's sidecar is damaged: it is neither trusted nor overwritten; verify reports it.
            WalLog.StoredSidecarDamaged(_logger, name, ex.Message);
            var size = new FileInfo(_repository.Local.PathOf(Kind, name)).Length;
            Conflict(name, state, null, new WalStoredCopy(size, null), index, run, log: false);
            return;
        }

        if (stored is null)
        {
            await ShipAsync(name, path, state, entry, index, run, cancellationToken).ConfigureAwait(false);
            return;
        }

        await CompareAsync(name, path, state, entry, stored, index, run, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Stages the segment into the run's group commit (<see cref="LocalWriteBatch"/>), which is committed every
    /// <see cref="BatchMaxSegments"/> segments or <see cref="BatchMaxBytes"/> bytes and at the end of the pass. The
    /// segment counts (index, manifest, metrics, upload queue) only once the commit made it durable.
    /// </summary>
    private async Task ShipAsync(string name, string path, WalFileState state, WalIndexEntry? entry, WalIndex index, Run run, CancellationToken cancellationToken)
    {
        run.Batch ??= _repository.BeginLocalBatch(Kind);
        using (var content = WalFile.OpenSegment(path, state, _reads))
        {
            run.Batch.Stage(name, content);
        }

        run.Pending.Add(new PendingSegment(name, path, state, entry));
        if (run.Batch.Count >= BatchMaxSegments || run.Batch.Bytes >= BatchMaxBytes)
        {
            await StartCommitAsync(index, run, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Hands the full batch to another thread to be made durable while this one stages the next (issue 16, P1: the
    /// disk flushes one batch while the next is read and hashed, instead of the two taking turns). At most one commit
    /// is in flight: the previous one is finished (its outcomes recorded) first. Nothing of the batch counts until
    /// <see cref="FinishInFlightCommitAsync"/> has recorded its outcomes on the run's thread.
    /// </summary>
    private async Task StartCommitAsync(WalIndex index, Run run, CancellationToken cancellationToken)
    {
        await FinishInFlightCommitAsync(index, run, cancellationToken).ConfigureAwait(false);
        var batch = run.Batch!;
        List<PendingSegment> pending = [.. run.Pending];
        run.Batch = null;
        run.Pending.Clear();
        run.InFlight = new InFlightCommit(batch, pending, Task.Run(() => _repository.CommitLocalBatch(batch), CancellationToken.None));
    }

    /// <summary>Waits for the commit in flight, if any, and records its outcomes; a failed commit fails the run and counts none of its batch.</summary>
    private async Task FinishInFlightCommitAsync(WalIndex index, Run run, CancellationToken cancellationToken)
    {
        if (run.InFlight is not { } inFlight)
        {
            return;
        }

        run.InFlight = null;
        IReadOnlyList<LocalBatchOutcome> outcomes;
        try
        {
            outcomes = await inFlight.Commit.ConfigureAwait(false);
        }
        finally
        {
            inFlight.Batch.Dispose();
        }

        await RecordCommitAsync(inFlight.Pending, outcomes, index, run, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The run is ending on a failure or a cancellation with a commit in flight: it is awaited (its batch's files are
    /// never deleted under it), then disposed. What it stored counts (it is durable and queued for the replica); what
    /// it found in the way is judged by the next run.
    /// </summary>
    private async Task AbandonInFlightCommitAsync(WalIndex index, Run run)
    {
        if (run.InFlight is not { } inFlight)
        {
            return;
        }

        run.InFlight = null;
        await ((Task)inFlight.Commit).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        inFlight.Batch.Dispose();
        if (!inFlight.Commit.IsCompletedSuccessfully)
        {
            return;
        }

        var outcomes = inFlight.Commit.Result;
        for (var i = 0; i < inFlight.Pending.Count; i++)
        {
            if (outcomes[i].Stored is { } info)
            {
                Stored(inFlight.Pending[i], info, index, run);
            }
        }
    }

    /// <summary>Commits the staged segments (after the commit in flight); from here on they count. A failing commit counts none of its batch.</summary>
    private async Task CommitAsync(WalIndex index, Run run, CancellationToken cancellationToken)
    {
        await FinishInFlightCommitAsync(index, run, cancellationToken).ConfigureAwait(false);
        if (run.Batch is null || run.Pending.Count == 0)
        {
            return;
        }

        List<PendingSegment> pending = [.. run.Pending];
        run.Pending.Clear();
        var outcomes = _repository.CommitLocalBatch(run.Batch);
        await RecordCommitAsync(pending, outcomes, index, run, cancellationToken).ConfigureAwait(false);
    }

    private void Stored(PendingSegment segment, ArtifactInfo info, WalIndex index, Run run)
    {
        Ok(segment.Name, new WalIndexEntry(segment.State.Size, segment.State.MtimeTicks, info.Sha256), index, run);
        run.Artifacts.Add(info);
        run.Stored++;
        Interlocked.Increment(ref _segmentsStored);
    }

    /// <summary>Records one committed batch: each segment stored counts; one another writer stored meanwhile is judged against what is there.</summary>
    private async Task RecordCommitAsync(List<PendingSegment> pending, IReadOnlyList<LocalBatchOutcome> outcomes, WalIndex index, Run run, CancellationToken cancellationToken)
    {
        for (var i = 0; i < pending.Count; i++)
        {
            var (name, path, state, entry) = pending[i];
            if (outcomes[i].Stored is { } info)
            {
                Stored(pending[i], info, index, run);
                continue;
            }

            // Another writer stored this name since we looked: judge what is there now.
            var conflict = outcomes[i].Conflict!;
            await ReadingAsync(name, path, state, run, () => CompareAsync(name, path, state, entry, conflict, index, run, cancellationToken)).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Runs one read of a source segment: a file still changing goes back to settling, one deleted or renamed away
    /// since it was listed is simply not there (nothing to back up, the stored copy, if any, stays), and one that
    /// cannot be read is marked unreadable while the other segments carry on.
    /// </summary>
    private async Task ReadingAsync(string name, string path, WalFileState state, Run run, Func<Task> read)
    {
        try
        {
            await read().ConfigureAwait(false);
        }
        catch (WalFileChangedException ex)
        {
            WalLog.StillChanging(_logger, name, ex.Message);
            run.Settling[name] = state;
        }
        catch (WalFileReadException ex) when (ex.Vanished)
        {
        }
        catch (WalFileReadException ex)
        {
            MarkUnreadable(run, name, state, path, ex.InnerException?.Message ?? ex.Message);
        }
    }

    private async Task CompareAsync(string name, string path, WalFileState state, WalIndexEntry? entry, ArtifactInfo stored, WalIndex index, Run run, CancellationToken cancellationToken)
    {
        var copy = new WalStoredCopy(stored.Size, stored.Sha256);
        if (stored.Size != state.Size)
        {
            Conflict(name, state, null, copy, index, run, log: true);
            return;
        }

        if (entry is null && StoredCopyIsNewer(name, state))
        {
            // Nothing recorded about this segment (first run, lost index, a crash before the index was saved),
            // and the stored copy was written after the source was last modified: it holds these very bytes,
            // so its sidecar is trusted and neither side is read.
            Ok(name, new WalIndexEntry(state.Size, state.MtimeTicks, stored.Sha256), index, run);
            return;
        }

        string sha;
        var content = WalFile.OpenSegment(path, state, _reads);
        await using (content.ConfigureAwait(false))
        {
            sha = await WalFile.Sha256Async(content, cancellationToken).ConfigureAwait(false);
        }

        if (string.Equals(sha, stored.Sha256, StringComparison.Ordinal))
        {
            Ok(name, new WalIndexEntry(state.Size, state.MtimeTicks, sha), index, run);
        }
        else
        {
            Conflict(name, state, sha, copy, index, run, log: true);
        }
    }

    private bool StoredCopyIsNewer(string name, WalFileState state)
    {
        var copy = new FileInfo(_repository.Local.PathOf(Kind, name));
        return copy.Exists && copy.LastWriteTimeUtc.Ticks > state.MtimeTicks;
    }

    private void Ok(string name, WalIndexEntry entry, WalIndex index, Run run)
    {
        if (index.Segments.TryGetValue(name, out var old) && old.IsConflict)
        {
            WalLog.ConflictResolved(_logger, name);
        }

        index.Set(name, entry);
        run.Ok[name] = entry;
        ClearUnreadable(name);
    }

    private void Conflict(string name, WalFileState state, string? sourceSha, WalStoredCopy stored, WalIndex index, Run run, bool log)
    {
        var entry = new WalIndexEntry(state.Size, state.MtimeTicks, sourceSha, stored);
        index.Set(name, entry);
        run.Conflicts[name] = entry;
        ClearUnreadable(name);
        Interlocked.Increment(ref _conflictsDetected);
        if (log)
        {
            WalLog.Conflict(_logger, name, stored.Size, stored.Sha256 ?? "unknown", state.Size, sourceSha ?? "not computed, the sizes differ");
        }
    }

    private void MarkUnreadable(Run run, string name, WalFileState state, string path, string reason)
    {
        // Logged once per file state, not at every run.
        if (!_unreadable.TryGetValue(name, out var old) || old.State != state || old.Reason != reason)
        {
            WalLog.Unreadable(_logger, path, reason);
            _unreadable[name] = (state, reason);
            _unreadableVersion++;
        }

        run.Unreadable[name] = (state, reason);
    }

    private void ClearUnreadable(string name)
    {
        if (_unreadable.Remove(name))
        {
            _unreadableVersion++;
        }
    }

    /// <summary>A scheduled run waits (at most one settle time) for segments still being written, so its manifest can list them.</summary>
    private async Task RetrySettlingAsync(WalIndex index, HashSet<string>? stored, Run run, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var until = run.Settling.Values.Select(s => _settle.RecheckAt(s, now)).Max();

        // A little past the moment: timers round to milliseconds and may fire a hair early.
        await Task.Delay(until - now + TimeSpan.FromMilliseconds(100), _time, cancellationToken).ConfigureAwait(false);

        var again = new List<WalListedFile>();
        foreach (var name in run.Settling.Keys.Order(StringComparer.Ordinal))
        {
            var file = new FileInfo(Path.Combine(_directory, name));
            try
            {
                if (file.Exists)
                {
                    again.Add(new WalListedFile(name, WalFileState.Of(file)));
                }
            }
            catch (FileNotFoundException)
            {
                // Gone meanwhile.
            }
        }

        run.Settling.Clear();
        await ProcessAsync(again, index, stored, run, cancellationToken).ConfigureAwait(false);
    }

    // --------------------------------------------------------------------------------------- manifest

    private async Task WriteManifestAsync(Run run, CancellationToken cancellationToken)
    {
        // Named and dated by the instant the directory was listed: "the WAL directory as it was then".
        var now = run.ListedAt;
        var complete = new WalManifest(
            WalManifest.FormatName,
            WalManifest.CurrentVersion,
            _nodeName,
            now,
            run.Trigger.ToString(),
            _directory,
            run.Active is { } a ? new WalManifestActive(_naming.ActiveFile, a.Artifact, a.Size, a.Sha256) : null,
            SortedSegments(run.Ok),
            [.. run.Settling.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => new WalManifestPending(p.Key, p.Value.Size))],
            [.. run.Conflicts.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => new WalManifestConflict(p.Key, p.Value.Stored!.Size, p.Value.Stored.Sha256, p.Value.Size, p.Value.Sha256))],
            [.. run.Unreadable.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => new WalManifestUnreadable(p.Key, p.Value.Reason))],
            run.Modes.MostCommon is { } mode ? WalManifest.FormatMode(mode) : null,
            DirectoryMode());

        // Only what changed since the newest stored manifest, when that one can be followed (WalManifestChain).
        var tip = await ChainTipAsync(run.StoredNames, complete, cancellationToken).ConfigureAwait(false);
        var manifest = WalManifestChain.Next(complete, tip, _fullManifestInterval);
        var name = await ArtifactNameAllocator.AllocateAsync(_repository.Local, Kind, WalNaming.ManifestPrefix, WalNaming.ManifestSuffix, now, cancellationToken).ConfigureAwait(false);
        var content = ProducerStream.Start(manifest.WriteAsync, cancellationToken);
        await using (content.ConfigureAwait(false))
        {
            run.Manifest = await _repository.StoreAsync(Kind, name, content, expectedSha256: null, cancellationToken: cancellationToken).ConfigureAwait(false);
        }

        run.ManifestDocument = manifest;
        _tip = run.Manifest.Sha256 is not { } sha ? null
            // Nothing added or removed: the segments are the parent's, so its map is kept rather than built again.
            : manifest is { IsDelta: true, Added.Count: 0, Removed.Count: 0 } && tip is not null
                ? tip with { Name = name, Sha256 = sha, Depth = manifest.Depth, Chain = [new WalManifestParent(name, sha), .. tip.Chain] }
            : WalChainTip.Of(name, sha, complete with { Type = manifest.Type, Depth = manifest.Depth }, manifest.IsDelta ? tip!.Chain : null);
        SaveChainCache(_tip);
        run.Artifacts.Add(run.Manifest);
        Volatile.Write(ref _lastManifest, name);
    }

    /// <summary>The manifest's segment list in name order: the run met them in listing order (sorted), so usually no sort is needed.</summary>
    private static List<WalManifestSegment> SortedSegments(Dictionary<string, WalIndexEntry> ok)
    {
        var segments = new List<WalManifestSegment>(ok.Count);
        var sorted = true;
        foreach (var (name, entry) in ok)
        {
            sorted = sorted && (segments.Count == 0 || string.CompareOrdinal(segments[^1].Name, name) < 0);
            segments.Add(new WalManifestSegment(name, entry.Size, entry.Sha256!));
        }

        if (!sorted)
        {
            segments.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        }

        return segments;
    }

    /// <summary>
    /// The newest manifest in the local store, resolved, to write the next delta against: the one this process wrote
    /// last when it is still the newest with the same checksum (no read), else read back and its chain followed. Null
    /// (a full manifest is written) when there is none or it cannot be followed.
    /// </summary>
    private async Task<WalChainTip?> ChainTipAsync(HashSet<string>? stored, WalManifest complete, CancellationToken cancellationToken)
    {
        if (_fullManifestInterval <= 1)
        {
            return null;
        }

        string? newest = null;
        (DateTimeOffset Time, int Sequence) newestKey = default;
        foreach (var name in stored ?? ListStoredNames())
        {
            if (WalNaming.IsManifest(name) && ArtifactName.TryParse(name, out _, out var time, out var sequence, out _)
                && (newest is null || (time, sequence).CompareTo(newestKey) > 0))
            {
                (newest, newestKey) = (name, (time, sequence));
            }
        }

        if (newest is null)
        {
            _tip = null;
            return null;
        }

        try
        {
            var info = await _repository.Local.StatAsync(Kind, newest, cancellationToken).ConfigureAwait(false);
            if (info?.Sha256 is not { } sha)
            {
                return _tip = null;
            }

            if (_tip is { } tip && string.Equals(tip.Name, newest, StringComparison.Ordinal) && string.Equals(tip.Sha256, sha, StringComparison.Ordinal))
            {
                return tip;
            }

            if (await CachedTipAsync(newest, sha, complete, cancellationToken).ConfigureAwait(false) is { } cached)
            {
                return _tip = cached;
            }

            var input = await _repository.Local.OpenReadAsync(Kind, newest, cancellationToken).ConfigureAwait(false);
            WalManifest manifest;
            string actual;
            await using (input.ConfigureAwait(false))
            {
                (manifest, actual) = await WalManifestChain.ReadAsync(input, cancellationToken).ConfigureAwait(false);
            }

            var parents = new List<WalManifestParent>();
            var resolved = await WalManifestChain.ResolveAsync(newest, manifest, OpenLocalManifestAsync, _repository.Local.Target, cancellationToken, parents).ConfigureAwait(false);
            return _tip = WalChainTip.Of(newest, actual, resolved, parents);
        }
        catch (Exception ex) when (ex is WalManifestChainException or StoreException or IOException or InvalidDataException or System.Text.Json.JsonException)
        {
            WalLog.ManifestChainUnusable(_logger, newest, ex.Message);
            return _tip = null;
        }
    }

    private string ChainCachePath => Path.Combine(_stateDirectory, WalChainCache.FileName);

    /// <summary>
    /// The tip <c>wal-chain.json</c> proves (<see cref="WalChainCache"/>) when this sync's segments are exactly the ones
    /// its chain resolves to: then the next manifest is a delta with nothing added or removed and the chain need not be
    /// read. Null (resolve the chain) in every other case.
    /// </summary>
    private async Task<WalChainTip?> CachedTipAsync(string newest, string sidecarSha, WalManifest complete, CancellationToken cancellationToken)
    {
        try
        {
            if (WalChainCache.Load(ChainCachePath) is not { } document
                || !await WalChainCache.VerifyAsync(document, _directory, _repository.Local.Target, newest, sidecarSha, OpenLocalManifestAsync, cancellationToken).ConfigureAwait(false))
            {
                return null;
            }

            var digest = WalChainCache.SegmentsDigest(complete.Segments);
            if (!string.Equals(digest, document.SegmentsSha256, StringComparison.Ordinal))
            {
                return null;
            }

            var segments = new Dictionary<string, WalManifestSegment>(complete.Segments.Count, StringComparer.Ordinal);
            foreach (var s in complete.Segments)
            {
                segments[s.Name] = s;
            }

            return new WalChainTip(document.Name, document.Sha256, document.Depth, segments, document.Chain) { SegmentsSha256 = digest };
        }
        catch (Exception ex) when (ex is StoreException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Records the tip for the next process (<see cref="WalChainCache"/>); on failure removes the file, which then names an older manifest anyway.</summary>
    private void SaveChainCache(WalChainTip? tip)
    {
        if (_watching)
        {
            return;
        }

        var path = ChainCachePath;
        if (tip is null)
        {
            WalChainCache.Delete(path);
            return;
        }

        try
        {
            var digest = tip.SegmentsSha256 ?? WalChainCache.SegmentsDigest(tip.Segments.Values);
            _tip = tip with { SegmentsSha256 = digest };
            WalChainCache.Save(path, WalChainCache.Describe(_directory, _repository.Local.Target, tip, digest));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            WalChainCache.Delete(path);
        }
    }

    private async Task<Stream?> OpenLocalManifestAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            return await _repository.Local.OpenReadAsync(Kind, name, cancellationToken).ConfigureAwait(false);
        }
        catch (ArtifactNotFoundException)
        {
            return null;
        }
    }

    /// <summary>What one run saw and did.</summary>
    private sealed class Run(BackupTrigger trigger)
    {
        public BackupTrigger Trigger { get; } = trigger;

        /// <summary>Scheduled, missed or manual: full scan, store check, manifest. Change: new segments and a settled active file only.</summary>
        public bool Full => Trigger != BackupTrigger.Change;

        public List<ArtifactInfo> Artifacts { get; } = [];

        /// <summary>The group commit new segments are staged into (created at the first one); disposed when the run ends.</summary>
        public LocalWriteBatch? Batch { get; set; }

        /// <summary>The segments staged into <see cref="Batch"/> and not committed yet, in staging order.</summary>
        public List<PendingSegment> Pending { get; } = [];

        /// <summary>The previous full batch, being made durable on another thread while <see cref="Batch"/> is staged.</summary>
        public InFlightCommit? InFlight { get; set; }
        public Dictionary<string, WalIndexEntry> Ok { get; } = new(StringComparer.Ordinal);
        public Dictionary<string, WalIndexEntry> Conflicts { get; } = new(StringComparer.Ordinal);
        public Dictionary<string, WalFileState> Settling { get; } = new(StringComparer.Ordinal);
        public Dictionary<string, (WalFileState State, string Reason)> Unreadable { get; } = new(StringComparer.Ordinal);
        public int Stored { get; set; }
        public bool Processed { get; set; }

        /// <summary>The permission bits of the WAL files listed (full runs), for the manifest.</summary>
        public WalModeTally Modes { get; } = new();

        /// <summary>When the directory was listed: the manifest's time.</summary>
        public DateTimeOffset ListedAt { get; set; }

        /// <summary>The snapshot that holds the active file as it is now (taken by this run or unchanged since).</summary>
        public WalActiveEntry? Active { get; set; }

        public ArtifactInfo? ActiveSnapshot { get; set; }
        public string? ActiveProblem { get; set; }
        public bool ActiveUnreadable { get; set; }
        public ArtifactInfo? Manifest { get; set; }

        /// <summary>The manifest as written (full or delta).</summary>
        public WalManifest? ManifestDocument { get; set; }

        /// <summary>The local store's complete artifacts as listed at the start of a full run.</summary>
        public HashSet<string>? StoredNames { get; set; }
    }
}

/// <summary>A segment staged into a run's group commit, with what is needed to record it once committed.</summary>
internal sealed record PendingSegment(string Name, string Path, WalFileState State, WalIndexEntry? Entry);

/// <summary>A full batch being committed on another thread, with its segments to record once it is done.</summary>
internal sealed record InFlightCommit(LocalWriteBatch Batch, List<PendingSegment> Pending, Task<IReadOnlyList<LocalBatchOutcome>> Commit);
