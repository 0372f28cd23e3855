using System.Text.Json;

namespace VelozBackupAgent.IntegrationTests.Restore;

/// <summary><c>verify</c> through the real binary: the checklist, its figures and its exit code.</summary>
public sealed class VerifyTests
{
    [Fact]
    public async Task A_healthy_setup_passes_every_check_with_a_real_test_restore_and_writes_the_report()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: true);
        (await bed.RunAsync("backup", "all")).ExitCode.Should().Be(0);
        var reportFile = Path.Combine(bed.Root, "backup_report.txt");

        var verify = await bed.RunAsync("verify", "--test-restore", "--report", reportFile);
        verify.ExitCode.Should().Be(0, verify.StdOut + verify.StdErr);
        var lines = verify.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines.Should().Contain(l => l.StartsWith("PASS  WAL backup fresh (objective 5m)", StringComparison.Ordinal));
        lines.Should().Contain(l => l.StartsWith("PASS  Configuration backup fresh (objective 6h)", StringComparison.Ordinal));
        lines.Should().Contain(l => l.StartsWith("PASS  Database backup fresh (objective 24h)", StringComparison.Ordinal));
        lines.Should().Contain(l => l.StartsWith("PASS  S3 copy current", StringComparison.Ordinal));
        lines.Should().Contain(l => l.StartsWith("PASS  Checksums valid for all backups", StringComparison.Ordinal));
        lines.Should().Contain(l => l.StartsWith("PASS  WAL manifest chains complete", StringComparison.Ordinal));
        var test = lines.Should().ContainSingle(l => l.StartsWith("PASS  Test restore successful", StringComparison.Ordinal)).Subject;
        test.Should().Contain("2 tables, 2503 rows").And.Contain("identical to the live files").And.Contain("6 segments + orders_current.wal");
        lines.Should().Contain(l => l.StartsWith("SKIP  PITR tested to specific time", StringComparison.Ordinal));
        lines.Should().Contain(l => l.StartsWith("PASS  Recovery time within RTO", StringComparison.Ordinal));
        lines.Last().Should().StartWith("result: PASS (9 passed, 0 failed, 1 skipped)");

        File.ReadAllText(reportFile).Should().Be(verify.StdOut);
        File.GetUnixFileMode(reportFile).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        using var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(bed.LocalRoot, ".state", "restore-test.json")));
        state.RootElement.GetProperty("lastSuccess").GetProperty("passed").GetBoolean().Should().BeTrue();
        state.RootElement.GetProperty("lastSuccess").GetProperty("durationSeconds").GetProperty("database").GetDouble().Should().BeGreaterThan(0);
        (await bed.Database.ScalarAsync<long>("SELECT count(*) FROM pg_database WHERE datname LIKE '%verify%'")).Should().Be(0, "the scratch database is dropped");
        Directory.Exists(Path.Combine(bed.LocalRoot, ".state", "verify")).Should().BeTrue();
        Directory.GetFileSystemEntries(Path.Combine(bed.LocalRoot, ".state", "verify")).Should().BeEmpty("scratch copies are removed");

        // Later, without --test-restore, the recovery-time line comes from the recorded test restore.
        var again = await bed.RunAsync("verify", "--json");
        again.ExitCode.Should().Be(0, again.StdErr);
        using var json = JsonDocument.Parse(again.StdOut);
        json.RootElement.GetProperty("passed").GetBoolean().Should().BeTrue();
        json.RootElement.GetProperty("checks").EnumerateArray().Select(c => c.GetProperty("status").GetString()).Should().Equal(
            "pass", "pass", "pass", "pass", "pass", "pass", "pass", "skip", "skip", "pass");
    }

    [Fact]
    public async Task A_delta_manifest_whose_parent_is_gone_fails_the_chain_check_naming_both()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        (await bed.RunAsync("backup", "wal")).ExitCode.Should().Be(0);
        var store = Path.Combine(bed.LocalRoot, "wal");
        var full = Path.GetFileName(Directory.GetFiles(store, "wal-manifest*.json").Single());
        // The delta's name must carry a later second than the full one: a second sync in the same second is named
        // "-2", and retrying until the name changes would chain a third manifest onto that "-2" instead.
        var at = DateTimeOffset.ParseExact(full["wal-manifest_".Length..][..15], "yyyyMMdd_HHmmss", System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal);
        while (TimeProvider.System.GetUtcNow() < at.AddSeconds(1))
        {
            await Task.Delay(50);
        }

        var segment = Path.Combine(bed.WalDirectory, $"orders_{7:D16}.wal");
        File.WriteAllBytes(segment, new byte[5000]);
        File.SetUnixFileMode(segment, RestoreTestBed.WalFileMode);
        File.SetLastWriteTimeUtc(segment, TimeProvider.System.GetUtcNow().UtcDateTime.AddMinutes(-5));
        (await bed.RunAsync("backup", "wal")).ExitCode.Should().Be(0);
        var manifests = Directory.GetFiles(store, "wal-manifest*.json").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        manifests.Should().HaveCount(2);
        var name = manifests.Single(n => n != full)!;

        File.ReadAllText(Path.Combine(store, name)).Should().Contain("\"delta\"").And.Contain(full);
        var ok = await bed.RunAsync("verify");
        ok.StdOut.Should().Contain("PASS  WAL manifest chains complete");

        File.Delete(Path.Combine(store, full));
        File.Delete(Path.Combine(store, full + ".sha256"));
        var verify = await bed.RunAsync("verify");
        verify.ExitCode.Should().Be(3, verify.StdOut);
        verify.StdOut.Split('\n').Should().ContainSingle(l => l.StartsWith("FAIL  WAL manifest chains complete", StringComparison.Ordinal))
            .Which.Should().Contain($"local {name}: its parent {full} is missing");
    }

    [Fact]
    public async Task A_stale_kind_and_a_copy_missing_in_s3_exit_3_and_are_named()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: true);
        (await bed.RunAsync("backup", "wal")).ExitCode.Should().Be(0);
        (await bed.RunAsync("backup", "database")).ExitCode.Should().Be(0);
        (await bed.RunAsync("backup", "secrets")).ExitCode.Should().Be(0);
        // The newest configuration backup is an old one, and it never reached S3.
        var old = Path.Combine(bed.Root, "config_20200101_000000.tar.gz");
        await File.WriteAllBytesAsync(old, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        (await bed.RunAsync("import", "config", old)).ExitCode.Should().Be(0);

        var verify = await bed.RunAsync("verify");
        verify.ExitCode.Should().Be(3, verify.StdOut);
        verify.StdOut.Should().MatchRegex(@"FAIL  Configuration backup fresh \(objective 6h\): newest config_20200101_000000.tar.gz, [\d.]+d old, [\d.]+d past the objective");
        verify.StdOut.Should().Contain("FAIL  S3 copy current").And.Contain("config/config_20200101_000000.tar.gz").And.Contain("is not in S3");
        verify.ErrorLines.Should().ContainSingle().Which.Should().Be("veloz-backup: verify failed: Configuration backup fresh (objective 6h), S3 copy current (lag under 60m)");
    }

    [Fact]
    public async Task A_corrupt_artifact_fails_the_checksum_line_and_the_test_restore_of_that_kind()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        (await bed.RunAsync("backup", "all")).ExitCode.Should().Be(0);
        var dump = Directory.GetFiles(Path.Combine(bed.LocalRoot, "database"), "*.dump").Single();
        RestoreTests.FlipByte(dump);

        var verify = await bed.RunAsync("verify", "--test-restore");
        verify.ExitCode.Should().Be(3);
        verify.StdOut.Should().Contain("SKIP  S3 copy current").And.MatchRegex($@"FAIL  Checksums valid for all backups [^\n]*1 bad: [^\n]*{Path.GetFileName(dump)}[^\n]*checksum mismatch");
        verify.StdOut.Should().MatchRegex($@"FAIL  Test restore successful: database: [^\n]*{Path.GetFileName(dump)}");
        verify.ErrorLines.Should().ContainSingle().Which.Should().Contain("Checksums valid for all backups").And.Contain("Test restore successful");
    }
}
