using System.Security.Cryptography;
using System.Text;
using Amazon.S3;
using Microsoft.Extensions.Logging.Abstractions;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.S3;
using VelozBackupAgent.Stores;

namespace VelozBackupAgent.IntegrationTests.Stores;

/// <summary>The gpg-encrypting S3 store with the real gpg (the test key) against a real s3rver process.</summary>
public sealed class EncryptingArtifactStoreTests : IClassFixture<S3rverFixture>, IAsyncLifetime
{
    private const int Part = S3StoreOptions.MinPartSizeBytes;
    private const string Marker = "VELOZ-PLAINTEXT-MARKER-";

    private readonly S3rverServer _server;
    private readonly AmazonS3Client _client;
    private readonly string _bucket = "e-" + Guid.NewGuid().ToString("N")[..12];

    public EncryptingArtifactStoreTests(S3rverFixture fixture)
    {
        _server = fixture.Server;
        _client = _server.CreateClient();
    }

    public async Task InitializeAsync() => await _client.PutBucketAsync(_bucket);

    public Task DisposeAsync()
    {
        _client.Dispose();
        return Task.CompletedTask;
    }

    private S3ArtifactStore Plain() => new(_server.Options(_bucket), _client);

    private EncryptingArtifactStore Store(bool encrypt = true, string? gnupgHome = null, string? recipient = null)
    {
        var gpg = new SecretsOptions { GnupgHome = gnupgHome ?? TestEnvironment.GnupgHome };
        gpg.Recipients.Add(recipient ?? TestEnvironment.GpgRecipient);
        return EncryptingArtifactStore.Over(Plain(), gpg, encrypt, TimeProvider.System, NullLogger.Instance);
    }

    private string ObjectFile(string kind, string name) => Path.Combine(_server.DataDirectory, _bucket, "veloz-1", kind, name + "._S3rver_object");

    /// <summary>Text with a marker every 64 bytes, so a plaintext piece of any size in S3 would show it.</summary>
    private static byte[] MarkedText(long size)
    {
        var line = Encoding.ASCII.GetBytes(Marker + new string('x', 64 - Marker.Length - 1) + "\n");
        var bytes = new byte[size];
        for (long i = 0; i < size; i++)
        {
            bytes[i] = line[i % line.Length];
        }

        return bytes;
    }

    private static string Sha(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    private static async Task<byte[]> ReadAllAsync(Stream stream)
    {
        await using (stream)
        {
            using var copy = new MemoryStream();
            await stream.CopyToAsync(copy);
            return copy.ToArray();
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1000)]
    [InlineData((Part * 5L) / 2)] // 2.5 parts: gpg's output goes up by multipart upload, length unknown beforehand
    public async Task Round_trip_stores_only_ciphertext_and_reads_back_the_plaintext(long size)
    {
        var store = Store();
        var name = $"veloz_{size}.dump";
        var plain = MarkedText(size);

        var info = await store.WriteAsync("database", name, new MemoryStream(plain));

        info.Should().Be(new ArtifactInfo("database", name, size, Sha(plain)) { Encrypted = true });
        (await store.StatAsync("database", name)).Should().Be(info);
        (await ReadAllAsync(await store.OpenReadAsync("database", name))).Should().Equal(plain);

        // In the bucket: <name>.enc.gpg with its own sidecar, and <name>.sha256 for the plaintext; no plaintext object.
        File.Exists(ObjectFile("database", name)).Should().BeFalse();
        var ciphertext = await File.ReadAllBytesAsync(ObjectFile("database", name + EncryptingArtifactStore.EncryptedSuffix));
        Encoding.Latin1.GetString(ciphertext).Should().NotContain(Marker[..12]);
        foreach (var file in Directory.EnumerateFiles(Path.Combine(_server.DataDirectory, _bucket), "*", SearchOption.AllDirectories))
        {
            Encoding.Latin1.GetString(await File.ReadAllBytesAsync(file)).Should().NotContain(Marker[..12], $"{file} is in the bucket");
        }

        var listed = await store.ListAsync("database").ToListAsync();
        listed.Should().ContainSingle().Which.Should().Match<ArtifactInfo>(a => a.Name == name && a.Encrypted && a.Size == ciphertext.Length);
        (await store.ListPrefixAsync("database", "veloz_").ToListAsync()).Select(a => a.Name).Should().Equal(name);
    }

    [Fact]
    public async Task Both_forms_pass_sha256sum_c_and_the_ciphertext_decrypts_with_plain_gpg()
    {
        var store = Store();
        var plain = MarkedText(5000);
        await store.WriteAsync("config", "config_1.tar.gz", new MemoryStream(plain));
        var dir = Directory.CreateTempSubdirectory("veloz-breakglass-").FullName;
        try
        {
            // What the README's break-glass does with `aws s3 cp`: both objects and both sidecars, as files.
            foreach (var name in new[] { "config_1.tar.gz.enc.gpg", "config_1.tar.gz.enc.gpg.sha256", "config_1.tar.gz.sha256" })
            {
                using var response = await _client.GetObjectAsync(_bucket, $"veloz-1/config/{name}");
                await using var file = File.Create(Path.Combine(dir, name));
                await response.ResponseStream.CopyToAsync(file);
            }

            var env = new Dictionary<string, string?> { ["GNUPGHOME"] = TestEnvironment.GnupgHome };
            var cipherCheck = await ChildProcess.RunAsync("sha256sum", ["-c", "config_1.tar.gz.enc.gpg.sha256"], workingDirectory: dir);
            cipherCheck.ExitCode.Should().Be(0, cipherCheck.StdOut + cipherCheck.StdErr);
            var decrypt = await ChildProcess.RunAsync("gpg", ["--batch", "--quiet", "--output", "config_1.tar.gz", "--decrypt", "config_1.tar.gz.enc.gpg"], env, workingDirectory: dir);
            decrypt.ExitCode.Should().Be(0, decrypt.StdErr);
            var plainCheck = await ChildProcess.RunAsync("sha256sum", ["-c", "config_1.tar.gz.sha256"], workingDirectory: dir);
            plainCheck.ExitCode.Should().Be(0, plainCheck.StdOut + plainCheck.StdErr);
            plainCheck.StdOut.Should().Contain("config_1.tar.gz: OK");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_flipped_ciphertext_byte_fails_the_read_as_corruption()
    {
        var store = Store();
        var plain = MarkedText(200_000);
        await store.WriteAsync("wal", "orders_0001.wal", new MemoryStream(plain));
        var path = ObjectFile("wal", "orders_0001.wal" + EncryptingArtifactStore.EncryptedSuffix);
        var bytes = await File.ReadAllBytesAsync(path);
        bytes[bytes.Length / 2] ^= 0x01;
        await File.WriteAllBytesAsync(path, bytes);

        var read = async () => await ReadAllAsync(await store.OpenReadAsync("wal", "orders_0001.wal"));

        (await read.Should().ThrowAsync<ArtifactIntegrityException>()).Which.Message.Should().Contain("orders_0001.wal.enc.gpg").And.NotContain("\n");
    }

    [Fact]
    public async Task A_bucket_with_plaintext_objects_from_before_stays_readable_and_is_not_re_encrypted()
    {
        var old = MarkedText(3000);
        await Plain().WriteAsync("database", "veloz_old.dump", new MemoryStream(old));
        var store = Store();
        var fresh = MarkedText(4000);
        await store.WriteAsync("database", "veloz_new.dump", new MemoryStream(fresh));

        (await ReadAllAsync(await store.OpenReadAsync("database", "veloz_old.dump"))).Should().Equal(old);
        (await ReadAllAsync(await store.OpenReadAsync("database", "veloz_new.dump"))).Should().Equal(fresh);
        (await store.StatAsync("database", "veloz_old.dump")).Should().Be(new ArtifactInfo("database", "veloz_old.dump", 3000, Sha(old)));
        (await store.ListAsync("database").ToListAsync()).Select(a => (a.Name, a.Encrypted)).Should().BeEquivalentTo([("veloz_old.dump", false), ("veloz_new.dump", true)]);

        // Replicating the old one again is a no-op on the plaintext copy; other bytes under its name are refused.
        (await store.WriteAsync("database", "veloz_old.dump", new MemoryStream(old), Sha(old))).Encrypted.Should().BeFalse();
        File.Exists(ObjectFile("database", "veloz_old.dump" + EncryptingArtifactStore.EncryptedSuffix)).Should().BeFalse();
        await FluentActions.Awaiting(() => store.WriteAsync("database", "veloz_old.dump", new MemoryStream(fresh))).Should().ThrowAsync<ArtifactConflictException>();

        // Encryption off later: encrypted copies still decrypt.
        (await ReadAllAsync(await Store(encrypt: false).OpenReadAsync("database", "veloz_new.dump"))).Should().Equal(fresh);
    }

    [Fact]
    public async Task Writing_again_is_a_no_op_other_bytes_conflict_and_a_wrong_expected_checksum_stores_nothing()
    {
        var store = Store();
        var plain = MarkedText(1234);
        var first = await store.WriteAsync("database", "veloz_1.dump", new MemoryStream(plain));
        var cipherBefore = await File.ReadAllBytesAsync(ObjectFile("database", "veloz_1.dump.enc.gpg"));

        (await store.WriteAsync("database", "veloz_1.dump", new MemoryStream(plain))).Should().Be(first);
        (await store.WriteAsync("database", "veloz_1.dump", new MemoryStream([1, 2]), Sha(plain))).Should().Be(first, "the expected checksum matches: nothing is read");
        await FluentActions.Awaiting(() => store.WriteAsync("database", "veloz_1.dump", new MemoryStream(MarkedText(99)))).Should().ThrowAsync<ArtifactConflictException>();
        (await File.ReadAllBytesAsync(ObjectFile("database", "veloz_1.dump.enc.gpg"))).Should().Equal(cipherBefore);

        await FluentActions.Awaiting(() => store.WriteAsync("database", "veloz_2.dump", new MemoryStream(plain), new string('0', 64)))
            .Should().ThrowAsync<ArtifactIntegrityException>();
        (await store.StatAsync("database", "veloz_2.dump")).Should().BeNull();
        (await store.ListAsync("database").ToListAsync()).Select(a => a.Name).Should().Equal("veloz_1.dump");
    }

    [Fact]
    public async Task Secrets_and_gpg_files_are_not_encrypted_twice_and_delete_removes_every_object()
    {
        var store = Store();
        await store.WriteAsync("secrets", "secrets_1.tar.gz.gpg", new MemoryStream([1, 2, 3]));
        await store.WriteAsync("database", "veloz_1.globals.sql.gpg", new MemoryStream([4, 5, 6]));
        File.ReadAllBytes(ObjectFile("secrets", "secrets_1.tar.gz.gpg")).Should().Equal(1, 2, 3);
        File.ReadAllBytes(ObjectFile("database", "veloz_1.globals.sql.gpg")).Should().Equal(4, 5, 6);
        (await store.ListAsync("database").ToListAsync()).Single().Encrypted.Should().BeFalse();

        await store.WriteAsync("database", "veloz_1.dump", new MemoryStream(MarkedText(10)));
        await store.DeleteAsync("database", "veloz_1.dump");
        Directory.EnumerateFiles(Path.Combine(_server.DataDirectory, _bucket, "veloz-1", "database")).Select(Path.GetFileName)
            .Should().OnlyContain(f => f!.StartsWith("veloz_1.globals.sql.gpg", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Without_the_secret_key_a_read_fails_with_one_line_naming_the_keyring()
    {
        await Store().WriteAsync("database", "veloz_1.dump", new MemoryStream(MarkedText(1000)));
        var publicOnly = Directory.CreateTempSubdirectory("veloz-gnupg-public-").FullName;
        try
        {
            var env = new Dictionary<string, string?> { ["GNUPGHOME"] = TestEnvironment.GnupgHome };
            var export = await ChildProcess.RunAsync("gpg", ["--batch", "--armor", "--export", TestEnvironment.GpgRecipient], env);
            export.ExitCode.Should().Be(0, export.StdErr);
            var import = await ChildProcess.RunAsync("gpg", ["--batch", "--import"], new Dictionary<string, string?> { ["GNUPGHOME"] = publicOnly }, stdin: export.StdOut);
            import.ExitCode.Should().Be(0, import.StdErr);

            var store = Store(gnupgHome: publicOnly);
            var read = async () => await ReadAllAsync(await store.OpenReadAsync("database", "veloz_1.dump"));

            var error = (await read.Should().ThrowAsync<StoreException>()).Which;
            error.Should().NotBeOfType<ArtifactIntegrityException>();
            error.Message.Should().Be(
                $"cannot decrypt s3 database/veloz_1.dump.enc.gpg: no secret key for it in GNUPGHOME {publicOnly}; import the private key of one of Backup:Secrets:Recipients (gpg --import) or set Backup:Secrets:GnupgHome");
        }
        finally
        {
            await ChildProcess.RunAsync("gpgconf", ["--kill", "gpg-agent"], new Dictionary<string, string?> { ["GNUPGHOME"] = publicOnly });
            Directory.Delete(publicOnly, recursive: true);
        }
    }

    [Fact]
    public async Task A_recipient_without_a_public_key_refuses_the_upload_naming_the_key_and_stores_nothing()
    {
        var store = Store(recipient: "nobody@example.invalid");

        var write = () => store.WriteAsync("database", "veloz_1.dump", new MemoryStream(MarkedText(10)));

        (await write.Should().ThrowAsync<StoreException>()).Which.Message.Should().StartWith("Backup:S3:Encrypt is on but Backup:Secrets:Recipients: no public key for nobody@example.invalid");
        Directory.Exists(Path.Combine(_server.DataDirectory, _bucket, "veloz-1")).Should().BeFalse();
    }

    [Fact]
    public async Task Off_writes_plaintext_as_before()
    {
        await Store(encrypt: false).WriteAsync("wal", "orders_1.wal", new MemoryStream(Encoding.ASCII.GetBytes(Marker)));
        File.ReadAllText(ObjectFile("wal", "orders_1.wal"), Encoding.ASCII).Should().Be(Marker);
        File.Exists(ObjectFile("wal", "orders_1.wal.enc.gpg")).Should().BeFalse();
    }
}
