using VelozBackupAgent.Catalog;
using VelozBackupAgent.Configuration;

namespace VelozBackupAgent.Tests.Catalog;

public class FreshnessTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 23, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void No_backup_is_stale_with_no_age()
    {
        var s = Freshness.Evaluate("wal", null, TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(1), Now);
        s.Stale.Should().BeTrue();
        s.Age.Should().BeNull();
        s.Overdue.Should().BeNull();
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(300, false)]
    [InlineData(360, false)] // objective + grace is still fresh
    [InlineData(361, true)]
    [InlineData(86_400, true)]
    public void Stale_only_past_objective_plus_grace(int ageSeconds, bool stale)
    {
        var s = Freshness.Evaluate("wal", Now.AddSeconds(-ageSeconds), TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(1), Now);
        s.Stale.Should().Be(stale);
        s.Age.Should().Be(TimeSpan.FromSeconds(ageSeconds));
        s.Overdue.Should().Be(TimeSpan.FromSeconds(Math.Max(0, ageSeconds - 300)));
    }

    [Fact]
    public void A_last_success_in_the_future_is_age_zero_not_stale()
    {
        var s = Freshness.Evaluate("config", Now.AddHours(1), TimeSpan.FromHours(6), TimeSpan.Zero, Now);
        s.Stale.Should().BeFalse();
        s.Age.Should().Be(TimeSpan.Zero);
    }

    [Fact]
    public void Configured_objectives_default_to_the_seeds_checklist()
    {
        var o = new BackupOptions();
        o.Kind("wal").FreshnessObjective.Should().Be(TimeSpan.FromMinutes(5));
        o.Kind("config").FreshnessObjective.Should().Be(TimeSpan.FromHours(6));
        o.Kind("database").FreshnessObjective.Should().Be(TimeSpan.FromHours(24));
        o.Kind("secrets").FreshnessObjective.Should().Be(TimeSpan.FromHours(24));
        Freshness.Evaluate(o, "database", Now.AddHours(-24).AddSeconds(-59), Now).Stale.Should().BeFalse();
        Freshness.Evaluate(o, "database", Now.AddHours(-25), Now).Stale.Should().BeTrue();
        FluentActions.Invoking(() => o.Kind("nope")).Should().Throw<ArgumentException>();
    }

    // A daily dump (objective 24 h, grace 1 min, MaxRunDuration 1 h) named at 02:00 yesterday.
    private static readonly DateTimeOffset LastDump = Now.AddHours(-24).AddMinutes(-30);

    private static FreshnessStatus Daily(DateTimeOffset? last, DateTimeOffset? runningSince) =>
        Freshness.Evaluate("database", last, TimeSpan.FromHours(24), TimeSpan.FromMinutes(1), Now, runningSince, TimeSpan.FromHours(1));

    [Fact]
    public void A_run_that_started_on_time_keeps_a_kind_fresh_while_under_its_bound()
    {
        // Started 30 s after the objective ran out (inside the grace), 29.5 min ago: the dump is just taking long.
        var s = Daily(LastDump, LastDump.AddHours(24).AddSeconds(30));
        s.Stale.Should().BeFalse();
        s.KeptFreshByRun.Should().BeTrue();
        s.RunOverdue.Should().BeFalse();
        s.RunningFor.Should().Be(TimeSpan.FromMinutes(29.5));
        s.Age.Should().Be(TimeSpan.FromHours(24.5), "the newest backup is as old as it is");
    }

    [Fact]
    public void A_run_past_its_bound_is_hung_and_no_longer_keeps_the_kind_fresh()
    {
        var s = Freshness.Evaluate("database", LastDump, TimeSpan.FromHours(24), TimeSpan.FromMinutes(1), Now,
            LastDump.AddHours(24), TimeSpan.FromMinutes(29));
        s.Stale.Should().BeTrue();
        s.KeptFreshByRun.Should().BeFalse();
        s.RunOverdue.Should().BeTrue();
        s.MaxRun.Should().Be(TimeSpan.FromMinutes(29));
    }

    [Fact]
    public void A_run_that_started_late_does_not_hide_the_gap()
    {
        // Started 2 minutes after the kind went stale (objective + grace): the schedule missed, the alert must stand.
        Daily(LastDump, LastDump.AddHours(24).AddMinutes(3)).Stale.Should().BeTrue();
    }

    [Fact]
    public void With_no_backup_at_all_a_run_does_not_help()
    {
        var s = Daily(null, Now.AddMinutes(-5));
        s.Stale.Should().BeTrue();
        s.KeptFreshByRun.Should().BeFalse();
        s.RunningSince.Should().Be(Now.AddMinutes(-5));
    }

    [Fact]
    public void A_hung_run_is_reported_even_while_the_kind_is_still_fresh()
    {
        // The config kind (objective 6 h): a run started 10 min after the last success and hung for 2 h.
        var s = Freshness.Evaluate("config", Now.AddHours(-2).AddMinutes(-10), TimeSpan.FromHours(6), TimeSpan.FromMinutes(1), Now,
            Now.AddHours(-2), TimeSpan.FromMinutes(30));
        s.Stale.Should().BeFalse();
        s.RunOverdue.Should().BeTrue();
        s.RunningFor.Should().Be(TimeSpan.FromHours(2));
    }

    [Fact]
    public void No_run_changes_nothing()
    {
        var s = Daily(LastDump, null);
        s.Stale.Should().BeTrue();
        s.RunningSince.Should().BeNull();
        s.RunningFor.Should().BeNull();
        s.RunOverdue.Should().BeFalse();
    }

    [Fact]
    public void Max_run_durations_default_per_kind()
    {
        var o = new BackupOptions();
        o.Kind("wal").MaxRunDuration.Should().Be(TimeSpan.FromMinutes(10));
        o.Kind("config").MaxRunDuration.Should().Be(TimeSpan.FromMinutes(30));
        o.Kind("database").MaxRunDuration.Should().Be(TimeSpan.FromHours(6));
        o.Kind("secrets").MaxRunDuration.Should().Be(TimeSpan.FromMinutes(30));
        o.Kind("pitr").MaxRunDuration.Should().Be(TimeSpan.FromHours(6));
        Freshness.Evaluate(o, "database", Now.AddHours(-25), Now, Now.AddMinutes(-59)).Stale.Should().BeFalse();
        Freshness.Evaluate(o, "database", Now.AddHours(-25), Now, Now.AddMinutes(-59)).KeptFreshByRun.Should().BeTrue();
    }
}
