namespace VelozBackupAgent.Pitr;

/// <summary>
/// What is stored of one segment of one timeline: a full segment, or pieces. <see cref="Covered"/> is how far replay can
/// use it from offset 0 (the full segment, or the end of the piece chain from 0, which may be 0); <see cref="Stored"/> is
/// every byte range held (the usable prefix, then the ranges of pieces beyond a hole), merged and in order.
/// </summary>
internal sealed record SegmentSource(WalFileName File, string? Full, IReadOnlyList<string> Pieces, uint Covered, IReadOnlyList<(uint Start, uint End)> Stored);

/// <summary>An inventory indexed for continuity: segments and pieces by (timeline, segment number), histories by timeline.</summary>
internal sealed class StoredWal
{
    private readonly Dictionary<(uint Timeline, ulong Segno), string> _full = [];
    private readonly Dictionary<(uint Timeline, ulong Segno), List<PitrArtifact>> _pieces = [];
    private readonly Dictionary<(uint Timeline, ulong Segno), SegmentSource?> _sources = [];
    private readonly Dictionary<uint, SortedSet<ulong>> _segnos = [];
    private readonly HashSet<uint> _historyNames = [];
    private readonly IReadOnlyDictionary<uint, TimelineHistory> _histories;

    public StoredWal(WalInventory inventory)
    {
        ArgumentNullException.ThrowIfNull(inventory.Names);
        ArgumentNullException.ThrowIfNull(inventory.Histories);
        WalFileName.ValidateSegmentSize(inventory.SegmentSize);
        SegmentSize = inventory.SegmentSize;
        _histories = inventory.Histories;

        // The last segment whose end still fits in 64 bits: anything above is not WAL any cluster can write.
        var maxSegno = (ulong.MaxValue / (ulong)SegmentSize) - 1;
        foreach (var name in inventory.Names)
        {
            var artifact = PitrArtifact.Classify(name);
            if (artifact?.Type == PitrArtifactType.History)
            {
                _historyNames.Add(artifact.Timeline);
                continue;
            }

            if (artifact is not { Type: PitrArtifactType.Segment or PitrArtifactType.Partial, File: { } file } || !file.IsValidFor(SegmentSize)
                || (artifact.Type == PitrArtifactType.Partial && artifact.PartialEnd > SegmentSize))
            {
                continue;
            }

            var segno = file.SegmentNumber(SegmentSize);
            if (segno > maxSegno)
            {
                continue;
            }

            var key = (file.Timeline, segno);
            if (artifact.Type == PitrArtifactType.Segment)
            {
                _full[key] = name;
            }
            else
            {
                (_pieces.TryGetValue(key, out var list) ? list : _pieces[key] = []).Add(artifact);
            }

            (_segnos.TryGetValue(file.Timeline, out var set) ? set : _segnos[file.Timeline] = []).Add(segno);
        }
    }

    public long SegmentSize { get; }

    /// <summary>Timelines with at least one stored segment or piece.</summary>
    public IEnumerable<uint> WalTimelines => _segnos.Keys;

    public bool HasWal(uint timeline) => _segnos.ContainsKey(timeline);

    /// <summary>True when the timeline has a stored segment that starts at or after <paramref name="lsn"/>.</summary>
    public bool HasWalFrom(uint timeline, Lsn lsn) =>
        _segnos.TryGetValue(timeline, out var set) && set.Max * (ulong)SegmentSize >= lsn.Value;

    public IEnumerable<ulong> SegmentNumbers(uint timeline, ulong from, ulong to) =>
        _segnos.TryGetValue(timeline, out var set) ? set.GetViewBetween(from, to) : [];

    /// <summary>A history file is there when it is stored (by name) or was given parsed.</summary>
    public bool HistoryExists(uint timeline) => _historyNames.Contains(timeline) || _histories.ContainsKey(timeline);

    /// <summary>The timeline 'latest' resolves to: PostgreSQL's findNewestTimeLine probes start+1, start+2… until a history file is absent.</summary>
    public uint Latest(uint startTimeline)
    {
        var timeline = startTimeline;
        while (timeline < uint.MaxValue && HistoryExists(timeline + 1))
        {
            timeline++;
        }

        return timeline;
    }

    /// <summary>A higher timeline descends from the start but 'latest' cannot reach it, because a history file in between is absent.</summary>
    public string? LatestProblem(uint startTimeline, Lsn start, uint latest)
    {
        var beyond = _histories
            .Where(h => h.Key > latest && h.Value.Timeline == h.Key && h.Value.Contains(startTimeline, start))
            .Select(h => h.Key)
            .Order()
            .FirstOrDefault();
        return beyond == 0
            ? null
            : $"{PitrArtifact.HistoryName(latest + 1)} is missing: recovery_target_timeline 'latest' stops at timeline {latest}, though timeline {beyond} descends from timeline {startTimeline} at {start}";
    }

    /// <summary>
    /// The lineage of <paramref name="timeline"/>: from its history file, or, for the start timeline itself without one, the
    /// timeline alone (PostgreSQL assumes no parents then, and replay never leaves the start timeline).
    /// </summary>
    public (IReadOnlyList<TimelineSegmentRange>? Lineage, string? Problem) LineageOf(uint timeline, uint startTimeline)
    {
        if (_histories.TryGetValue(timeline, out var history))
        {
            return history.Timeline == timeline
                ? (history.Lineage(), null)
                : (null, $"the history given for timeline {timeline} describes timeline {history.Timeline}");
        }

        if (timeline == startTimeline)
        {
            return (TimelineHistory.WithoutParents(timeline).Lineage(), null);
        }

        var name = PitrArtifact.HistoryName(timeline);
        return (null, _historyNames.Contains(timeline)
            ? $"{name} is stored but could not be read, so the lineage of timeline {timeline} is unknown"
            : $"{name} is missing, so the lineage of timeline {timeline} is unknown");
    }

    /// <summary>The stored bytes of one segment: the full segment when there is one (it wins over pieces), else the longest piece chain from 0.</summary>
    public SegmentSource? Source(uint timeline, ulong segno)
    {
        var key = (timeline, segno);
        if (!_sources.TryGetValue(key, out var source))
        {
            source = _sources[key] = Resolve(key);
        }

        return source;
    }

    private SegmentSource? Resolve((uint Timeline, ulong Segno) key)
    {
        var file = WalFileName.FromSegment(key.Timeline, key.Segno, SegmentSize);
        var segSize = (uint)SegmentSize;
        if (_full.TryGetValue(key, out var full))
        {
            return new SegmentSource(file, full, [], segSize, [(0, segSize)]);
        }

        if (!_pieces.TryGetValue(key, out var pieces))
        {
            return null;
        }

        var chain = Chain(pieces, segSize);
        var covered = chain.Count == 0 ? 0 : End(chain[^1], segSize);

        // Pieces after a hole are stored WAL that replay cannot reach.
        var stored = new List<(uint Start, uint End)>();
        if (covered > 0)
        {
            stored.Add((0, covered));
        }

        foreach (var piece in pieces.Where(p => p.PartialStart >= covered && !p.IsWholeSegment).OrderBy(p => p.PartialStart))
        {
            if (stored.Count > 0 && piece.PartialStart <= stored[^1].End)
            {
                stored[^1] = (stored[^1].Start, Math.Max(stored[^1].End, piece.PartialEnd));
            }
            else
            {
                stored.Add((piece.PartialStart, piece.PartialEnd));
            }
        }

        return new SegmentSource(file, null, chain.Select(p => p.Name).ToList(), covered, stored);
    }

    /// <summary>
    /// The fewest pieces that cover the segment contiguously from offset 0, in the order to write them, each at its own
    /// offset: from where the chain so far ends, the piece that starts at or before it and reaches furthest (pieces may
    /// overlap: the receiver sends the last page again when it resumes, since it may have been written only in part;
    /// every piece holds only bytes the receiver had received, so overlapping bytes agree). A hole stops the chain.
    /// </summary>
    internal static List<PitrArtifact> Chain(IEnumerable<PitrArtifact> pieces, uint segSize)
    {
        var sorted = pieces.OrderBy(p => p.PartialStart).ThenByDescending(p => End(p, segSize)).ThenBy(p => p.Name, StringComparer.Ordinal).ToList();
        var chain = new List<PitrArtifact>();
        uint covered = 0;
        var next = 0;
        while (true)
        {
            PitrArtifact? best = null;
            for (; next < sorted.Count && sorted[next].PartialStart <= covered; next++)
            {
                if (End(sorted[next], segSize) > (best is null ? covered : End(best, segSize)))
                {
                    best = sorted[next];
                }
            }

            if (best is null)
            {
                return chain;
            }

            chain.Add(best);
            covered = End(best, segSize);
        }
    }

    private static uint End(PitrArtifact piece, uint segSize) => piece.IsWholeSegment ? segSize : piece.PartialEnd;
}
