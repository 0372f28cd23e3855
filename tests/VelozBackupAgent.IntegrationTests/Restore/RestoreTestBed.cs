using System.Security.Cryptography;
using System.Text.Json;
using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Restore;

/// <summary>
/// A VeloZ host in a temp directory: a WAL directory with sealed segments and an active file, a configuration
/// tree with a secrets directory inside, a seeded PostgreSQL database, optionally an s3rver, a health endpoint
/// that is up only between the configured start and stop commands, and an appsettings.json for the real binary.
/// </summary>
public sealed class RestoreTestBed : IAsyncDisposable
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    private RestoreTestBed(string root, PostgresDatabase database, S3rverServer? s3, string bucket)
    {
        Root = root;
        Database = database;
        S3 = s3;
        Bucket = bucket;
        Health = new HealthServer(() => File.Exists(ServiceLog) && File.ReadAllLines(ServiceLog).LastOrDefault() == "started");
    }

    public string Root { get; }
    public PostgresDatabase Database { get; }
    public S3rverServer? S3 { get; }
    public string Bucket { get; }
    public HealthServer Health { get; }
    public string LocalRoot => Path.Combine(Root, "backup");
    public string WalDirectory => Path.Combine(Root, "var", "lib", "veloz", "wal");
    public string ConfigRoot => Path.Combine(Root, "etc", "veloz");
    public string SecretsDirectory => Path.Combine(ConfigRoot, "secrets");
    public string ServiceLog => Path.Combine(Root, "service.log");
    public string ConfigPath => Path.Combine(Root, "appsettings.json");
    public const string NodeName = "veloz-drill";

    /// <summary>The WAL files' mode here: owner-only, narrower than the 0640 a restore falls back to, so a restore must carry it.</summary>
    public const UnixFileMode WalFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>The WAL directory's mode here (owner-only).</summary>
    public const UnixFileMode WalDirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public static async Task<RestoreTestBed> CreateAsync(bool withS3)
    {
        var root = Directory.CreateTempSubdirectory("veloz-restore-").FullName;
        var database = await PostgresDatabase.CreateAsync();
        S3rverServer? s3 = null;
        var bucket = "drill-" + Guid.NewGuid().ToString("N")[..8];
        if (withS3)
        {
            s3 = await S3rverServer.StartNewAsync();
            await s3.CreateBucketAsync(bucket);
        }

        var bed = new RestoreTestBed(root, database, s3, bucket);
        Directory.CreateDirectory(bed.LocalRoot);
        await database.SeedOrdersAsync(2500);
        bed.WriteSources();
        await bed.WriteConfigAsync();
        await File.WriteAllTextAsync(bed.ServiceLog, "started\n");
        return bed;
    }

    /// <summary>Runs the real binary with this bed's configuration.</summary>
    public Task<ProcessResult> RunAsync(params string[] args) =>
        VelozBackupBinary.RunAsync([.. args, "--config", ConfigPath], timeout: TimeSpan.FromMinutes(3));

    /// <summary>The WAL, config and secrets trees as they are: relative path → (sha256 or link target, mode).</summary>
    public static Dictionary<string, (string Content, UnixFileMode Mode)> Snapshot(string directory)
    {
        var result = new Dictionary<string, (string, UnixFileMode)>(StringComparer.Ordinal);
        if (!Directory.Exists(directory))
        {
            return result;
        }

        foreach (var path in Directory.EnumerateFileSystemEntries(directory, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(directory, path);
            if (relative.StartsWith(".veloz-restore-", StringComparison.Ordinal))
            {
                continue;
            }

            var info = new FileInfo(path);
            var content = info.LinkTarget is { } link ? "-> " + link
                : Directory.Exists(path) ? "dir"
                : Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));
            result[relative] = (content, info.LinkTarget is null ? File.GetUnixFileMode(path) : 0);
        }

        return result;
    }

    /// <summary>Row count and a checksum over the orders, to compare a database before and after.</summary>
    public static async Task<string> FingerprintAsync(PostgresDatabase db) =>
        await db.ScalarAsync<string>("SELECT count(*) || ':' || md5(string_agg(id || symbol || side || qty || price, ',' ORDER BY id)) FROM orders")
        + "|" + await db.ScalarAsync<string>("SELECT md5(string_agg(symbol || qty, ',' ORDER BY symbol)) FROM positions");

    private void WriteSources()
    {
        Directory.CreateDirectory(WalDirectory, WalDirectoryMode);
        var old = TimeProvider.System.GetUtcNow().UtcDateTime.AddMinutes(-10);
        for (var i = 1; i <= 6; i++)
        {
            var path = Path.Combine(WalDirectory, $"orders_{i:D16}.wal");
            File.WriteAllBytes(path, RandomBytes(i, 40_000 + i * 1000));
            File.SetUnixFileMode(path, WalFileMode);
            File.SetLastWriteTimeUtc(path, old);
        }

        var active = Path.Combine(WalDirectory, "orders_current.wal");
        File.WriteAllBytes(active, RandomBytes(99, 12_345));
        File.SetUnixFileMode(active, WalFileMode);
        File.SetLastWriteTimeUtc(active, old);

        Directory.CreateDirectory(Path.Combine(ConfigRoot, "strategies"));
        File.WriteAllText(Path.Combine(ConfigRoot, "config.yaml"), "engine:\n  venue: binance\n  max_orders_per_second: 50\n");
        File.WriteAllText(Path.Combine(ConfigRoot, "risk_limits.yaml"), "max_position: 10\nmax_drawdown: 0.05\n");
        File.WriteAllText(Path.Combine(ConfigRoot, ".env"), "VELOZ_ENV=production\n");
        File.SetUnixFileMode(Path.Combine(ConfigRoot, ".env"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllText(Path.Combine(ConfigRoot, "strategies", "momentum.yaml"), "window: 20\nthreshold: 0.7\n");
        File.WriteAllText(Path.Combine(ConfigRoot, "strategies", "mean_reversion.yaml"), "window: 50\n");
        File.SetUnixFileMode(Path.Combine(ConfigRoot, "strategies", "mean_reversion.yaml"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);

        Directory.CreateDirectory(SecretsDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.WriteAllText(Path.Combine(SecretsDirectory, "exchange_api.key"), "api-key-" + Guid.NewGuid());
        File.WriteAllText(Path.Combine(SecretsDirectory, "db.password"), "pw-" + Guid.NewGuid());
        foreach (var f in Directory.GetFiles(SecretsDirectory))
        {
            File.SetUnixFileMode(f, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    private static byte[] RandomBytes(int seed, int length)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private async Task WriteConfigAsync()
    {
        var backup = new Dictionary<string, object?>
        {
            ["NodeName"] = NodeName,
            ["LocalRoot"] = LocalRoot,
            ["Wal"] = new { Directory = WalDirectory },
            ["Config"] = new { Root = ConfigRoot, Include = new[] { "config.yaml", "strategies/*.yaml", "risk_limits.yaml", ".env" }, Exclude = new[] { "**/*.secret" } },
            ["Database"] = new { Database.ConnectionString, BinDirectory = TestEnvironment.PostgresBinDirectory },
            ["Secrets"] = new { Directory = SecretsDirectory, Recipients = new[] { TestEnvironment.GpgRecipient }, GnupgHome = TestEnvironment.GnupgHome },
            ["S3"] = S3 is null
                ? new { Enabled = false }
                : new { Enabled = true, Bucket, ServiceUrl = S3.ServiceUrl, ForcePathStyle = true, ChunkedUpload = false, MaxRetries = 1 },
            ["Restore"] = new
            {
                StopCommand = $"echo stopped >> '{ServiceLog}'",
                StartCommand = $"echo started >> '{ServiceLog}'",
                HealthUrl = Health.Url,
                HealthTimeout = "00:00:20",
                Jobs = 2,
            },
            ["Log"] = new { File = "" },
        };
        await File.WriteAllTextAsync(ConfigPath, JsonSerializer.Serialize(new { Backup = backup }, Indented));
    }

    public async ValueTask DisposeAsync()
    {
        await Health.DisposeAsync();
        if (S3 is not null)
        {
            await S3.DisposeAsync();
        }

        await Database.DisposeAsync();
        Directory.Delete(Root, recursive: true);
    }
}
