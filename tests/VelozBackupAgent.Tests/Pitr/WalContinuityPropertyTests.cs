using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.Tests.Pitr;

/// <summary>
/// Random stores (seeded, so a failure reproduces): a lineage of up to three timelines with switch points on and off
/// segment boundaries, the WAL PostgreSQL would archive for it, noise it must ignore, then random deletions. The answer is
/// checked against a plain segment-by-segment model and against invariants that need no model.
/// </summary>
public sealed class WalContinuityPropertyTests
{
    public static TheoryData<int> Seeds()
    {
        var data = new TheoryData<int>();
        for (var seed = 1; seed <= 400; seed++)
        {
            data.Add(seed);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Random_stores_are_judged_like_a_segment_by_segment_model(int seed)
    {
        var random = new Random(seed);
        var segSize = new[] { 1L << 20, 1L << 24, 1L << 26 }[random.Next(3)];
        var seg = (ulong)segSize;
        var store = RandomStore.Make(random, segSize);
        var lineage = store.History.Lineage();
        var s0 = store.Start.Value / seg;

        // A store exactly as archived is complete and replays to its last byte, each segment from the newest timeline.
        var perfect = WalContinuity.Check(store.Inventory(store.Names), store.StartTimeline, store.Start, store.Target);
        perfect.Problem.Should().BeNull();
        perfect.Complete.Should().BeTrue();
        // (The old timeline's copy of a switch segment can reach further than a piece chain still being received on the new one.)
        perfect.End.Should().BeGreaterThanOrEqualTo(store.LastByte).And.Be(new Model(store.Names, lineage, segSize).End(store.Start));
        var perfectSteps = perfect.End == store.Start ? 0 : (int)(((perfect.End.Value - 1) / seg) - s0 + 1);
        perfect.Steps.Select(s => s.File.SegmentNumber(segSize)).Should().Equal(Enumerable.Range(0, perfectSteps).Select(i => s0 + (ulong)i));

        // Then lose some files.
        var lossRate = new[] { 0.0, 0.05, 0.2, 0.5 }[random.Next(4)];
        var kept = store.Names.Where(n => PitrArtifact.Classify(n) is not { Type: PitrArtifactType.Segment or PitrArtifactType.Partial } || random.NextDouble() >= lossRate).ToList();
        var c = WalContinuity.Check(store.Inventory(kept), store.StartTimeline, store.Start, store.Target);

        c.Problem.Should().BeNull();
        var debug = $"{store.History.Lineage().Count} tl, start {store.StartTimeline}/{store.Start}, seg {segSize}, end {c.End}, kept {string.Join(" ", kept)}; gaps {string.Join(" | ", c.Gaps.Select(g => g.Description))}";
        var model = new Model(kept, lineage, segSize);
        c.End.Should().Be(model.End(store.Start), "End is the first byte the stored files do not cover contiguously");
        c.Complete.Should().Be(!model.StoredBeyond(c.End), "complete exactly when no stored WAL of the lineage lies beyond the end ({0})", debug);

        // Model-free invariants.
        c.End.Should().BeGreaterThanOrEqualTo(store.Start);
        c.Steps.Select(s => s.File.SegmentNumber(segSize)).Should().Equal(Enumerable.Range(0, c.Steps.Count).Select(i => s0 + (ulong)i), "steps are consecutive from the start's segment");
        c.Steps.SkipLast(1).Where(s => s.CoveredBytes != segSize).Should().BeEmpty("only the last step may be partial");
        foreach (var step in c.Steps)
        {
            var used = step.SegmentArtifact is { } full ? [full] : step.Pieces;
            used.Should().NotBeEmpty().And.OnlyContain(n => kept.Contains(n));
            lineage.Should().Contain(r => r.Timeline == step.File.Timeline);
        }

        var lastGapEnd = c.End;
        foreach (var gap in c.Gaps)
        {
            gap.First.SegmentNumber(segSize).Should().BeLessThanOrEqualTo(gap.Last.SegmentNumber(segSize));
            gap.MissingSegments.Should().Be((long)(gap.Last.SegmentNumber(segSize) - gap.First.SegmentNumber(segSize) + 1));
            (gap.Last.StartLsn(segSize) + segSize).Should().BeGreaterThan(lastGapEnd, "gaps are in order");
            lastGapEnd = gap.First.StartLsn(segSize);
            gap.Description.Should().StartWith($"timeline {gap.Timeline}: ");
        }

        if (c.Gaps.Count > 0)
        {
            c.Gaps[0].First.Should().Be(model.FileFor(c.End.Value / seg), "the first gap starts at the end");
        }
    }

    /// <summary>A random lineage and the WAL it would leave in a store.</summary>
    private sealed record RandomStore(TimelineHistory History, uint StartTimeline, Lsn Start, uint? Target, List<string> Names, ulong LastSegment, Lsn LastByte, long SegmentSize, List<TimelineHistory> Histories)
    {
        public WalInventory Inventory(List<string> names) => new(names, SegmentSize, Histories.ToDictionary(h => h.Timeline));

        public static RandomStore Make(Random random, long segSize)
        {
            var seg = (ulong)segSize;
            var timelines = random.Next(1, 4);
            var switches = new List<Lsn>();
            var at = (ulong)random.Next(2, 12) * seg;
            for (var t = 1; t < timelines; t++)
            {
                var offset = random.Next(3) == 0 ? 0UL : (ulong)random.NextInt64(1, segSize);
                var point = new Lsn(at + offset);
                switches.Add(point);
                at = point.Value + ((ulong)random.Next(0, 6) * seg);
            }

            var text = string.Concat(switches.Select((s, i) => $"{i + 1}\t{s}\treason\n"));
            var history = TimelineHistory.Parse((uint)timelines, text);
            var histories = Enumerable.Range(2, Math.Max(0, timelines - 1))
                .Select(t => TimelineHistory.Parse((uint)t, string.Concat(switches.Take(t - 1).Select((s, i) => $"{i + 1}\t{s}\n"))))
                .ToList();
            var lineage = history.Lineage();

            // The start is any position of the lineage before its last switch (or early on, with one timeline).
            var last = switches.Count == 0 ? 6 * seg : switches[^1].Value;
            var start = new Lsn((ulong)random.NextInt64((long)seg, (long)last + (3 * segSize)));
            var startTimeline = history.TimelineAt(start);
            var lastSegment = (Math.Max(start.Value, last) / seg) + (ulong)random.Next(0, 8);

            var names = new List<string>();
            var model = new Model([], lineage, segSize);
            for (var s = start.Value / seg; s <= lastSegment; s++)
            {
                names.Add(WalFileName.FromSegment(model.FileFor(s).Timeline, s, segSize).ToString());
            }

            // Sometimes the newest segment is still being received: a chain of pieces instead.
            var lastByte = new Lsn((lastSegment + 1) * seg);
            if (random.Next(2) == 0)
            {
                var file = WalFileName.Parse(names[^1]);
                names.RemoveAt(names.Count - 1);
                var a = (uint)random.Next(1, (int)segSize - 1);
                var b = (uint)random.Next((int)a + 1, (int)segSize + 1);
                names.Add(PitrArtifact.PieceName(file, 0, a));
                names.Add(PitrArtifact.PieceName(file, a, b));
                var reached = new Lsn((lastSegment * seg) + b);
                lastByte = reached > start ? reached : start;
                if (reached <= start)
                {
                    // A chain ending before the start: nothing of it is coverage.
                    lastByte = start;
                }
            }

            // Noise: the old timeline's copy of each switch segment, branches not taken, pieces a full segment supersedes.
            foreach (var range in lineage.Where(r => r.End is not null))
            {
                var switchSeg = range.End!.Value.Value / seg;
                if (random.Next(2) == 0 && range.End.Value.Value % seg != 0 && switchSeg <= lastSegment)
                {
                    names.Add(WalFileName.FromSegment(range.Timeline, switchSeg, segSize).ToString());
                }

                if (random.Next(2) == 0)
                {
                    names.Add(WalFileName.FromSegment(range.Timeline, switchSeg + 1 + (ulong)random.Next(0, 3), segSize).ToString());
                }
            }

            names.Add(PitrArtifact.PieceName(WalFileName.FromSegment(model.FileFor(start.Value / seg).Timeline, start.Value / seg, segSize), 0, 0x100));
            names.Add("base_20261201_010000.json");
            names.Add(PitrArtifact.BackupHistoryName(WalFileName.Containing(startTimeline, start, segSize), (uint)(start.Value % seg)));
            names.AddRange(histories.Select(h => PitrArtifact.HistoryName(h.Timeline)));
            names = names.Distinct().ToList();

            // Without a full segment at the start the supersede-noise piece would become coverage: drop it then.
            if (!names.Contains(WalFileName.FromSegment(model.FileFor(start.Value / seg).Timeline, start.Value / seg, segSize).ToString()))
            {
                names.RemoveAll(n => n.EndsWith(".00000000-00000100.partial", StringComparison.Ordinal));
            }

            uint? target = random.Next(2) == 0 ? null : (uint)timelines;
            return new RandomStore(history, startTimeline, start, target, names, lastSegment, lastByte, segSize, histories);
        }
    }

    /// <summary>The plain model: segment by segment, each from the timeline of the lineage that takes replay furthest.</summary>
    private sealed class Model(List<string> names, IReadOnlyList<TimelineSegmentRange> lineage, long segSize)
    {
        private readonly ulong _seg = (ulong)segSize;
        private readonly HashSet<string> _names = [.. names];

        public WalFileName FileFor(ulong segno) => WalFileName.FromSegment(Candidates(segno).First().Timeline, segno, segSize);

        public Lsn End(Lsn start)
        {
            var pos = start.Value;
            for (var s = start.Value / _seg; ; s++)
            {
                var useful = Candidates(s).Select(r => Math.Min(Covered(r.Timeline, s), Cap(r, s))).DefaultIfEmpty(0UL).Max();
                var reach = (s * _seg) + useful;
                if (reach <= pos)
                {
                    return new Lsn(pos);
                }

                pos = reach;
                if (useful < _seg)
                {
                    return new Lsn(pos);
                }
            }
        }

        /// <summary>True when a stored file of the lineage holds bytes (of the lineage) at or after <paramref name="end"/>.</summary>
        public bool StoredBeyond(Lsn end)
        {
            foreach (var name in _names)
            {
                if (PitrArtifact.Classify(name) is not { Type: PitrArtifactType.Segment or PitrArtifactType.Partial, File: { } file })
                {
                    continue;
                }

                var s = file.SegmentNumber(segSize);
                var range = Candidates(s).FirstOrDefault(r => r.Timeline == file.Timeline);
                if (range is null)
                {
                    continue;
                }

                var a = PitrArtifact.Classify(name)!;
                var extent = a.Type == PitrArtifactType.Segment ? _seg : (ulong)a.PartialEnd;
                if (a.Type == PitrArtifactType.Partial && _names.Contains(file.ToString()))
                {
                    continue; // superseded
                }

                if ((s * _seg) + Math.Min(extent, Cap(range, s)) > end.Value)
                {
                    return true;
                }
            }

            return false;
        }

        private ulong Covered(uint timeline, ulong s)
        {
            var file = WalFileName.FromSegment(timeline, s, segSize);
            if (_names.Contains(file.ToString()))
            {
                return _seg;
            }

            // The pieces this test makes chain simply: follow them from 0.
            ulong reach = 0;
            var pieces = _names.Select(PitrArtifact.Classify).Where(p => p is { Type: PitrArtifactType.Partial } && p.File == file).ToList();
            for (var next = pieces.FirstOrDefault(p => p!.PartialStart == reach); next is not null; next = pieces.FirstOrDefault(p => p!.PartialStart == reach))
            {
                reach = next.PartialEnd;
            }

            return reach;
        }

        private ulong Cap(TimelineSegmentRange range, ulong s) =>
            range.End is { } end && end.Value < (s + 1) * _seg ? end.Value - (s * _seg) : _seg;

        private IEnumerable<TimelineSegmentRange> Candidates(ulong s) =>
            lineage.Reverse().Where(r => Math.Max(r.Begin.Value, s * _seg) < Math.Min(r.End?.Value ?? ulong.MaxValue, (s + 1) * _seg));
    }
}
