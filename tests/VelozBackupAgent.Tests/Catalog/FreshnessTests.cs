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
}
