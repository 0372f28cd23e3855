using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.Tests.Pitr;

public sealed class WalContinuityEveryTimelineTests
{
    private const long Seg16 = 16 * 1024 * 1024;
    private static readonly Lsn Start = Lsn.Parse("0/3000028");

    private static IEnumerable<string> Segs(uint timeline, ulong from, ulong to)
    {
        for (var s = from; s <= to; s++)
        {
            yield return WalFileName.FromSegment(timeline, s, Seg16).ToString();
        }
    }

    private static WalInventory Inventory(IEnumerable<string> names, params TimelineHistory[] histories) =>
        new(names.Concat(histories.Select(h => PitrArtifact.HistoryName(h.Timeline))).ToList(), Seg16, histories.ToDictionary(h => h.Timeline));

    [Fact]
    public void A_straight_lineage_gives_one_coverage_for_its_leaf()
    {
        var h2 = TimelineHistory.Parse(2, "1\t0/5000060\n");
        var h3 = TimelineHistory.Parse(3, "1\t0/5000060\n2\t0/9000000\n");

        var all = WalContinuity.CheckEveryTimeline(Inventory(Segs(1, 3, 5).Concat(Segs(2, 5, 8)).Concat(Segs(3, 9, 9)), h2, h3), 1, Start);

        all.Should().ContainSingle().Which.Should().Match<WalCoverage>(c => c.TargetTimeline == 3 && c.Complete);
    }

    [Fact]
    public void Two_children_of_the_start_timeline_are_both_checked_and_a_gap_on_either_is_seen()
    {
        var h2 = TimelineHistory.Parse(2, "1\t0/5000060\n");
        var h3 = TimelineHistory.Parse(3, "1\t0/8000000\n");
        var names = Segs(1, 3, 7).Concat(Segs(2, 5, 6)).Concat(Segs(3, 8, 8)).Concat(Segs(3, 10, 10));

        var all = WalContinuity.CheckEveryTimeline(Inventory(names, h2, h3), 1, Start);

        all.Select(c => c.TargetTimeline).Should().Equal(2u, 3u);
        all[0].Complete.Should().BeTrue();
        all[1].Gaps.Should().ContainSingle().Which.First.ToString().Should().Be("000000030000000000000009");
    }

    [Fact]
    public void A_parent_that_kept_writing_after_the_fork_is_checked_as_its_own_branch()
    {
        var h2 = TimelineHistory.Parse(2, "1\t0/5000060\n");
        var names = Segs(1, 3, 6).Concat(Segs(1, 8, 9)).Concat(Segs(2, 5, 6));

        var all = WalContinuity.CheckEveryTimeline(Inventory(names, h2), 1, Start);

        all.Select(c => c.TargetTimeline).Should().Equal(1u, 2u);
        all[0].Gaps.Should().ContainSingle().Which.First.ToString().Should().Be("000000010000000000000007");
        all[1].Complete.Should().BeTrue();
    }

    [Fact]
    public void The_old_timelines_copy_of_the_switch_segment_is_no_branch()
    {
        var h2 = TimelineHistory.Parse(2, "1\t0/5000060\n");

        var all = WalContinuity.CheckEveryTimeline(Inventory(Segs(1, 3, 5).Concat(Segs(2, 5, 6)), h2), 1, Start);

        all.Should().ContainSingle().Which.TargetTimeline.Should().Be(2);
    }

    [Fact]
    public void Timelines_that_forked_before_the_start_are_not_this_bases_business()
    {
        var h2 = TimelineHistory.Parse(2, "1\t0/2000000\n");

        var all = WalContinuity.CheckEveryTimeline(Inventory(Segs(1, 3, 5).Concat(Segs(2, 2, 6)), h2), 1, Start);

        all.Should().ContainSingle().Which.Should().Match<WalCoverage>(c => c.TargetTimeline == 1 && c.Complete);
    }

    [Fact]
    public void A_timeline_with_wal_but_no_history_file_is_a_problem()
    {
        var all = WalContinuity.CheckEveryTimeline(Inventory(Segs(1, 3, 5).Concat(Segs(4, 5, 6))), 1, Start);

        all.Select(c => c.TargetTimeline).Should().Equal(1u, 4u);
        all[1].Problem.Should().Be("00000004.history is missing, so the lineage of timeline 4 is unknown");
    }

    [Fact]
    public void With_no_wal_at_all_there_is_still_one_answer()
    {
        var all = WalContinuity.CheckEveryTimeline(Inventory([]), 1, Start);

        all.Should().ContainSingle().Which.Should().Match<WalCoverage>(c => c.TargetTimeline == 1 && c.End == Start);
    }

    [Fact]
    public void A_history_of_a_child_without_wal_does_not_hide_the_parent()
    {
        var h2 = TimelineHistory.Parse(2, "1\t0/5000060\n");

        var all = WalContinuity.CheckEveryTimeline(Inventory(Segs(1, 3, 4).Concat(Segs(1, 6, 7)), h2), 1, Start);

        all.Should().ContainSingle().Which.Should().Match<WalCoverage>(c => c.TargetTimeline == 1 && c.Gaps.Count == 1);
    }
}
