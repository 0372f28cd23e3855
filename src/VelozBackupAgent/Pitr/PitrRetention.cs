using VelozBackupAgent.Catalog;
using VelozBackupAgent.Retention;

namespace VelozBackupAgent.Pitr;

/// <summary>
/// Retention for the <c>pitr</c> kind as a pure function of a catalog, the clock and each base's metadata. Rules, each a
/// safety property the tests check on random catalogs:
/// <list type="bullet">
/// <item>Nothing is deleted when the clock looks wrong (as <see cref="RetentionPolicy.Decide"/>).</item>
/// <item>A base is its JSON plus its archive; it is complete when its JSON reads and names an archive that is stored. A
/// base older than the retention (time from its name) goes, JSON first, then archive — except the newest complete base,
/// which stays however old.</item>
/// <item>An archive without JSON (interrupted, or still being finished) goes once it is a day old.</item>
/// <item>A JSON that cannot be read (or is for another segment size) is never deleted, nor its archive; while one exists
/// no WAL is deleted at all. Nor is any without a complete base. While an archive without JSON is kept (a base still being
/// finished, whose start is not known yet) only superseded pieces go.</item>
/// <item>Otherwise every segment, piece and backup history file below the lowest start segment of all kept bases goes, on
/// every timeline (after a restore back in time a newer base can start at a lower LSN than an older one).</item>
/// <item>Pieces of a segment that is also stored in full go whatever their age (the full segment supersedes them).</item>
/// <item>History files and names <see cref="PitrArtifact.Classify"/> does not know are never deleted.</item>
/// </list>
/// Deletions come WAL first (by segment number), then base JSONs, then base archives, oldest first: an interrupted prune
/// leaves bases that still explain what is stored.
/// </summary>
public static class PitrRetention
{
    /// <summary>How long an archive without its JSON may be still in the making before it counts as interrupted.</summary>
    public static readonly TimeSpan InterruptedArchiveAge = TimeSpan.FromDays(1);

    /// <param name="entries">The pitr kind's artifacts in one store.</param>
    /// <param name="retention">How long bases are kept.</param>
    /// <param name="now">The clock now.</param>
    /// <param name="lastPruneAt">When a prune last ran, to notice a clock that went backwards.</param>
    /// <param name="baseInfo">Reads a base JSON entry; null when it cannot be read.</param>
    /// <param name="segmentSize">The cluster's WAL segment size.</param>
    /// <param name="keep">
    /// Entries that must stay whatever their age (copies the store still locks): a base with such a JSON or archive is
    /// kept whole, and so is the WAL it needs. Keeping more never makes anything else go.
    /// </param>
    public static RetentionDecision Decide(
        IReadOnlyList<CatalogEntry> entries,
        TimeSpan retention,
        DateTimeOffset now,
        DateTimeOffset? lastPruneAt,
        Func<CatalogEntry, BaseBackupInfo?> baseInfo,
        long segmentSize = 16 * 1024 * 1024,
        Func<CatalogEntry, bool>? keep = null)
    {
        keep ??= _ => false;
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(baseInfo);
        WalFileName.ValidateSegmentSize(segmentSize);
        if (ClockProblem(entries, retention, now, lastPruneAt) is { } refused)
        {
            return RetentionDecision.Refuse(refused);
        }

        var bases = Bases(entries, baseInfo, segmentSize);
        var newestComplete = bases.Where(b => b.Complete).MaxBy(b => (b.Time, b.Sequence));
        var deleteInfos = new List<Base>();
        var deleteArchives = new List<(Base Base, CatalogEntry Entry)>();
        var kept = new List<Base>();
        var inProgress = false;
        foreach (var b in bases)
        {
            if (b.Json is null)
            {
                var interrupted = b.Time < now - InterruptedArchiveAge;
                deleteArchives.AddRange(interrupted ? b.Archives.Where(a => !keep(a)).Select(a => (b, a)) : []);
                inProgress |= !interrupted;
            }
            else if (b.Readable && !ReferenceEquals(b, newestComplete) && b.Time < now - retention && !keep(b.Json) && !b.Archives.Any(keep))
            {
                deleteInfos.Add(b);
                deleteArchives.AddRange(b.Archives.Select(a => (b, a)));
            }
            else
            {
                kept.Add(b);
            }
        }

        var wal = WalToDelete(entries, segmentSize, bases, kept, newestComplete is not null, inProgress).Where(e => !keep(e));
        var oldestFirst = Comparer<Base>.Create((x, y) => (x.Time, x.Sequence, x.Stem).CompareTo((y.Time, y.Sequence, y.Stem)));
        return new RetentionDecision(
        [
            .. wal,
            .. deleteInfos.Order(oldestFirst).Select(b => b.Json!),
            .. deleteArchives.OrderBy(a => a.Base, oldestFirst).ThenBy(a => a.Entry.Name, StringComparer.Ordinal).Select(a => a.Entry),
        ], null);
    }

    private static string? ClockProblem(IReadOnlyList<CatalogEntry> entries, TimeSpan retention, DateTimeOffset now, DateTimeOffset? lastPruneAt)
    {
        if (retention <= TimeSpan.Zero)
        {
            return $"retention must be positive, not {retention}";
        }

        if (lastPruneAt is { } last && last - now > RetentionPolicy.ClockTolerance)
        {
            return $"the clock went backwards: now {now:u}, last prune {last:u}";
        }

        var future = entries.Where(e => TimeOf(e) is not null).MaxBy(TimeOf);
        return future is not null && TimeOf(future)!.Value - now > RetentionPolicy.ClockTolerance
            ? $"{future.Name} is from the future (now {now:u}): the clock looks wrong"
            : null;
    }

    private static List<CatalogEntry> WalToDelete(
        IReadOnlyList<CatalogEntry> entries, long segmentSize, List<Base> bases, List<Base> kept, bool anyComplete, bool inProgress)
    {
        // Fail safe: without knowing where every kept base starts, no WAL is known to be unneeded.
        if (!anyComplete || bases.Any(b => b.Json is not null && !b.Readable))
        {
            return [];
        }

        var wal = entries
            .Select(e => (Entry: e, Artifact: PitrArtifact.Classify(e.Name)))
            .Where(x => x.Artifact is { Type: PitrArtifactType.Segment or PitrArtifactType.Partial or PitrArtifactType.BackupHistory, File: { } f } && f.IsValidFor(segmentSize))
            .Select(x => (x.Entry, x.Artifact!, Segno: x.Artifact!.File!.Value.SegmentNumber(segmentSize)))
            .ToList();
        var full = wal.Where(w => w.Item2.Type == PitrArtifactType.Segment).Select(w => (w.Item2.Timeline, w.Segno)).ToHashSet();
        var starts = kept.Where(b => b.Info is not null).Select(b => b.Info!.Start.Value / (ulong)segmentSize).ToList();
        ulong keepFrom = inProgress || starts.Count == 0 ? 0 : starts.Min();

        return wal
            .Where(w => w.Segno < keepFrom || (w.Item2.Type == PitrArtifactType.Partial && full.Contains((w.Item2.Timeline, w.Segno))))
            .OrderBy(w => w.Segno)
            .ThenBy(w => w.Item2.Timeline)
            .ThenBy(w => w.Item2.Type)
            .ThenBy(w => w.Entry.Name, StringComparer.Ordinal)
            .Select(w => w.Entry)
            .ToList();
    }

    /// <summary>The bases in the catalog by stem: JSON (if any), archives, and what the JSON says when it reads.</summary>
    private static List<Base> Bases(IReadOnlyList<CatalogEntry> entries, Func<CatalogEntry, BaseBackupInfo?> baseInfo, long segmentSize)
    {
        var bases = new List<Base>();
        var files = entries
            .Select(e => (Entry: e, Artifact: PitrArtifact.Classify(e.Name)))
            .Where(x => x.Artifact is { Type: PitrArtifactType.BaseArchive or PitrArtifactType.BaseInfo })
            .GroupBy(x => x.Artifact!.BaseStem!, StringComparer.Ordinal);
        foreach (var stem in files)
        {
            var json = stem.FirstOrDefault(x => x.Artifact!.Type == PitrArtifactType.BaseInfo).Entry;
            var archives = stem.Where(x => x.Artifact!.Type == PitrArtifactType.BaseArchive).Select(x => x.Entry).ToList();
            if (!ArtifactName.TryParse(stem.First().Entry.Name, out _, out var time, out var sequence, out _))
            {
                continue; // cannot happen: Classify only knows bases whose names parse
            }

            var info = json is null ? null : Usable(baseInfo(json), segmentSize);
            var complete = info is not null && archives.Any(a => string.Equals(a.Name, info.Archive, StringComparison.Ordinal));
            bases.Add(new Base(stem.Key, time, sequence, json, archives, info, complete));
        }

        return bases;
    }

    /// <summary>A base's metadata when it can be relied on: consistent, and for this cluster's segment size.</summary>
    private static BaseBackupInfo? Usable(BaseBackupInfo? info, long segmentSize) =>
        info is not null && info.Problem() is null && info.WalSegmentSize == segmentSize ? info : null;

    private static DateTimeOffset? TimeOf(CatalogEntry e) =>
        e.Time ?? (ArtifactName.TryParse(e.Name, out _, out var time, out _, out _) ? time : null);

    private sealed record Base(string Stem, DateTimeOffset Time, int Sequence, CatalogEntry? Json, List<CatalogEntry> Archives, BaseBackupInfo? Info, bool Complete)
    {
        public bool Readable => Info is not null;
    }
}
