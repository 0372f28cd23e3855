using System.Diagnostics;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace VelozBackupAgent.IntegrationTests.Faults;

/// <summary>
/// kill -9 of the real CLI at seeded random instants of every kind's backup (<c>backup wal|config|database|secrets|pitr</c>),
/// then: <c>list</c> shows only complete artifacts whose bytes match their checksum, every artifact stored before the
/// kill is still there and still verifies, and the next backup of that kind succeeds. The instants are drawn, with a
/// fixed seed, over the duration of the last unkilled run of the same kind, so a kill lands anywhere from
/// the runtime's start-up to the sidecar's rename. Like a crash under systemd (the unit's whole cgroup goes), the
/// agent's children are killed with it.
/// </summary>
public sealed class KillTrialTests(ITestOutputHelper output)
{
    /// <summary>Fixed: the same instants on every run, so a failure can be reproduced.</summary>
    public const int Seed = 20261202;

    /// <summary>Trials per kind (5 kinds).</summary>
    public const int TrialsPerKind = 6;

    [Fact]
    public async Task A_kill_at_any_instant_of_any_backup_leaves_only_complete_verifying_artifacts_and_the_next_backup_succeeds()
    {
        var suite = Stopwatch.StartNew();
        await using var bed = await FaultBed.CreateAsync(postgres: true, withS3: false);
        var random = new Random(Seed);
        var verified = new Dictionary<string, string>(StringComparer.Ordinal);
        var trials = 0;
        var killedRunning = 0;

        foreach (var kind in bed.Kinds)
        {
            // An unkilled run: an earlier artifact to protect, and how long a run takes here, now.
            await bed.ChangeSourceAsync(kind);
            var clock = Stopwatch.StartNew();
            var first = await bed.RunAsync("backup", kind);
            var duration = clock.Elapsed;
            first.ExitCode.Should().Be(0, first.StdOut + first.StdErr);
            await CheckAsync(bed, kind, verified, "after the first backup");
            output.WriteLine($"{kind}: an unkilled backup takes {FaultBed.Ms(duration)}");

            for (var i = 0; i < TrialsPerKind; i++)
            {
                await bed.ChangeSourceAsync(kind);
                var instant = TimeSpan.FromMilliseconds(random.NextDouble() * duration.TotalMilliseconds);
                using var cli = bed.Start("backup", kind);
                _ = cli.StandardOutput.ReadToEndAsync();
                _ = cli.StandardError.ReadToEndAsync();
                await Task.Delay(instant);
                var running = !cli.HasExited;
                var children = FaultBed.Descendants(cli.Id);
                LinuxProcesses.Kill(cli.Id);
                foreach (var child in children)
                {
                    LinuxProcesses.Kill(child);
                }

                await cli.WaitForExitAsync();
                await LinuxProcesses.WaitGoneAsync(children, TimeSpan.FromSeconds(10));
                trials++;
                killedRunning += running ? 1 : 0;
                var what = $"trial {trials} ({kind}, killed at {FaultBed.Ms(instant)}{(running ? "" : ", had already exited")})";
                var leftovers = Directory.Exists(Path.Combine(bed.LocalRoot, kind))
                    ? Directory.GetFiles(Path.Combine(bed.LocalRoot, kind)).Select(Path.GetFileName).Where(n => n!.StartsWith('.')).ToList()
                    : [];
                output.WriteLine(what + (leftovers.Count > 0 ? $"; hidden leftovers: {string.Join(", ", leftovers)}" : ""));

                await CheckAsync(bed, kind, verified, what);
                clock.Restart();
                var next = await bed.RunAsync("backup", kind);
                next.ExitCode.Should().Be(0, $"the backup after {what} must succeed: {next.StdOut}{next.StdErr}");

                // The next instant is drawn over this run's length: the machine's load changes while the suite runs.
                duration = clock.Elapsed;
            }

            await CheckAsync(bed, kind, verified, $"the last backup of {kind}");
        }

        var (counts, _) = await bed.StatusAsync();
        foreach (var kind in bed.Kinds)
        {
            counts[kind].Should().Be((await bed.ListAsync(kind)).Count, $"status counts the same complete {kind} artifacts as list");
        }

        output.WriteLine($"{trials} kill trials (seed {Seed}, {killedRunning} killed while running), {verified.Count} artifacts verified, {FaultBed.Ms(suite.Elapsed)} in all");
        trials.Should().Be(TrialsPerKind * bed.Kinds.Count);
    }

    /// <summary>
    /// What <c>list</c> shows is complete and verifies; nothing verified earlier is gone or changed. Adds what it
    /// verified to <paramref name="verified"/>.
    /// </summary>
    private static async Task CheckAsync(FaultBed bed, string kind, Dictionary<string, string> verified, string when)
    {
        var listed = await bed.ListAsync(kind);
        foreach (var a in listed)
        {
            a.Name.Should().NotStartWith(".", $"{when}: list must not show a temporary file");
            var path = bed.LocalPath(kind, a.Name);
            File.Exists(path).Should().BeTrue($"{when}: {a.Name} is listed");
            File.Exists(path + ".sha256").Should().BeTrue($"{when}: listed {a.Name} has its sidecar");
            var hash = FaultBed.Hash(path);
            hash.Should().Be(FaultBed.SidecarHash(path), $"{when}: listed {a.Name} matches its checksum");
            a.Sha256.Should().Be(hash, $"{when}: list shows {a.Name}'s checksum");
            new FileInfo(path).Length.Should().Be(a.Size);
        }

        var names = listed.Select(a => a.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var (key, hash) in verified.Where(v => v.Key.StartsWith(kind + "/", StringComparison.Ordinal)))
        {
            var name = key[(kind.Length + 1)..];
            names.Should().Contain(name, $"{when}: {name}, stored earlier, is still listed");
            FaultBed.Hash(bed.LocalPath(kind, name)).Should().Be(hash, $"{when}: {name}, stored earlier, is unchanged");
        }

        foreach (var a in listed)
        {
            verified[kind + "/" + a.Name] = a.Sha256!;
        }
    }
}
