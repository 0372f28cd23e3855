using System.Text.Json;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Telemetry;

namespace VelozBackupAgent.Tests.Telemetry;

public sealed class HealthReportTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);

    private static FreshnessStatus Kind(string kind, DateTimeOffset? last, TimeSpan objective) =>
        Freshness.Evaluate(kind, last, objective, TimeSpan.FromMinutes(1), Now);

    [Fact]
    public void Healthy_only_while_the_scheduler_runs_and_every_kind_is_fresh()
    {
        var fresh = new[] { Kind("wal", Now.AddMinutes(-2), TimeSpan.FromMinutes(5)) };

        HealthReport.Evaluate(SchedulerState.Running, fresh).Healthy.Should().BeTrue();
        foreach (var state in new[] { SchedulerState.NotStarted, SchedulerState.Standby, SchedulerState.ShutDown, SchedulerState.Unknown })
        {
            HealthReport.Evaluate(state, fresh).Healthy.Should().BeFalse(state.ToString());
        }

        HealthReport.Evaluate(SchedulerState.Running, [.. fresh, Kind("database", null, TimeSpan.FromDays(1))]).Healthy.Should().BeFalse();
    }

    [Fact]
    public void A_long_run_on_time_keeps_health_and_a_hung_one_is_a_problem()
    {
        var lastDump = Now.AddHours(-24).AddMinutes(-20);
        var running = Freshness.Evaluate("database", lastDump, TimeSpan.FromDays(1), TimeSpan.FromMinutes(1), Now,
            lastDump.AddDays(1), TimeSpan.FromHours(1));
        var healthy = HealthReport.Evaluate(SchedulerState.Running, [running]);
        healthy.Healthy.Should().BeTrue();
        using (var json = JsonDocument.Parse(healthy.ToJson()))
        {
            var kind = json.RootElement.GetProperty("kinds")[0];
            kind.GetProperty("runningSince").GetString().Should().Be("2026-11-23T09:40:00Z");
            kind.GetProperty("keptFreshByRun").GetBoolean().Should().BeTrue();
            kind.GetProperty("runOverdue").GetBoolean().Should().BeFalse();
        }

        var hung = Freshness.Evaluate("config", Now.AddHours(-2), TimeSpan.FromHours(6), TimeSpan.FromMinutes(1), Now,
            Now.AddMinutes(-95), TimeSpan.FromMinutes(30));
        var report = HealthReport.Evaluate(SchedulerState.Running, [hung]);
        report.Healthy.Should().BeFalse();
        report.Problems.Should().ContainSingle().Which.Should()
            .Be("config: the backup run in progress has been going for 1h 35m, past its 30m MaxRunDuration: hung? (no other run of the kind can start meanwhile)");
    }

    [Fact]
    public void The_json_body_names_each_kind_its_age_objective_and_how_far_past_it()
    {
        var report = HealthReport.Evaluate(SchedulerState.Running, [
            Kind("wal", Now.AddMinutes(-65), TimeSpan.FromMinutes(5)),
            Kind("database", null, TimeSpan.FromDays(1)),
            Kind("config", Now.AddHours(-1), TimeSpan.FromHours(6)),
        ]);

        using var json = JsonDocument.Parse(report.ToJson());
        var root = json.RootElement;
        root.GetProperty("status").GetString().Should().Be("unhealthy");
        root.GetProperty("scheduler").GetString().Should().Be("running");
        var kinds = root.GetProperty("kinds").EnumerateArray().ToDictionary(k => k.GetProperty("kind").GetString()!);
        kinds["wal"].GetProperty("lastSuccess").GetString().Should().Be("2026-11-23T08:55:00Z");
        kinds["wal"].GetProperty("ageSeconds").GetDouble().Should().Be(3900);
        kinds["wal"].GetProperty("objectiveSeconds").GetDouble().Should().Be(300);
        kinds["wal"].GetProperty("stale").GetBoolean().Should().BeTrue();
        kinds["wal"].GetProperty("overdueSeconds").GetDouble().Should().Be(3600);
        kinds["database"].GetProperty("lastSuccess").ValueKind.Should().Be(JsonValueKind.Null);
        kinds["database"].GetProperty("overdueSeconds").ValueKind.Should().Be(JsonValueKind.Null);
        kinds["database"].GetProperty("stale").GetBoolean().Should().BeTrue();
        kinds["config"].GetProperty("stale").GetBoolean().Should().BeFalse();
        kinds["config"].GetProperty("overdueSeconds").GetDouble().Should().Be(0);
        root.GetProperty("problems").EnumerateArray().Select(p => p.GetString()).Should().Equal(
            "wal is stale: last success 2026-11-23 08:55:00Z, 1h 5m ago, 1h past its 5m objective",
            "database is stale: no successful backup yet (objective 1d)");
    }

    [Theory]
    [InlineData(0, "0s")]
    [InlineData(59, "59s")]
    [InlineData(61, "1m 1s")]
    [InlineData(3600, "1h")]
    [InlineData(3 * 86400 + 2 * 3600 + 59, "3d 2h")]
    public void Durations_read_like_people_write_them(int seconds, string expected) =>
        HealthReport.Duration(TimeSpan.FromSeconds(seconds)).Should().Be(expected);
}
