using System.IO.Enumeration;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Sources.Wal;

/// <summary>Which names in the WAL directory are sealed segments, which is the active file, and how its snapshots and the manifests are named.</summary>
internal sealed class WalNaming
{
    public const string ManifestPrefix = "wal-manifest";
    public const string ManifestSuffix = ".json";

    private readonly string _pattern;

    // The usual pattern (one '*', no '?' or escape: 'orders_*.wal') is a prefix and a suffix test: a listing of
    // 10,000 names spent ~6 % of a no-op sync in the general glob matcher. Null when the pattern needs the matcher.
    private readonly string? _literalPrefix;
    private readonly string? _literalSuffix;

    public WalNaming(WalOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _pattern = options.SegmentPattern;
        (_literalPrefix, _literalSuffix) = SplitSingleStar(_pattern);
        ActiveFile = options.ActiveFile;
        var extension = Path.GetExtension(ActiveFile);
        ActiveSuffix = extension.Length > 1 ? extension : ".wal";
        ActiveStem = extension.Length > 1 ? ActiveFile[..^extension.Length] : ActiveFile.TrimEnd('.');
    }

    /// <summary>The active file's name, e.g. <c>orders_current.wal</c>.</summary>
    public string ActiveFile { get; }

    /// <summary>Snapshot names are <c>&lt;ActiveStem&gt;_YYYYMMDD_HHMMSS&lt;ActiveSuffix&gt;</c>: <c>orders_current</c>…<c>.wal</c>.</summary>
    public string ActiveStem { get; }

    public string ActiveSuffix { get; }

    /// <summary>
    /// A sealed segment: matches the pattern, is not the active file, and is not named like one of our own
    /// snapshots or manifests (a snapshot copied back into the directory must not pass for a segment and
    /// collide with the stored snapshot of that name).
    /// </summary>
    public bool IsSegment(string name) =>
        MatchesPattern(name)
        && !string.Equals(name, ActiveFile, StringComparison.Ordinal)
        && !IsSnapshot(name) && !IsManifest(name);

    /// <summary>Whether the name matches the segment glob, exactly as <see cref="FileSystemName.MatchesSimpleExpression"/> (case-sensitive) decides (an empty name never matches).</summary>
    internal bool MatchesPattern(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (_literalPrefix is null || _literalSuffix is null)
        {
            return FileSystemName.MatchesSimpleExpression(_pattern, name, ignoreCase: false);
        }

        return name.Length > 0 && name.Length >= _literalPrefix.Length + _literalSuffix.Length
            && name.StartsWith(_literalPrefix, StringComparison.Ordinal)
            && name.EndsWith(_literalSuffix, StringComparison.Ordinal);
    }

    private static (string? Prefix, string? Suffix) SplitSingleStar(string pattern)
    {
        var star = pattern.IndexOf('*', StringComparison.Ordinal);
        if (star < 0 || pattern.IndexOf('*', star + 1) >= 0 || pattern.AsSpan().IndexOfAny('?', '\\') >= 0)
        {
            return (null, null);
        }

        return (pattern[..star], pattern[(star + 1)..]);
    }

    // The prefix test first: listings of many thousands of segments run these for every name.
    public bool IsSnapshot(string name) =>
        name.StartsWith(ActiveStem, StringComparison.Ordinal)
        && ArtifactName.TryParse(name, out var prefix, out _, out _, out var suffix)
        && string.Equals(prefix, ActiveStem, StringComparison.Ordinal) && string.Equals(suffix, ActiveSuffix, StringComparison.Ordinal);

    public static bool IsManifest(string name) =>
        name.StartsWith(ManifestPrefix, StringComparison.Ordinal)
        && ArtifactName.TryParse(name, out var prefix, out _, out _, out var suffix)
        && string.Equals(prefix, ManifestPrefix, StringComparison.Ordinal) && string.Equals(suffix, ManifestSuffix, StringComparison.Ordinal);

    /// <summary>Whether a change to this name concerns the WAL backup (the watcher ignores everything else).</summary>
    public bool IsWatched(string name) => string.Equals(name, ActiveFile, StringComparison.Ordinal) || IsSegment(name);

    /// <summary>Whether the store accepts this name (letters, digits, '.', '-', '_'); a segment that fails is reported, never skipped silently.</summary>
    public static bool IsStorable(string name)
    {
        try
        {
            ArtifactNames.ValidateName(name);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}

/// <summary>
/// Decides when a file has settled, i.e. is no longer being written: its mtime is at least the settle time
/// old, or (for an mtime that cannot be trusted, e.g. in the future after a clock step) its size and mtime
/// stayed the same across observations at least the settle time apart on the monotonic clock; or it appeared
/// by an atomic rename and has not changed since (<see cref="MarkRenamed"/>). Thread-safe:
/// the runs and the watcher share one.
/// </summary>
internal sealed class SettleTracker
{
    /// <summary>A recheck is never scheduled sooner than this, so a confused clock cannot make a busy loop.</summary>
    private static readonly TimeSpan MinRecheck = TimeSpan.FromMilliseconds(50);

    private readonly TimeSpan _settle;
    private readonly TimeProvider _time;
    private readonly Dictionary<string, (WalFileState State, long Timestamp)> _seen = new(StringComparer.Ordinal);
    private readonly Dictionary<string, WalFileState> _renamed = new(StringComparer.Ordinal);

    public SettleTracker(TimeSpan settle, TimeProvider time)
    {
        _settle = settle;
        _time = time;
    }

    public TimeSpan SettleTime => _settle;

    public bool IsSettled(string name, WalFileState state, DateTimeOffset now)
    {
        if (_settle <= TimeSpan.Zero || now - state.Mtime >= _settle)
        {
            Forget(name);
            return true;
        }

        lock (_seen)
        {
            if (_renamed.TryGetValue(name, out var complete))
            {
                if (complete == state)
                {
                    return true;
                }

                // Written to after the rename: it was not complete after all, so it waits the settle time like
                // any file written in place.
                _renamed.Remove(name);
            }

            if (_seen.TryGetValue(name, out var seen) && seen.State == state)
            {
                return _time.GetElapsedTime(seen.Timestamp) >= _settle;
            }

            _seen[name] = (state, _time.GetTimestamp());
            return false;
        }
    }

    /// <summary>
    /// This name appeared by an atomic rename within the directory (<c>orders_current.wal</c> → <c>orders_&lt;n&gt;.wal</c>)
    /// and had this state just after: it is complete at once, settled without waiting, for as long as it stays in
    /// this state. Any later change (a writer that renamed a file it still had open and kept writing) drops the mark,
    /// so the new state waits the settle time; a copy already stored then differs from the source, which the runs
    /// report as a conflict (the stored copy is kept).
    /// </summary>
    public void MarkRenamed(string name, WalFileState state)
    {
        lock (_seen)
        {
            _renamed[name] = state;
            _seen.Remove(name);
        }
    }

    /// <summary>When to look again at a file that has not settled: when its settle time is up, at most one settle time from now.</summary>
    public DateTimeOffset RecheckAt(WalFileState state, DateTimeOffset now)
    {
        var due = state.Mtime + _settle;
        var latest = now + _settle;
        var earliest = now + MinRecheck;
        return due > latest ? latest : due < earliest ? earliest : due;
    }

    public void Forget(string name)
    {
        lock (_seen)
        {
            _seen.Remove(name);
            _renamed.Remove(name);
        }
    }

    /// <summary>Drops observations of files that are no longer there.</summary>
    /// <summary>True when no file is being watched settle or marked renamed.</summary>
    public bool IsEmpty
    {
        get
        {
            lock (_seen)
            {
                return _seen.Count == 0 && _renamed.Count == 0;
            }
        }
    }

    public void Retain(IReadOnlySet<string> present)
    {
        lock (_seen)
        {
            foreach (var name in _seen.Keys.Where(n => !present.Contains(n)).ToList())
            {
                _seen.Remove(name);
            }

            foreach (var name in _renamed.Keys.Where(n => !present.Contains(n)).ToList())
            {
                _renamed.Remove(name);
            }
        }
    }
}

/// <summary>A file in the WAL directory as listed.</summary>
internal readonly record struct WalListedFile(string Name, WalFileState State);

/// <summary>What the last run left known: each segment's state (stored, in conflict, or unreadable) and the active file's state at its last snapshot.</summary>
internal sealed record WalKnownState(IReadOnlyDictionary<string, WalFileState> Segments, WalFileState? Active)
{
    public static WalKnownState Empty { get; } = new(new Dictionary<string, WalFileState>(), null);
}

/// <summary>Whether a change-triggered run has work now, and when to look again for files still settling.</summary>
internal readonly record struct WalPlan(bool Work, DateTimeOffset? RecheckAt);

/// <summary>
/// Decides, from a directory listing alone (no reads), whether a change-triggered run is worth starting: a
/// segment the last run did not know in this state and that has settled, or an active file that changed
/// since its last snapshot and whose writes have paused. The watcher asks this before every run, so an
/// engine appending to its active file all day does not cause a backup run per write.
/// </summary>
internal static class WalPlanner
{
    public static WalPlan Plan(IEnumerable<WalListedFile> segments, WalListedFile? active, WalKnownState known, SettleTracker settle, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(segments);
        ArgumentNullException.ThrowIfNull(known);
        ArgumentNullException.ThrowIfNull(settle);
        DateTimeOffset? recheck = null;
        foreach (var file in segments)
        {
            if (known.Segments.TryGetValue(file.Name, out var state) && state == file.State)
            {
                continue;
            }

            if (settle.IsSettled(file.Name, file.State, now))
            {
                return new WalPlan(true, null);
            }

            recheck = Earliest(recheck, settle.RecheckAt(file.State, now));
        }

        if (active is { } a && known.Active != a.State)
        {
            if (settle.IsSettled(a.Name, a.State, now))
            {
                return new WalPlan(true, null);
            }

            recheck = Earliest(recheck, settle.RecheckAt(a.State, now));
        }

        return new WalPlan(false, recheck);
    }

    public static DateTimeOffset? Earliest(DateTimeOffset? a, DateTimeOffset? b) =>
        a is null ? b : b is null ? a : a < b ? a : b;
}

/// <summary>Counts the permission bits of WAL files as they are listed; the manifest records the most common.</summary>
internal sealed class WalModeTally
{
    private readonly Dictionary<UnixFileMode, int> _counts = [];

    public void Count(FileInfo file)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        // The listing's stat is cached in the FileInfo: this costs no further system call.
        Count(file.UnixFileMode);
    }

    public void Count(UnixFileMode mode)
    {
        mode &= (UnixFileMode)0x1FF;
        _counts[mode] = _counts.GetValueOrDefault(mode) + 1;
    }

    /// <summary>The mode most files had (the lowest of equally common ones, so the choice is stable); null when none were counted.</summary>
    public UnixFileMode? MostCommon =>
        _counts.Count == 0 ? null : _counts.OrderByDescending(p => p.Value).ThenBy(p => (int)p.Key).First().Key;
}
