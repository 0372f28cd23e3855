using System.Diagnostics;
using System.Globalization;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.IntegrationTests.Restore;

namespace VelozBackupAgent.IntegrationTests.Cli;

/// <summary>
/// A CLI backup killed with SIGKILL mid-dump leaves its hidden temporary file; <c>verify</c> names it (count and
/// bytes) and the next backup of that kind removes it, never another process's live temporary file.
/// </summary>
public sealed class LeftoversTests
{
    [Fact]
    public async Task The_next_backup_removes_what_a_killed_backup_left_and_verify_reports_it_until_then()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        // About 90 MB of hex: a dump that takes long enough to be killed in the middle.
        await bed.Database.ExecuteAsync("""
            CREATE TABLE big (id int PRIMARY KEY, payload text);
            INSERT INTO big SELECT g, (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 1000) i) FROM generate_series(1, 3000) g;
            """);
        var dir = Path.Combine(bed.LocalRoot, "database");

        using var cli = VelozBackupBinary.Start(["backup", "database", "--config", bed.ConfigPath]);
        var clock = Stopwatch.StartNew();
        string? temp = null;
        while (clock.Elapsed < TimeSpan.FromMinutes(2) && !cli.HasExited)
        {
            // The CLI's own temp file: .<name>.dump.<its pid>.<random>.tmp, with bytes in it.
            var mine = ".dump." + cli.Id.ToString(CultureInfo.InvariantCulture) + ".";
            temp = Directory.Exists(dir)
                ? Directory.GetFiles(dir).FirstOrDefault(f => Path.GetFileName(f) is var n && n.StartsWith('.') && n.Contains(mine, StringComparison.Ordinal)
                                                               && n.EndsWith(".tmp", StringComparison.Ordinal) && new FileInfo(f).Length > 0)
                : null;
            if (temp is not null)
            {
                break;
            }

            await Task.Delay(20);
        }

        temp.Should().NotBeNull("the dump is under way (its temp file is growing): "
            + (cli.HasExited ? await cli.StandardOutput.ReadToEndAsync() + await cli.StandardError.ReadToEndAsync() : "still running")
            + "; " + string.Join(", ", Directory.Exists(dir) ? Directory.GetFiles(dir).Select(Path.GetFileName) : []));
        var children = LinuxProcesses.ChildrenOf(cli.Id);
        cli.Kill(); // SIGKILL: no finally block runs, the temp file stays
        await cli.WaitForExitAsync();
        (await LinuxProcesses.WaitVanishedAsync(children, TimeSpan.FromSeconds(30))).Should().BeTrue("pg_dump dies on its broken pipe");
        File.Exists(temp).Should().BeTrue();
        var leftBytes = new FileInfo(temp!).Length;

        // Another process's temp file that is being written right now: a live writer (this test) and a fresh mtime.
        var live = Path.Combine(dir, $".veloz_20260101_000000.dump.{Environment.ProcessId}.0badcafe.tmp");
        await File.WriteAllTextAsync(live, "being written");

        var before = await bed.RunAsync("verify");
        before.StdOut.Should().Contain(string.Create(CultureInfo.InvariantCulture, $"leftovers: 1 file of interrupted writes, {leftBytes} bytes"))
            .And.Contain("database/" + Path.GetFileName(temp));

        var next = await bed.RunAsync("backup", "database");
        next.ExitCode.Should().Be(0, next.StdOut + next.StdErr);
        File.Exists(temp).Should().BeFalse("the next backup of that kind removes its kind's leftovers");
        File.Exists(live).Should().BeTrue("a live writer's temp file is never removed");
        File.Delete(live);

        var after = await bed.RunAsync("verify");
        after.StdOut.Should().Contain("leftovers: none");
    }
}
