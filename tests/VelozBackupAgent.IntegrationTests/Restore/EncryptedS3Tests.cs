using System.Text;
using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Restore;

/// <summary>
/// Client-side encryption of the S3 copies (Backup:S3:Encrypt, on by default) through the real binary, real gpg
/// and a real s3rver: what lands in the bucket, verify --read-data, mixed buckets and a host without the secret key.
/// </summary>
public sealed class EncryptedS3Tests
{
    private static readonly string[] EncryptedKinds = ["wal", "config", "database"];

    private static string BucketDirectory(RestoreTestBed bed) => Path.Combine(bed.S3!.DataDirectory, bed.Bucket, RestoreTestBed.NodeName);

    /// <summary>The local artifacts the S3 copy must encrypt: every kind but secrets, no sidecars, no gpg files already.</summary>
    private static List<string> PlainArtifacts(RestoreTestBed bed) =>
        EncryptedKinds
            .SelectMany(kind => Directory.GetFiles(Path.Combine(bed.LocalRoot, kind)))
            .Where(f => !f.EndsWith(".sha256", StringComparison.Ordinal) && !f.EndsWith(".gpg", StringComparison.Ordinal) && !Path.GetFileName(f).StartsWith('.'))
            .ToList();

    [Fact]
    public async Task The_bucket_holds_no_plaintext_and_verify_read_data_decrypts_every_copy_and_catches_a_flipped_byte()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: true);
        var backup = await bed.RunAsync("backup", "all");
        backup.ExitCode.Should().Be(0, backup.StdOut + backup.StdErr);
        backup.StdOut.Should().Contain("failed 0");

        var artifacts = PlainArtifacts(bed);
        artifacts.Select(Path.GetFileName).Should().Contain(n => n!.EndsWith(".dump", StringComparison.Ordinal))
            .And.Contain(n => n!.EndsWith(".tar.gz", StringComparison.Ordinal)).And.Contain(n => n!.StartsWith("orders_", StringComparison.Ordinal));
        var bucket = Directory.EnumerateFiles(BucketDirectory(bed), "*", SearchOption.AllDirectories)
            .Select(f => (Path: f, Text: Encoding.Latin1.GetString(File.ReadAllBytes(f)))).ToList();
        foreach (var artifact in artifacts)
        {
            var kind = Path.GetFileName(Path.GetDirectoryName(artifact))!;
            var name = Path.GetFileName(artifact);
            File.Exists(Path.Combine(BucketDirectory(bed), kind, name + "._S3rver_object")).Should().BeFalse($"{kind}/{name} is not in S3 in plaintext");
            File.Exists(Path.Combine(BucketDirectory(bed), kind, name + ".enc.gpg._S3rver_object")).Should().BeTrue($"{kind}/{name} is in S3 encrypted");
            File.Exists(Path.Combine(BucketDirectory(bed), kind, name + ".sha256._S3rver_object")).Should().BeTrue($"{kind}/{name}'s plaintext checksum is in S3");

            // Any 48 bytes of the local artifact (compressed or not) would show in a plaintext copy.
            var bytes = await File.ReadAllBytesAsync(artifact);
            var window = Encoding.Latin1.GetString(bytes, Math.Max(0, (bytes.Length / 2) - 24), Math.Min(48, bytes.Length));
            bucket.Should().NotContain(o => o.Text.Contains(window, StringComparison.Ordinal), $"no object in the bucket holds bytes of {kind}/{name}");
        }

        var verify = await bed.RunAsync("verify", "--read-data");
        verify.ExitCode.Should().Be(0, verify.StdOut + verify.StdErr);
        verify.StdOut.Should().Contain("PASS  Checksums valid for all backups");

        var dump = artifacts.Select(Path.GetFileName).Single(n => n!.EndsWith(".dump", StringComparison.Ordinal));
        var stored = Path.Combine(BucketDirectory(bed), "database", dump + ".enc.gpg._S3rver_object");
        var cipher = await File.ReadAllBytesAsync(stored);
        cipher[cipher.Length / 2] ^= 0x01;
        await File.WriteAllBytesAsync(stored, cipher);

        verify = await bed.RunAsync("verify", "--read-data");
        verify.ExitCode.Should().Be(3, verify.StdOut + verify.StdErr);
        verify.StdOut.Should().Contain("FAIL  Checksums valid for all backups").And.Contain(dump);
    }

    [Fact]
    public async Task A_bucket_with_plaintext_copies_from_before_restores_in_full_and_a_host_without_the_secret_key_gets_one_line()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: true);

        // Before encryption: the WAL went up in plaintext. Then everything else, encrypted.
        var plain = await bed.RunAsync("backup", "wal", "--Backup:S3:Encrypt=false");
        plain.ExitCode.Should().Be(0, plain.StdOut + plain.StdErr);
        var backup = await bed.RunAsync("backup", "all");
        backup.ExitCode.Should().Be(0, backup.StdOut + backup.StdErr);
        Directory.GetFiles(Path.Combine(BucketDirectory(bed), "wal"), "orders_*.wal._S3rver_object").Should().NotBeEmpty("the WAL copies are plaintext");
        Directory.GetFiles(Path.Combine(BucketDirectory(bed), "database"), "*.dump.enc.gpg._S3rver_object").Should().ContainSingle();

        var wal = RestoreTestBed.Snapshot(bed.WalDirectory);
        var config = RestoreTestBed.Snapshot(bed.ConfigRoot);
        var database = await RestoreTestBed.FingerprintAsync(bed.Database);

        // A new host that has the public key only: the S3 copies cannot be read, and it says so in one line.
        var publicOnly = Directory.CreateTempSubdirectory("veloz-gnupg-public-").FullName;
        try
        {
            var export = await ChildProcess.RunAsync("gpg", ["--batch", "--armor", "--export", TestEnvironment.GpgRecipient],
                new Dictionary<string, string?> { ["GNUPGHOME"] = TestEnvironment.GnupgHome });
            (await ChildProcess.RunAsync("gpg", ["--batch", "--import"], new Dictionary<string, string?> { ["GNUPGHOME"] = publicOnly }, stdin: export.StdOut))
                .ExitCode.Should().Be(0);
            Directory.Delete(bed.LocalRoot, recursive: true);
            Directory.CreateDirectory(bed.LocalRoot);
            var denied = await bed.RunAsync("restore", "config", "--target", Path.Combine(bed.Root, "cfg"), "--from", "s3",
                $"--Backup:Secrets:GnupgHome={publicOnly}");
            denied.ExitCode.Should().Be(1, denied.StdOut + denied.StdErr);
            denied.ErrorLines.Should().ContainSingle().Which.Should().Contain("no secret key for it in GNUPGHOME " + publicOnly).And.Contain(".tar.gz.enc.gpg");
        }
        finally
        {
            await ChildProcess.RunAsync("gpgconf", ["--kill", "gpg-agent"], new Dictionary<string, string?> { ["GNUPGHOME"] = publicOnly });
            Directory.Delete(publicOnly, recursive: true);
        }

        // With the key: the site comes back from the mixed bucket.
        Directory.Delete(bed.WalDirectory, recursive: true);
        Directory.Delete(bed.ConfigRoot, recursive: true);
        await bed.Database.ExecuteAsync("DROP TABLE orders; DROP TABLE positions;");
        await File.WriteAllTextAsync(bed.ServiceLog, "stopped\n");
        var restore = await bed.RunAsync("restore", "full", "--yes", "--source", $"s3://{bed.Bucket}/{RestoreTestBed.NodeName}");
        restore.ExitCode.Should().Be(0, restore.StdOut + restore.StdErr);
        RestoreTestBed.Snapshot(bed.WalDirectory).Should().BeEquivalentTo(wal);
        RestoreTestBed.Snapshot(bed.ConfigRoot).Should().BeEquivalentTo(config);
        (await RestoreTestBed.FingerprintAsync(bed.Database)).Should().Be(database);
    }
}
