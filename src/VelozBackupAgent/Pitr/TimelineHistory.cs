using System.Globalization;

namespace VelozBackupAgent.Pitr;

/// <summary>One line of a timeline history file: <see cref="ParentTimeline"/> ran until <see cref="SwitchPoint"/>, where its child began.</summary>
public sealed record TimelineSwitch(uint ParentTimeline, Lsn SwitchPoint, string Reason);

/// <summary>
/// A stretch of a lineage: WAL in [<see cref="Begin"/>, <see cref="End"/>) is <see cref="Timeline"/>'s.
/// <see cref="End"/> is null for the last timeline of a lineage, which has not ended.
/// </summary>
public sealed record TimelineSegmentRange(uint Timeline, Lsn Begin, Lsn? End)
{
    /// <summary>True when <paramref name="lsn"/> lies in this stretch (PostgreSQL's <c>tliOfPointInHistory</c> test).</summary>
    public bool Contains(Lsn lsn) => lsn >= Begin && (End is not { } end || lsn < end);
}

/// <summary>
/// A parsed <c>%08X.history</c> file: every ancestor of <see cref="Timeline"/> with the point where it switched
/// to the next, oldest first. It holds the whole lineage, so one file answers "how did we get here".
/// </summary>
public sealed class TimelineHistory
{
    private readonly IReadOnlyList<TimelineSegmentRange> _lineage;

    private TimelineHistory(uint timeline, IReadOnlyList<TimelineSwitch> switches)
    {
        Timeline = timeline;
        Switches = switches;
        _lineage = Array.AsReadOnly(BuildLineage(timeline, switches));
    }

    /// <summary>The timeline the file describes.</summary>
    public uint Timeline { get; }

    /// <summary>The ancestors, oldest first; empty for a timeline with no parent.</summary>
    public IReadOnlyList<TimelineSwitch> Switches { get; }

    /// <summary>
    /// A timeline with no known parent: timeline 1, or any timeline whose history file is absent when recovery
    /// stays on it (PostgreSQL then assumes it has no parents).
    /// </summary>
    public static TimelineHistory WithoutParents(uint timeline)
    {
        ArgumentOutOfRangeException.ThrowIfZero(timeline);
        return new TimelineHistory(timeline, []);
    }

    /// <summary>
    /// Parses the file's text. Throws <see cref="FormatException"/> with one line naming the bad line for: a
    /// line that is not <c>TLI&lt;TAB&gt;X/X[&lt;TAB&gt;reason]</c>, timeline ids that do not increase, an id not below
    /// the file's own timeline, a switch point before the previous one, or a file of a timeline above 1 that
    /// names no parent (a truncated file).
    /// </summary>
    public static TimelineHistory Parse(uint timeline, string content)
    {
        ArgumentOutOfRangeException.ThrowIfZero(timeline);
        ArgumentNullException.ThrowIfNull(content);
        var file = PitrArtifact.HistoryName(timeline);
        var switches = new List<TimelineSwitch>();
        var lineNumber = 0;
        foreach (var raw in content.Split('\n'))
        {
            lineNumber++;
            var line = raw.TrimEnd('\r');
            var trimmed = line.AsSpan().TrimStart();
            if (trimmed.IsEmpty || trimmed[0] == '#')
            {
                continue;
            }

            string Bad(string why) => $"{file} line {lineNumber.ToString(CultureInfo.InvariantCulture)}: {why}: {PitrText.Quote(line)}";

            var fields = SplitFields(trimmed);
            if (!uint.TryParse(fields.Tli, NumberStyles.None, CultureInfo.InvariantCulture, out var tli) || tli == 0)
            {
                throw new FormatException(Bad("expected a timeline id"));
            }

            if (!Lsn.TryParse(fields.Lsn, out var switchPoint))
            {
                throw new FormatException(Bad("expected a switch point LSN after the timeline id"));
            }

            if (switches.Count > 0 && tli <= switches[^1].ParentTimeline)
            {
                throw new FormatException(Bad($"timeline ids must increase, {tli} follows {switches[^1].ParentTimeline}"));
            }

            if (tli >= timeline)
            {
                throw new FormatException(Bad($"timeline {tli} cannot be an ancestor of timeline {timeline}"));
            }

            if (switches.Count > 0 && switchPoint < switches[^1].SwitchPoint)
            {
                throw new FormatException(Bad($"switch point {switchPoint} is before the previous one, {switches[^1].SwitchPoint}"));
            }

            switches.Add(new TimelineSwitch(tli, switchPoint, fields.Reason));
        }

        if (timeline > 1 && switches.Count == 0)
        {
            throw new FormatException($"{file} names no parent timeline (an empty or truncated file)");
        }

        return new TimelineHistory(timeline, switches);
    }

    /// <summary>
    /// The stretches of WAL each timeline owns on the way to <see cref="Timeline"/>, oldest first: the first begins
    /// at 0/0, each ends where the next begins, the last (<see cref="Timeline"/>) has no end.
    /// </summary>
    public IReadOnlyList<TimelineSegmentRange> Lineage() => _lineage;

    /// <summary>
    /// True when position (<paramref name="timeline"/>, <paramref name="lsn"/>) is on this lineage: the timeline is
    /// listed and <paramref name="lsn"/> lies in its stretch (from its begin, before its end; the last timeline has no end).
    /// </summary>
    public bool Contains(uint timeline, Lsn lsn) => Lineage().Any(r => r.Timeline == timeline && r.Contains(lsn));

    /// <summary>The timeline that owns <paramref name="lsn"/> on this lineage.</summary>
    public uint TimelineAt(Lsn lsn) => Lineage().Last(r => r.Contains(lsn)).Timeline;

    private static TimelineSegmentRange[] BuildLineage(uint timeline, IReadOnlyList<TimelineSwitch> switches)
    {
        var ranges = new TimelineSegmentRange[switches.Count + 1];
        var begin = Lsn.Invalid;
        for (var i = 0; i < switches.Count; i++)
        {
            ranges[i] = new TimelineSegmentRange(switches[i].ParentTimeline, begin, switches[i].SwitchPoint);
            begin = switches[i].SwitchPoint;
        }

        ranges[^1] = new TimelineSegmentRange(timeline, begin, null);
        return ranges;
    }

    private static (string Tli, string Lsn, string Reason) SplitFields(ReadOnlySpan<char> line)
    {
        // PostgreSQL reads "%u\t%X/%X" with sscanf, so any white space separates the fields; the reason is the rest.
        var end = IndexOfWhiteSpace(line);
        var tli = end < 0 ? line : line[..end];
        var rest = end < 0 ? [] : line[end..].TrimStart();
        end = IndexOfWhiteSpace(rest);
        var lsn = end < 0 ? rest : rest[..end];
        var reason = end < 0 ? [] : rest[end..].Trim();
        return (tli.ToString(), lsn.ToString(), reason.ToString());
    }

    private static int IndexOfWhiteSpace(ReadOnlySpan<char> text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsWhiteSpace(text[i]))
            {
                return i;
            }
        }

        return -1;
    }
}
