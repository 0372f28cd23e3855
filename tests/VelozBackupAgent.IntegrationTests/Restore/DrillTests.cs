using System.Globalization;
using System.Text.Json;
using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Restore;

/// <summary>The daemon's scheduled restore drill, on the real binary: it test-restores and records the outcome.</summary>
public sealed class DrillTests
{
    [Fact]
    public async Task The_daemon_runs_the_restore_drill_on_its_schedule_and_records_a_passing_test_restore()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        (await bed.RunAsync("backup", "all")).ExitCode.Should().Be(0);
        var state = Path.Combine(bed.LocalRoot, ".state", "restore-test.json");

        // A drill due every few seconds stands in for the monthly default; the test waits for the real daemon's file.
        using var daemon = VelozBackupBinary.Start(["run", "--config", bed.ConfigPath, "--Backup:Verify:DrillSchedule=0/3 * * * * ?",
            "--Backup:Http:Url=http://127.0.0.1:0"]);
        try
        {
            var deadline = TimeProvider.System.GetUtcNow().AddSeconds(90);
            while (!File.Exists(state) && TimeProvider.System.GetUtcNow() < deadline && !daemon.HasExited)
            {
                await Task.Delay(200);
            }

            File.Exists(state).Should().BeTrue("the drill records its outcome");
        }
        finally
        {
            await ChildProcess.RunAsync("kill", ["-TERM", daemon.Id.ToString(CultureInfo.InvariantCulture)]);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await daemon.WaitForExitAsync(cts.Token);
        }

        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(state));
        var last = json.RootElement.GetProperty("last");
        last.GetProperty("passed").GetBoolean().Should().BeTrue(last.ToString());
        last.GetProperty("durationSeconds").EnumerateObject().Select(p => p.Name).Should().BeEquivalentTo("secrets", "config", "database", "wal", "total");
    }
}
