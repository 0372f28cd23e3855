namespace VelozBackupAgent.IntegrationTests.Restore;

/// <summary>
/// The runbook's complete-site-failure scenario, end to end on real servers: back everything up to the local
/// store and s3rver, lose the backup root, the sources and the database, and restore it all from S3.
/// </summary>
public sealed class DisasterDrillTests
{
    private static readonly string[] RunbookOrder = ["secrets", "config", "database", "wal"];

    [Fact]
    public async Task Restore_full_from_s3_brings_back_database_configuration_secrets_and_wal_exactly()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: true);
        var backup = await bed.RunAsync("backup", "all");
        backup.ExitCode.Should().Be(0, backup.StdOut + backup.StdErr);
        backup.StdOut.Should().Contain("S3: replicated").And.Contain("failed 0");

        var wal = RestoreTestBed.Snapshot(bed.WalDirectory);
        var config = RestoreTestBed.Snapshot(bed.ConfigRoot);
        var database = await RestoreTestBed.FingerprintAsync(bed.Database);

        // The site is gone: backups, WAL, configuration, secrets and the database.
        Directory.Delete(bed.LocalRoot, recursive: true);
        Directory.CreateDirectory(bed.LocalRoot);
        Directory.Delete(bed.WalDirectory, recursive: true);
        Directory.Delete(bed.ConfigRoot, recursive: true);
        await bed.Database.ExecuteAsync("DROP TABLE orders; DROP TABLE positions;");
        await File.WriteAllTextAsync(bed.ServiceLog, "stopped\n");

        var restore = await bed.RunAsync("restore", "full", "--yes", "--source", $"s3://{bed.Bucket}/{RestoreTestBed.NodeName}");
        restore.ExitCode.Should().Be(0, restore.StdOut + restore.StdErr);

        // Contents and modes as they were (the manifest records the files' and the directory's modes).
        RestoreTestBed.Snapshot(bed.WalDirectory).Should().BeEquivalentTo(wal);
        wal.Values.Should().OnlyContain(f => f.Mode == RestoreTestBed.WalFileMode);
        File.GetUnixFileMode(bed.WalDirectory).Should().Be(RestoreTestBed.WalDirectoryMode);
        RestoreTestBed.Snapshot(bed.ConfigRoot).Should().BeEquivalentTo(config);
        (await RestoreTestBed.FingerprintAsync(bed.Database)).Should().Be(database);

        // In the runbook's order, with the service stopped, started and healthy.
        var order = RunbookOrder.Select(k => restore.StdOut.IndexOf(k + " ", StringComparison.Ordinal)).ToList();
        order.Should().BeInAscendingOrder().And.NotContain(-1);
        (await File.ReadAllLinesAsync(bed.ServiceLog)).Should().Equal("stopped", "stopped", "started");
        bed.Health.Requests.Should().BeGreaterThan(0);
        restore.StdOut.Should().Contain("VeloZ stopped, restarted and healthy").And.MatchRegex(@"total \d+\.\d s: within the RTO \(complete site failure\) of 04:00:00");
        restore.StdOut.Should().Contain("orders: 2500 rows");
        Directory.GetFileSystemEntries(Path.GetDirectoryName(bed.WalDirectory)!).Should().ContainSingle("no staging directory is left beside the WAL");
    }

    [Fact]
    public async Task Restore_full_when_veloz_never_gets_healthy_fails_after_the_timeout_with_the_last_answer()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        (await bed.RunAsync("backup", "all")).ExitCode.Should().Be(0);
        var restore = await bed.RunAsync("restore", "full", "--yes", "--Backup:Restore:HealthTimeout=00:00:02",
            $"--Backup:Restore:StartCommand=echo still-down >> '{bed.ServiceLog}'");
        restore.ExitCode.Should().Be(1);
        restore.ErrorLines.Last().Should().Contain($"VeloZ did not report healthy at {bed.Health.Url} within 00:00:02").And.Contain("HTTP 503");
    }
}
