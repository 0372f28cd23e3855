using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.IntegrationTests.Pitr;

/// <summary>
/// Continuous archiving against a real PostgreSQL 15 and a real s3rver, through the real daemon: a base backup, then
/// every commit's WAL in the local store and S3 within seconds, completed segments stored whole, no gap after the
/// receiver is killed, the server restarted, or the daemon down for a while.
/// </summary>
public sealed class PitrArchivingTests
{
    [Fact]
    public async Task A_base_backup_then_every_commit_reaches_the_store_and_S3_within_seconds()
    {
        await using var bed = await PitrTestBed.CreateAsync(withS3: true);
        await using var daemon = bed.StartDaemon();

        // No base backup yet: the start-up catch-up takes one, and the receiver streams.
        await PitrTestBed.WaitForAsync(daemon, () => bed.LocalArtifacts().Any(n => n.StartsWith("base_", StringComparison.Ordinal) && n.EndsWith(".json", StringComparison.Ordinal)), "a base backup");
        await bed.WaitForStatusAsync(daemon, s => s.ReceiverUp && s.StoredLsn is not null, "the receiver streaming");
        var baseInfo = bed.LocalArtifacts().Single(n => n.EndsWith(".json", StringComparison.Ordinal));
        var info = await BaseBackupInfo.ReadAsync(File.OpenRead(Path.Combine(bed.PitrDirectory, baseInfo)), CancellationToken.None);
        info.Timeline.Should().Be(1u);
        info.Start.Should().BeLessThan(info.Stop);
        bed.LocalArtifacts().Should().Contain(info.Archive);

        // A commit in the middle of a segment: stored as a piece, locally and then in S3.
        var commit = await bed.Orders.CommitAsync();
        var lsn = Lsn.Parse(commit.Lsn);
        await bed.WaitForStatusAsync(daemon, s => PitrStatus.Position(s.StoredLsn) >= lsn, "the commit's WAL stored locally");
        await bed.WaitForStatusAsync(daemon, s => PitrStatus.Position(s.StoredLsnS3) >= lsn && s.RecoveryPointS3 >= commit.CommittedBy, "the commit's WAL in S3");
        var segment = WalFileName.Containing(1, lsn, info.WalSegmentSize);
        bed.LocalArtifacts().Should().Contain(n => n.StartsWith(segment + ".", StringComparison.Ordinal) && n.EndsWith(".partial", StringComparison.Ordinal),
            "the segment being written is stored in pieces");
        (await bed.S3ArtifactsAsync()).Should().Contain(n => n.StartsWith(segment + ".", StringComparison.Ordinal));

        // The segment completes: stored whole, its pieces gone locally, copied to S3.
        var switched = await bed.Cluster.SwitchWalAsync();
        await PitrTestBed.WaitForAsync(daemon, () => bed.LocalArtifacts().Contains(switched.CompletedSegment), "the completed segment stored");
        await PitrTestBed.WaitForAsync(daemon, () => !bed.LocalArtifacts().Any(n => n.StartsWith(switched.CompletedSegment + ".", StringComparison.Ordinal)), "its pieces removed");
        (await PitrTestBed.EventuallyAsync(async () => (await bed.S3ArtifactsAsync()).Contains(switched.CompletedSegment), TimeSpan.FromSeconds(30)))
            .Should().BeTrue("the completed segment reaches S3");
        var sidecar = await File.ReadAllTextAsync(Path.Combine(bed.PitrDirectory, switched.CompletedSegment + ".sha256"));
        sidecar.Should().EndWith($"  {switched.CompletedSegment}\n", "sha256sum -c works by hand");
        File.GetUnixFileMode(Path.Combine(bed.PitrDirectory, switched.CompletedSegment)).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);

        // The checklist agrees, and status and list show it.
        var verify = await bed.RunAsync("verify");
        verify.StdOut.Should().MatchRegex(@"PASS\s+WAL continuity \(local").And.MatchRegex(@"PASS\s+WAL continuity \(s3").And.MatchRegex(@"PASS\s+PITR WAL current");
        verify.ExitCode.Should().Be(0, verify.StdOut + verify.StdErr);
        var status = await bed.RunAsync("status");
        status.StdOut.Should().Contain("PITR: receiver up since");
        var list = await bed.RunAsync("list", "pitr", "--target", "local");
        list.StdOut.Should().Contain(info.Archive).And.Contain(switched.CompletedSegment);

        (await daemon.StopAsync()).Should().Be(0, daemon.Console);
    }

    [Fact]
    public async Task A_killed_receiver_and_a_restarted_server_leave_no_gap()
    {
        await using var bed = await PitrTestBed.CreateAsync();
        await using var daemon = bed.StartDaemon();
        await bed.WaitForStatusAsync(daemon, s => s.ReceiverUp, "the receiver streaming");
        await PitrTestBed.WaitForAsync(daemon, () => bed.LocalArtifacts().Any(n => n.EndsWith(".json", StringComparison.Ordinal)), "a base backup");
        await bed.Orders.CommitAsync();
        await bed.Cluster.SwitchWalAsync();

        // SIGKILL pg_receivewal in the middle of a segment; the daemon starts it again and nothing is missing.
        var pid = bed.ReceiverPid() ?? throw new InvalidOperationException("no pg_receivewal under the test bed:\n" + daemon.Console);
        LinuxProcesses.Kill(pid);
        for (var i = 0; i < 20; i++)
        {
            await bed.Orders.CommitAsync();
        }

        await bed.WaitForStatusAsync(daemon, s => s.ReceiverUp && s.Restarts >= 1, "the receiver started again");

        // The server restarts (fast stop, start): the receiver loses its connection and comes back.
        await bed.Cluster.RestartAsync();
        var last = await bed.Orders.CommitAsync();
        await bed.Cluster.SwitchWalAsync();
        var lsn = Lsn.Parse(last.Lsn);
        await bed.WaitForStatusAsync(daemon, s => s.ReceiverUp && PitrStatus.Position(s.StoredLsn) >= lsn, "WAL after the restart stored");

        var verify = await bed.RunAsync("verify");
        verify.StdOut.Should().MatchRegex(@"PASS\s+WAL continuity \(local", verify.StdOut);
        (await daemon.StopAsync()).Should().Be(0, daemon.Console);
    }

    [Fact]
    public async Task With_the_daemon_down_the_slot_holds_the_WAL_and_the_next_start_closes_the_gap()
    {
        await using var bed = await PitrTestBed.CreateAsync();
        await using (var first = bed.StartDaemon())
        {
            await bed.WaitForStatusAsync(first, s => s.ReceiverUp, "the receiver streaming");
            await PitrTestBed.WaitForAsync(first, () => bed.LocalArtifacts().Any(n => n.EndsWith(".json", StringComparison.Ordinal)), "a base backup");
            (await first.StopAsync()).Should().Be(0, first.Console);
        }

        // Three segments of WAL while nothing streams: the slot keeps them on the server.
        CommittedOrder? last = null;
        for (var i = 0; i < 3; i++)
        {
            last = await bed.Orders.CommitAsync();
            await bed.Cluster.SwitchWalAsync();
        }

        var retained = await bed.Cluster.ScalarAsync<long>("SELECT pg_current_wal_lsn() - restart_lsn FROM pg_replication_slots WHERE slot_name = 'veloz_backup'");
        retained.Should().BeGreaterThan(2L * 16 * 1024 * 1024, "the slot holds back what was not streamed");

        await using var second = bed.StartDaemon();
        var lsn = Lsn.Parse(last!.Lsn);
        await bed.WaitForStatusAsync(second, s => s.ReceiverUp && PitrStatus.Position(s.StoredLsn) >= lsn, "the gap closed");
        var verify = await bed.RunAsync("verify");
        verify.StdOut.Should().MatchRegex(@"PASS\s+WAL continuity \(local", verify.StdOut);
        (await second.StopAsync()).Should().Be(0, second.Console);
    }

    [Fact]
    public async Task Backup_pitr_takes_a_base_backup_that_tar_and_sha256sum_read()
    {
        await using var bed = await PitrTestBed.CreateAsync();
        await bed.Orders.CommitAsync();
        var r = await bed.RunAsync("backup", "pitr");
        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        r.StdOut.Should().Contain("pitr").And.Contain("succeeded").And.Contain("timeline 1");
        var archive = bed.LocalArtifacts().Single(n => n.EndsWith(".tar.gz", StringComparison.Ordinal));
        bed.LocalArtifacts().Should().Contain(Path.ChangeExtension(Path.ChangeExtension(archive, null), null) + ".json");

        var check = await ChildProcess.RunAsync("sha256sum", ["-c", archive + ".sha256"], workingDirectory: bed.PitrDirectory);
        check.ExitCode.Should().Be(0, check.StdErr);
        var tar = await ChildProcess.RunAsync("tar", ["-tzf", Path.Combine(bed.PitrDirectory, archive)]);
        tar.ExitCode.Should().Be(0, tar.StdErr);
        tar.StdOut.Split('\n').Should().Contain("backup_label").And.Contain("backup_manifest").And.Contain("global/pg_control")
            .And.Contain(l => l.StartsWith("pg_wal/0000000100000000000000", StringComparison.Ordinal));

        // The slot exists afterwards, so the WAL after this base is kept until a receiver streams it.
        (await bed.Cluster.ScalarAsync<long>("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'veloz_backup'")).Should().Be(1);
        var status = await bed.RunAsync("status", "--json");
        status.StdOut.Should().Contain("\"kind\": \"pitr\"");
    }
}
