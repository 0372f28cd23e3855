using System.Security.Cryptography;
using VelozBackupAgent.Pitr;
using VelozBackupAgent.Storage.Checksums;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Tests.Pitr;

/// <summary>The pure parts of a point-in-time restore: targets, pg_waldump lines, error lines, settings files, assembly of pieces.</summary>
public sealed class PitrRestoreLogicTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-pitr-logic-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void No_target_is_the_end_of_the_WAL_and_a_time_without_a_zone_is_UTC()
    {
        PitrTarget.Parse(null, null, null, null).Should().Be(PitrTarget.Latest);
        var t = PitrTarget.Parse("2026-02-23 11:55:00", null, null, null);
        t.Time.Should().Be(new DateTimeOffset(2026, 2, 23, 11, 55, 0, TimeSpan.Zero));
        t.Setting().Should().Be(("recovery_target_time", "2026-02-23 11:55:00.000000+00"));
        PitrTarget.Parse("2026-02-23T13:55:00+02:00", null, null, null).Setting().Should().Be(("recovery_target_time", "2026-02-23 11:55:00.000000+00"), "an offset is converted, the server gets UTC");
    }

    [Fact]
    public void Lsn_xid_and_name_targets_become_their_settings()
    {
        PitrTarget.Parse(null, "0/5000060", null, null).Setting().Should().Be(("recovery_target_lsn", "0/5000060"));
        PitrTarget.Parse(null, null, "735", null).Setting().Should().Be(("recovery_target_xid", "735"));
        PitrTarget.Parse(null, null, null, "before_deletion").Setting().Should().Be(("recovery_target_name", "before_deletion"));
        PitrTarget.Latest.Setting().Should().BeNull();
    }

    [Theory]
    [InlineData("tomorrow", null, null, null, "--target-time: not a time")]
    [InlineData(null, "5000060", null, null, "--target-lsn: not a WAL position")]
    [InlineData(null, null, "-3", null, "--target-xid: not a transaction id")]
    [InlineData(null, null, null, "it's", "--target-name: not a restore point name")]
    [InlineData("2026-02-23 11:55", "0/1", null, null, "give one target")]
    public void Bad_targets_are_one_line(string? time, string? lsn, string? xid, string? name, string expected)
    {
        var parse = () => PitrTarget.Parse(time, lsn, xid, name);
        parse.Should().Throw<ArgumentException>().Which.Message.Should().StartWith(expected);
    }

    [Fact]
    public void Pg_waldump_lines_give_commits_and_restore_points()
    {
        var commit = WalDump.Parse("rmgr: Transaction len (rec/tot):     34/    34, tx:        735, lsn: 0/03002348, prev 0/03002310, desc: COMMIT 2026-12-01 22:27:51.797469 UTC");
        commit.Should().Be(new WalEvent(Lsn.Parse("0/3002348"), "735", new DateTimeOffset(2026, 12, 1, 22, 27, 51, TimeSpan.Zero).AddTicks(7974690), null));
        var point = WalDump.Parse("rmgr: XLOG        len (rec/tot):     98/    98, tx:          0, lsn: 0/03000208, prev 0/030001D0, desc: RESTORE_POINT before_deletion");
        point!.RestorePoint.Should().Be("before_deletion");
        WalDump.Parse("rmgr: Heap        len (rec/tot):     59/    59, tx:        736, lsn: 0/03002380, prev 0/03002348, desc: INSERT off 3 flags 0x00").Should().BeNull();
        WalDump.Parse("pg_waldump: error: error in WAL record at 0/3002380: invalid record length").Should().BeNull();
    }

    [Theory]
    [InlineData("pg_receivewal: error: FATAL:  no pg_hba.conf entry for replication connection from host \"127.0.0.1\", user \"veloz\", no encryption", PitrFailure.Hba, "host replication veloz")]
    [InlineData("pg_receivewal: error: FATAL:  must be superuser or replication role to start walsender", PitrFailure.Privilege, "ALTER ROLE veloz REPLICATION")]
    [InlineData("pg_receivewal: error: could not send replication command \"START_REPLICATION\": ERROR:  replication slot \"veloz_backup\" is active for PID 4242", PitrFailure.SlotActive, "PID 4242")]
    [InlineData("pg_receivewal: error: FATAL:  number of requested standby connections exceeds max_wal_senders (currently 0)", PitrFailure.ServerSettings, "max_wal_senders")]
    [InlineData("pg_receivewal: error: FATAL:  password authentication failed for user \"veloz\"", PitrFailure.Connection, "refused the password")]
    [InlineData("pg_receivewal: error: could not open write-ahead log file \"000000010000000000000007.partial\": No space left on device", PitrFailure.DiskFull, "disk is full")]
    [InlineData("pg_receivewal: error: incompatible server version 16.1", PitrFailure.Tools, "client tools of the server's major version")]
    [InlineData("pg_receivewal: error: something nobody expected", PitrFailure.Other, "pg_receivewal stopped: something nobody expected")]
    public void Receiver_errors_become_one_line_naming_what_to_change(string stderr, PitrFailure failure, string expected)
    {
        var (f, line) = PgTools.Explain(stderr, "database veloz at 127.0.0.1:5432", "veloz", "veloz_backup", "pg_receivewal stopped");
        f.Should().Be(failure);
        line.Should().Contain(expected).And.NotContain("\n");
    }

    [Fact]
    public void Recovery_settings_come_out_again_and_a_scratch_copy_keeps_its_own()
    {
        var auto = Path.Combine(_root, "postgresql.auto.conf");
        File.WriteAllText(auto, """
            # Do not edit this file manually!
            work_mem = '8MB'

            # veloz-backup restore pitr 20261201T000000Z: recovery settings, removed again after promotion
            restore_command = 'veloz-backup pg-wal-get %f %p --staged /x'
            recovery_target_timeline = '2'
            recovery_target_action = 'promote'
            port = '54321'
            # veloz-backup restore pitr end
            """.Replace("\r", "", StringComparison.Ordinal));
        PitrRestorer.RemoveRecoverySettings(_root, keepScratchSettings: true);
        var kept = File.ReadAllText(auto);
        kept.Should().Contain("work_mem = '8MB'").And.Contain("port = '54321'").And.NotContain("restore_command").And.NotContain("recovery_target");

        PitrRestorer.RemoveRecoverySettings(_root, keepScratchSettings: false);
        File.ReadAllText(auto).Should().Contain("work_mem = '8MB'").And.Contain("port = '54321'", "the scratch lines are plain lines now");
    }

    [Fact]
    public void The_outcome_comes_from_the_new_timelines_history_file()
    {
        var wal = Directory.CreateDirectory(Path.Combine(_root, "pg_wal")).FullName;
        File.WriteAllText(Path.Combine(wal, "00000002.history"), "1\t0/3002348\tbefore transaction 737\n");
        var outcome = PitrRestorer.ReadOutcome(_root);
        outcome.Should().Be(new PitrOutcome(2, Lsn.Parse("0/3002348"), "before transaction 737"));
    }

    [Fact]
    public async Task Overlapping_pieces_assemble_into_the_segment_padded_with_zeros()
    {
        const int Segment = 1024 * 1024;
        var store = new LocalArtifactStore(_root);
        var data = new byte[0x5000];
        new Random(7).NextBytes(data);
        var file = WalFileName.Parse("000000010000000000000003");
        (uint Start, uint End)[] ranges = [(0, 0x1800), (0x1800, 0x2A10), (0x2000, 0x2E00), (0x2E00, 0x5000)];
        var names = new List<string>();
        foreach (var (start, end) in ranges)
        {
            var name = PitrArtifact.PieceName(file, start, end);
            await store.WriteAsync(BackupKinds.Pitr, name, new MemoryStream(data[(int)start..(int)end]));
            names.Add(name);
        }

        var target = Path.Combine(_root, "assembled");
        await using (var output = File.Create(target))
        {
            await WalFetch.WritePiecesAsync(store, names, Segment, output, CancellationToken.None);
        }

        var bytes = await File.ReadAllBytesAsync(target);
        bytes.Should().HaveCount(Segment);
        bytes.AsSpan(0, data.Length).SequenceEqual(data).Should().BeTrue();
        bytes.AsSpan(data.Length).IndexOfAnyExcept((byte)0).Should().Be(-1);
    }

    [Fact]
    public async Task A_staged_file_is_restored_only_when_its_checksum_matches()
    {
        var staged = Directory.CreateDirectory(Path.Combine(_root, "staged")).FullName;
        var name = "000000010000000000000003";
        var bytes = RandomNumberGenerator.GetBytes(4096);
        await File.WriteAllBytesAsync(Path.Combine(staged, name), bytes);
        await File.WriteAllBytesAsync(Path.Combine(staged, name + Sha256Sidecar.Suffix), Sha256Sidecar.FormatBytes(Convert.ToHexStringLower(SHA256.HashData(bytes)), name));
        var target = Path.Combine(_root, "RECOVERYXLOG");

        var (ok, _) = await WalFetch.FromStagedAsync(staged, name, target, CancellationToken.None);
        ok.Should().Be(WalFetchResult.Restored);
        (await File.ReadAllBytesAsync(target)).Should().Equal(bytes);

        var (missing, line) = await WalFetch.FromStagedAsync(staged, "000000010000000000000004", target, CancellationToken.None);
        missing.Should().Be(WalFetchResult.NotStored);
        WalFetch.ExitCode(missing).Should().Be(1, "PostgreSQL's end of WAL");
        line.Should().Contain("not in");

        bytes[100] ^= 1;
        await File.WriteAllBytesAsync(Path.Combine(staged, name), bytes);
        var (corrupt, why) = await WalFetch.FromStagedAsync(staged, name, Path.Combine(_root, "RECOVERYXLOG2"), CancellationToken.None);
        corrupt.Should().Be(WalFetchResult.Failed);
        WalFetch.ExitCode(corrupt).Should().Be(126, "PostgreSQL aborts recovery rather than end it early");
        why.Should().Contain(name);
        File.Exists(Path.Combine(_root, "RECOVERYXLOG2")).Should().BeFalse("nothing half-checked is handed over");

        (await WalFetch.FromStagedAsync(staged, "notes.txt", target, CancellationToken.None)).Result.Should().Be(WalFetchResult.NotStored);
    }
}
