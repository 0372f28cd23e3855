using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Sources.Secrets;

/// <summary>A throwaway GNUPGHOME for keys a test makes itself (second recipients, expired, revoked, sign-only keys).</summary>
public sealed class TempGnupgHome : IAsyncDisposable
{
    private TempGnupgHome(string path) => Path = path;

    public string Path { get; }

    public static TempGnupgHome Create()
    {
        var dir = Directory.CreateTempSubdirectory("veloz-gpg-").FullName;
        File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return new TempGnupgHome(dir);
    }

    /// <summary>Runs gpg with this home (or <paramref name="home"/>); fails the test on a non-zero exit.</summary>
    public static async Task<ProcessResult> GpgInAsync(string home, params string[] args)
    {
        var r = await ChildProcess.RunAsync("gpg", ["--batch", "--no-tty", .. args], new Dictionary<string, string?> { ["GNUPGHOME"] = home, ["LC_ALL"] = "C" });
        r.ExitCode.Should().Be(0, $"gpg {string.Join(' ', args)}: {r.StdErr}");
        return r;
    }

    public Task<ProcessResult> GpgAsync(params string[] args) => GpgInAsync(Path, args);

    /// <summary>Makes a passphrase-less key and returns its fingerprint.</summary>
    public async Task<string> GenerateKeyAsync(string email, string algorithm = "future-default", string usage = "default", string expire = "never", string? fakedSystemTime = null)
    {
        string[] faked = fakedSystemTime is null ? [] : ["--faked-system-time", fakedSystemTime];
        await GpgAsync([.. faked, "--passphrase", "", "--quick-generate-key", $"Test <{email}>", algorithm, usage, expire]);
        return await FingerprintAsync(Path, email);
    }

    /// <summary>Revokes a key with the revocation certificate gpg made when it generated it.</summary>
    public async Task RevokeAsync(string fingerprint)
    {
        var certificate = await File.ReadAllTextAsync(System.IO.Path.Combine(Path, "openpgp-revocs.d", fingerprint + ".rev"));
        var armored = certificate.Replace(":-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----", StringComparison.Ordinal);
        var file = System.IO.Path.Combine(Path, "revoke.asc");
        await File.WriteAllTextAsync(file, armored);
        await GpgAsync("--import", file);
    }

    /// <summary>Copies the public key of <paramref name="who"/> from <paramref name="fromHome"/> into this home.</summary>
    public async Task ImportPublicKeyAsync(string fromHome, string who)
    {
        var exported = await GpgInAsync(fromHome, "--armor", "--export", who);
        exported.StdOut.Should().Contain("BEGIN PGP PUBLIC KEY BLOCK");
        var file = System.IO.Path.Combine(Path, $"import-{Guid.NewGuid():N}.asc");
        await File.WriteAllTextAsync(file, exported.StdOut);
        await GpgAsync("--import", file);
    }

    public static async Task<string> FingerprintAsync(string home, string who)
    {
        var listing = await GpgInAsync(home, "--with-colons", "--fixed-list-mode", "--list-keys", who);
        return listing.StdOut.Split('\n').First(l => l.StartsWith("fpr:", StringComparison.Ordinal)).Split(':')[9];
    }

    public async ValueTask DisposeAsync()
    {
        await ChildProcess.RunAsync("gpgconf", ["--kill", "all"], new Dictionary<string, string?> { ["GNUPGHOME"] = Path });
        Directory.Delete(Path, recursive: true);
    }
}
