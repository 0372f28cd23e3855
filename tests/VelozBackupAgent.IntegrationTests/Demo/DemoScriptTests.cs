using System.Text.RegularExpressions;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.IntegrationTests.Systemd;

namespace VelozBackupAgent.IntegrationTests.Demo;

/// <summary>
/// The real one-command demo (scripts/demo.sh), run non-interactively for a while: every kind lands locally
/// and in S3, and nothing the demo started is left running afterwards.
/// </summary>
[Collection(ReleaseBuildCollection.Name)]
public sealed partial class DemoScriptTests
{
    [Fact]
    public async Task The_demo_backs_up_every_kind_locally_and_to_S3_and_leaves_nothing_running()
    {
        var environment = new Dictionary<string, string?>
        {
            // Every kind runs once at start-up (it has never run); 60 s leave time for that and the S3 copies.
            ["VELOZ_DEMO_SECONDS"] = "60",
            // The demo makes its own configuration, servers and credentials: nothing from the test run leaks in.
            ["GNUPGHOME"] = null, ["VELOZ_BACKUP_CONFIG"] = null, ["Backup__Log__File"] = null,
            ["AWS_ACCESS_KEY_ID"] = null, ["AWS_SECRET_ACCESS_KEY"] = null, ["PGPASSFILE"] = null,
        };

        var r = await ChildProcess.RunAsync("bash", [Path.Combine(RepoPaths.Root, "scripts", "demo.sh"), "--keep"], environment, timeout: TimeSpan.FromMinutes(10));

        var sandbox = SandboxLine().Match(r.StdErr).Groups[1].Value;
        sandbox.Should().StartWith("/tmp/veloz-demo.", r.StdErr);
        try
        {
            r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
            r.StdOut.Should().MatchRegex(@"metrics\s+http://127\.0\.0\.1:\d+/metrics").And.MatchRegex(@"health\s+http://127\.0\.0\.1:\d+/health");
            r.StdOut.Should().Contain($"{sandbox}/bin/veloz-backup status").And.Contain($"{sandbox}/bin/veloz-backup list");

            foreach (var kind in new[] { "wal", "config", "database", "secrets", "pitr" })
            {
                var local = Path.Combine(sandbox, "backup", kind);
                Directory.GetFiles(local, "*.sha256").Should().NotBeEmpty($"the demo backed up {kind} locally");
                var s3 = Path.Combine(sandbox, "s3", "veloz-backups", "demo", kind);
                Directory.Exists(s3).Should().BeTrue($"the demo replicated {kind} to S3");
                Directory.GetFiles(s3, "*._S3rver_object").Where(f => !f.EndsWith(".sha256._S3rver_object", StringComparison.Ordinal))
                    .Should().NotBeEmpty($"an artifact of {kind} is in the s3rver bucket");
            }

            r.StdOut.Should().MatchRegex(@"database\s+s3\s+[1-9]", "the demo's closing status shows the dump in S3");
            r.StdOut.Should().Contain("PITR: ", "the closing status shows the WAL stream");
            Directory.GetFiles(Path.Combine(sandbox, "backup", "pitr"), "base_*.json").Should().NotBeEmpty("the demo took a base backup");
            Directory.GetFiles(Path.Combine(sandbox, "backup", "wal"), "orders_0*.wal").Length.Should().BeGreaterThan(2, "the live writer sealed segments the watcher shipped");

            // Nothing the demo started runs on: neither the processes it recorded, nor anything naming its sandbox.
            var started = (await File.ReadAllLinesAsync(Path.Combine(sandbox, "demo.pids"))).Select(l => l.Split(' ')).ToList();
            started.Select(p => p[0]).Should().Contain(["s3rver", "postgres", "wal-writer", "agent"]);
            foreach (var p in started)
            {
                IsRunning(int.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture)).Should().BeFalse($"{p[0]} (pid {p[1]}) was stopped");
            }

            ProcessesNaming(sandbox).Should().BeEmpty("no process of the demo is left");
        }
        finally
        {
            if (sandbox.StartsWith("/tmp/veloz-demo.", StringComparison.Ordinal) && Directory.Exists(sandbox))
            {
                Directory.Delete(sandbox, recursive: true);
            }
        }
    }

    private static bool IsRunning(int pid)
    {
        var status = $"/proc/{pid}/status";
        try
        {
            return !File.ReadAllLines(status).Any(l => l.StartsWith("State:", StringComparison.Ordinal) && l.Contains('Z', StringComparison.Ordinal));
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static List<string> ProcessesNaming(string sandbox)
    {
        var found = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories("/proc").Where(d => int.TryParse(Path.GetFileName(d), out _)))
        {
            try
            {
                var commandLine = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (commandLine.Contains(sandbox, StringComparison.Ordinal) && IsRunning(int.Parse(Path.GetFileName(dir), System.Globalization.CultureInfo.InvariantCulture)))
                {
                    found.Add($"{Path.GetFileName(dir)}: {commandLine}");
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Gone while we looked.
            }
        }

        return found;
    }

    [GeneratedRegex(@"demo\.sh: sandbox: (\S+)")]
    private static partial Regex SandboxLine();
}
