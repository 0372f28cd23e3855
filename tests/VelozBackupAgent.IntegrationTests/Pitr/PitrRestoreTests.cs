using System.Globalization;
using System.Text.RegularExpressions;
using Npgsql;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.IntegrationTests.Pitr;

/// <summary>
/// Point-in-time recovery on real PostgreSQL 15 clusters through the real binary: rows committed at t1 &lt; t2 &lt; t3 and a
/// restore to a time between t2 and t3 keeps t1 and t2 only; the new timeline is followed; targets by LSN, xid and
/// restore point; from S3 alone; and every way a restore can be impossible is refused before anything stops.
/// </summary>
public sealed partial class PitrRestoreTests
{
    [Fact]
    public async Task A_restore_to_a_time_between_t2_and_t3_keeps_t1_and_t2_and_the_new_timeline_is_followed_afterwards()
    {
        await using var bed = await PitrTestBed.CreateAsync(withS3: true);
        await using var daemon = bed.StartDaemon();
        await bed.WaitForStatusAsync(daemon, s => s.ReceiverUp, "the receiver streaming");
        await PitrTestBed.WaitForAsync(daemon, () => bed.LocalArtifacts().Any(n => n.EndsWith(".json", StringComparison.Ordinal)), "a base backup");

        var t1 = await bed.Orders.CommitAsync();
        var t2 = await bed.Orders.CommitAsync();
        await Task.Delay(300);
        var target = await bed.Cluster.ScalarAsync<DateTimeOffset>("SELECT clock_timestamp()");
        await Task.Delay(300);
        var t3 = await bed.Orders.CommitAsync();
        await bed.WaitForStatusAsync(daemon, s => PitrStatus.Position(s.StoredLsn) >= Lsn.Parse(t3.Lsn), "t3 stored");

        var r = await bed.RunAsync("restore", "pitr", "--target-time", target.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.ffffff", CultureInfo.InvariantCulture), "--yes", "--no-service");
        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        r.StdOut.Should().Contain("timeline 2").And.Contain("within the RTO (database corruption)").And.Contain("stopping PostgreSQL").And.Contain("replaying WAL to time");
        (await bed.Orders.IdsAsync()).Should().Contain([t1.Id, t2.Id]).And.NotContain(t3.Id);
        (await bed.Cluster.ScalarAsync<bool>("SELECT pg_is_in_recovery()")).Should().BeFalse();
        (await bed.Cluster.ScalarAsync<string>("SELECT pg_walfile_name(pg_current_wal_lsn())")).Should().StartWith("00000002");
        Directory.GetDirectories(Path.GetDirectoryName(bed.Cluster.DataDirectory)!).Select(Path.GetFileName).Where(n => n!.StartsWith("data.pre-restore-", StringComparison.Ordinal))
            .Should().ContainSingle("the replaced data directory is kept");
        File.ReadAllText(Path.Combine(bed.Cluster.DataDirectory, "postgresql.auto.conf")).Should().NotContain("restore_command", "the recovery settings are taken out after promotion");
        bed.LocalArtifacts().Count(n => n.EndsWith(".json", StringComparison.Ordinal)).Should().Be(2, "a new base backup was taken after the restore");

        // The cluster accepts writes; the daemon streams the new timeline; a scratch restore to the end follows it.
        var t4 = await bed.Orders.CommitAsync();
        await bed.WaitForStatusAsync(daemon, s => s.ReceiverUp && s.Timeline == 2 && PitrStatus.Position(s.StoredLsn) >= Lsn.Parse(t4.Lsn), "t4 streamed on timeline 2");
        var scratch = Path.Combine(bed.Root, "scratch-latest");
        r = await bed.RunAsync("restore", "pitr", "--target-dir", scratch, "--base", bed.LocalArtifacts().First(n => n.EndsWith(".json", StringComparison.Ordinal)));
        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        (await IdsInScratchAsync(bed, scratch, r.StdOut)).Should().Contain([t1.Id, t2.Id, t4.Id]).And.NotContain(t3.Id);

        // The same from S3 alone, after the local store is gone (a site failure).
        (await daemon.StopAsync()).Should().Be(0, daemon.Console);
        Directory.Delete(bed.PitrDirectory, recursive: true);
        var fromS3 = Path.Combine(bed.Root, "scratch-s3");
        r = await bed.RunAsync("restore", "pitr", "--target-dir", fromS3, "--from", "s3");
        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        (await IdsInScratchAsync(bed, fromS3, r.StdOut)).Should().Contain([t1.Id, t2.Id, t4.Id]).And.NotContain(t3.Id);
    }

    [Fact]
    public async Task Targets_by_LSN_xid_and_restore_point_stop_exactly_there()
    {
        await using var bed = await PitrTestBed.CreateAsync();
        await using var daemon = bed.StartDaemon();
        await bed.WaitForStatusAsync(daemon, s => s.ReceiverUp, "the receiver streaming");
        await PitrTestBed.WaitForAsync(daemon, () => bed.LocalArtifacts().Any(n => n.EndsWith(".json", StringComparison.Ordinal)), "a base backup");
        var c = new List<CommittedOrder>();
        for (var i = 0; i < 3; i++)
        {
            c.Add(await bed.Orders.CommitAsync());
        }

        await bed.Cluster.CreateRestorePointAsync("before_deletion");
        for (var i = 0; i < 3; i++)
        {
            c.Add(await bed.Orders.CommitAsync());
        }

        await bed.WaitForStatusAsync(daemon, s => PitrStatus.Position(s.StoredLsn) >= Lsn.Parse(c[^1].Lsn), "everything stored");

        var byLsn = Path.Combine(bed.Root, "by-lsn");
        var r = await bed.RunAsync("restore", "pitr", "--target-lsn", c[1].Lsn, "--target-dir", byLsn);
        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        (await IdsInScratchAsync(bed, byLsn, r.StdOut)).Should().Equal(c[0].Id, c[1].Id);

        var byXid = Path.Combine(bed.Root, "by-xid");
        r = await bed.RunAsync("restore", "pitr", "--target-xid", c[4].Xid.ToString(CultureInfo.InvariantCulture), "--target-dir", byXid);
        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        (await IdsInScratchAsync(bed, byXid, r.StdOut)).Should().Equal(c.Take(5).Select(o => o.Id));

        var byName = Path.Combine(bed.Root, "by-name");
        r = await bed.RunAsync("restore", "pitr", "--target-name", "before_deletion", "--target-dir", byName);
        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        r.StdOut.Should().Contain("before_deletion");
        (await IdsInScratchAsync(bed, byName, r.StdOut)).Should().Equal(c.Take(3).Select(o => o.Id));
        (await daemon.StopAsync()).Should().Be(0, daemon.Console);
    }

    [Fact]
    public async Task Unreachable_targets_and_missing_or_corrupt_WAL_are_refused_before_anything_stops()
    {
        await using var bed = await PitrTestBed.CreateAsync();
        var before = await bed.Cluster.ScalarAsync<DateTimeOffset>("SELECT clock_timestamp()");
        await bed.Orders.CommitAsync();
        await using var daemon = bed.StartDaemon();
        await bed.WaitForStatusAsync(daemon, s => s.ReceiverUp, "the receiver streaming");
        await PitrTestBed.WaitForAsync(daemon, () => bed.LocalArtifacts().Any(n => n.EndsWith(".json", StringComparison.Ordinal)), "a base backup");
        CommittedOrder last = null!;
        for (var i = 0; i < 3; i++)
        {
            last = await bed.Orders.CommitAsync();
            await bed.Cluster.SwitchWalAsync();
        }

        last = await bed.Orders.CommitAsync();
        await bed.WaitForStatusAsync(daemon, s => PitrStatus.Position(s.StoredLsn) >= Lsn.Parse(last.Lsn), "everything stored");
        (await daemon.StopAsync()).Should().Be(0, daemon.Console);

        // Before the oldest base backup.
        var r = await bed.RunAsync("restore", "pitr", "--target-time", before.UtcDateTime.ToString("O", CultureInfo.InvariantCulture), "--yes");
        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("is before the oldest usable base backup").And.Contain("nothing was stopped");
        await NothingStoppedAsync(bed);

        // After the newest stored commit.
        r = await bed.RunAsync("restore", "pitr", "--target-time", (await bed.Cluster.ScalarAsync<DateTimeOffset>("SELECT clock_timestamp() + interval '10 minutes'")).ToString("O", CultureInfo.InvariantCulture), "--yes");
        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("is not before the newest commit in the stored WAL").And.Contain("nothing was stopped");
        await NothingStoppedAsync(bed);

        // A restore point that does not exist, an LSN beyond the stored WAL.
        r = await bed.RunAsync("restore", "pitr", "--target-name", "no_such_point", "--yes");
        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("restore point 'no_such_point' is not in the stored WAL");
        r = await bed.RunAsync("restore", "pitr", "--target-lsn", "F/0", "--yes");
        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("missing").And.Contain("nothing was stopped");
        await NothingStoppedAsync(bed);

        // A corrupt segment: named, refused.
        var segments = bed.LocalArtifacts().Where(n => WalFileName.TryParse(n, out _)).ToList();
        var victim = segments[^2];
        var path = Path.Combine(bed.PitrDirectory, victim);
        var bytes = await File.ReadAllBytesAsync(path);
        bytes[10_000] ^= 0xFF;
        await File.WriteAllBytesAsync(path, bytes);
        r = await bed.RunAsync("restore", "pitr", "--yes");
        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain(victim).And.Contain("refusing to restore");
        await NothingStoppedAsync(bed);

        // A missing segment: the gap named.
        File.Delete(path);
        File.Delete(path + ".sha256");
        r = await bed.RunAsync("restore", "pitr", "--yes");
        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain(victim).And.Contain("missing").And.Contain("nothing was stopped");
        await NothingStoppedAsync(bed);

        // Without a confirmation nothing happens at all.
        r = await bed.RunAsync("restore", "pitr");
        r.ExitCode.Should().Be(2);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("--yes");
    }

    [Fact]
    public async Task The_drill_restores_to_the_newest_commit_in_a_scratch_cluster_and_records_it()
    {
        await using var bed = await PitrTestBed.CreateAsync();
        await using var daemon = bed.StartDaemon();
        await bed.WaitForStatusAsync(daemon, s => s.ReceiverUp, "the receiver streaming");
        await PitrTestBed.WaitForAsync(daemon, () => bed.LocalArtifacts().Any(n => n.EndsWith(".json", StringComparison.Ordinal)), "a base backup");
        var last = await bed.Orders.CommitAsync();
        await bed.WaitForStatusAsync(daemon, s => PitrStatus.Position(s.StoredLsn) >= Lsn.Parse(last.Lsn), "the commit stored");

        var r = await bed.RunAsync("verify", "--test-restore");
        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        r.StdOut.Should().MatchRegex(@"PASS\s+PITR tested to specific time").And.Contain("1 rows").And.Contain("removed again");
        r.StdOut.Should().MatchRegex(@"PASS\s+Recovery time within RTO").And.Contain("pitr ");
        Directory.GetDirectories(Path.GetDirectoryName(bed.Cluster.DataDirectory)!).Should().NotContain(d => d.Contains("veloz-pitr-drill", StringComparison.Ordinal), "the scratch cluster is removed");
        var state = await File.ReadAllTextAsync(Path.Combine(bed.LocalRoot, ".state", "restore-test.json"));
        state.Should().Contain("\"pitr\"");
        (await daemon.StopAsync()).Should().Be(0, daemon.Console);
    }

    [Fact]
    public async Task A_site_failure_restores_the_cluster_from_S3_alone_onto_a_new_empty_cluster()
    {
        await using var bed = await PitrTestBed.CreateAsync(withS3: true);
        CommittedOrder last;
        await using (var daemon = bed.StartDaemon())
        {
            await bed.WaitForStatusAsync(daemon, s => s.ReceiverUp, "the receiver streaming");
            await PitrTestBed.WaitForAsync(daemon, () => bed.LocalArtifacts().Any(n => n.EndsWith(".json", StringComparison.Ordinal)), "a base backup");
            for (var i = 0; i < 5; i++)
            {
                await bed.Orders.CommitAsync();
            }

            last = await bed.Orders.CommitAsync();
            await bed.WaitForStatusAsync(daemon, s => PitrStatus.Position(s.StoredLsnS3) >= Lsn.Parse(last.Lsn), "the last commit in S3");
            (await daemon.StopAsync()).Should().Be(0, daemon.Console);
        }

        var before = await bed.Orders.IdsAsync();

        // The site burns: the server dies, the local store is lost. A new host has a fresh, empty cluster.
        await bed.Cluster.KillAsync();
        Directory.Delete(bed.LocalRoot, recursive: true);
        Directory.CreateDirectory(bed.LocalRoot);
        await using var fresh = await PgCluster.CreateAsync(new PgClusterOptions { Start = false });
        var config = await File.ReadAllTextAsync(bed.ConfigPath);
        config = config.Replace(Json(bed.Cluster.DataDirectory), Json(fresh.DataDirectory), StringComparison.Ordinal)
            .Replace(Json(bed.Cluster.StopCommand), Json(fresh.StopCommand), StringComparison.Ordinal)
            .Replace(Json(bed.Cluster.StartCommand), Json(fresh.StartCommand), StringComparison.Ordinal);
        await File.WriteAllTextAsync(bed.ConfigPath, config);

        var r = await bed.RunAsync("restore", "full", "--yes", "--source", $"s3://{bed.Bucket}/{PitrTestBed.NodeName}", "--no-service");
        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        r.StdOut.Should().MatchRegex(@"pitr\s+base_\d{8}_\d{6}\.tar\.gz").And.Contain("new base backup:").And.Contain("within the RTO (complete site failure)");

        // The restored cluster listens where the old one did (its configuration came with the base backup).
        (await bed.Orders.IdsAsync()).Should().Equal(before);
        var roleLogsIn = new OrdersWriter(bed.ConnectionString);
        (await roleLogsIn.IdsAsync()).Should().Equal(before, "the app role came back with its password");
        Directory.GetDirectories(fresh.Root).Should().Contain(d => Path.GetFileName(d).StartsWith("data.pre-restore-", StringComparison.Ordinal), "the empty cluster is kept aside, not deleted");
        await fresh.RunAsOsUserAsync(fresh.Tool("pg_ctl"), "-D", fresh.DataDirectory, "-m", "immediate", "-w", "stop");
    }

    private static string Json(string value) => System.Text.Json.JsonSerializer.Serialize(value);

    private static async Task NothingStoppedAsync(PitrTestBed bed)
    {
        bed.Cluster.IsRunning.Should().BeTrue("PostgreSQL was never stopped");
        (await bed.Cluster.ScalarAsync<bool>("SELECT pg_is_in_recovery()")).Should().BeFalse();
        Directory.GetDirectories(Path.GetDirectoryName(bed.Cluster.DataDirectory)!).Select(Path.GetFileName).Where(n => n!.StartsWith("data.", StringComparison.Ordinal))
            .Should().BeEmpty("nothing was moved or staged beside the data directory");
    }

    /// <summary>Starts the scratch copy a restore left (on the port it printed), reads the order ids, stops it.</summary>
    internal static async Task<IReadOnlyList<long>> IdsInScratchAsync(PitrTestBed bed, string directory, string output)
    {
        var port = int.Parse(PortRegex().Match(output).Groups["port"].Value, CultureInfo.InvariantCulture);
        var pgCtl = bed.Cluster.Tool("pg_ctl");
        var log = Path.Combine(Path.GetDirectoryName(bed.Cluster.LogFile)!, Path.GetFileName(directory) + "-inspect.log");
        var start = await bed.Cluster.RunAsOsUserAsync(pgCtl, "-D", directory, "-l", log, "-w", "start");
        start.ExitCode.Should().Be(0, start.StdErr + (File.Exists(log) ? await File.ReadAllTextAsync(log) : ""));
        try
        {
            var writer = new OrdersWriter(new NpgsqlConnectionStringBuilder(bed.Cluster.ConnectionString(PitrTestBed.DatabaseName)) { Port = port }.ConnectionString);
            return await writer.IdsAsync();
        }
        finally
        {
            await bed.Cluster.RunAsOsUserAsync(pgCtl, "-D", directory, "-m", "fast", "-w", "stop");
        }
    }

    [GeneratedRegex(@"listens on 127\.0\.0\.1:(?<port>\d+)")]
    private static partial Regex PortRegex();
}
