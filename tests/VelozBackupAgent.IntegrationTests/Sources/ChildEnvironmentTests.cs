using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.IntegrationTests.Pitr;
using VelozBackupAgent.IntegrationTests.Telemetry;
using VelozBackupAgent.Pitr;
using VelozBackupAgent.Sources;
using Xunit.Abstractions;

namespace VelozBackupAgent.IntegrationTests.Sources;

/// <summary>
/// The real binary, started with an S3 secret and a connection string holding a password in its environment, runs
/// every kind of child it has (daemon and verbs), while a sampler reads each child's /proc/PID/environ and cmdline as
/// it runs. The PostgreSQL tools and gpg are reached through wrappers that wait 0.2 s and then exec the real program
/// (same pid, same environment), so even a `--version` probe is seen alive.
/// </summary>
public sealed class ChildEnvironmentTests(ITestOutputHelper output)
{
    private const string AwsSecret = "aws-secret-5f1c0b7e9d";

    /// <summary>Every child the agent starts, by program; the test fails if one was not seen.</summary>
    private static readonly string[] Expected =
    [
        "pg_dump", "pg_dumpall", "pg_restore", "pg_basebackup", "pg_receivewal", "pg_ctl", "pg_verifybackup", "pg_waldump", "gpg", "getent", "runuser", "pg-wal-get",
        "Backup:Restore:StopCommand", "Backup:Restore:StartCommand", "Backup:Pitr:StopCommand", "Backup:Pitr:StartCommand",
    ];

    /// <summary>The programs that connect to PostgreSQL and so get the password (in PGPASSWORD, nowhere else).</summary>
    private static readonly string[] Connecting = ["pg_dump", "pg_dumpall", "pg_restore", "pg_basebackup", "pg_receivewal"];

    /// <summary>What a shell sets of its own (the spies and service commands are shells), and PGPASSWORD (checked apart).</summary>
    private static readonly HashSet<string> ShellOwn = ["PGPASSWORD", "PWD", "OLDPWD", "SHLVL", "_"];

    [Fact]
    public async Task No_child_sees_the_S3_secret_or_the_agents_configuration_and_the_password_only_in_PGPASSWORD()
    {
        await using var health = new HealthServer(() => true);
        var spy = "";
        await using var bed = await PitrTestBed.CreateAsync(configure: backup =>
        {
            var root = Path.GetDirectoryName((string)backup["LocalRoot"]!)!;
            spy = Path.Combine(root, "spybin");
            var database = PitrTestBed.Section(backup, "Database");
            database["Enabled"] = true;
            database["BinDirectory"] = spy;
            database.Remove("ConnectionString");
            var pitr = PitrTestBed.Section(backup, "Pitr");
            pitr["StopCommand"] = "/bin/sleep 0.2; " + pitr["StopCommand"];
            pitr["StartCommand"] = "/bin/sleep 0.2; " + pitr["StartCommand"];
            backup["Secrets"] = new { Enabled = true, Directory = Path.Combine(root, "etc", "veloz", "secrets"), Recipients = new[] { TestEnvironment.GpgRecipient }, GnupgHome = TestEnvironment.GnupgHome, GpgPath = Path.Combine(spy, "gpg") };
            backup["Restore"] = new { StopCommand = "/bin/sleep 0.2", StartCommand = "/bin/sleep 0.2", HealthUrl = health.Url, HealthTimeout = "00:00:20", Owner = "root:root" };
        });
        WriteSpies(spy);
        var secrets = Path.Combine(bed.ConfigRoot, "secrets");
        Directory.CreateDirectory(secrets, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        await File.WriteAllTextAsync(Path.Combine(secrets, "exchange_api.key"), "api-key");
        await bed.Cluster.ExecuteAsync($"ALTER ROLE {PitrTestBed.Role} CREATEDB");
        var env = new Dictionary<string, string?>
        {
            ["AWS_ACCESS_KEY_ID"] = "AKIAEXAMPLE",
            ["AWS_SECRET_ACCESS_KEY"] = AwsSecret,
            ["Backup__Database__ConnectionString"] = bed.ConnectionString,

            // getent is looked up on PATH: the spy's comes first.
            ["PATH"] = spy + ":" + Environment.GetEnvironmentVariable("PATH"),
        };
        bed.ConnectionString.Should().Contain(bed.RolePassword);

        ProcessSnapshot[] seen;
        await using (var sampler = new ProcessTreeSampler(VelozBackupBinary.AgentMarker))
        {
            await using (var daemon = RunningDaemon.Start(["--config", bed.ConfigPath], RunningDaemon.FreePort(), env))
            {
                await bed.WaitForStatusAsync(daemon, s => s.ReceiverUp, "the receiver streaming");
                await PitrTestBed.WaitForAsync(daemon, () => bed.LocalArtifacts().Any(n => n.EndsWith(".json", StringComparison.Ordinal)), "a base backup");
                var order = await bed.Orders.CommitAsync();
                await bed.WaitForStatusAsync(daemon, s => PitrStatus.Position(s.StoredLsn) >= Lsn.Parse(order.Lsn), "the order's WAL stored");
                (await daemon.StopAsync()).Should().Be(0, daemon.Console);
            }

            await RunAsync(bed, env, "backup", "database");
            await RunAsync(bed, env, "backup", "secrets");
            await RunAsync(bed, env, "restore", "database", "--into", "veloz_copy");
            // In place: the service's stop and start commands run, and the owner is resolved with getent.
            await RunAsync(bed, env, "restore", "secrets");
            await RunAsync(bed, env, "restore", "pitr", "--target-dir", Path.Combine(bed.Root, "scratch"));
            await RunAsync(bed, env, "restore", "pitr", "--yes", "--no-service");
            await Task.Delay(100);
            seen = [.. sampler.Snapshots];
            output.WriteLine($"{sampler.Scans} scans of /proc, {seen.Length} child snapshots");
        }

        foreach (var s in seen)
        {
            output.WriteLine($"{s}  [{string.Join(' ', s.Environment.Keys.Order(StringComparer.Ordinal))}]");
        }

        foreach (var program in Expected)
        {
            seen.Should().Contain(s => s.Runs(program) || IsService(s, program),
                $"{program} is a child of the agent and must have been seen running");
        }

        // The spies' own `sleep 0.2` inherit the spied child's environment; they are not the agent's children.
        foreach (var s in seen.Where(s => !s.Arguments.SequenceEqual(["/bin/sleep", "0.2"])))
        {
            // NULs shown as spaces, so a failure's message keeps the test log text (grep reads it).
            var environ = s.RawEnvironment.Replace('\0', ' ');
            environ.Should().NotContain(AwsSecret, $"{s} must not see the S3 secret");
            s.RawCommandLine.Replace('\0', ' ').Should().NotContain(AwsSecret).And.NotContain(bed.RolePassword, $"{s} must not have a secret on its command line");
            environ.Should().NotContain("Backup__").And.NotContain(bed.ConnectionString);
            s.Environment.Keys.Should().NotContain(k => k.StartsWith("AWS_", StringComparison.Ordinal) || k.StartsWith("VELOZ_", StringComparison.Ordinal) || k.StartsWith("DOTNET_", StringComparison.Ordinal),
                $"{s} gets an allow-listed environment");
            // (A PostgreSQL server process shows an empty environ: it reuses that memory for its ps title.)
            s.Environment.Keys.Where(k => !ChildEnvironment.Inherits(k, InheritedVariables.Libpq | InheritedVariables.Gnupg | InheritedVariables.Service) && !ShellOwn.Contains(k))
                .Should().BeEmpty($"{s} gets nothing beyond the allow-list");
            if (s.RawEnvironment.Contains(bed.RolePassword, StringComparison.Ordinal))
            {
                // A connecting program, or one it runs itself (pg_dumpall runs `sh -c "…/pg_dump" -V`), which inherits its environment.
                Connecting.Should().Contain(p => s.RawCommandLine.Contains(p, StringComparison.Ordinal), $"{s} does not connect to PostgreSQL and must not see the password");
                s.Environment.Where(e => e.Value.Contains(bed.RolePassword, StringComparison.Ordinal)).Select(e => e.Key).Should().Equal(["PGPASSWORD"]);
            }
        }

        seen.Where(s => s.Runs("gpg")).Should().OnlyContain(s => s.Environment.ContainsKey("GNUPGHOME") && !s.Environment.ContainsKey("PGPASSWORD"));
        seen.Where(s => s.Runs("pg_dump")).Should().Contain(s => s.Environment.GetValueOrDefault("PGPASSWORD") == bed.RolePassword, "pg_dump gets the password through PGPASSWORD, as before");
    }

    /// <summary>A service command is `sh -c "…"`: told apart by which command line it runs.</summary>
    private static bool IsService(ProcessSnapshot s, string key) => s.Runs("sh") && key switch
    {
        "Backup:Restore:StopCommand" or "Backup:Restore:StartCommand" => s.Arguments.Contains("/bin/sleep 0.2"),
        "Backup:Pitr:StopCommand" => s.RawCommandLine.Contains("/bin/sleep 0.2; ", StringComparison.Ordinal) && s.RawCommandLine.Contains("'stop'", StringComparison.Ordinal),
        "Backup:Pitr:StartCommand" => s.RawCommandLine.Contains("/bin/sleep 0.2; ", StringComparison.Ordinal) && s.RawCommandLine.Contains("'start'", StringComparison.Ordinal),
        _ => false,
    };

    private async Task RunAsync(PitrTestBed bed, Dictionary<string, string?> env, params string[] args)
    {
        var r = await VelozBackupBinary.RunAsync([.. args, "--config", bed.ConfigPath], env, TimeSpan.FromMinutes(3));
        output.WriteLine($"veloz-backup {string.Join(' ', args)}: exit {r.ExitCode}");
        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
    }

    /// <summary>A wrapper per PostgreSQL program and for gpg and getent (the shell adds PWD, OLDPWD, SHLVL, _ of its own): wait 0.2 s (so the sampler sees it alive), then exec the real one.</summary>
    private static void WriteSpies(string directory)
    {
        Directory.CreateDirectory(directory);
        File.SetUnixFileMode(directory, (UnixFileMode)0b111_101_101);
        var programs = Directory.GetFiles(TestEnvironment.PostgresBinDirectory).Append(ChildProcessPath("gpg")).Append(ChildProcessPath("getent"));
        foreach (var real in programs)
        {
            var wrapper = Path.Combine(directory, Path.GetFileName(real));
            File.WriteAllText(wrapper, $"#!/bin/sh\n/bin/sleep 0.2\nexec '{real}' \"$@\"\n");
            File.SetUnixFileMode(wrapper, (UnixFileMode)0b111_101_101);
        }
    }

    private static string ChildProcessPath(string program) =>
        VelozBackupAgent.Sources.ChildProcess.ResolveExecutable(program) ?? throw new InvalidOperationException($"{program} not on PATH");
}
