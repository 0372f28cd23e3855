using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.IntegrationTests.Pitr;

/// <summary>
/// <c>veloz-backup pg-wal-push %p</c>, PostgreSQL's archive_command for servers that do not stream: durable before it
/// exits 0, idempotent for the same bytes, never an overwrite, and only real WAL of this cluster.
/// </summary>
public sealed class PgWalPushTests
{
    [Fact]
    public async Task PostgreSQL_archives_through_it_and_a_repeated_push_is_a_no_op_but_other_bytes_are_refused()
    {
        await using var bed = await PitrTestBed.CreateAsync(cluster: new PgClusterOptions
        {
            Settings = new Dictionary<string, string> { ["archive_mode"] = "on" },
        }, configure: b => PitrTestBed.Section(b, "Pitr")["Streaming"] = false);

        // The server runs archive_command as its own OS user: it must be able to write the store and read the config.
        if (PgCluster.RunningAsRoot)
        {
            (await ChildProcess.RunAsync("chown", ["-R", bed.Cluster.OsUser, bed.LocalRoot])).ExitCode.Should().Be(0);
            File.SetUnixFileMode(bed.Root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }

        var command = $"{VelozBackupBinary.ShellCommand} pg-wal-push %p --config '{bed.ConfigPath}'";
        await bed.Cluster.ExecuteAsync($"ALTER SYSTEM SET archive_command = '{command.Replace("'", "''", StringComparison.Ordinal)}'");
        await bed.Cluster.ReloadAsync();
        await bed.Orders.CommitAsync();
        var switched = await bed.Cluster.SwitchWalAsync();
        (await PitrTestBed.EventuallyAsync(() => Task.FromResult(bed.LocalArtifacts().Contains(switched.CompletedSegment)), TimeSpan.FromSeconds(60)))
            .Should().BeTrue($"PostgreSQL archived {switched.CompletedSegment} through pg-wal-push; server log:\n{await File.ReadAllTextAsync(bed.Cluster.LogFile)}");
        (await bed.Cluster.ScalarAsync<long>("SELECT failed_count FROM pg_stat_archiver")).Should().Be(0);

        // Pushing the same file again succeeds without writing anything new.
        var stored = Path.Combine(bed.PitrDirectory, switched.CompletedSegment);
        var again = Path.Combine(bed.Root, switched.CompletedSegment);
        File.Copy(stored, again);
        var r = await bed.RunAsync("pg-wal-push", again);
        r.ExitCode.Should().Be(0, r.StdErr);

        // Other bytes under that name: refused, the stored copy untouched.
        var before = await File.ReadAllBytesAsync(stored);
        var tampered = (byte[])before.Clone();
        tampered[20_000] ^= 0xFF;
        await File.WriteAllBytesAsync(again, tampered);
        r = await bed.RunAsync("pg-wal-push", again);
        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain($"{switched.CompletedSegment} is already stored with other bytes").And.Contain("NOT stored");
        (await File.ReadAllBytesAsync(stored)).Should().Equal(before);
    }

    [Fact]
    public async Task Files_that_are_not_WAL_of_this_cluster_are_refused_in_one_line()
    {
        await using var bed = await PitrTestBed.CreateAsync(configure: b => PitrTestBed.Section(b, "Pitr")["Streaming"] = false);
        await using var other = await PgCluster.CreateAsync();

        // A real segment of this cluster first (it decides which cluster the store archives).
        var mine = await bed.Cluster.SwitchWalAsync();
        var mineCopy = await CopyOutAsync(bed.Cluster, mine.CompletedSegment, bed.Root);
        (await bed.RunAsync("pg-wal-push", mineCopy)).ExitCode.Should().Be(0);

        // Another cluster's segment (another system identifier) under a name this store does not hold yet.
        await other.ExecuteAsync("SELECT pg_switch_wal()");
        var theirs = await other.SwitchWalAsync();
        var theirsCopy = await CopyOutAsync(other, theirs.CompletedSegment, Path.Combine(bed.Root, "other"));
        var r = await bed.RunAsync("pg-wal-push", theirsCopy);
        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("system identifier");

        // Random bytes under a segment name, a file that is not WAL by name, a missing file.
        var junk = Path.Combine(bed.Root, "000000010000000000000042");
        await File.WriteAllBytesAsync(junk, new byte[16 * 1024 * 1024]);
        r = await bed.RunAsync("pg-wal-push", junk);
        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("000000010000000000000042").And.Contain("not stored");

        var notWal = Path.Combine(bed.Root, "notes.txt");
        await File.WriteAllTextAsync(notWal, "hello");
        r = await bed.RunAsync("pg-wal-push", notWal);
        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("notes.txt is not a WAL file name");

        r = await bed.RunAsync("pg-wal-push", Path.Combine(bed.Root, "000000010000000000000099"));
        r.ExitCode.Should().Be(2);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("no such file");
        bed.LocalArtifacts().Should().Equal(mine.CompletedSegment);
    }

    [Fact]
    public async Task With_pitr_disabled_nothing_is_stored_and_PostgreSQL_keeps_its_WAL()
    {
        await using var bed = await PitrTestBed.CreateAsync(configure: b => PitrTestBed.Section(b, "Pitr")["Enabled"] = false);
        var switched = await bed.Cluster.SwitchWalAsync();
        var copy = await CopyOutAsync(bed.Cluster, switched.CompletedSegment, bed.Root);
        var r = await bed.RunAsync("pg-wal-push", copy);
        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("Backup:Pitr:Enabled is false");
        bed.LocalArtifacts().Should().BeEmpty();
    }

    [Fact]
    public async Task Pg_wal_get_assembles_the_segment_being_written_from_local_then_S3_and_refuses_a_corrupt_copy()
    {
        await using var bed = await PitrTestBed.CreateAsync(withS3: true);
        CommittedOrder commit;
        await using (var daemon = bed.StartDaemon())
        {
            await bed.WaitForStatusAsync(daemon, s => s.ReceiverUp, "the receiver streaming");

            // The start-up base backup ends with a WAL switch: commit after it, into a segment that stays open.
            await PitrTestBed.WaitForAsync(daemon, () => bed.LocalArtifacts().Any(n => n.EndsWith(".json", StringComparison.Ordinal)), "a base backup");
            commit = await bed.Orders.CommitAsync();
            await bed.WaitForStatusAsync(daemon, s => PitrStatus.Position(s.StoredLsnS3) >= Lsn.Parse(commit.Lsn), "the commit in S3");
            (await daemon.StopAsync()).Should().Be(0, daemon.Console);
        }

        var segment = WalFileName.Containing(1, Lsn.Parse(commit.Lsn), 16L * 1024 * 1024).ToString();
        bed.LocalArtifacts().Should().NotContain(segment, "the segment is still being written: only its pieces are stored");
        var live = await File.ReadAllBytesAsync(Path.Combine(bed.Cluster.DataDirectory, "pg_wal", segment));
        var covered = (int)(Lsn.Parse(commit.Lsn).Value % (16UL * 1024 * 1024));

        var local = Path.Combine(bed.Root, "from-local");
        var r = await bed.RunAsync("pg-wal-get", segment, local);
        r.ExitCode.Should().Be(0, r.StdErr);
        var bytes = await File.ReadAllBytesAsync(local);
        bytes.Should().HaveCount(16 * 1024 * 1024, "PostgreSQL wants a whole segment: the rest is zeros");
        bytes.AsSpan(0, covered).SequenceEqual(live.AsSpan(0, covered)).Should().BeTrue("the pieces hold what the server wrote up to the commit");

        // The local store is gone: from S3.
        Directory.Delete(bed.PitrDirectory, recursive: true);
        var s3 = Path.Combine(bed.Root, "from-s3");
        r = await bed.RunAsync("pg-wal-get", segment, s3);
        r.ExitCode.Should().Be(0, r.StdErr);
        (await File.ReadAllBytesAsync(s3)).AsSpan(0, covered).SequenceEqual(live.AsSpan(0, covered)).Should().BeTrue();

        // Not stored at all: PostgreSQL's end of WAL.
        r = await bed.RunAsync("pg-wal-get", "000000010000000000000099", Path.Combine(bed.Root, "none"));
        r.ExitCode.Should().Be(1);

        // A corrupt copy in S3: exit 126, so PostgreSQL aborts rather than ending recovery early; no crash.
        var objects = Directory.GetFiles(bed.S3!.DataDirectory, "*._S3rver_object", SearchOption.AllDirectories)
            .Where(f => f.Contains(segment + ".", StringComparison.Ordinal) && !f.Contains(".sha256", StringComparison.Ordinal)).ToList();
        objects.Should().NotBeEmpty();
        var piece = await File.ReadAllBytesAsync(objects[0]);
        piece[piece.Length / 2] ^= 0xFF;
        await File.WriteAllBytesAsync(objects[0], piece);
        var corrupt = Path.Combine(bed.Root, "corrupt");
        r = await bed.RunAsync("pg-wal-get", segment, corrupt);
        r.ExitCode.Should().Be(126, r.StdErr);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain(segment).And.Contain("in s3").And.Contain("checksum mismatch").And.NotContain("Expected hash");
        r.StdErr.Should().NotContain("Unhandled exception");
        File.Exists(corrupt).Should().BeFalse();
    }

    private static async Task<string> CopyOutAsync(PgCluster cluster, string segment, string directory)
    {
        Directory.CreateDirectory(directory);
        var target = Path.Combine(directory, segment);
        // pg_wal is the server user's; copy as that user into a place we read, then own it.
        var source = Path.Combine(cluster.DataDirectory, "pg_wal", segment);
        var r = await ChildProcess.RunAsync("cp", [source, target]);
        r.ExitCode.Should().Be(0, r.StdErr);
        return target;
    }
}
