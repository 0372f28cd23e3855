using VelozBackupAgent.Configuration;
using VelozBackupAgent.Sources.Wal;

namespace VelozBackupAgent.Tests.Sources.Wal;

public sealed class WalNamingTests
{
    private readonly WalNaming _naming = new(new WalOptions());

    [Theory]
    [InlineData("orders_0000000000000001.wal", true)]
    [InlineData("orders_9999999999999999.wal", true)]
    [InlineData("orders_current.wal", false)] // the active file
    [InlineData("orders_current_20261123_101500.wal", false)] // one of our snapshots, copied back
    [InlineData("orders_current_20261123_101500-2.wal", false)]
    [InlineData("orders_0000000000000001.wal.tmp", false)]
    [InlineData("ORDERS_0000000000000001.wal", false)] // the pattern is case-sensitive, as the file system is
    [InlineData("orders_0000000000000001.WAL", false)]
    [InlineData("trades_0000000000000001.wal", false)]
    public void Segments_match_the_pattern_but_never_the_active_file_or_its_snapshots(string name, bool segment)
    {
        _naming.IsSegment(name).Should().Be(segment);
    }

    // The common one-star pattern takes a prefix/suffix shortcut; it must decide exactly as the glob matcher does,
    // for that pattern and for the ones that still go to the matcher.
    [Theory]
    [InlineData("orders_*.wal")]
    [InlineData("*.wal")]
    [InlineData("orders_*")]
    [InlineData("*")]
    [InlineData("ab*ba")]
    [InlineData("orders_????.wal")]
    [InlineData("orders_*_*.wal")]
    [InlineData("orders_\\*.wal")]
    [InlineData("exact.wal")]
    public void The_pattern_shortcut_agrees_with_the_glob_matcher(string pattern)
    {
        var naming = new WalNaming(new WalOptions { SegmentPattern = pattern });
        string[] names =
        [
            "", "orders_.wal", "orders_0001.wal", "orders_0001.wal.tmp", "orders_0001.WAL", "ORDERS_0001.wal", "orders_1_2.wal",
            "orders_*.wal", "x.wal", ".wal", "wal", "orders_", "orders", "aba", "abba", "ab", "abxba", "exact.wal", "exact.wa",
        ];
        foreach (var name in names)
        {
            naming.MatchesPattern(name).Should().Be(
                System.IO.Enumeration.FileSystemName.MatchesSimpleExpression(pattern, name, ignoreCase: false),
                $"pattern '{pattern}', name '{name}'");
        }
    }

    [Fact]
    public void Snapshots_are_named_after_the_active_file()
    {
        _naming.ActiveStem.Should().Be("orders_current");
        _naming.ActiveSuffix.Should().Be(".wal");
        _naming.IsSnapshot("orders_current_20261123_101500.wal").Should().BeTrue();
        _naming.IsSnapshot("orders_0000000000000001.wal").Should().BeFalse();
    }

    [Fact]
    public void An_active_file_without_extension_gets_wal_snapshots()
    {
        var naming = new WalNaming(new WalOptions { ActiveFile = "journal" });
        naming.ActiveStem.Should().Be("journal");
        naming.ActiveSuffix.Should().Be(".wal");
    }

    [Fact]
    public void A_wide_pattern_still_never_takes_manifests_or_snapshots_for_segments()
    {
        var naming = new WalNaming(new WalOptions { SegmentPattern = "*" });
        naming.IsSegment("wal-manifest_20261123_101500.json").Should().BeFalse();
        naming.IsSegment("orders_current_20261123_101500.wal").Should().BeFalse();
        naming.IsSegment("orders_current.wal").Should().BeFalse();
        naming.IsSegment("anything.wal").Should().BeTrue();
    }

    [Theory]
    [InlineData("orders_0000000000000001.wal", true)]
    [InlineData("orders_a b.wal", false)]
    [InlineData("orders_ü.wal", false)]
    public void Names_the_store_cannot_take_are_recognised(string name, bool storable)
    {
        WalNaming.IsStorable(name).Should().Be(storable);
    }

    [Fact]
    public void The_watcher_cares_about_segments_and_the_active_file_only()
    {
        _naming.IsWatched("orders_current.wal").Should().BeTrue();
        _naming.IsWatched("orders_0000000000000007.wal").Should().BeTrue();
        _naming.IsWatched(".orders_0000000000000007.wal.swp").Should().BeFalse();
        _naming.IsWatched("README").Should().BeFalse();
    }
}

public sealed class SettleTrackerTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);
    private readonly SteppedClock _clock = new(T0);

    private static WalFileState WrittenAt(DateTimeOffset mtime, long size = 10) => new(size, mtime.UtcTicks);

    [Fact]
    public void A_file_is_settled_once_its_mtime_is_the_settle_time_old()
    {
        var settle = new SettleTracker(TimeSpan.FromSeconds(2), _clock);
        settle.IsSettled("a", WrittenAt(T0 - TimeSpan.FromSeconds(1)), T0).Should().BeFalse();
        settle.IsSettled("a", WrittenAt(T0 - TimeSpan.FromSeconds(2)), T0).Should().BeTrue();
    }

    [Fact]
    public void Zero_settle_time_takes_everything_at_once()
    {
        new SettleTracker(TimeSpan.Zero, _clock).IsSettled("a", WrittenAt(T0), T0).Should().BeTrue();
    }

    [Fact]
    public void A_file_with_an_mtime_in_the_future_settles_by_staying_unchanged_for_the_settle_time()
    {
        // The system clock was stepped back: by mtime alone this file would wait an hour.
        var settle = new SettleTracker(TimeSpan.FromSeconds(2), _clock);
        var state = WrittenAt(T0 + TimeSpan.FromHours(1));
        settle.IsSettled("a", state, _clock.GetUtcNow()).Should().BeFalse();
        _clock.Advance(TimeSpan.FromSeconds(1));
        settle.IsSettled("a", state, _clock.GetUtcNow()).Should().BeFalse();
        _clock.Advance(TimeSpan.FromSeconds(1));
        settle.IsSettled("a", state, _clock.GetUtcNow()).Should().BeTrue();
    }

    [Fact]
    public void Any_change_restarts_the_observation()
    {
        var settle = new SettleTracker(TimeSpan.FromSeconds(2), _clock);
        var future = T0 + TimeSpan.FromHours(1);
        settle.IsSettled("a", WrittenAt(future, 10), _clock.GetUtcNow()).Should().BeFalse();
        _clock.Advance(TimeSpan.FromSeconds(3));
        settle.IsSettled("a", WrittenAt(future, 11), _clock.GetUtcNow()).Should().BeFalse("it grew");
        _clock.Advance(TimeSpan.FromSeconds(1));
        settle.IsSettled("a", WrittenAt(future, 11), _clock.GetUtcNow()).Should().BeFalse();
        _clock.Advance(TimeSpan.FromSeconds(1));
        settle.IsSettled("a", WrittenAt(future, 11), _clock.GetUtcNow()).Should().BeTrue();
    }

    [Fact]
    public void A_segment_that_appeared_by_a_rename_is_settled_at_once()
    {
        var settle = new SettleTracker(TimeSpan.FromSeconds(2), _clock);
        var state = WrittenAt(T0);
        settle.MarkRenamed("orders_0000000000000001.wal", state);
        settle.IsSettled("orders_0000000000000001.wal", state, T0).Should().BeTrue("an atomic rename leaves a complete file");
    }

    [Fact]
    public void A_file_written_in_place_still_waits_the_settle_time()
    {
        var settle = new SettleTracker(TimeSpan.FromSeconds(2), _clock);
        settle.MarkRenamed("other.wal", WrittenAt(T0));
        settle.IsSettled("orders_0000000000000002.wal", WrittenAt(T0), T0).Should().BeFalse();
        _clock.Advance(TimeSpan.FromSeconds(2));
        settle.IsSettled("orders_0000000000000002.wal", WrittenAt(T0), _clock.GetUtcNow()).Should().BeTrue();
    }

    [Fact]
    public void A_renamed_file_that_changes_afterwards_waits_the_settle_time_again()
    {
        var settle = new SettleTracker(TimeSpan.FromSeconds(2), _clock);
        const string Name = "orders_0000000000000003.wal";
        settle.MarkRenamed(Name, WrittenAt(T0, 10));
        _clock.Advance(TimeSpan.FromMilliseconds(500));
        var grown = WrittenAt(_clock.GetUtcNow(), 20);
        settle.IsSettled(Name, grown, _clock.GetUtcNow()).Should().BeFalse("written to after the rename");
        settle.IsSettled(Name, WrittenAt(T0, 10), _clock.GetUtcNow()).Should().BeFalse("the mark is gone once it changed");
        _clock.Advance(TimeSpan.FromSeconds(2));
        settle.IsSettled(Name, grown, _clock.GetUtcNow()).Should().BeTrue();
    }

    [Fact]
    public void The_planner_finds_work_for_a_renamed_segment_at_once()
    {
        var settle = new SettleTracker(TimeSpan.FromSeconds(2), _clock);
        var segment = new WalListedFile("orders_0000000000000004.wal", WrittenAt(T0));
        WalPlanner.Plan([segment], null, WalKnownState.Empty, settle, T0).Work.Should().BeFalse("written in place, for all it knows");
        settle.MarkRenamed(segment.Name, segment.State);
        WalPlanner.Plan([segment], null, WalKnownState.Empty, settle, T0).Work.Should().BeTrue();
    }

    [Fact]
    public void Rechecks_are_due_when_the_settle_time_is_up_but_never_later_than_one_settle_time()
    {
        var settle = new SettleTracker(TimeSpan.FromSeconds(2), _clock);
        settle.RecheckAt(WrittenAt(T0 - TimeSpan.FromMilliseconds(500)), T0).Should().Be(T0 + TimeSpan.FromMilliseconds(1500));
        settle.RecheckAt(WrittenAt(T0 + TimeSpan.FromHours(1)), T0).Should().Be(T0 + TimeSpan.FromSeconds(2));
        settle.RecheckAt(WrittenAt(T0 - TimeSpan.FromHours(1)), T0).Should().BeAfter(T0, "a recheck in the past would be a busy loop");
    }
}

public sealed class WalPlannerTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(2);
    private readonly SettleTracker _settle = new(Settle, new SteppedClock(Now));

    private static WalListedFile File(string name, long size, TimeSpan age) => new(name, new WalFileState(size, (Now - age).UtcTicks));

    private static WalKnownState Known(WalListedFile? active = null, params WalListedFile[] segments) =>
        new(segments.ToDictionary(s => s.Name, s => s.State), active?.State);

    [Fact]
    public void Nothing_to_do_when_every_segment_and_the_active_file_are_as_last_stored()
    {
        var a = File("orders_0000000000000001.wal", 100, TimeSpan.FromHours(1));
        var active = File("orders_current.wal", 5, TimeSpan.FromMinutes(1));
        WalPlanner.Plan([a], active, Known(active, a), _settle, Now).Should().Be(new WalPlan(false, null));
    }

    [Fact]
    public void A_new_settled_segment_is_work()
    {
        var a = File("orders_0000000000000001.wal", 100, TimeSpan.FromHours(1));
        var b = File("orders_0000000000000002.wal", 100, TimeSpan.FromSeconds(5));
        WalPlanner.Plan([a, b], null, Known(null, a), _settle, Now).Work.Should().BeTrue();
    }

    [Fact]
    public void A_segment_still_being_written_is_looked_at_again_when_it_will_have_settled()
    {
        var fresh = File("orders_0000000000000002.wal", 100, TimeSpan.FromMilliseconds(300));
        var plan = WalPlanner.Plan([fresh], null, WalKnownState.Empty, _settle, Now);
        plan.Work.Should().BeFalse();
        plan.RecheckAt.Should().Be(Now + TimeSpan.FromMilliseconds(1700));
    }

    [Fact]
    public void A_known_segment_that_changed_is_work_again()
    {
        var stored = File("orders_0000000000000001.wal", 100, TimeSpan.FromHours(1));
        var now = File("orders_0000000000000001.wal", 100, TimeSpan.FromMinutes(1));
        WalPlanner.Plan([now], null, Known(null, stored), _settle, Now).Work.Should().BeTrue();
    }

    [Fact]
    public void An_active_file_being_appended_to_waits_for_a_pause()
    {
        var snapshotted = File("orders_current.wal", 5, TimeSpan.FromMinutes(1));
        var growing = File("orders_current.wal", 50, TimeSpan.FromMilliseconds(100));
        var plan = WalPlanner.Plan([], growing, Known(snapshotted), _settle, Now);
        plan.Work.Should().BeFalse();
        plan.RecheckAt.Should().Be(Now + TimeSpan.FromMilliseconds(1900));

        var paused = File("orders_current.wal", 50, TimeSpan.FromSeconds(3));
        WalPlanner.Plan([], paused, Known(snapshotted), _settle, Now).Work.Should().BeTrue();
    }

    [Fact]
    public void The_earliest_recheck_wins()
    {
        var a = File("orders_0000000000000001.wal", 1, TimeSpan.FromMilliseconds(100));
        var b = File("orders_0000000000000002.wal", 1, TimeSpan.FromMilliseconds(1500));
        WalPlanner.Plan([a, b], null, WalKnownState.Empty, _settle, Now).RecheckAt.Should().Be(Now + TimeSpan.FromMilliseconds(500));
    }
}
