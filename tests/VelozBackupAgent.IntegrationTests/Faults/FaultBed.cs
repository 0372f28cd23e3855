using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.IntegrationTests.Pitr;

namespace VelozBackupAgent.IntegrationTests.Faults;

/// <summary>One artifact as <c>list --json</c> shows it.</summary>
public sealed record ListedArtifact(string Kind, string Target, string Name, long Size, string? Sha256);

/// <summary>
/// A host for fault injection: every kind enabled against real sources — a WAL directory that grows by sealed segments,
/// a configuration tree, a secrets directory (real gpg), and, when asked for, a private PostgreSQL 15 cluster with a
/// replication role (database and pitr kinds, through <see cref="PitrTestBed"/>) and/or an s3rver.
/// </summary>
internal sealed class FaultBed : IAsyncDisposable
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
    private static readonly JsonSerializerOptions CaseInsensitive = new() { PropertyNameCaseInsensitive = true };
    private readonly PitrTestBed? _pitr;
    private readonly string? _ownRoot;
    private int _segments;

    private FaultBed(string root, PitrTestBed? pitr, S3rverServer? s3, string bucket)
    {
        Root = root;
        _pitr = pitr;
        _ownRoot = pitr is null ? root : null;
        S3 = s3;
        Bucket = bucket;
    }

    public string Root { get; }
    public S3rverServer? S3 { get; }
    public string Bucket { get; }
    public static string NodeName => PitrTestBed.NodeName;
    public string LocalRoot => Path.Combine(Root, "backup");
    public string WalDirectory => Path.Combine(Root, "wal");
    public string ConfigRoot => Path.Combine(Root, "etc", "veloz");
    public string SecretsDirectory => Path.Combine(Root, "secrets");
    public string ConfigPath => Path.Combine(Root, "appsettings.json");

    /// <summary>Kinds this bed backs up.</summary>
    public IReadOnlyList<string> Kinds => _pitr is null ? [BackupKinds.Wal, BackupKinds.Config, BackupKinds.Secrets] : BackupKinds.All;

    /// <param name="postgres">A private cluster for the database and pitr kinds.</param>
    /// <param name="withS3">An s3rver (its own process, stopped and restarted by tests).</param>
    public static async Task<FaultBed> CreateAsync(bool postgres, bool withS3)
    {
        FaultBed bed;
        if (postgres)
        {
            // Its cluster, role, database and s3rver; the configuration it wrote is replaced below.
            var pitr = await PitrTestBed.CreateAsync(withS3);
            bed = new FaultBed(pitr.Root, pitr, pitr.S3, pitr.Bucket);
            await pitr.Orders.CommitAsync();
        }
        else
        {
            var root = Directory.CreateTempSubdirectory("veloz-faults-").FullName;
            S3rverServer? s3 = null;
            var bucket = "faults-" + Guid.NewGuid().ToString("N")[..8];
            if (withS3)
            {
                s3 = await S3rverServer.StartNewAsync();
                await s3.CreateBucketAsync(bucket);
            }

            bed = new FaultBed(root, null, s3, bucket);
            Directory.CreateDirectory(bed.LocalRoot, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        bed.WriteSources();
        await bed.WriteConfigAsync();
        return bed;
    }

    /// <summary>Runs the real binary with this bed's configuration.</summary>
    public Task<ProcessResult> RunAsync(params string[] args) =>
        VelozBackupBinary.RunAsync([.. args, "--config", ConfigPath], timeout: TimeSpan.FromMinutes(2));

    /// <summary>Starts the real binary without waiting (for a kill).</summary>
    public Process Start(params string[] args) => VelozBackupBinary.Start([.. args, "--config", ConfigPath]);

    /// <summary>New material for <paramref name="kind"/>, so its next backup has work to do.</summary>
    public async Task ChangeSourceAsync(string kind)
    {
        switch (kind)
        {
            case BackupKinds.Wal:
                AddSegments(2, 1_500_000);
                await File.AppendAllTextAsync(Path.Combine(WalDirectory, "orders_current.wal"), "order " + _segments + "\n");
                break;
            case BackupKinds.Config:
                await File.AppendAllTextAsync(Path.Combine(ConfigRoot, "strategies", "momentum.yaml"), $"# {_segments++}\n");
                break;
            case BackupKinds.Secrets:
                await File.WriteAllTextAsync(Path.Combine(SecretsDirectory, "rotated.key"), "key-" + Guid.NewGuid());
                break;
            case BackupKinds.Database:
            case BackupKinds.Pitr:
                await _pitr!.Orders.CommitAsync();
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, null);
        }
    }

    /// <summary><c>list KIND --json</c> (exit 0 asserted).</summary>
    public async Task<IReadOnlyList<ListedArtifact>> ListAsync(string kind, string target = "local")
    {
        var r = await RunAsync("list", kind, "--json", "--target", target);
        r.ExitCode.Should().Be(0, r.StdErr);
        return JsonSerializer.Deserialize<List<ListedArtifact>>(r.StdOut, CaseInsensitive)!;
    }

    /// <summary><c>status --json</c> (exit 0 asserted): each kind's local count, and the upload backlog (null without S3).</summary>
    public async Task<(Dictionary<string, int> LocalCounts, int? Backlog)> StatusAsync()
    {
        var r = await RunAsync("status", "--json");
        r.ExitCode.Should().Be(0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var counts = doc.RootElement.GetProperty("kinds").EnumerateArray()
            .Where(k => k.GetProperty("target").GetString() == "local")
            .ToDictionary(k => k.GetProperty("kind").GetString()!, k => k.GetProperty("count").GetInt32(), StringComparer.Ordinal);
        var backlog = doc.RootElement.GetProperty("uploadBacklog");
        return (counts, backlog.ValueKind == JsonValueKind.Null ? null : backlog.GetProperty("artifacts").GetInt32());
    }

    /// <summary>Path of a local artifact.</summary>
    public string LocalPath(string kind, string name) => Path.Combine(LocalRoot, kind, name);

    /// <summary>SHA-256 (hex) of a file.</summary>
    public static string Hash(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(f));
    }

    /// <summary>The hash a sidecar records (its first field, <c>sha256sum</c> format).</summary>
    public static string SidecarHash(string artifactPath) => File.ReadAllText(artifactPath + ".sha256").Split(' ', 2)[0].Trim();

    /// <summary>Keys (objects, not sidecars) under this node's prefix for <paramref name="kind"/> in the bucket, with their bytes' SHA-256.</summary>
    public async Task<Dictionary<string, string>> S3HashesAsync(string kind)
    {
        using var client = S3!.CreateClient();
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        var prefix = $"{NodeName}/{kind}/";
        string? token = null;
        do
        {
            var page = await client.ListObjectsV2Async(new Amazon.S3.Model.ListObjectsV2Request { BucketName = Bucket, Prefix = prefix, ContinuationToken = token });
            foreach (var o in page.S3Objects ?? [])
            {
                if (o.Key.EndsWith(".sha256", StringComparison.Ordinal))
                {
                    continue;
                }

                using var get = await client.GetObjectAsync(Bucket, o.Key);
                await using var body = get.ResponseStream;
                var name = o.Key[prefix.Length..];
                // Copies the agent encrypted (Backup:S3:Encrypt, the default) are compared by their plaintext, decrypted
                // with the real gpg and the test key, as the README's break glass does.
                result[name.EndsWith(EncryptedSuffix, StringComparison.Ordinal) ? name[..^EncryptedSuffix.Length] : name] =
                    name.EndsWith(EncryptedSuffix, StringComparison.Ordinal) ? await DecryptedHashAsync(body) : Convert.ToHexStringLower(await SHA256.HashDataAsync(body));
            }

            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token is not null);
        return result;
    }

    private const string EncryptedSuffix = ".enc.gpg";

    private static async Task<string> DecryptedHashAsync(Stream ciphertext)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("gpg", ["--batch", "--no-tty", "--quiet", "--decrypt"])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.Environment["GNUPGHOME"] = TestEnvironment.GnupgHome;
        using var gpg = System.Diagnostics.Process.Start(psi)!;
        var feed = Task.Run(async () =>
        {
            await ciphertext.CopyToAsync(gpg.StandardInput.BaseStream);
            gpg.StandardInput.Close();
        });
        var errors = gpg.StandardError.ReadToEndAsync();
        var hash = await SHA256.HashDataAsync(gpg.StandardOutput.BaseStream);
        await feed;
        await gpg.WaitForExitAsync();
        gpg.ExitCode.Should().Be(0, await errors);
        return Convert.ToHexStringLower(hash);
    }

    private void WriteSources()
    {
        Directory.CreateDirectory(WalDirectory);
        AddSegments(3, 1_500_000);
        File.WriteAllText(Path.Combine(WalDirectory, "orders_current.wal"), "order 0\n");
        File.SetLastWriteTimeUtc(Path.Combine(WalDirectory, "orders_current.wal"), TimeProvider.System.GetUtcNow().UtcDateTime.AddMinutes(-5));

        Directory.CreateDirectory(Path.Combine(ConfigRoot, "strategies"));
        File.WriteAllText(Path.Combine(ConfigRoot, "config.yaml"), "engine:\n  venue: binance\n");
        File.WriteAllText(Path.Combine(ConfigRoot, "strategies", "momentum.yaml"), "window: 20\n");
        var big = new byte[3_000_000];
        new Random(7).NextBytes(big);
        File.WriteAllBytes(Path.Combine(ConfigRoot, "strategies", "model.bin"), big);

        Directory.CreateDirectory(SecretsDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.WriteAllText(Path.Combine(SecretsDirectory, "exchange_api.key"), "api-key-" + Guid.NewGuid());
        var blob = new byte[2_000_000];
        new Random(8).NextBytes(blob);
        File.WriteAllBytes(Path.Combine(SecretsDirectory, "keystore.bin"), blob);
    }

    private void AddSegments(int count, int bytes)
    {
        var old = TimeProvider.System.GetUtcNow().UtcDateTime.AddMinutes(-5);
        for (var i = 0; i < count; i++)
        {
            var path = Path.Combine(WalDirectory, $"orders_{++_segments:D16}.wal");
            var data = new byte[bytes];
            new Random(_segments).NextBytes(data);
            File.WriteAllBytes(path, data);
            File.SetLastWriteTimeUtc(path, old);
        }
    }

    private async Task WriteConfigAsync()
    {
        var backup = new Dictionary<string, object?>
        {
            ["NodeName"] = NodeName,
            ["LocalRoot"] = LocalRoot,
            ["Wal"] = new { Directory = WalDirectory, SettleTime = "00:00:00" },
            ["Config"] = new { Root = ConfigRoot, Include = new[] { "config.yaml", "strategies/*" } },
            ["Database"] = _pitr is null
                ? new Dictionary<string, object?> { ["Enabled"] = false }
                : new Dictionary<string, object?> { ["ConnectionString"] = _pitr.ConnectionString, ["BinDirectory"] = TestEnvironment.PostgresBinDirectory },
            ["Secrets"] = new { Directory = SecretsDirectory, Recipients = new[] { TestEnvironment.GpgRecipient }, GnupgHome = TestEnvironment.GnupgHome },
            ["Pitr"] = _pitr is null
                ? new Dictionary<string, object?> { ["Enabled"] = false }
                : new Dictionary<string, object?> { ["Enabled"] = true, ["DataDirectory"] = _pitr.Cluster.DataDirectory, ["Slot"] = "veloz_backup", ["StopCommand"] = _pitr.Cluster.StopCommand, ["StartCommand"] = _pitr.Cluster.StartCommand },
            ["S3"] = S3 is null
                ? new { Enabled = false }
                : new { Enabled = true, Bucket, ServiceUrl = S3.ServiceUrl, ForcePathStyle = true, ChunkedUpload = false, MaxRetries = 1, PartSizeMiB = 5 },
            ["Restore"] = new { StopCommand = "", StartCommand = "" },
            ["Verify"] = new { DrillEnabled = false },
            ["Log"] = new { File = "" },
        };
        await File.WriteAllTextAsync(ConfigPath, JsonSerializer.Serialize(new { Backup = backup }, Indented));
    }

    /// <summary>The pids of <paramref name="pid"/>'s descendants now.</summary>
    public static List<int> Descendants(int pid)
    {
        var result = new List<int>();
        var queue = new Queue<int>([pid]);
        while (queue.Count > 0)
        {
            foreach (var child in LinuxProcesses.ChildrenOf(queue.Dequeue()))
            {
                result.Add(child);
                queue.Enqueue(child);
            }
        }

        return result;
    }

    public static string Ms(TimeSpan t) => t.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture) + " ms";

    public async ValueTask DisposeAsync()
    {
        if (_pitr is not null)
        {
            await _pitr.DisposeAsync();
            return;
        }

        if (S3 is not null)
        {
            await S3.DisposeAsync();
        }

        foreach (var pid in LinuxProcesses.Under(Root))
        {
            LinuxProcesses.Kill(pid);
        }

        Directory.Delete(_ownRoot!, recursive: true);
    }
}
