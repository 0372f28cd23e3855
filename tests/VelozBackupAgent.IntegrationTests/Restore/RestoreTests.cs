using System.Globalization;
using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Restore;

/// <summary>The single-kind restore procedures of the runbook, through the real binary, on real files, PostgreSQL and gpg.</summary>
public sealed class RestoreTests
{
    [Fact]
    public async Task Restore_wal_at_a_time_before_an_accidental_deletion_brings_the_directory_back_as_it_was()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        (await bed.RunAsync("backup", "wal")).ExitCode.Should().Be(0);
        var before = RestoreTestBed.Snapshot(bed.WalDirectory);
        var firstManifest = Directory.GetFiles(Path.Combine(bed.LocalRoot, "wal"), "wal-manifest_*.json").Single();
        var at = DateTimeOffset.ParseExact(Path.GetFileName(firstManifest)["wal-manifest_".Length..][..15], "yyyyMMdd_HHmmss", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);

        // The accident: two segments deleted, then the next sync records the directory without them.
        File.Delete(Path.Combine(bed.WalDirectory, "orders_0000000000000002.wal"));
        File.Delete(Path.Combine(bed.WalDirectory, "orders_0000000000000005.wal"));
        while (TimeProvider.System.GetUtcNow() < at.AddSeconds(1))
        {
            await Task.Delay(50); // the second manifest must carry a later second in its name
        }

        (await bed.RunAsync("backup", "wal")).ExitCode.Should().Be(0);
        Directory.GetFiles(Path.Combine(bed.LocalRoot, "wal"), "wal-manifest_*.json").Should().HaveCount(2);

        var latest = await bed.RunAsync("restore", "wal", "--target", Path.Combine(bed.Root, "wal-latest"));
        latest.ExitCode.Should().Be(0, latest.StdErr);
        RestoreTestBed.Snapshot(Path.Combine(bed.Root, "wal-latest")).Keys.Should().HaveCount(5, "the newest manifest recorded the directory after the deletion");

        var restore = await bed.RunAsync("restore", "wal", "--at", at.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
        restore.ExitCode.Should().Be(0, restore.StdErr);
        RestoreTestBed.Snapshot(bed.WalDirectory).Should().BeEquivalentTo(before, "contents and modes as they were at that sync");
        (await File.ReadAllLinesAsync(bed.ServiceLog)).Should().Equal("started", "stopped", "started");
        var kept = Directory.GetDirectories(Path.GetDirectoryName(bed.WalDirectory)!, "wal.pre-restore-*").Should().ContainSingle().Subject;
        RestoreTestBed.Snapshot(kept).Keys.Should().HaveCount(5, "the directory it replaced is kept, never deleted");
        restore.StdErr.Should().Contain("kept as " + kept);
    }

    [Fact]
    public async Task A_flipped_byte_in_a_stored_segment_is_refused_before_the_wal_directory_is_touched()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        (await bed.RunAsync("backup", "wal")).ExitCode.Should().Be(0);
        File.Delete(Path.Combine(bed.WalDirectory, "orders_0000000000000003.wal"));
        var damaged = RestoreTestBed.Snapshot(bed.WalDirectory);
        FlipByte(Path.Combine(bed.LocalRoot, "wal", "orders_0000000000000004.wal"));

        var restore = await bed.RunAsync("restore", "wal");
        restore.ExitCode.Should().Be(1);
        restore.ErrorLines.Should().ContainSingle().Which.Should().Contain("orders_0000000000000004.wal").And.Contain("nothing was restored");
        RestoreTestBed.Snapshot(bed.WalDirectory).Should().BeEquivalentTo(damaged);
        (await File.ReadAllLinesAsync(bed.ServiceLog)).Should().Equal(["started"], "VeloZ is not stopped for a restore that cannot succeed");
        Directory.GetFileSystemEntries(Path.GetDirectoryName(bed.WalDirectory)!).Should().ContainSingle();
    }

    [Fact]
    public async Task Restore_config_keeps_modes_and_replaces_changed_files_and_leaves_others()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        (await bed.RunAsync("backup", "config")).ExitCode.Should().Be(0);
        var before = RestoreTestBed.Snapshot(bed.ConfigRoot);
        File.WriteAllText(Path.Combine(bed.ConfigRoot, "risk_limits.yaml"), "max_position: 1000000\n");
        File.Delete(Path.Combine(bed.ConfigRoot, "strategies", "momentum.yaml"));

        var restore = await bed.RunAsync("restore", "config", "latest");
        restore.ExitCode.Should().Be(0, restore.StdErr);
        RestoreTestBed.Snapshot(bed.ConfigRoot).Should().BeEquivalentTo(before);
        File.GetUnixFileMode(Path.Combine(bed.ConfigRoot, ".env")).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        restore.StdOut.Should().Contain("5 files");
    }

    [Fact]
    public async Task A_tampered_config_artifact_or_sidecar_is_refused_and_nothing_is_written()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        (await bed.RunAsync("backup", "config")).ExitCode.Should().Be(0);
        var artifact = Directory.GetFiles(Path.Combine(bed.LocalRoot, "config"), "config_*.tar.gz").Single();
        var target = Path.Combine(bed.Root, "restored-config");

        FlipByte(artifact);
        var flipped = await bed.RunAsync("restore", "config", "latest", "--target", target);
        flipped.ExitCode.Should().Be(1);
        flipped.ErrorLines.Should().ContainSingle().Which.Should().Contain(Path.GetFileName(artifact)).And.Contain("refusing to restore");
        Directory.Exists(target).Should().BeFalse();

        FlipByte(artifact); // back to the original bytes; now the sidecar lies
        var sidecar = artifact + ".sha256";
        await File.WriteAllTextAsync(sidecar, new string('0', 64) + "  " + Path.GetFileName(artifact) + "\n");
        var wrongSidecar = await bed.RunAsync("restore", "config", artifact, "--target", target);
        wrongSidecar.ExitCode.Should().Be(1);
        wrongSidecar.ErrorLines.Should().ContainSingle().Which.Should().Contain("refusing to restore");
        Directory.Exists(target).Should().BeFalse();
    }

    [Fact]
    public async Task Restore_secrets_decrypts_with_the_keyring_and_makes_every_file_0600()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        (await bed.RunAsync("backup", "secrets")).ExitCode.Should().Be(0);
        var before = RestoreTestBed.Snapshot(bed.SecretsDirectory);
        Directory.Delete(bed.SecretsDirectory, recursive: true);

        var restore = await bed.RunAsync("restore", "secrets");
        restore.ExitCode.Should().Be(0, restore.StdErr);
        RestoreTestBed.Snapshot(bed.SecretsDirectory).Should().BeEquivalentTo(before);
        File.GetUnixFileMode(bed.SecretsDirectory).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Directory.GetFiles(bed.SecretsDirectory).Select(File.GetUnixFileMode).Should().AllBeEquivalentTo(UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    [Fact]
    public async Task Restore_secrets_without_the_private_key_says_so_and_leaves_the_directory()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        (await bed.RunAsync("backup", "secrets")).ExitCode.Should().Be(0);
        var emptyKeyring = Directory.CreateTempSubdirectory("gnupg-empty-").FullName;
        try
        {
            File.SetUnixFileMode(emptyKeyring, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var before = RestoreTestBed.Snapshot(bed.SecretsDirectory);
            var restore = await bed.RunAsync("restore", "secrets", "--no-service", $"--Backup:Secrets:GnupgHome={emptyKeyring}");
            restore.ExitCode.Should().Be(1);
            restore.ErrorLines.Should().ContainSingle().Which.Should().Contain("gpg cannot decrypt secrets_").And.Contain("No secret key").And.Contain("gpg --import");
            RestoreTestBed.Snapshot(bed.SecretsDirectory).Should().BeEquivalentTo(before);
        }
        finally
        {
            Directory.Delete(emptyKeyring, recursive: true);
        }
    }

    [Fact]
    public async Task Restore_database_side_by_side_and_then_in_place_reports_tables_and_rows()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        (await bed.RunAsync("backup", "database")).ExitCode.Should().Be(0);
        var fingerprint = await RestoreTestBed.FingerprintAsync(bed.Database);

        var refused = await bed.RunAsync("restore", "database");
        refused.ExitCode.Should().Be(2);
        refused.ErrorLines.Should().ContainSingle().Which.Should().Contain("--yes");

        var sideName = bed.Database.Name + "_side";
        var side = await bed.RunAsync("restore", "database", "--into", sideName);
        side.ExitCode.Should().Be(0, side.StdErr);
        side.StdOut.Should().Contain("orders: 2500 rows").And.Contain("VeloZ service not touched");
        await using (var sideDb = PostgresDatabaseHandle.Open(bed.Database, sideName))
        {
            (await RestoreTestBed.FingerprintAsync(sideDb.Database)).Should().Be(fingerprint);
        }

        await bed.Database.ExecuteAsync("DELETE FROM orders WHERE id % 2 = 0; UPDATE positions SET qty = 0;");
        var inPlace = await bed.RunAsync("restore", "database", "--yes");
        inPlace.ExitCode.Should().Be(0, inPlace.StdErr);
        (await RestoreTestBed.FingerprintAsync(bed.Database)).Should().Be(fingerprint);
        inPlace.StdOut.Should().Contain("VeloZ stopped, restarted and healthy").And.MatchRegex(@"within the RTO \(database corruption\) of 00:30:00");
    }

    [Fact]
    public async Task A_dump_pg_restore_cannot_read_fails_and_the_database_it_would_replace_is_untouched()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        var fingerprint = await RestoreTestBed.FingerprintAsync(bed.Database);
        // A checksummed artifact whose bytes are not a dump (stored by an older agent whose import did not check it;
        // import now refuses such a file).
        await new VelozBackupAgent.Storage.Local.LocalArtifactStore(bed.LocalRoot)
            .WriteAsync("database", "manual_20260101_000000.dump", new MemoryStream("PGDMP but not really"u8.ToArray()));

        var restore = await bed.RunAsync("restore", "database", Path.Combine(bed.LocalRoot, "database", "manual_20260101_000000.dump"), "--yes");
        restore.ExitCode.Should().Be(1);
        restore.ErrorLines.Should().ContainSingle().Which.Should().Contain("pg_restore");
        (await RestoreTestBed.FingerprintAsync(bed.Database)).Should().Be(fingerprint);
        (await bed.Database.ScalarAsync<long>("SELECT count(*) FROM pg_database WHERE datname LIKE '%restoring%'")).Should().Be(0, "the scratch database is dropped again");
        (await File.ReadAllLinesAsync(bed.ServiceLog)).Should().Equal(["started"]);
    }

    [Fact]
    public async Task With_nothing_stored_the_restore_names_what_it_looked_for()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        var restore = await bed.RunAsync("restore", "config");
        restore.ExitCode.Should().Be(1);
        restore.ErrorLines.Should().ContainSingle().Which.Should().Be($"veloz-backup: no config backup (config_YYYYMMDD_HHMMSS.tar.gz) in the local store {bed.LocalRoot}");
    }

    internal static void FlipByte(string path)
    {
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x01;
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllBytes(path, bytes);
    }
}

/// <summary>Another database on the same cluster, by name, dropped on dispose.</summary>
internal sealed class PostgresDatabaseHandle : IAsyncDisposable
{
    private PostgresDatabaseHandle(PostgresDatabase database) => Database = database;

    public PostgresDatabase Database { get; }

    public static PostgresDatabaseHandle Open(PostgresDatabase sibling, string name) => new(PostgresDatabase.Attach(sibling, name));

    public ValueTask DisposeAsync() => Database.DisposeAsync();
}
