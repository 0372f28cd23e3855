using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.Tests.Pitr;

public sealed class WalContinuityTests
{
    private const long Mib = 1024 * 1024;
    private const long Seg16 = 16 * Mib;

    private static string Seg(uint timeline, ulong segno, long segSize = Seg16) => WalFileName.FromSegment(timeline, segno, segSize).ToString();

    private static IEnumerable<string> Segs(uint timeline, ulong from, ulong to, long segSize = Seg16)
    {
        for (var s = from; s <= to; s++)
        {
            yield return Seg(timeline, s, segSize);
        }
    }

    private static string Piece(uint timeline, ulong segno, uint start, uint end, long segSize = Seg16) =>
        PitrArtifact.PieceName(WalFileName.FromSegment(timeline, segno, segSize), start, end);

    private static WalInventory Inventory(IEnumerable<string> names, long segSize = Seg16, params TimelineHistory[] histories) =>
        new(names.Concat(histories.Select(h => PitrArtifact.HistoryName(h.Timeline))).ToList(), segSize, histories.ToDictionary(h => h.Timeline));

    private static Lsn L(string text) => Lsn.Parse(text);

    private static readonly TimelineHistory Tl2MidSegment = TimelineHistory.Parse(2, "1\t0/5000060\tno recovery target specified\n");

    [Fact]
    public void One_timeline_stored_without_holes_is_complete()
    {
        var c = WalContinuity.Check(Inventory(Segs(1, 3, 6)), 1, L("0/3000028"));

        c.Complete.Should().BeTrue();
        c.TargetTimeline.Should().Be(1);
        c.Lineage.Should().Equal(new TimelineSegmentRange(1, Lsn.Invalid, null));
        c.End.Should().Be(L("0/7000000"));
        c.Steps.Select(s => s.SegmentArtifact).Should().Equal(Segs(1, 3, 6));
        c.Steps.Should().OnlyContain(s => s.CoveredBytes == Seg16 && s.Pieces.Count == 0);
        c.Gaps.Should().BeEmpty();
    }

    [Fact]
    public void A_final_piece_chain_ends_the_replay_where_the_chain_ends()
    {
        var names = Segs(1, 3, 4).Append(Piece(1, 5, 0x25A50, 0x31000)).Append(Piece(1, 5, 0, 0x25A50));

        var c = WalContinuity.Check(Inventory(names), 1, L("0/3000028"));

        c.Complete.Should().BeTrue();
        c.End.Should().Be(L("0/5031000"));
        c.Steps.Should().HaveCount(3);
        c.Steps[^1].Should().BeEquivalentTo(new WalReplayStep(WalFileName.Parse(Seg(1, 5)), null,
            [Piece(1, 5, 0, 0x25A50), Piece(1, 5, 0x25A50, 0x31000)], 0x31000));
    }

    [Fact]
    public void A_gap_in_the_middle_is_reported_and_End_stops_before_it()
    {
        var names = Segs(1, 0x28, 0x29).Concat(Segs(1, 0x2D, 0x2F));

        var c = WalContinuity.Check(Inventory(names), 1, L("0/28000028"));

        c.Complete.Should().BeFalse();
        c.End.Should().Be(L("0/2A000000"));
        c.Steps.Should().HaveCount(2);
        c.Gaps.Should().ContainSingle().Which.Should().Be(new WalGap(1, WalFileName.Parse(Seg(1, 0x2A)), WalFileName.Parse(Seg(1, 0x2C)), 3,
            "timeline 1: 00000001000000000000002A to 00000001000000000000002C missing (3 segments) between 0/29FFFFFF and 0/2D000000"));
    }

    [Fact]
    public void Every_gap_up_to_the_newest_stored_wal_is_named()
    {
        var names = Segs(1, 3, 4).Append(Seg(1, 6)).Concat(Segs(1, 9, 10));

        var c = WalContinuity.Check(Inventory(names), 1, L("0/3000028"));

        c.End.Should().Be(L("0/5000000"));
        c.Gaps.Select(g => g.Description).Should().Equal(
            "timeline 1: 000000010000000000000005 missing (1 segment) between 0/4FFFFFF and 0/6000000",
            "timeline 1: 000000010000000000000007 to 000000010000000000000008 missing (2 segments) between 0/6FFFFFF and 0/9000000");
    }

    [Fact]
    public void The_start_segment_missing_is_a_gap_when_later_wal_exists()
    {
        var c = WalContinuity.Check(Inventory(Segs(1, 4, 5)), 1, L("0/3000028"));

        c.Steps.Should().BeEmpty();
        c.End.Should().Be(L("0/3000028"));
        c.Gaps.Should().ContainSingle().Which.First.Should().Be(WalFileName.Parse(Seg(1, 3)));
    }

    [Fact]
    public void Nothing_stored_is_complete_but_reaches_nowhere()
    {
        var c = WalContinuity.Check(Inventory([]), 1, L("0/3000028"));

        c.Complete.Should().BeTrue();
        c.End.Should().Be(L("0/3000028"));
        c.Steps.Should().BeEmpty();
    }

    [Fact]
    public void Pieces_with_a_hole_cover_only_up_to_the_hole_and_the_hole_is_a_gap()
    {
        var names = Segs(1, 3, 4).Append(Piece(1, 5, 0, 0x1000)).Append(Piece(1, 5, 0x2000, 0x3000));

        var c = WalContinuity.Check(Inventory(names), 1, L("0/3000028"));

        c.End.Should().Be(L("0/5001000"));
        c.Steps[^1].Pieces.Should().Equal(Piece(1, 5, 0, 0x1000));
        c.Steps[^1].CoveredBytes.Should().Be(0x1000);
        c.Gaps.Should().ContainSingle().Which.Description.Should()
            .Be("timeline 1: 000000010000000000000005 missing (1 segment) between 0/5000FFF and 0/5002000");
    }

    [Fact]
    public void A_partial_step_before_more_wal_is_a_gap_after_it()
    {
        var names = Segs(1, 3, 4).Append(Piece(1, 5, 0, 0x1000)).Append(Piece(1, 5, 0x2000, 0x3000)).Append(Seg(1, 6));

        var c = WalContinuity.Check(Inventory(names), 1, L("0/3000028"));

        c.End.Should().Be(L("0/5001000"));
        c.Gaps.Select(g => g.Description).Should().Equal(
            "timeline 1: 000000010000000000000005 missing (1 segment) between 0/5000FFF and 0/5002000",
            "timeline 1: 000000010000000000000005 missing (1 segment) between 0/5002FFF and 0/6000000");
    }

    [Fact]
    public void Pieces_not_starting_at_zero_are_no_coverage()
    {
        var names = Segs(1, 3, 4).Append(Piece(1, 5, 0x1000, 0x2000));

        var c = WalContinuity.Check(Inventory(names), 1, L("0/3000028"));

        c.End.Should().Be(L("0/5000000"));
        c.Steps.Should().HaveCount(2);
        c.Gaps.Should().ContainSingle().Which.Description.Should().EndWith("between 0/4FFFFFF and 0/5001000");
    }

    [Fact]
    public void Pieces_around_the_start_without_the_segments_beginning_are_a_gap()
    {
        var names = new[] { Piece(1, 3, 0x10, 0x2000), Seg(1, 4) };

        var c = WalContinuity.Check(Inventory(names), 1, L("0/3000028"));

        c.Steps.Should().BeEmpty("PostgreSQL validates a segment's first page before reading anywhere in it");
        c.End.Should().Be(L("0/3000028"));
        c.Gaps.Should().ContainSingle().Which.Description.Should()
            .Be("timeline 1: 000000010000000000000003 missing (1 segment) between 0/3000027 and 0/4000000");
    }

    [Fact]
    public void Pieces_of_a_segment_stored_in_full_are_ignored()
    {
        var names = Segs(1, 3, 5).Append(Piece(1, 5, 0, 0x1000)).Append(Piece(1, 5, 0x3000, 0x4000));

        var c = WalContinuity.Check(Inventory(names), 1, L("0/3000028"));

        c.Complete.Should().BeTrue();
        c.End.Should().Be(L("0/6000000"));
        c.Steps[^1].SegmentArtifact.Should().Be(Seg(1, 5));
        c.Steps[^1].Pieces.Should().BeEmpty();
    }

    [Fact]
    public void The_chain_that_reaches_furthest_is_used()
    {
        var names = new[] { Piece(1, 3, 0, 0x1000), Piece(1, 3, 0, 0x500), Piece(1, 3, 0x500, 0x3000), Piece(1, 3, 0x800, 0x900) };

        var c = WalContinuity.Check(Inventory(names), 1, L("0/3000028"));

        c.End.Should().Be(L("0/3003000"));
        c.Steps.Single().Pieces.Should().Equal(Piece(1, 3, 0, 0x1000), Piece(1, 3, 0x500, 0x3000));
    }

    [Fact]
    public void Overlapping_pieces_of_a_resumed_receiver_chain_through_the_page_sent_again()
    {
        // The receiver stopped after 0x2A10 (stored up to the end of its last written byte), resumed and sent the
        // last page again from 0x2000, then went on from its flush position.
        var names = new[] { Piece(1, 3, 0, 0x1800), Piece(1, 3, 0x1800, 0x2A10), Piece(1, 3, 0x2000, 0x2E00), Piece(1, 3, 0x2E00, 0x5000) };

        var c = WalContinuity.Check(Inventory(names), 1, L("0/3000028"));

        c.Complete.Should().BeTrue();
        c.End.Should().Be(L("0/3005000"));
        c.Steps.Single().Pieces.Should().Equal(Piece(1, 3, 0, 0x1800), Piece(1, 3, 0x1800, 0x2A10), Piece(1, 3, 0x2000, 0x2E00), Piece(1, 3, 0x2E00, 0x5000));
    }

    [Fact]
    public void A_chain_ending_before_the_start_gives_nothing()
    {
        var names = new[] { Piece(1, 3, 0, 0x20) };

        var c = WalContinuity.Check(Inventory(names), 1, L("0/3000028"));

        c.Steps.Should().BeEmpty();
        c.End.Should().Be(L("0/3000028"));
        c.Complete.Should().BeTrue("nothing after the start is stored");
    }

    [Fact]
    public void PostgreSQLs_partial_counts_as_the_whole_segment()
    {
        var names = Segs(1, 3, 4).Append(PitrArtifact.PartialName(WalFileName.Parse(Seg(1, 5)))).Append(Seg(1, 6));

        var c = WalContinuity.Check(Inventory(names), 1, L("0/3000028"));

        c.Complete.Should().BeTrue();
        c.Steps[2].Pieces.Should().Equal(Seg(1, 5) + ".partial");
        c.Steps[2].CoveredBytes.Should().Be((uint)Seg16);
        c.End.Should().Be(L("0/7000000"));
    }

    [Fact]
    public void Base_files_backup_history_foreign_names_and_wrong_sizes_are_ignored()
    {
        var names = Segs(1, 3, 4).Concat(
        [
            "000000010000000000000003.00000028.backup", "base_20261201_010000.tar.gz", "base_20261201_010000.json", "notes.txt",
            "000000010000000000000100", Piece(1, 5, 0, 0x1000).Replace("00001000", "02000000", StringComparison.Ordinal),
        ]);

        var c = WalContinuity.Check(Inventory(names), 1, L("0/3000028"));

        c.Complete.Should().BeTrue();
        c.End.Should().Be(L("0/5000000"));
    }

    [Fact]
    public void A_switch_mid_segment_reads_the_switch_segment_from_the_new_timeline()
    {
        var names = Segs(1, 3, 5).Concat(Segs(2, 5, 7));

        var c = WalContinuity.Check(Inventory(names, Seg16, Tl2MidSegment), 1, L("0/3000028"));

        c.TargetTimeline.Should().Be(2, "'latest' follows the history files");
        c.Complete.Should().BeTrue();
        c.Steps.Select(s => s.SegmentArtifact).Should().Equal(Seg(1, 3), Seg(1, 4), Seg(2, 5), Seg(2, 6), Seg(2, 7));
        c.End.Should().Be(L("0/8000000"));
    }

    [Fact]
    public void A_switch_segment_stored_only_on_the_new_timeline_is_enough()
    {
        var c = WalContinuity.Check(Inventory(Segs(1, 3, 4).Concat(Segs(2, 5, 6)), Seg16, Tl2MidSegment), 1, L("0/3000028"));

        c.Complete.Should().BeTrue();
        c.End.Should().Be(L("0/7000000"));
    }

    [Fact]
    public void A_switch_segment_stored_only_on_the_old_timeline_covers_up_to_the_switch_point()
    {
        var c = WalContinuity.Check(Inventory(Segs(1, 3, 5).Concat(Segs(2, 6, 7)), Seg16, Tl2MidSegment), 1, L("0/3000028"));

        c.Steps.Select(s => s.SegmentArtifact).Should().Equal(Seg(1, 3), Seg(1, 4), Seg(1, 5));
        c.End.Should().Be(L("0/5000060"), "the old timeline's file holds the lineage's data only up to the switch point");
        c.Gaps.Should().ContainSingle().Which.Should().Be(new WalGap(2, WalFileName.Parse(Seg(2, 5)), WalFileName.Parse(Seg(2, 5)), 1,
            "timeline 2: 000000020000000000000005 missing (1 segment) between 0/500005F and 0/6000000"));
    }

    [Fact]
    public void The_fallback_alone_with_nothing_after_reaches_the_switch_point()
    {
        var c = WalContinuity.Check(Inventory(Segs(1, 3, 7), Seg16, Tl2MidSegment), 1, L("0/3000028"));

        c.End.Should().Be(L("0/5000060"));
        c.Complete.Should().BeTrue("timeline 1 after the switch point is a branch this lineage does not take");
    }

    [Fact]
    public void A_switch_at_a_segment_boundary_starts_the_new_timeline_with_that_segment()
    {
        var history = TimelineHistory.Parse(2, "1\t0/6000000\n");

        var good = WalContinuity.Check(Inventory(Segs(1, 3, 5).Concat(Segs(2, 6, 7)), Seg16, history), 1, L("0/3000028"));
        good.Complete.Should().BeTrue();
        good.Steps.Select(s => s.File.Timeline).Should().Equal(1u, 1u, 1u, 2u, 2u);

        var oldOnly = WalContinuity.Check(Inventory(Segs(1, 3, 6).Append(Seg(2, 7)), Seg16, history), 1, L("0/3000028"));
        oldOnly.End.Should().Be(L("0/6000000"), "timeline 1's segment 6 is all after the switch point");
        oldOnly.Gaps.Should().ContainSingle().Which.First.Should().Be(WalFileName.Parse(Seg(2, 6)));
    }

    [Fact]
    public void Three_timelines_are_followed_and_abandoned_branches_ignored()
    {
        var history = TimelineHistory.Parse(3, "1\t0/5000060\n2\t0/9000000\n");
        var names = Segs(1, 3, 5).Concat(Segs(2, 5, 8)).Concat(Segs(3, 9, 10))
            .Concat(Segs(1, 6, 7)) // timeline 1 after its switch point
            .Append(Seg(2, 9)); // timeline 2 after its switch point

        var c = WalContinuity.Check(Inventory(names, Seg16, TimelineHistory.Parse(2, "1\t0/5000060\n"), history), 1, L("0/3000028"));

        c.TargetTimeline.Should().Be(3);
        c.Complete.Should().BeTrue();
        c.Lineage.Should().Equal(history.Lineage());
        c.Steps.Select(s => s.SegmentArtifact).Should().Equal(
            Seg(1, 3), Seg(1, 4), Seg(2, 5), Seg(2, 6), Seg(2, 7), Seg(2, 8), Seg(3, 9), Seg(3, 10));
        c.End.Should().Be(L("0/B000000"));
    }

    [Fact]
    public void Two_switches_in_one_segment_fall_back_through_both()
    {
        var history = TimelineHistory.Parse(3, "1\t0/5000060\n2\t0/5000100\n");
        var names = Segs(1, 3, 4).Append(Seg(2, 5)).Append(Seg(3, 6));

        var c = WalContinuity.Check(Inventory(names, Seg16, history), 1, L("0/3000028"), targetTimeline: 3);

        c.End.Should().Be(L("0/5000100"));
        c.Gaps.Should().ContainSingle().Which.First.Should().Be(WalFileName.Parse(Seg(3, 5)));
    }

    [Fact]
    public void An_empty_stretch_from_equal_switch_points_is_skipped()
    {
        var history = TimelineHistory.Parse(3, "1\t0/5000060\n2\t0/5000060\n");

        var c = WalContinuity.Check(Inventory(Segs(1, 3, 4).Concat(Segs(3, 5, 6)), Seg16, history), 1, L("0/3000028"), targetTimeline: 3);

        c.Complete.Should().BeTrue();
        c.End.Should().Be(L("0/7000000"));
    }

    [Fact]
    public void A_missing_history_file_of_the_target_is_a_problem()
    {
        var names = Segs(1, 3, 5).Concat(Segs(2, 5, 7)).ToList();

        var c = WalContinuity.Check(new WalInventory(names, Seg16, new Dictionary<uint, TimelineHistory>()), 1, L("0/3000028"), targetTimeline: 2);

        c.Complete.Should().BeFalse();
        c.Problem.Should().Be("00000002.history is missing, so the lineage of timeline 2 is unknown");
        c.Steps.Should().BeEmpty();
    }

    [Fact]
    public void Without_history_files_latest_stays_on_the_start_timeline()
    {
        var names = Segs(1, 3, 5).Concat(Segs(2, 5, 7)).ToList();

        var c = WalContinuity.Check(new WalInventory(names, Seg16, new Dictionary<uint, TimelineHistory>()), 1, L("0/3000028"));

        c.TargetTimeline.Should().Be(1);
        c.Complete.Should().BeTrue();
        c.End.Should().Be(L("0/6000000"));
    }

    [Fact]
    public void A_stored_but_unreadable_history_is_a_problem()
    {
        var names = Segs(1, 3, 5).Append("00000002.history").ToList();

        var c = WalContinuity.Check(new WalInventory(names, Seg16, new Dictionary<uint, TimelineHistory>()), 1, L("0/3000028"));

        c.TargetTimeline.Should().Be(2);
        c.Problem.Should().Be("00000002.history is stored but could not be read, so the lineage of timeline 2 is unknown");
    }

    [Fact]
    public void Latest_stops_at_a_hole_in_the_history_files_and_says_so()
    {
        var h3 = TimelineHistory.Parse(3, "1\t0/5000060\n2\t0/9000000\n");

        var c = WalContinuity.Check(Inventory(Segs(1, 3, 5), Seg16, h3), 1, L("0/3000028"));

        c.TargetTimeline.Should().Be(1);
        c.Problem.Should().Be("00000002.history is missing: recovery_target_timeline 'latest' stops at timeline 1, though timeline 3 descends from timeline 1 at 0/3000028");
        c.End.Should().Be(L("0/6000000"));
    }

    [Fact]
    public void A_target_that_forked_before_the_base_start_does_not_descend()
    {
        var h3 = TimelineHistory.Parse(3, "1\t0/4000000\n");

        var inventory = Inventory(Segs(1, 3, 6).Concat(Segs(3, 4, 6)), Seg16, h3);
        var c = WalContinuity.Check(inventory, 1, L("0/5000060"), targetTimeline: 3);

        c.TargetTimeline.Should().Be(3);
        WalContinuity.Check(inventory, 1, L("0/5000060")).Should().Match<WalCoverage>(
            latest => latest.TargetTimeline == 1 && latest.Complete, "'latest' does not reach timeline 3 (no 00000002.history), and 3 is no descendant anyway");
        c.Problem.Should().Be("timeline 3 does not descend from timeline 1 at 0/5000060: its lineage leaves timeline 1 at 0/4000000");
        c.Complete.Should().BeFalse();
        c.Steps.Should().BeEmpty();
        c.End.Should().Be(L("0/5000060"));
    }

    [Fact]
    public void A_target_whose_lineage_skips_the_start_timeline_does_not_descend()
    {
        var h3 = TimelineHistory.Parse(3, "1\t0/9000000\n");

        var c = WalContinuity.Check(Inventory([], Seg16, h3), 2, L("0/5000060"), targetTimeline: 3);

        c.Problem.Should().Be("timeline 3 does not descend from timeline 2 at 0/5000060: its lineage (1, 3) does not include timeline 2");
    }

    [Fact]
    public void A_target_below_the_start_timeline_does_not_descend()
    {
        var c = WalContinuity.Check(Inventory(Segs(1, 3, 4)), 2, L("0/5000060"), targetTimeline: 1);

        c.Problem.Should().StartWith("timeline 1 does not descend from timeline 2 at 0/5000060");
    }

    [Fact]
    public void A_start_on_a_later_timeline_without_its_history_file_replays_that_timeline()
    {
        var c = WalContinuity.Check(new WalInventory(Segs(2, 5, 7).ToList(), Seg16, new Dictionary<uint, TimelineHistory>()), 2, L("0/5000100"));

        c.Complete.Should().BeTrue();
        c.TargetTimeline.Should().Be(2);
        c.End.Should().Be(L("0/8000000"));
    }

    [Fact]
    public void A_start_before_its_timeline_began_is_not_on_the_lineage()
    {
        var c = WalContinuity.Check(Inventory([], Seg16, Tl2MidSegment), 2, L("0/4000000"));

        c.Problem.Should().Be("timeline 2 does not descend from timeline 2 at 0/4000000: its lineage enters timeline 2 only at 0/5000060");
    }

    [Fact]
    public void A_required_end_that_is_reached_is_complete_even_with_gaps_after_it()
    {
        var names = Segs(1, 3, 6).Concat(Segs(1, 9, 10));

        var c = WalContinuity.Check(Inventory(names), 1, L("0/3000028"), requiredEnd: L("0/6800000"));

        c.Complete.Should().BeTrue();
        c.End.Should().Be(L("0/7000000"));
    }

    [Fact]
    public void A_required_end_beyond_the_stored_wal_is_a_gap_naming_what_is_missing()
    {
        var c = WalContinuity.Check(Inventory(Segs(1, 3, 4)), 1, L("0/3000028"), requiredEnd: L("0/6000100"));

        c.Complete.Should().BeFalse();
        c.Gaps.Should().ContainSingle().Which.Should().Be(new WalGap(1, WalFileName.Parse(Seg(1, 5)), WalFileName.Parse(Seg(1, 6)), 2,
            "timeline 1: 000000010000000000000005 to 000000010000000000000006 missing (2 segments) after 0/4FFFFFF, needed to reach 0/6000100"));
    }

    [Fact]
    public void A_required_end_inside_a_hole_clips_the_gap()
    {
        var c = WalContinuity.Check(Inventory(Segs(1, 3, 4).Concat(Segs(1, 9, 10))), 1, L("0/3000028"), requiredEnd: L("0/6000000"));

        c.Gaps.Should().ContainSingle().Which.Description.Should()
            .Be("timeline 1: 000000010000000000000005 missing (1 segment) after 0/4FFFFFF, needed to reach 0/6000000");
    }

    [Fact]
    public void A_required_end_after_a_hole_and_beyond_later_wal_names_both()
    {
        var c = WalContinuity.Check(Inventory(Segs(1, 3, 4).Concat(Segs(1, 6, 7))), 1, L("0/3000028"), requiredEnd: L("0/9000000"));

        c.Gaps.Select(g => (g.First.ToString(), g.Last.ToString())).Should().Equal((Seg(1, 5), Seg(1, 5)), (Seg(1, 8), Seg(1, 8)));
    }

    [Fact]
    public void A_required_end_on_a_later_timeline_names_that_timelines_files()
    {
        var c = WalContinuity.Check(Inventory(Segs(1, 3, 5).Append(Seg(2, 5)), Seg16, Tl2MidSegment), 1, L("0/3000028"), requiredEnd: L("0/7000000"));

        c.Gaps.Should().ContainSingle().Which.Should().Match<WalGap>(g => g.First == WalFileName.Parse(Seg(2, 6)) && g.Last == WalFileName.Parse(Seg(2, 6)) && g.Timeline == 2);
    }

    [Fact]
    public void A_required_end_before_the_start_is_a_problem()
    {
        var c = WalContinuity.Check(Inventory(Segs(1, 3, 4)), 1, L("0/3000028"), requiredEnd: L("0/2000000"));

        c.Problem.Should().Be("the required end 0/2000000 is before the start 0/3000028");
    }

    [Theory]
    [InlineData(1L)]
    [InlineData(64L)]
    public void Other_segment_sizes_switch_and_gap_the_same_way(long megabytes)
    {
        var segSize = megabytes * Mib;
        var sw = new Lsn((5 * (ulong)segSize) + 0x60);
        var history = TimelineHistory.Parse(2, $"1\t{sw}\n");
        var names = Segs(1, 3, 5, segSize).Concat(Segs(2, 5, 6, segSize)).Concat(Segs(2, 9, 9, segSize));
        var start = new Lsn((3 * (ulong)segSize) + 0x28);

        var c = WalContinuity.Check(Inventory(names, segSize, history), 1, start);

        c.Steps.Select(s => s.SegmentArtifact).Should().Equal(Seg(1, 3, segSize), Seg(1, 4, segSize), Seg(2, 5, segSize), Seg(2, 6, segSize));
        c.End.Should().Be(new Lsn(7 * (ulong)segSize));
        c.Gaps.Should().ContainSingle().Which.Should().Match<WalGap>(g =>
            g.First == WalFileName.FromSegment(2, 7, segSize) && g.Last == WalFileName.FromSegment(2, 8, segSize) && g.MissingSegments == 2);
    }

    [Fact]
    public void One_MiB_segments_cross_a_log_id_boundary()
    {
        const long OneMib = Mib;
        var names = Segs(1, 4094, 4098, OneMib).ToList();

        names.Should().Contain("000000010000000000000FFF").And.Contain("000000010000000100000000");
        var c = WalContinuity.Check(Inventory(names, OneMib), 1, new Lsn(4094 * (ulong)OneMib));

        c.Complete.Should().BeTrue();
        c.End.Should().Be(new Lsn(4099 * (ulong)OneMib));
    }

    [Fact]
    public void A_history_that_describes_another_timeline_is_a_problem()
    {
        var inventory = new WalInventory(["00000003.history"], Seg16, new Dictionary<uint, TimelineHistory> { [3] = Tl2MidSegment });

        WalContinuity.Check(inventory, 1, L("0/3000028"), targetTimeline: 3).Problem.Should().Be("the history given for timeline 3 describes timeline 2");
    }

    [Fact]
    public void Arguments_are_checked()
    {
        var inventory = Inventory([]);
        var zeroStart = () => WalContinuity.Check(inventory, 0, L("0/1"));
        var zeroTarget = () => WalContinuity.Check(inventory, 1, L("0/1"), targetTimeline: 0);
        var badSize = () => WalContinuity.Check(inventory with { SegmentSize = 1000 }, 1, L("0/1"));

        zeroStart.Should().Throw<ArgumentOutOfRangeException>();
        zeroTarget.Should().Throw<ArgumentOutOfRangeException>();
        badSize.Should().Throw<ArgumentOutOfRangeException>();
    }
}
