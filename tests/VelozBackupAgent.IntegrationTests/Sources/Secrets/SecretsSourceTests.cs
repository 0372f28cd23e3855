using System.IO.Compression;
using System.Text;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.IntegrationTests.Sources.Archives;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Secrets;
using ChildProcess = VelozBackupAgent.IntegrationTests.Infrastructure.ChildProcess;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.IntegrationTests.Sources.Secrets;

/// <summary>The secrets kind with the real gpg, the real local store and real files.</summary>
public sealed class SecretsSourceTests : IDisposable
{
    private const UnixFileMode Mode0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode Mode0700 = Mode0600 | UnixFileMode.UserExecute;
    private static readonly DateTimeOffset Start = new(2026, 11, 23, 2, 30, 0, TimeSpan.Zero);

    private readonly SourceWorkspace _ws = new("veloz-secrets-");
    private readonly ManualClock _clock = new(Start);

    public SecretsSourceTests()
    {
        _ws.Options.Secrets.Directory = _ws.Source;
        _ws.Options.Secrets.GnupgHome = TestEnvironment.GnupgHome;
        _ws.Options.Secrets.Recipients.Add(TestEnvironment.GpgRecipient);
    }

    public void Dispose() => _ws.Dispose();

    private SecretsSource Source(TimeProvider? time = null) => new(_ws.Options, _ws.Repository, time ?? _clock, _ws.Logs.Factory());

    private void SeedSecrets(string canary = "no-canary")
    {
        _ws.Write("binance.key", $"api-key={canary}\n", Mode0600);
        _ws.Write("db/postgres.pass", "s3cr3t\n", Mode0600);
        _ws.Write("db/tls/client.pem", new string('P', 5000), Mode0600);
        File.SetUnixFileMode(Path.Combine(_ws.Source, "db"), Mode0700);
        File.CreateSymbolicLink(Path.Combine(_ws.Source, "current.key"), "binance.key");
    }

    /// <summary>gpg --decrypt piped into tar -xzf -, as an operator would restore by hand.</summary>
    private static async Task DecryptIntoAsync(string gnupgHome, string artifact, string into)
    {
        Directory.CreateDirectory(into);
        var r = await ChildProcess.RunAsync("bash", ["-c", "set -o pipefail; gpg --batch --quiet --decrypt \"$1\" | tar -xzf - -C \"$2\"", "restore", artifact, into],
            new Dictionary<string, string?> { ["GNUPGHOME"] = gnupgHome });
        r.ExitCode.Should().Be(0, r.StdErr);
    }

    private async Task AssertRestoredIdenticallyAsync(string restored)
    {
        foreach (var file in new[] { "binance.key", "db/postgres.pass", "db/tls/client.pem" })
        {
            (await File.ReadAllBytesAsync(Path.Combine(restored, file))).Should().Equal(await File.ReadAllBytesAsync(Path.Combine(_ws.Source, file)), file);
            File.GetUnixFileMode(Path.Combine(restored, file)).Should().Be(Mode0600, file);
            File.GetLastWriteTimeUtc(Path.Combine(restored, file)).Should().Be(File.GetLastWriteTimeUtc(Path.Combine(_ws.Source, file)), file);
        }

        File.GetUnixFileMode(Path.Combine(restored, "db")).Should().Be(Mode0700);
        new FileInfo(Path.Combine(restored, "current.key")).LinkTarget.Should().Be("binance.key");
    }

    [Fact]
    public async Task The_artifact_decrypts_with_plain_gpg_piped_into_tar_to_identical_files()
    {
        SeedSecrets();

        var output = await Source().RunAsync(BackupTrigger.Scheduled, CancellationToken.None);

        var artifact = output.Artifacts.Should().ContainSingle().Subject;
        artifact.Name.Should().Be("secrets_20261123_023000.tar.gz.gpg");
        var fingerprint = await TempGnupgHome.FingerprintAsync(TestEnvironment.GnupgHome, TestEnvironment.GpgRecipient);
        output.Detail.Should().Be($"3 file(s) encrypted to {fingerprint}");
        var path = _ws.PathOf("secrets", artifact.Name);
        var head = new byte[2];
        await using (var f = File.OpenRead(path))
        {
            await f.ReadExactlyAsync(head);
        }

        head.Should().NotEqual(new byte[] { 0x1f, 0x8b }, "the stored bytes are an OpenPGP message, not a gzip stream");

        var restored = Path.Combine(_ws.Directory, "restored");
        await DecryptIntoAsync(TestEnvironment.GnupgHome, path, restored);
        await AssertRestoredIdenticallyAsync(restored);
        Directory.GetFileSystemEntries(restored, "*", SearchOption.AllDirectories).Should().HaveCount(6);
    }

    [Fact]
    public async Task Every_recipient_can_decrypt_and_only_public_keys_are_needed_to_encrypt()
    {
        SeedSecrets();
        await using var second = TempGnupgHome.Create();
        await second.GenerateKeyAsync("second-recipient@example.com");
        await using var sender = TempGnupgHome.Create();
        await sender.ImportPublicKeyAsync(TestEnvironment.GnupgHome, TestEnvironment.GpgRecipient);
        await sender.ImportPublicKeyAsync(second.Path, "second-recipient@example.com");
        _ws.Options.Secrets.GnupgHome = sender.Path;
        _ws.Options.Secrets.Recipients.Add("second-recipient@example.com");

        var output = await Source().RunAsync(BackupTrigger.Manual, CancellationToken.None);

        var path = _ws.PathOf("secrets", output.Artifacts.Single().Name);
        var packets = await ChildProcess.RunAsync("gpg", ["--batch", "--list-packets", path], new Dictionary<string, string?> { ["GNUPGHOME"] = sender.Path });
        packets.StdOut.Split('\n').Count(l => l.StartsWith(":pubkey enc packet:", StringComparison.Ordinal)).Should().Be(2);
        await DecryptIntoAsync(TestEnvironment.GnupgHome, path, Path.Combine(_ws.Directory, "first"));
        await DecryptIntoAsync(second.Path, path, Path.Combine(_ws.Directory, "second"));
        await AssertRestoredIdenticallyAsync(Path.Combine(_ws.Directory, "first"));
        await AssertRestoredIdenticallyAsync(Path.Combine(_ws.Directory, "second"));
    }

    [Fact]
    public async Task A_plaintext_canary_is_nowhere_on_disk_or_in_the_logs()
    {
        var testStart = TimeProvider.System.GetUtcNow().UtcDateTime.AddSeconds(-2);
        var canary = "CANARY-" + Guid.NewGuid().ToString("N");
        SeedSecrets(canary);
        _ws.Write("big/blob.bin", string.Concat(Enumerable.Repeat(canary + "\n", 200_000)), Mode0600);
        var source = Source();
        await source.RunAsync(BackupTrigger.Scheduled, CancellationToken.None);
        _ws.Write("binance.key", $"api-key={canary}-rotated\n", Mode0600);
        _clock.Advance(TimeSpan.FromMinutes(1));
        (await source.RunAsync(BackupTrigger.Change, CancellationToken.None)).Artifacts.Should().ContainSingle();
        var runner = new BackupRunner([source], _ws.Options.StateDirectory, _clock, _ws.Logs.Factory().CreateLogger<BackupRunner>());
        await using (await UnreadableFile.MakeAsync(Path.Combine(_ws.Source, "db", "postgres.pass")))
        {
            (await runner.RunAsync("secrets", BackupTrigger.Manual)).Outcome.Should().Be(BackupOutcome.Failed);
        }

        var needle = Encoding.UTF8.GetBytes(canary);
        var leaks = new List<string>();
        leaks.AddRange(FilesContaining(_ws.BackupRoot, needle, newerThan: null, exclude: null));
        leaks.AddRange(FilesContaining(Path.GetTempPath(), needle, newerThan: testStart, exclude: _ws.Source));
        leaks.Should().BeEmpty("no plaintext byte of a secret may reach the disk outside the secrets directory");

        // The search itself finds plaintext, also gzip-compressed: it is not a test that cannot fail.
        FilesContaining(_ws.Source, needle, newerThan: null, exclude: null).Should().Contain(Path.Combine(_ws.Source, "binance.key"));
        var control = Path.Combine(_ws.Directory, "control.tar.gz");
        await using (var gzip = new GZipStream(File.Create(control), CompressionLevel.Optimal))
        {
            await gzip.WriteAsync(Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat(canary, 100))));
        }

        FilesContaining(Path.GetTempPath(), needle, newerThan: testStart, exclude: _ws.Source).Should().Equal(control);
        _ws.Logs.Lines.Should().NotBeEmpty().And.NotContain(l => l.Contains(canary, StringComparison.Ordinal));
        Directory.GetFiles(_ws.Options.StateDirectory, "*", SearchOption.AllDirectories).Should().NotBeEmpty();
    }

    [Fact]
    public async Task A_change_run_writes_only_when_the_directory_changed_since_the_last_backup()
    {
        SeedSecrets();
        var source = Source();
        var first = (await source.RunAsync(BackupTrigger.Scheduled, CancellationToken.None)).Artifacts.Single();

        var unchanged = await source.RunAsync(BackupTrigger.Change, CancellationToken.None);
        unchanged.Artifacts.Should().BeEmpty();
        unchanged.Detail.Should().Be($"unchanged since {first.Name}");

        var state = await File.ReadAllTextAsync(Path.Combine(_ws.Options.StateDirectory, "secrets", "last-backup"));
        state.Should().NotContain("binance").And.NotContain("postgres").And.NotContain("s3cr3t").And.Contain(first.Name);
        File.GetUnixFileMode(Path.Combine(_ws.Options.StateDirectory, "secrets", "last-backup")).Should().Be(Mode0600);

        // The same size and mtime, different bytes: the ctime still gives it away.
        var key = Path.Combine(_ws.Source, "binance.key");
        var mtime = File.GetLastWriteTimeUtc(key);
        var original = await File.ReadAllTextAsync(key);
        await File.WriteAllTextAsync(key, original.Replace('n', 'N'));
        File.SetLastWriteTimeUtc(key, mtime);
        _clock.Advance(TimeSpan.FromMinutes(1));
        (await source.RunAsync(BackupTrigger.Change, CancellationToken.None)).Artifacts.Should().ContainSingle();
        (await source.RunAsync(BackupTrigger.Change, CancellationToken.None)).Artifacts.Should().BeEmpty();

        // The last backup pruned from the store: the next change-triggered run writes again.
        foreach (var name in _ws.Artifacts("secrets"))
        {
            await _ws.Repository.Local.DeleteAsync("secrets", name);
        }

        _clock.Advance(TimeSpan.FromMinutes(1));
        (await source.RunAsync(BackupTrigger.Change, CancellationToken.None)).Artifacts.Should().ContainSingle();

        // Scheduled runs always write.
        (await source.RunAsync(BackupTrigger.Scheduled, CancellationToken.None)).Artifacts.Should().ContainSingle();
        _ws.Artifacts("secrets").Should().Equal("secrets_20261123_023200-2.tar.gz.gpg", "secrets_20261123_023200.tar.gz.gpg");
    }

    [Fact]
    public async Task A_secrets_change_is_backed_up_by_the_running_watcher_within_seconds()
    {
        SeedSecrets();
        var source = Source(TimeProvider.System);
        var runner = new BackupRunner([source], _ws.Options.StateDirectory, TimeProvider.System);
        (await runner.RunAsync("secrets", BackupTrigger.Scheduled)).Outcome.Should().Be(BackupOutcome.Succeeded);

        using var stop = new CancellationTokenSource();
        var watching = source.WatchAsync(ct => runner.RunAsync("secrets", BackupTrigger.Change, ct), stop.Token);
        try
        {
            _ws.Write("kraken.key", "new exchange key\n", Mode0600);
            (await Tools.EventuallyAsync(() => _ws.Artifacts("secrets").Length == 2, TimeSpan.FromSeconds(15))).Should().BeTrue();
            var newest = (await BackupCatalog.ListAsync(_ws.Repository.Local, "secrets"))[0].Name;
            var restored = Path.Combine(_ws.Directory, "restored");
            await DecryptIntoAsync(TestEnvironment.GnupgHome, _ws.PathOf("secrets", newest), restored);
            (await File.ReadAllTextAsync(Path.Combine(restored, "kraken.key"))).Should().Be("new exchange key\n");
        }
        finally
        {
            await stop.CancelAsync();
            await FluentActions.Awaiting(() => watching).Should().ThrowAsync<OperationCanceledException>();
        }
    }

    [Fact]
    public async Task No_recipient_is_refused_before_anything_is_read()
    {
        SeedSecrets();
        _ws.Options.Secrets.Recipients.Clear();
        _ws.Options.Secrets.Recipients.Add(" ");

        (await FailureAsync()).Should().Be("Backup:Secrets:Recipients is empty: refusing to back up secrets without encryption");
    }

    [Fact]
    public async Task A_recipient_without_a_public_key_is_named_and_no_other_recipient_gets_a_backup_either()
    {
        SeedSecrets();
        _ws.Options.Secrets.Recipients.Add("nobody@example.invalid");

        (await FailureAsync()).Should().Be(
            $"Backup:Secrets:Recipients: no public key for nobody@example.invalid in GNUPGHOME {TestEnvironment.GnupgHome} (gpg: error reading key: No public key); import it with gpg --import");
    }

    [Fact]
    public async Task Expired_revoked_and_sign_only_keys_are_refused_by_name()
    {
        SeedSecrets();
        await using var home = TempGnupgHome.Create();
        var expired = await home.GenerateKeyAsync("expired@example.com", expire: "1d", fakedSystemTime: "20200101T000000");
        var revoked = await home.GenerateKeyAsync("revoked@example.com");
        await home.RevokeAsync(revoked);
        var signOnly = await home.GenerateKeyAsync("sign-only@example.com", "ed25519", "sign");
        await home.GenerateKeyAsync("twin-a@example.org");
        await home.GenerateKeyAsync("twin-b@example.org");
        _ws.Options.Secrets.GnupgHome = home.Path;

        var cases = new (string Recipient, string Expected)[]
        {
            ("expired@example.com", $"Backup:Secrets:Recipients: cannot encrypt to expired@example.com: Test <expired@example.com> ({expired}) is expired since 2020-01-02; refusing to back up secrets to a key that cannot decrypt them"),
            ("revoked@example.com", $"Backup:Secrets:Recipients: cannot encrypt to revoked@example.com: Test <revoked@example.com> ({revoked}) is revoked; refusing to back up secrets to a key that cannot decrypt them"),
            (signOnly, $"Backup:Secrets:Recipients: cannot encrypt to {signOnly}: Test <sign-only@example.com> ({signOnly}) is not usable for encryption (no valid encryption subkey: expired, revoked or never made); refusing to back up secrets to a key that cannot decrypt them"),
            ("example.org", "Backup:Secrets:Recipients: example.org matches 2 usable keys ("),
        };
        foreach (var (recipient, expected) in cases)
        {
            _ws.Options.Secrets.Recipients.Clear();
            _ws.Options.Secrets.Recipients.Add(recipient);
            (await FailureAsync()).Should().StartWith(expected);
        }
    }

    [Fact]
    public async Task A_missing_directory_is_one_line_naming_the_key()
    {
        _ws.Options.Secrets.Directory = Path.Combine(_ws.Directory, "no-such-secrets");
        (await FailureAsync()).Should().Be($"Backup:Secrets:Directory does not exist: {Path.Combine(_ws.Directory, "no-such-secrets")}");
    }

    [Fact]
    public async Task An_empty_directory_is_refused_rather_than_backed_up_as_nothing()
    {
        Directory.CreateDirectory(Path.Combine(_ws.Source, "only-a-directory"));
        (await FailureAsync()).Should().Be($"Backup:Secrets:Directory has no files: {_ws.Source}; refusing to store an empty secrets backup (is it mounted?)");
    }

    [Fact]
    public async Task A_missing_gpg_is_named_with_how_to_fix_it()
    {
        SeedSecrets();
        _ws.Options.Secrets.GpgPath = "/nonexistent/bin/gpg";
        (await FailureAsync()).Should().Be("gpg not found: /nonexistent/bin/gpg (install gnupg (apt-get install gnupg) or set Backup:Secrets:GpgPath)");
    }

    [Fact]
    public async Task An_unreadable_secret_is_named_not_hidden_behind_the_killed_gpg()
    {
        SeedSecrets();
        var victim = Path.Combine(_ws.Source, "db", "postgres.pass");
        await using (await UnreadableFile.MakeAsync(victim))
        {
            (await FailureAsync()).Should().Be($"cannot read {victim}: permission denied");
        }
    }

    /// <summary>Runs once through the real runner; asserts it failed with one line and stored nothing; returns the line.</summary>
    private async Task<string> FailureAsync()
    {
        var runner = new BackupRunner([Source()], _ws.Options.StateDirectory, _clock);
        var result = await runner.RunAsync("secrets", BackupTrigger.Manual);
        result.Outcome.Should().Be(BackupOutcome.Failed);
        result.Detail.Should().NotBeNullOrEmpty().And.NotContain("\n");
        _ws.StoredFiles("secrets").Should().BeEmpty("a refused or failed run leaves nothing in the store");
        return result.Detail!;
    }

    /// <summary>Regular files under <paramref name="root"/> whose bytes (or, for gzip files, decompressed bytes) contain <paramref name="needle"/>.</summary>
    internal static IEnumerable<string> FilesContaining(string root, byte[] needle, DateTime? newerThan, string? exclude)
    {
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.ReparsePoint };
        foreach (var file in Directory.EnumerateFiles(root, "*", options))
        {
            if (exclude is not null && file.StartsWith(exclude + "/", StringComparison.Ordinal))
            {
                continue;
            }

            FileStatus? status;
            try
            {
                status = FileStatus.TryLstat(file);
            }
            catch (IOException)
            {
                continue;
            }

            if (status is not { Kind: FileKind.Regular } s || (newerThan is { } t && s.ModifiedAt.UtcDateTime < t))
            {
                continue;
            }

            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(file);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            if (bytes.AsSpan().IndexOf(needle) >= 0 || (bytes.Length > 2 && bytes[0] == 0x1f && bytes[1] == 0x8b && Gunzip(bytes).AsSpan().IndexOf(needle) >= 0))
            {
                yield return file;
            }
        }
    }

    private static byte[] Gunzip(byte[] bytes)
    {
        try
        {
            using var gzip = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
            using var plain = new MemoryStream();
            gzip.CopyTo(plain);
            return plain.ToArray();
        }
        catch (InvalidDataException)
        {
            return [];
        }
    }
}
