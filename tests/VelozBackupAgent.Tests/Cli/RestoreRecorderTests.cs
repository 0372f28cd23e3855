using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using VelozBackupAgent.Host.Cli;

namespace VelozBackupAgent.Tests.Cli;

/// <summary>restore --json's steps: each ends when the next begins, the one running at a failure is failed; times from the clock.</summary>
public sealed class RestoreRecorderTests
{
    [Fact]
    public void Steps_take_the_clocks_time_and_the_running_one_fails_with_the_restore()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 12, 2, 20, 0, 0, TimeSpan.Zero));
        var recorder = new RestoreRecorder(clock);
        recorder.Begin("config: verifying local config/config_20261202_200000.tar.gz");
        clock.Advance(TimeSpan.FromSeconds(2.5));
        recorder.Begin("config: preparing config_20261202_200000.tar.gz beside the live copy");
        clock.Advance(TimeSpan.FromMilliseconds(1250));

        using var doc = JsonDocument.Parse(recorder.Document("config", report: null, error: "disk full"));
        var root = doc.RootElement;
        root.GetProperty("ok").GetBoolean().Should().BeFalse();
        root.GetProperty("error").GetString().Should().Be("disk full");
        var steps = root.GetProperty("steps").EnumerateArray().Select(s => (s.GetProperty("status").GetString(), s.GetProperty("seconds").GetDouble())).ToList();
        steps.Should().Equal(("ok", 2.5), ("failed", 1.25));
        foreach (var field in new[] { "results", "verified", "service", "skipped", "pitr", "totalSeconds", "objectiveSeconds", "withinObjective" })
        {
            root.TryGetProperty(field, out _).Should().BeTrue($"{field} is always present");
        }
    }
}
