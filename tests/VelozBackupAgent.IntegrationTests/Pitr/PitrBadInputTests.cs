using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.IntegrationTests.Telemetry;
using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.IntegrationTests.Pitr;

/// <summary>
/// Every way continuous archiving can be set up wrong, on a real server: one line that names what to change (for the
/// one-shot <c>backup pitr</c> and in the daemon's status), a metric that shows it, the other kinds keep running, and
/// nothing already stored is harmed.
/// </summary>
public sealed class PitrBadInputTests
{
    private static readonly Action<Dictionary<string, object?>> WithConfigKind = b => PitrTestBed.Section(b, "Config")["Enabled"] = true;

    [Fact]
    public async Task Wal_level_minimal_names_the_setting()
    {
        await using var bed = await PitrTestBed.CreateAsync(cluster: new PgClusterOptions
        {
            Settings = new Dictionary<string, string> { ["wal_level"] = "minimal", ["max_wal_senders"] = "0" },
        }, configure: WithConfigKind);
        var r = await bed.RunAsync("backup", "pitr");
        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("wal_level is minimal").And.Contain("postgresql.conf").And.Contain("restart PostgreSQL");
        await DaemonReportsAsync(bed, PitrFailure.ServerSettings, "wal_level is minimal");
    }

    [Fact]
    public async Task A_role_without_replication_is_told_the_ALTER_ROLE_to_run()
    {
        await using var bed = await PitrTestBed.CreateAsync(replication: false, configure: WithConfigKind);
        var r = await bed.RunAsync("backup", "pitr");
        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("role veloz may not stream WAL").And.Contain("ALTER ROLE veloz REPLICATION");
        await DaemonReportsAsync(bed, PitrFailure.Privilege, "ALTER ROLE veloz REPLICATION");
    }

    [Fact]
    public async Task No_replication_line_in_pg_hba_is_named_with_the_line_to_add()
    {
        await using var bed = await PitrTestBed.CreateAsync(cluster: new PgClusterOptions { ReplicationHba = false }, configure: WithConfigKind);
        var r = await bed.RunAsync("backup", "pitr");
        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("pg_hba.conf").And.Contain("host replication veloz");
        await DaemonReportsAsync(bed, PitrFailure.Hba, "host replication veloz");
    }

    [Fact]
    public async Task A_slot_in_use_by_another_receiver_is_named_with_its_pid()
    {
        await using var bed = await PitrTestBed.CreateAsync(configure: WithConfigKind);
        await bed.Cluster.ExecuteAsync("SELECT pg_create_physical_replication_slot('veloz_backup', true)");
        var squatter = Path.Combine(bed.Cluster.Root, "squatter");
        Directory.CreateDirectory(squatter);
        using var other = ChildProcess.Start(bed.Cluster.Tool("pg_receivewal"), ["-D", squatter, "--slot", "veloz_backup", "--no-loop"], bed.Cluster.ClientEnvironment());
        (await PitrTestBed.EventuallyAsync(async () => await bed.Cluster.ScalarAsync<bool>("SELECT active FROM pg_replication_slots WHERE slot_name = 'veloz_backup'"), TimeSpan.FromSeconds(20)))
            .Should().BeTrue("the other receiver holds the slot");
        try
        {
            await DaemonReportsAsync(bed, PitrFailure.SlotActive, "is in use by PID");
        }
        finally
        {
            other.Kill();
        }
    }

    [Fact]
    public async Task Missing_tools_are_named_with_what_to_install()
    {
        var empty = Directory.CreateTempSubdirectory("veloz-no-pg-tools-").FullName;
        try
        {
            await using var bed = await PitrTestBed.CreateAsync(configure: b =>
            {
                WithConfigKind(b);
                PitrTestBed.Section(b, "Database")["BinDirectory"] = empty;
            });
            var r = await bed.RunAsync("backup", "pitr");
            r.ExitCode.Should().Be(1);
            r.ErrorLines.Should().ContainSingle().Which.Should().Contain("pg_basebackup not found").And.Contain("Backup:Database:BinDirectory");
            await DaemonReportsAsync(bed, PitrFailure.Tools, "pg_receivewal not found");
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
        }
    }

    [Fact]
    public async Task Tools_older_than_the_server_are_refused_before_they_run()
    {
        var old = Directory.CreateTempSubdirectory("veloz-old-pg-tools-").FullName;
        try
        {
            foreach (var tool in new[] { "pg_receivewal", "pg_basebackup" })
            {
                var path = Path.Combine(old, tool);
                await File.WriteAllTextAsync(path, $"#!/bin/sh\necho '{tool} (PostgreSQL) 14.10'\n");
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }

            await using var bed = await PitrTestBed.CreateAsync(configure: b =>
            {
                WithConfigKind(b);
                PitrTestBed.Section(b, "Database")["BinDirectory"] = old;
            });
            var r = await bed.RunAsync("backup", "pitr");
            r.ExitCode.Should().Be(1);
            r.ErrorLines.Should().ContainSingle().Which.Should().Contain("pg_basebackup 14.10").And.Contain("older than the server (PostgreSQL 15)");
            await DaemonReportsAsync(bed, PitrFailure.Tools, "older than the server");
        }
        finally
        {
            Directory.Delete(old, recursive: true);
        }
    }

    [RootFact]
    public async Task A_full_spool_disk_is_reported_and_streaming_resumes_once_there_is_room()
    {
        await using var bed = await PitrTestBed.CreateAsync(configure: WithConfigKind);
        var base1 = await bed.RunAsync("backup", "pitr");
        base1.ExitCode.Should().Be(0, base1.StdErr);
        var stored = bed.LocalArtifacts();

        // 8 MiB cannot hold one 16 MiB segment: pg_receivewal fails to create it.
        Directory.CreateDirectory(bed.SpoolDirectory);
        foreach (var leftover in Directory.EnumerateFiles(bed.SpoolDirectory))
        {
            File.Delete(leftover);
        }

        (await ChildProcess.RunAsync("mount", ["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", bed.SpoolDirectory])).ExitCode.Should().Be(0);
        var mounted = true;
        try
        {
            await using var daemon = bed.StartDaemon();
            await bed.WaitForStatusAsync(daemon, s => s.Failure == PitrFailure.DiskFull, "the full spool reported");
            bed.Status!.LastError.Should().Contain("disk is full");
            var scrape = new Scrape(await daemon.ScrapeAsync());
            scrape["veloz_backup_pitr_failures_total{reason=\"disk_full\"}"].Should().BeGreaterThan(0);

            foreach (var name in stored)
            {
                var check = await ChildProcess.RunAsync("sha256sum", ["-c", name + ".sha256"], workingDirectory: bed.PitrDirectory);
                check.ExitCode.Should().Be(0, $"{name} is unharmed: {check.StdErr}");
            }

            (await ChildProcess.RunAsync("umount", [bed.SpoolDirectory])).ExitCode.Should().Be(0);
            mounted = false;
            var commit = await bed.Orders.CommitAsync();
            await bed.WaitForStatusAsync(daemon, s => s.ReceiverUp && PitrStatus.Position(s.StoredLsn) >= Lsn.Parse(commit.Lsn), "streaming resumed once there was room");
            (await daemon.StopAsync()).Should().Be(0, daemon.Console);
        }
        finally
        {
            if (mounted)
            {
                await ChildProcess.RunAsync("umount", ["-l", bed.SpoolDirectory]);
            }
        }
    }

    /// <summary>
    /// The daemon reports <paramref name="failure"/> in its status and metrics with a line containing
    /// <paramref name="text"/>, while the configuration kind still backs up.
    /// </summary>
    private static async Task DaemonReportsAsync(PitrTestBed bed, PitrFailure failure, string text)
    {
        await using var daemon = bed.StartDaemon();
        var status = await bed.WaitForStatusAsync(daemon, s => s.Failure == failure, $"the receiver to report {failure}");
        status.LastError.Should().Contain(text);
        status.ReceiverUp.Should().BeFalse();

        var scrape = new Scrape(await daemon.ScrapeAsync());
        scrape["veloz_backup_pitr_receiver_up"].Should().Be(0);
        scrape[$"veloz_backup_pitr_failures_total{{reason=\"{PgTools.Label(failure)}\"}}"].Should().BeGreaterThan(0);

        // The other kinds keep running: the configuration kind's start-up backup lands.
        var configDir = Path.Combine(bed.LocalRoot, BackupKinds.Config);
        await PitrTestBed.WaitForAsync(daemon, () => Directory.Exists(configDir) && Directory.EnumerateFiles(configDir, "config_*.tar.gz.sha256").Any(), "the configuration backup");
        daemon.Console.Should().NotContain("Unhandled exception");
        (await daemon.StopAsync()).Should().Be(0, daemon.Console);
    }
}
