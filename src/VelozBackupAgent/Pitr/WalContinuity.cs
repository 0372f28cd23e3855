namespace VelozBackupAgent.Pitr;

/// <summary>What one store holds of the <c>pitr</c> kind, as continuity needs it.</summary>
/// <param name="Names">Every artifact name in the store; names <see cref="PitrArtifact.Classify"/> does not know, base files and backup history files are ignored.</param>
/// <param name="SegmentSize">The cluster's WAL segment size.</param>
/// <param name="Histories">The history files present, parsed by the caller (key: the timeline).</param>
public sealed record WalInventory(IReadOnlyCollection<string> Names, long SegmentSize, IReadOnlyDictionary<uint, TimelineHistory> Histories);

/// <summary>
/// One segment to replay, in order: a full segment artifact (<see cref="SegmentArtifact"/> set, <see cref="CoveredBytes"/>
/// the segment size) or a chain of pieces from offset 0 (<see cref="Pieces"/> in the order to write them, each at its own
/// offset, starting at or before where the ones before end; <see cref="CoveredBytes"/> where the chain ends). Only the last step of a replay can fall short of
/// its segment's end.
/// </summary>
public sealed record WalReplayStep(WalFileName File, string? SegmentArtifact, IReadOnlyList<string> Pieces, uint CoveredBytes);

/// <summary>A run of missing WAL between stored WAL (or before a required end): <see cref="First"/> to <see cref="Last"/> on the lineage.</summary>
/// <param name="Timeline">The timeline of <see cref="First"/>.</param>
/// <param name="First">The first file missing (for a segment stored only in part: that segment).</param>
/// <param name="Last">The last file missing before the next stored WAL (or the required end).</param>
/// <param name="MissingSegments">Segments from <see cref="First"/> to <see cref="Last"/>.</param>
/// <param name="Description">One line for an operator.</param>
public sealed record WalGap(uint Timeline, WalFileName First, WalFileName Last, long MissingSegments, string Description);

/// <summary>
/// Whether WAL can be replayed from <see cref="Start"/> along the lineage of <see cref="TargetTimeline"/>: the files to
/// use (<see cref="Steps"/>), how far they reach contiguously (<see cref="End"/>: the first byte not covered), and what
/// is missing on the way to the newest stored WAL or the required end (<see cref="Gaps"/>). <see cref="Problem"/> is set
/// when no replay along that lineage is possible at all (no descent, history file missing).
/// </summary>
public sealed record WalCoverage(uint TargetTimeline, IReadOnlyList<TimelineSegmentRange> Lineage, Lsn Start, Lsn End, IReadOnlyList<WalReplayStep> Steps, IReadOnlyList<WalGap> Gaps, string? Problem)
{
    /// <summary>True when nothing needed is missing.</summary>
    public bool Complete => Gaps.Count == 0 && Problem is null;
}

/// <summary>
/// Can WAL be replayed from a base backup's start to the end of what is stored (or to a target), along which files,
/// and where are the gaps? Mirrors PostgreSQL's archive recovery: segments are read along the target timeline's
/// lineage, each from the newest timeline that has data in it (<c>XLogFileReadAnyTLI</c>), so a segment holding a
/// switch point comes from the new timeline and, failing that, from the old one, which holds the data up to the
/// switch point only. A timeline's WAL after it switched (a branch not taken) is never used.
/// </summary>
public static class WalContinuity
{
    /// <summary>
    /// Replay from (<paramref name="startTimeline"/>, <paramref name="start"/>) along the lineage of <paramref name="targetTimeline"/>.
    /// Null means what PostgreSQL's <c>recovery_target_timeline = 'latest'</c> picks: starting from the start timeline, each
    /// next timeline id whose history file exists, until one does not. When <paramref name="requiredEnd"/> is given every
    /// byte before it must be covered; gaps beyond it are not reported.
    /// </summary>
    public static WalCoverage Check(WalInventory inventory, uint startTimeline, Lsn start, uint? targetTimeline = null, Lsn? requiredEnd = null)
    {
        ArgumentNullException.ThrowIfNull(inventory);
        ArgumentOutOfRangeException.ThrowIfZero(startTimeline);
        if (targetTimeline == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(targetTimeline), targetTimeline, "timeline 0 is invalid");
        }

        return Check(new StoredWal(inventory), startTimeline, start, targetTimeline, requiredEnd);
    }

    /// <summary>
    /// For verify's "WAL continuity": one coverage per timeline that descends from (<paramref name="startTimeline"/>,
    /// <paramref name="start"/>) and has stored WAL and is a leaf (no other such timeline descends from it), plus any such
    /// timeline that has WAL of its own beyond where its descendants left it (a branch someone may restore to), plus any
    /// timeline above the start's with stored WAL but no history file (reported as a problem). Never empty: with none of
    /// these, the coverage of the "latest" timeline. Ordered by timeline.
    /// </summary>
    public static IReadOnlyList<WalCoverage> CheckEveryTimeline(WalInventory inventory, uint startTimeline, Lsn start)
    {
        ArgumentNullException.ThrowIfNull(inventory);
        ArgumentOutOfRangeException.ThrowIfZero(startTimeline);
        var store = new StoredWal(inventory);
        var targets = new SortedSet<uint>();
        var descendants = new List<(uint Timeline, IReadOnlyList<TimelineSegmentRange> Lineage)>();
        foreach (var timeline in inventory.Histories.Keys.Where(t => t > startTimeline).Append(startTimeline).Distinct())
        {
            var (lineage, problem) = store.LineageOf(timeline, startTimeline);
            if (problem is not null)
            {
                targets.Add(timeline);
            }
            else if (DescentProblem(timeline, lineage!, startTimeline, start) is null && store.HasWal(timeline))
            {
                descendants.Add((timeline, lineage!));
            }
        }

        foreach (var (timeline, _) in descendants)
        {
            var forks = descendants.Where(d => d.Timeline != timeline)
                .Select(d => d.Lineage.FirstOrDefault(r => r.Timeline == timeline)?.End)
                .Where(end => end is not null)
                .Select(end => end!.Value)
                .ToList();
            if (forks.Count == 0 || store.HasWalFrom(timeline, forks.Max()))
            {
                targets.Add(timeline);
            }
        }

        targets.UnionWith(store.WalTimelines.Where(t => t > startTimeline && !inventory.Histories.ContainsKey(t)));
        return targets.Count == 0
            ? [Check(store, startTimeline, start, null, null)]
            : [.. targets.Select(t => Check(store, startTimeline, start, t, null))];
    }

    private static WalCoverage Check(StoredWal store, uint startTimeline, Lsn start, uint? targetTimeline, Lsn? requiredEnd)
    {
        string? problem = null;
        uint target;
        if (targetTimeline is { } t)
        {
            target = t;
        }
        else
        {
            target = store.Latest(startTimeline);
            problem = store.LatestProblem(startTimeline, start, target);
        }

        if (target < startTimeline)
        {
            return Unreplayable(target, [], start, $"timeline {target} does not descend from timeline {startTimeline} at {start}: timeline ids only grow along a lineage");
        }

        var (lineage, lineageProblem) = store.LineageOf(target, startTimeline);
        if (lineageProblem is not null)
        {
            return Unreplayable(target, lineage ?? [], start, lineageProblem);
        }

        if (DescentProblem(target, lineage!, startTimeline, start) is { } descent)
        {
            return Unreplayable(target, lineage!, start, descent);
        }

        if (requiredEnd is { } required && required < start)
        {
            return Unreplayable(target, lineage!, start, $"the required end {required} is before the start {start}");
        }

        var (end, steps, gaps) = new Walk(store, lineage!, start, requiredEnd).Run();
        return new WalCoverage(target, lineage!, start, end, steps, gaps, problem);
    }

    private static WalCoverage Unreplayable(uint target, IReadOnlyList<TimelineSegmentRange> lineage, Lsn start, string problem) =>
        new(target, lineage, start, start, [], [], problem);

    /// <summary>Null when (timeline, start) lies on the lineage (PostgreSQL's "is not a child of this server's history" test).</summary>
    private static string? DescentProblem(uint target, IReadOnlyList<TimelineSegmentRange> lineage, uint startTimeline, Lsn start)
    {
        var range = lineage.FirstOrDefault(r => r.Timeline == startTimeline);
        var prefix = $"timeline {target} does not descend from timeline {startTimeline} at {start}: ";
        if (range is null)
        {
            return prefix + $"its lineage ({string.Join(", ", lineage.Select(r => r.Timeline))}) does not include timeline {startTimeline}";
        }

        if (range.End is { } end && start >= end)
        {
            return prefix + $"its lineage leaves timeline {startTimeline} at {end}";
        }

        return start < range.Begin ? prefix + $"its lineage enters timeline {startTimeline} only at {range.Begin}" : null;
    }

    /// <summary>One replay along one lineage: the contiguous part from the start, then the holes among the rest.</summary>
    private sealed class Walk(StoredWal store, IReadOnlyList<TimelineSegmentRange> lineage, Lsn start, Lsn? requiredEnd)
    {
        private readonly ulong _segSize = (ulong)store.SegmentSize;

        public (Lsn End, IReadOnlyList<WalReplayStep> Steps, IReadOnlyList<WalGap> Gaps) Run()
        {
            var first = start.Value / _segSize;
            var regions = Regions(first).ToList();

            // The contiguous part: consecutive segments from the start's, each full, the last one perhaps not.
            var steps = new List<WalReplayStep>();
            var end = start;
            var expected = first;
            foreach (var (segno, useful, source, _) in regions)
            {
                var reach = (segno * _segSize) + useful;
                if (segno != expected || reach <= end.Value)
                {
                    break;
                }

                steps.Add(new WalReplayStep(source.File, source.Full, source.Pieces, source.Covered));
                end = new Lsn(reach);
                if (useful < _segSize)
                {
                    break;
                }

                expected++;
            }

            return (end, steps, Gaps(end, Runs(regions, end.Value)));
        }

        /// <summary>Every stored segment of the lineage from the start's on, with the source replay would use and the lineage's bytes stored in it.</summary>
        private IEnumerable<(ulong Segno, ulong Useful, SegmentSource Source, IEnumerable<(ulong Start, ulong End)> Stored)> Regions(ulong first)
        {
            var segnos = new SortedSet<ulong>();
            foreach (var range in lineage)
            {
                if (range.End is { } e && e <= range.Begin)
                {
                    continue;
                }

                var from = Math.Max(first, range.Begin.Value / _segSize);
                var to = range.End is { } end ? (end.Value - 1) / _segSize : ulong.MaxValue;
                if (from <= to)
                {
                    segnos.UnionWith(store.SegmentNumbers(range.Timeline, from, to));
                }
            }

            foreach (var segno in segnos)
            {
                if (Best(segno) is { } best)
                {
                    yield return (segno, best.Useful, best.Source, Stored(segno));
                }
            }
        }

        /// <summary>
        /// The lineage's bytes stored in a segment, whichever timeline's file holds them (each counted up to that timeline's
        /// end), merged: what marks where a gap ends, even when replay can use only one file of them.
        /// </summary>
        private List<(ulong Start, ulong End)> Stored(ulong segno)
        {
            var segStart = segno * _segSize;
            var stored = new List<(ulong Start, ulong End)>();
            foreach (var range in Candidates(segno))
            {
                var cap = Cap(range, segno);
                foreach (var (from, to) in store.Source(range.Timeline, segno)?.Stored ?? [])
                {
                    if (from < cap)
                    {
                        stored.Add((segStart + from, segStart + Math.Min(to, cap)));
                    }
                }
            }

            stored.Sort();
            var merged = new List<(ulong Start, ulong End)>();
            foreach (var r in stored)
            {
                if (merged.Count > 0 && merged[^1].End >= r.Start)
                {
                    merged[^1] = (merged[^1].Start, Math.Max(merged[^1].End, r.End));
                }
                else
                {
                    merged.Add(r);
                }
            }

            return merged;
        }

        /// <summary>How far into the segment a timeline's file holds the lineage's data: to the segment's end, or the timeline's end inside it.</summary>
        private ulong Cap(TimelineSegmentRange range, ulong segno)
        {
            var segStart = segno * _segSize;
            return range.End is { } end && end.Value < segStart + _segSize ? end.Value - segStart : _segSize;
        }

        /// <summary>
        /// The source that takes replay furthest into the segment: each timeline with data in it, newest first (as
        /// PostgreSQL tries them), counted only up to that timeline's end. With full segments this is exactly
        /// PostgreSQL's choice; with pieces it prefers an older timeline's full file to a shorter piece chain. When
        /// none gives a usable prefix, the newest one holding anything, so its bytes mark where a gap ends.
        /// </summary>
        private (ulong Useful, SegmentSource Source)? Best(ulong segno)
        {
            (ulong Useful, SegmentSource Source)? best = null;
            foreach (var range in Candidates(segno))
            {
                if (store.Source(range.Timeline, segno) is not { } source)
                {
                    continue;
                }

                var cap = Cap(range, segno);
                var useful = Math.Min(source.Covered, cap);
                var holdsSomething = source.Stored.Any(r => r.Start < cap);
                if (holdsSomething && (best is null || useful > best.Value.Useful))
                {
                    best = (useful, source);
                }
            }

            return best;
        }

        /// <summary>The timelines of the lineage with data in the segment, newest first.</summary>
        private IEnumerable<TimelineSegmentRange> Candidates(ulong segno)
        {
            var segStart = segno * _segSize;
            var segEnd = segStart + _segSize;
            for (var i = lineage.Count - 1; i >= 0; i--)
            {
                var r = lineage[i];
                if (Math.Max(r.Begin.Value, segStart) < Math.Min(r.End?.Value ?? ulong.MaxValue, segEnd))
                {
                    yield return r;
                }
            }
        }

        /// <summary>The file PostgreSQL asks for first for a segment: the newest timeline with data in it.</summary>
        private WalFileName FileFor(ulong segno) =>
            WalFileName.FromSegment(Candidates(segno).First().Timeline, segno, store.SegmentSize);

        /// <summary>The stored bytes after the contiguous part, merged into runs of adjacent bytes: [Start, End) (possibly empty, marking where a gap ends).</summary>
        private static List<(ulong Start, ulong End)> Runs(
            IEnumerable<(ulong Segno, ulong Useful, SegmentSource Source, IEnumerable<(ulong Start, ulong End)> Stored)> regions, ulong after)
        {
            var runs = new List<(ulong Start, ulong End)>();
            foreach (var (from, to) in regions.SelectMany(r => r.Stored))
            {
                if (to <= after)
                {
                    continue;
                }

                // Bytes the replay does not reach although they lie around its end (pieces of the start segment with its
                // beginning missing, which PostgreSQL cannot read: it checks a segment's first page) are part of the gap.
                var clipped = from < after ? to : from;
                if (runs.Count > 0 && runs[^1].End >= clipped)
                {
                    runs[^1] = (runs[^1].Start, Math.Max(runs[^1].End, to));
                }
                else if (runs.Count > 0 && runs[^1].Start == runs[^1].End)
                {
                    runs[^1] = (clipped, to); // the gap those unreachable bytes began runs on to this stored WAL
                }
                else
                {
                    runs.Add((clipped, to));
                }
            }

            return runs;
        }

        private List<WalGap> Gaps(Lsn end, List<(ulong Start, ulong End)> runs)
        {
            var gaps = new List<WalGap>();
            var cursor = end.Value;
            foreach (var (runStart, runEnd) in runs)
            {
                if (requiredEnd is { } required && cursor >= required.Value)
                {
                    return gaps;
                }

                if (requiredEnd is { } r && runStart > r.Value)
                {
                    gaps.Add(Gap(cursor, r.Value, toRequired: true));
                    return gaps;
                }

                if (runStart > cursor)
                {
                    gaps.Add(Gap(cursor, runStart, toRequired: false));
                }

                cursor = runEnd;
            }

            if (requiredEnd is { } last && cursor < last.Value)
            {
                gaps.Add(Gap(cursor, last.Value, toRequired: true));
            }

            return gaps;
        }

        private WalGap Gap(ulong from, ulong to, bool toRequired)
        {
            var firstSeg = from / _segSize;
            var lastSeg = (to - 1) / _segSize;
            var first = FileFor(firstSeg);
            var last = FileFor(lastSeg);
            var missing = (long)(lastSeg - firstSeg + 1);
            var files = first == last ? first.ToString() : $"{first} to {last}";
            var before = new Lsn(from == 0 ? 0 : from - 1);
            var where = toRequired ? $"after {before}, needed to reach {new Lsn(to)}" : $"between {before} and {new Lsn(to)}";
            return new WalGap(first.Timeline, first, last, missing, $"timeline {first.Timeline}: {files} missing ({PitrText.Count(missing, "segment")}) {where}");
        }
    }
}
