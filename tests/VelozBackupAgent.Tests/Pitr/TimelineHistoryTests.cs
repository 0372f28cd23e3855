using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.Tests.Pitr;

public sealed class TimelineHistoryTests
{
    private const string Three = "1\t0/5000060\tno recovery target specified\n\n2\t0/9000000\tbefore 2026-12-01 22:10:00+00\n";

    [Fact]
    public void Parses_a_lineage_of_three_timelines()
    {
        var h = TimelineHistory.Parse(3, Three);

        h.Timeline.Should().Be(3);
        h.Switches.Should().Equal(
            new TimelineSwitch(1, Lsn.Parse("0/5000060"), "no recovery target specified"),
            new TimelineSwitch(2, Lsn.Parse("0/9000000"), "before 2026-12-01 22:10:00+00"));
        h.Lineage().Should().Equal(
            new TimelineSegmentRange(1, Lsn.Invalid, Lsn.Parse("0/5000060")),
            new TimelineSegmentRange(2, Lsn.Parse("0/5000060"), Lsn.Parse("0/9000000")),
            new TimelineSegmentRange(3, Lsn.Parse("0/9000000"), null));
    }

    [Fact]
    public void Timeline_1_alone_has_one_open_range()
    {
        TimelineHistory.WithoutParents(1).Lineage().Should().Equal(new TimelineSegmentRange(1, Lsn.Invalid, null));
        TimelineHistory.Parse(1, "").Lineage().Should().Equal(new TimelineSegmentRange(1, Lsn.Invalid, null));
    }

    [Fact]
    public void Comments_blank_lines_CRLF_and_spaces_are_tolerated()
    {
        var h = TimelineHistory.Parse(2, "# made by hand\r\n   \r\n  1  0/5000060\r\n");

        h.Switches.Should().Equal(new TimelineSwitch(1, Lsn.Parse("0/5000060"), ""));
    }

    [Fact]
    public void Contains_answers_whether_a_position_is_on_the_lineage()
    {
        var h = TimelineHistory.Parse(3, Three);

        h.Contains(1, Lsn.Parse("0/3000028")).Should().BeTrue();
        h.Contains(1, Lsn.Parse("0/500005F")).Should().BeTrue();
        h.Contains(1, Lsn.Parse("0/5000060")).Should().BeFalse("timeline 1 ends there on this lineage");
        h.Contains(2, Lsn.Parse("0/5000060")).Should().BeTrue();
        h.Contains(2, Lsn.Parse("0/9000000")).Should().BeFalse();
        h.Contains(2, Lsn.Parse("0/4000000")).Should().BeFalse("timeline 2 did not exist yet");
        h.Contains(3, Lsn.Parse("FF/0")).Should().BeTrue("the last timeline has no end");
        h.Contains(4, Lsn.Parse("0/9000000")).Should().BeFalse();
        h.TimelineAt(Lsn.Parse("0/9000000")).Should().Be(3);
        h.TimelineAt(Lsn.Parse("0/8FFFFFF")).Should().Be(2);
    }

    [Fact]
    public void Equal_switch_points_make_an_empty_stretch()
    {
        var h = TimelineHistory.Parse(3, "1\t0/5000060\n2\t0/5000060\n");

        h.Lineage()[1].Should().Be(new TimelineSegmentRange(2, Lsn.Parse("0/5000060"), Lsn.Parse("0/5000060")));
        h.Contains(2, Lsn.Parse("0/5000060")).Should().BeFalse();
        h.Contains(3, Lsn.Parse("0/5000060")).Should().BeTrue();
    }

    [Theory]
    [InlineData("x\t0/1\n", "line 1: expected a timeline id")]
    [InlineData("1\n", "line 1: expected a switch point")]
    [InlineData("1\t0/\n", "line 1: expected a switch point")]
    [InlineData("1\tG/1\n", "line 1: expected a switch point")]
    [InlineData("-1\t0/1\n", "expected a timeline id")]
    [InlineData("0\t0/1\n", "expected a timeline id")]
    [InlineData("99999999999\t0/1\n", "expected a timeline id")]
    [InlineData("2\t0/5000060\n1\t0/9000000\n", "line 2: timeline ids must increase, 1 follows 2")]
    [InlineData("1\t0/5000060\n1\t0/9000000\n", "line 2: timeline ids must increase")]
    [InlineData("1\t0/5000060\n\n#x\n3\t0/9000000\n", "line 4: timeline 3 cannot be an ancestor of timeline 3")]
    [InlineData("1\t0/9000000\n2\t0/5000060\n", "line 2: switch point 0/5000060 is before the previous one, 0/9000000")]
    [InlineData("", "names no parent timeline")]
    [InlineData("# only a comment\n", "names no parent timeline")]
    public void Junk_is_a_one_line_FormatException_naming_the_line(string content, string message)
    {
        var parse = () => TimelineHistory.Parse(3, content);

        var e = parse.Should().Throw<FormatException>().Which;
        e.Message.Should().Contain("00000003.history").And.Contain(message);
        e.Message.Should().NotContain("\n");
    }
}
