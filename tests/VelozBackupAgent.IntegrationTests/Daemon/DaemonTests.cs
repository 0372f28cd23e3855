using System.Diagnostics;
using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Daemon;

/// <summary>The real binary: the backup verb and the daemon, against the real PostgreSQL cluster.</summary>
public sealed class DaemonTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-daemon-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private List<string> Args(PostgresDatabase database, params string[] verb) =>
    [
        .. verb,
        $"--Backup:LocalRoot={_root}",
        $"--Backup:Log:File={Path.Combine(_root, "..", Path.GetFileName(_root) + ".log")}",
        "--Backup:Wal:Enabled=false", "--Backup:Config:Enabled=false", "--Backup:Secrets:Enabled=false",
        $"--Backup:Database:ConnectionString={database.ConnectionString}",
        $"--Backup:Database:BinDirectory={TestEnvironment.PostgresBinDirectory}",

        // The cluster globals beside each dump are encrypted to the secrets' recipients, even with that kind off.
        $"--Backup:Secrets:Recipients:0={TestEnvironment.GpgRecipient}", $"--Backup:Secrets:GnupgHome={TestEnvironment.GnupgHome}",

        // The daemon's metrics listener: never the default port, which another test or agent may hold.
        $"--Backup:Http:Url=http://127.0.0.1:{Telemetry.RunningDaemon.FreePort()}",
    ];

    [Fact]
    public async Task Backup_database_writes_one_dump_with_its_globals_and_prints_one_row()
    {
        await using var database = await PostgresDatabase.CreateAsync();
        await database.SeedOrdersAsync(100);

        var r = await VelozBackupBinary.RunAsync(Args(database, "backup", "database"));

        r.ExitCode.Should().Be(0, r.StdErr);
        r.StdOut.Should().MatchRegex(@"database\s+succeeded\s+" + database.Name.Replace("_", "[-_]", StringComparison.Ordinal) + @"_\d{8}_\d{6}\.dump \(\+1 more\)");
        Directory.GetFiles(Path.Combine(_root, "database"), "*.dump").Should().ContainSingle();
        Directory.GetFiles(Path.Combine(_root, "database"), "globals_*.sql.gpg").Should().ContainSingle();
    }

    [Fact]
    public async Task A_database_backup_whose_globals_cannot_be_encrypted_fails_in_one_line_and_keeps_the_dump()
    {
        await using var database = await PostgresDatabase.CreateAsync();
        await database.SeedOrdersAsync(10);

        var r = await VelozBackupBinary.RunAsync([.. Args(database, "backup", "database"), "--Backup:Secrets:Recipients:0=nobody@example.invalid"]);

        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should()
            .MatchRegex(@"^veloz-backup: backup database failed: the dump \S+\.dump is stored, but the cluster globals are not: Backup:Secrets:Recipients: no public key for nobody@example\.invalid .*; a restore onto a new server would lack its roles$");
        Directory.GetFiles(Path.Combine(_root, "database"), "*.dump.sha256").Should().ContainSingle();
        Directory.GetFiles(Path.Combine(_root, "database"), "globals_*").Should().BeEmpty();
    }

    [Fact]
    public async Task A_wrong_password_is_one_line_exit_1_and_never_shows_the_password()
    {
        await using var database = await PostgresDatabase.CreateAsync();
        var args = Args(database, "backup", "database");
        args.Add("--Backup:Database:ConnectionString=" + new Npgsql.NpgsqlConnectionStringBuilder(database.ConnectionString) { Password = "wrong-Pa55word-canary" }.ConnectionString);

        var r = await VelozBackupBinary.RunAsync(args);

        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("password authentication failed");
        (r.StdOut + r.StdErr).Should().NotContain("wrong-Pa55word-canary");
        Directory.EnumerateFiles(_root, "*.dump", SearchOption.AllDirectories).Should().BeEmpty();
    }

    [Fact]
    public async Task An_invalid_cron_expression_stops_the_daemon_at_start_up_naming_the_key()
    {
        await using var database = await PostgresDatabase.CreateAsync();
        var args = Args(database, "run");
        args.Add("--Backup:Database:Schedule=0 0 25 * * ?");

        var r = await VelozBackupBinary.RunAsync(args, timeout: TimeSpan.FromSeconds(60));

        r.ExitCode.Should().Be(2);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("Backup:Database:Schedule is not a valid Quartz cron expression");
    }

    [Fact]
    public async Task The_daemon_catches_up_a_missed_daily_dump_at_start_up_and_stops_cleanly_on_SIGTERM()
    {
        await using var database = await PostgresDatabase.CreateAsync();
        await database.SeedOrdersAsync(100);

        using var daemon = VelozBackupBinary.Start(Args(database, "run"));
        try
        {
            var dumps = Path.Combine(_root, "database");
            var deadline = Stopwatch.StartNew();
            while (!(Directory.Exists(dumps) && Directory.GetFiles(dumps, "*.dump.sha256").Length == 1) && deadline.Elapsed < TimeSpan.FromSeconds(60))
            {
                daemon.HasExited.Should().BeFalse("the daemon must keep running");
                await Task.Delay(100);
            }

            Directory.GetFiles(dumps, "*.dump.sha256").Should().ContainSingle("the daily dump had never run, so it runs at start-up");
        }
        finally
        {
            if (!daemon.HasExited)
            {
                (await ChildProcess.RunAsync("kill", ["-TERM", daemon.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])).ExitCode.Should().Be(0);
            }
        }

        (await WaitForExitAsync(daemon, TimeSpan.FromSeconds(60))).Should().BeTrue("SIGTERM stops the daemon");
        daemon.ExitCode.Should().Be(0);

        // Its log says when each kind runs next; Quartz's own set-up lines stay below the configured level.
        var output = await daemon.StandardOutput.ReadToEndAsync();
        output.Should().MatchRegex(@"backup database: schedule 0 0 2 \* \* \? \([^)]+\), next run \d{4}-\d{2}-\d{2} \d{2}:\d{2}:00Z");
        output.Should().NotContain("RAMJobStore").And.NotContain("Quartz Scheduler created");
    }

    private static async Task<bool> WaitForExitAsync(Process process, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            return false;
        }
    }
}
