using System.Diagnostics;
using System.Text.Json;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.IntegrationTests.Telemetry;
using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.IntegrationTests.Pitr;

/// <summary>
/// A PostgreSQL host for point-in-time recovery tests: a private cluster (<see cref="PgCluster"/>) with the app role
/// <c>veloz</c> (LOGIN REPLICATION, password) owning a <c>veloz</c> database with an orders table, optionally an
/// s3rver, a tiny configuration tree (so another kind can be shown to keep running), and an appsettings.json for the
/// real binary with <c>Backup:Pitr</c> on, polling every second.
/// </summary>
internal sealed class PitrTestBed : IAsyncDisposable
{
    public const string Role = "veloz";
    public const string DatabaseName = "veloz";
    public const string NodeName = "veloz-pitr";
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    private PitrTestBed(string root, PgCluster cluster, S3rverServer? s3, string bucket, string password)
    {
        Root = root;
        Cluster = cluster;
        S3 = s3;
        Bucket = bucket;
        RolePassword = password;
        Orders = new OrdersWriter(cluster.ConnectionString(DatabaseName));
    }

    public string Root { get; }
    public PgCluster Cluster { get; }
    public S3rverServer? S3 { get; }
    public string Bucket { get; }
    public string RolePassword { get; }
    public OrdersWriter Orders { get; }
    public string LocalRoot => Path.Combine(Root, "backup");
    public string ConfigRoot => Path.Combine(Root, "etc", "veloz");
    public string ConfigPath => Path.Combine(Root, "appsettings.json");
    public string PitrDirectory => Path.Combine(LocalRoot, BackupKinds.Pitr);
    public string StatusPath => Path.Combine(LocalRoot, ".state", "pitr", "status.json");
    public string SpoolDirectory => Path.Combine(LocalRoot, ".state", "pitr", "spool");

    /// <summary>The connection string the agent uses: the app role, its password, the veloz database.</summary>
    public string ConnectionString => Cluster.ConnectionString(DatabaseName, Role, RolePassword);

    /// <param name="withS3">Start an s3rver and replicate to it.</param>
    /// <param name="cluster">How to build the cluster (settings, pg_hba).</param>
    /// <param name="replication">Whether the app role has REPLICATION.</param>
    /// <param name="configure">Changes to the Backup section before it is written (e.g. a BinDirectory).</param>
    public static async Task<PitrTestBed> CreateAsync(bool withS3 = false, PgClusterOptions? cluster = null, bool replication = true, Action<Dictionary<string, object?>>? configure = null)
    {
        var root = Directory.CreateTempSubdirectory("veloz-pitr-").FullName;

        // Restores stage WAL and scratch clusters under here for the server's OS user, who must be able to get in.
        File.SetUnixFileMode(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var pg = await PgCluster.CreateAsync(cluster);
        S3rverServer? s3 = null;
        var bucket = "pitr-" + Guid.NewGuid().ToString("N")[..8];
        if (withS3)
        {
            s3 = await S3rverServer.StartNewAsync();
            await s3.CreateBucketAsync(bucket);
        }

        var password = "pw-" + Guid.NewGuid().ToString("N");
        var bed = new PitrTestBed(root, pg, s3, bucket, password);
        if (pg.IsRunning)
        {
            await pg.CreateRoleAsync(Role, password, replication: replication);
            await pg.ExecuteAsync($"CREATE DATABASE {DatabaseName} OWNER {Role}");
            await OrdersWriter.CreateAsync(pg, DatabaseName);
            await pg.ExecuteAsync($"ALTER TABLE orders OWNER TO {Role}", DatabaseName);
        }

        Directory.CreateDirectory(bed.LocalRoot);
        Directory.CreateDirectory(bed.ConfigRoot);
        await File.WriteAllTextAsync(Path.Combine(bed.ConfigRoot, "config.yaml"), "engine:\n  venue: binance\n");
        await bed.WriteConfigAsync(configure);
        return bed;
    }

    /// <summary>Runs the real binary with this bed's configuration.</summary>
    public Task<ProcessResult> RunAsync(params string[] args) =>
        VelozBackupBinary.RunAsync([.. args, "--config", ConfigPath], timeout: TimeSpan.FromMinutes(3));

    /// <summary>Starts <c>veloz-backup run</c> with this bed's configuration.</summary>
    public RunningDaemon StartDaemon() => RunningDaemon.Start(["--config", ConfigPath], RunningDaemon.FreePort());

    /// <summary>What the daemon's receiver last wrote, or null.</summary>
    public PitrStatus? Status => PitrStatus.Load(StatusPath);

    /// <summary>Waits for the receiver's status to satisfy <paramref name="done"/>, failing with the daemon's console.</summary>
    public Task<PitrStatus> WaitForStatusAsync(RunningDaemon daemon, Func<PitrStatus, bool> done, string what) =>
        daemon.WaitForAsync(() => Task.FromResult(Status), done, what);

    /// <summary>Waits until <paramref name="done"/> holds (files appearing), failing with the daemon's console.</summary>
    public static async Task WaitForAsync(RunningDaemon daemon, Func<bool> done, string what) =>
        await daemon.WaitForAsync(() => Task.FromResult<object?>(done() ? new object() : null), _ => true, what);

    /// <summary>Complete artifacts (with sidecar) of the pitr kind in the local store.</summary>
    public IReadOnlyList<string> LocalArtifacts() =>
        Directory.Exists(PitrDirectory)
            ? [.. Directory.EnumerateFiles(PitrDirectory).Select(Path.GetFileName).OfType<string>()
                .Where(n => !n.StartsWith('.') && !n.EndsWith(".sha256", StringComparison.Ordinal) && File.Exists(Path.Combine(PitrDirectory, n + ".sha256")))
                .Order(StringComparer.Ordinal)]
            : [];

    /// <summary>Keys under this node's pitr prefix in the bucket (objects, not sidecars).</summary>
    public async Task<IReadOnlyList<string>> S3ArtifactsAsync()
    {
        using var client = S3!.CreateClient();
        var keys = new List<string>();
        string? token = null;
        do
        {
            var page = await client.ListObjectsV2Async(new Amazon.S3.Model.ListObjectsV2Request { BucketName = Bucket, Prefix = $"{NodeName}/{BackupKinds.Pitr}/", ContinuationToken = token });
            keys.AddRange((page.S3Objects ?? []).Select(o => o.Key[($"{NodeName}/{BackupKinds.Pitr}/").Length..]).Where(k => !k.EndsWith(".sha256", StringComparison.Ordinal))
                .Select(k => k.EndsWith(".enc.gpg", StringComparison.Ordinal) ? k[..^".enc.gpg".Length] : k)); // encrypted copies: the artifact's name
            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token is not null);
        return keys;
    }

    /// <summary>The server's WAL position now.</summary>
    public async Task<Lsn> ServerLsnAsync() => Lsn.Parse(await Cluster.CurrentLsnAsync());

    /// <summary>The pid of the pg_receivewal the daemon runs (spooling into this bed), or null.</summary>
    public int? ReceiverPid() =>
        LinuxProcesses.Under(Root).Cast<int?>().FirstOrDefault(p => File.Exists($"/proc/{p}/cmdline")
            && File.ReadAllText($"/proc/{p}/cmdline").Contains("pg_receivewal", StringComparison.Ordinal));

    /// <summary>Polls <paramref name="done"/> (no daemon involved) until it holds or <paramref name="timeout"/> passes.</summary>
    public static async Task<bool> EventuallyAsync(Func<Task<bool>> done, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (await done())
            {
                return true;
            }

            await Task.Delay(200);
        }

        return await done();
    }

    /// <summary>The section <paramref name="key"/> of a Backup configuration being written (for <c>configure</c> callbacks).</summary>
    public static Dictionary<string, object?> Section(Dictionary<string, object?> backup, string key) => (Dictionary<string, object?>)backup[key]!;

    private async Task WriteConfigAsync(Action<Dictionary<string, object?>>? configure)
    {
        var backup = new Dictionary<string, object?>
        {
            ["NodeName"] = NodeName,
            ["LocalRoot"] = LocalRoot,
            ["Wal"] = new { Enabled = false },
            ["Config"] = new Dictionary<string, object?> { ["Enabled"] = false, ["Root"] = ConfigRoot, ["Include"] = new[] { "config.yaml" } },
            ["Database"] = new Dictionary<string, object?> { ["Enabled"] = false, ["ConnectionString"] = ConnectionString, ["BinDirectory"] = TestEnvironment.PostgresBinDirectory },
            // Disabled as a kind; its recipients are what the S3 copies are encrypted to.
            ["Secrets"] = new { Enabled = false, Recipients = new[] { TestEnvironment.GpgRecipient }, GnupgHome = TestEnvironment.GnupgHome },
            ["Pitr"] = new Dictionary<string, object?>
            {
                ["Enabled"] = true,
                ["DataDirectory"] = Cluster.DataDirectory,
                ["Slot"] = "veloz_backup",
                ["ShipPartialEvery"] = "00:00:01",
                ["StopCommand"] = Cluster.StopCommand,
                ["StartCommand"] = Cluster.StartCommand,
            },
            ["S3"] = S3 is null
                ? new { Enabled = false }
                : new { Enabled = true, Bucket, ServiceUrl = S3.ServiceUrl, ForcePathStyle = true, ChunkedUpload = false, MaxRetries = 1 },
            ["Verify"] = new { DrillEnabled = false },
            ["Log"] = new { File = "" },
        };
        configure?.Invoke(backup);
        await File.WriteAllTextAsync(ConfigPath, JsonSerializer.Serialize(new { Backup = backup }, Indented));
    }

    public async ValueTask DisposeAsync()
    {
        if (S3 is not null)
        {
            await S3.DisposeAsync();
        }

        await Cluster.DisposeAsync();
        foreach (var pid in LinuxProcesses.Under(Root))
        {
            LinuxProcesses.Kill(pid);
        }

        Directory.Delete(Root, recursive: true);
    }
}
