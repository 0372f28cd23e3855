using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Bench;

/// <summary>
/// bench/run.sh --quick, the benchmark on tiny data, as a child process: so the harness never rots. It checks that
/// the script runs every row (exit 0, each row in the table, none failed), writes the table where told, never
/// touches bench/RESULTS.md in quick mode, and leaves no temp directory or process behind. No timing is asserted.
/// </summary>
public sealed class BenchHarnessTests : IDisposable
{
    private static readonly string[] Rows =
    [
        "P1-cp", "P1-cp-fsync", "P1-rsync", "P1-agent",
        "P2-local", "P2-s3", "P2-cron-local", "P2-cron-s3",
        "P3-pg_dump", "P3-agent", "P4-seeds", "P4-agent",
        "P5-P1-small", "P5-P1-full", "P5-P3-small", "P5-P3-full", "P5-P4-small", "P5-P4-full",
        "P6-rsync", "P6-agent", "P6-agent-start", "P6-first-rsync", "P6-first-agent", "P6-inproc", "P7-daemon",
        "P8-pg_dump", "P8-basebackup", "P8-basebackup-dir", "P8-basebackup-gzip", "P8-agent",
        "P9-5s-received", "P9-5s-local", "P9-5s-s3", "P9-1s-received", "P9-1s-local", "P9-1s-s3",
        "P9-runbook", "P9-dump-local", "P9-dump-s3",
        "R1-seeds", "R1-agent", "R2-seeds", "R2-agent", "R3-hand", "R3-agent",
    ];

    /// <summary>P9's measured rows: a commit count, then p50, p99 and max (ms, s or h), then the goal's verdict.</summary>
    private static readonly string[] P9Measured =
        ["P9-5s-received", "P9-5s-local", "P9-5s-s3", "P9-1s-received", "P9-1s-local", "P9-1s-s3"];

    private const UnixFileMode Mode0755 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
        UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    private static readonly TimeSpan QuickRunTimeout = TimeSpan.FromMinutes(20);

    private readonly string _scratch = CreateScratch();

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    /// <summary>A temp directory the postgres user can traverse: the script runs PostgreSQL as postgres when it is root.</summary>
    private static string CreateScratch()
    {
        var scratch = Directory.CreateTempSubdirectory("veloz-bench-test-").FullName;
        File.SetUnixFileMode(scratch, Mode0755);
        return scratch;
    }

    [Fact]
    public async Task The_quick_run_prints_every_row_writes_the_table_and_leaves_nothing_behind()
    {
        var repo = RepositoryRoot();
        var results = Path.Combine(repo, "bench", "RESULTS.md");
        var resultsBefore = File.Exists(results) ? Convert.ToHexString(SHA256.HashData(await File.ReadAllBytesAsync(results))) : null;
        var work = Directory.CreateDirectory(Path.Combine(_scratch, "tmp"), Mode0755).FullName;
        var output = Path.Combine(_scratch, "out", "quick.md");

        var r = await RunBenchAsync(repo, work, ["--quick", "--out", output]);

        r.ExitCode.Should().Be(0, "the quick run must pass; its stderr:\n" + Tail(r.StdErr));
        var tableLines = r.StdOut.Split('\n').Where(l => l.StartsWith("| ", StringComparison.Ordinal)).ToList();
        foreach (var row in Rows)
        {
            tableLines.Should().Contain(l => l.StartsWith($"| {row} |", StringComparison.Ordinal), $"row {row} belongs in the table");
        }

        tableLines.Should().NotContain(l => l.Contains("FAILED", StringComparison.Ordinal) || l.Contains("not run", StringComparison.Ordinal));
        r.StdOut.Should().Contain("## Machine").And.Contain("## Headline ratios");
        foreach (var agentRestore in new[] { "R1-agent", "R2-agent" })
        {
            var line = tableLines.Single(l => l.StartsWith($"| {agentRestore} |", StringComparison.Ordinal));
            if (!line.Contains("n/a (restore verb not available)", StringComparison.Ordinal))
            {
                line.Should().MatchRegex(@"\| \d+(\.\d+)? s \|", "a restore row is either n/a or measured");
            }
        }

        foreach (var row in new[] { "R3-hand", "R3-agent" })
        {
            tableLines.Single(l => l.StartsWith($"| {row} |", StringComparison.Ordinal))
                .Should().MatchRegex(@"\| \d+(\.\d+)? s \|", $"{row} (PITR from S3, checked afterwards) is measured");
        }

        r.StdOut.Should().Contain("## R3 point-in-time recovery").And.Contain("| Step (R3-agent) |");

        // P8: every row is measured and has the size of what it wrote.
        foreach (var row in new[] { "P8-pg_dump", "P8-basebackup", "P8-basebackup-dir", "P8-basebackup-gzip", "P8-agent" })
        {
            tableLines.Single(l => l.StartsWith($"| {row} |", StringComparison.Ordinal))
                .Should().MatchRegex(@"\| \d+(\.\d+)? s \| .* \| \d+(\.\d+)? [MG]iB( \(×[\d.]+ of the tar\))? \|", $"{row} is measured and has its output size");
        }

        foreach (var row in P9Measured)
        {
            tableLines.Single(l => l.StartsWith($"| {row} |", StringComparison.Ordinal))
                .Should().MatchRegex(@"\| [1-9]\d* \| (\d+ ms|\d+\.\d+ s) \| (\d+ ms|\d+\.\d+ s) \| (\d+ ms|\d+\.\d+ s) \| (local ≤ 1 s|S3 ≤ 6 s): (met|missed)",
                    $"{row} is measured over the quick window and judged against the issue's goal");
        }

        r.StdOut.Should().Contain("## P8 base backup").And.Contain("## P9 database recovery point")
            .And.Contain("The issue's goals, per setting:").And.Contain("Resolution: ");
        File.Exists(output).Should().BeTrue("--out names where the table goes");
        (await File.ReadAllTextAsync(output)).Should().Contain("| P1-agent |").And.Contain("Quick mode");
        var resultsAfter = File.Exists(results) ? Convert.ToHexString(SHA256.HashData(await File.ReadAllBytesAsync(results))) : null;
        resultsAfter.Should().Be(resultsBefore, "a quick run never overwrites bench/RESULTS.md");

        Directory.EnumerateDirectories(work, "veloz-bench.*").Should().BeEmpty("the harness removes its temp directory");
        ProcessesMentioning(work).Should().BeEmpty("the harness stops every process it started");
    }

    [Fact]
    public async Task A_quick_run_of_only_some_groups_runs_those_alone()
    {
        var repo = RepositoryRoot();
        var work = Directory.CreateDirectory(Path.Combine(_scratch, "tmp"), Mode0755).FullName;
        var output = Path.Combine(_scratch, "out", "only.md");

        var r = await RunBenchAsync(repo, work, ["--quick", "--only", "r3", "--reps", "1", "--out", output]);

        r.ExitCode.Should().Be(0, "the quick run of R3 alone must pass; its stderr:\n" + Tail(r.StdErr));
        var tableLines = r.StdOut.Split('\n').Where(l => l.StartsWith("| ", StringComparison.Ordinal)).ToList();
        foreach (var row in new[] { "R3-hand", "R3-agent" })
        {
            tableLines.Single(l => l.StartsWith($"| {row} |", StringComparison.Ordinal)).Should().MatchRegex(@"\| 1 \| \d+(\.\d+)? s \|");
        }

        tableLines.Should().NotContain(l => Regex.IsMatch(l, @"^\| (\*\*)?(P\d|R1|R2)[- ]"), "only R3 was asked for: no other group's row or title");
        tableLines.Should().NotContain(l => l.Contains("FAILED", StringComparison.Ordinal) || l.Contains("not run", StringComparison.Ordinal));
        r.StdOut.Should().Contain("**Only the groups R3 ran**").And.Contain("| Step (R3-agent) |").And.NotContain("## P8").And.NotContain("## P9");
        r.StdErr.Should().NotContain("P1:").And.NotContain("P9:", "the other groups' sections do not run");
        File.Exists(output).Should().BeTrue();
        Directory.EnumerateDirectories(work, "veloz-bench.*").Should().BeEmpty("the harness removes its temp directory");
        ProcessesMentioning(work).Should().BeEmpty("the harness stops every process it started");
    }

    [Theory]
    [InlineData("--only", "X9", "--only: unknown group 'X9'")]
    [InlineData("--only", ",", "--only needs groups")]
    [InlineData("--only", "R1", "--only must not overwrite bench/RESULTS.md")]
    public async Task Only_refuses_an_unknown_group_and_the_full_results_file(string option, string value, string error)
    {
        var repo = RepositoryRoot();
        var work = Directory.CreateDirectory(Path.Combine(_scratch, "tmp"), Mode0755).FullName;

        var r = await RunBenchAsync(repo, work, [option, value, "--out", Path.Combine(repo, "bench", "RESULTS.md")]);

        r.ExitCode.Should().Be(2);
        r.StdErr.Should().Contain(error);
        Directory.EnumerateDirectories(work, "veloz-bench.*").Should().BeEmpty();
    }

    [Fact]
    public async Task A_quick_run_refuses_to_overwrite_the_full_results()
    {
        var repo = RepositoryRoot();
        var work = Directory.CreateDirectory(Path.Combine(_scratch, "tmp"), Mode0755).FullName;

        var r = await RunBenchAsync(repo, work, ["--quick", "--out", Path.Combine(repo, "bench", "..", "bench", "RESULTS.md")]);

        r.ExitCode.Should().Be(2);
        r.StdErr.Should().Contain("--quick must not overwrite bench/RESULTS.md");
        Directory.EnumerateDirectories(work, "veloz-bench.*").Should().BeEmpty();
    }

    /// <summary>Runs the script with its temp directory under <paramref name="work"/>; on timeout SIGTERM first, so its trap cleans up.</summary>
    private static async Task<ProcessResult> RunBenchAsync(string repo, string work, IEnumerable<string> args)
    {
        using var p = ChildProcess.Start("bash", [Path.Combine(repo, "bench", "run.sh"), .. args],
            new Dictionary<string, string?> { ["TMPDIR"] = work, ["VELOZ_BENCH_KEEP_RESULTS"] = null }, workingDirectory: repo);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(QuickRunTimeout);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            await ChildProcess.RunAsync("kill", ["-TERM", p.Id.ToString(CultureInfo.InvariantCulture)]);
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            try
            {
                await p.WaitForExitAsync(grace.Token);
            }
            catch (OperationCanceledException)
            {
                p.Kill(entireProcessTree: true);
            }

            throw new TimeoutException($"bench/run.sh {string.Join(' ', args)} did not finish within {QuickRunTimeout.TotalMinutes} min; stderr:\n{Tail(await stderr)}");
        }

        return new ProcessResult(p.ExitCode, await stdout, await stderr);
    }

    private static string Tail(string text)
    {
        var lines = text.Split('\n');
        return string.Join('\n', lines.Skip(Math.Max(0, lines.Length - 40)));
    }

    private static List<string> ProcessesMentioning(string path)
    {
        var found = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (cmdline.Contains(path, StringComparison.Ordinal))
                {
                    found.Add($"{pid}: {cmdline}");
                }
            }
            catch (IOException)
            {
                // The process ended while we looked.
            }
            catch (UnauthorizedAccessException)
            {
                // Not ours to read.
            }
        }

        return found;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "bench", "run.sh")) && File.Exists(Path.Combine(dir.FullName, "VelozBackupAgent.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("bench/run.sh not found above " + AppContext.BaseDirectory);
    }
}
