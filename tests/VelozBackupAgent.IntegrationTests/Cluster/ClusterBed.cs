using System.Diagnostics;
using System.Text;
using System.Text.Json;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.IntegrationTests.Telemetry;

namespace VelozBackupAgent.IntegrationTests.Cluster;

/// <summary>
/// Several agents sharing one database: a private PostgreSQL (<see cref="PgCluster"/>, the app role <c>veloz</c> with
/// LOGIN REPLICATION owning the <c>veloz</c> database), one s3rver, and one configuration and local store per node
/// (<c>node-a</c>, <c>node-b</c>, …) with <c>Backup:Cluster:Enabled</c>. Every wait is bounded and, on timeout, fails
/// with the tail of each node's console.
/// </summary>
internal sealed class ClusterBed : IAsyncDisposable
{
    public const string Role = "veloz";
    public const string DatabaseName = "veloz";
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
    private readonly Dictionary<string, RunningDaemon> _running = new(StringComparer.Ordinal);

    private ClusterBed(string root, PgCluster pg, S3rverServer s3, string bucket, string password)
    {
        Root = root;
        Pg = pg;
        S3 = s3;
        Bucket = bucket;
        RolePassword = password;
        Orders = new OrdersWriter(pg.ConnectionString(DatabaseName));
    }

    public string Root { get; }
    public PgCluster Pg { get; }
    public S3rverServer S3 { get; }
    public string Bucket { get; }
    public string RolePassword { get; }
    public OrdersWriter Orders { get; }

    /// <summary>The connection string every agent uses: the app role, its password, the veloz database.</summary>
    public string ConnectionString => Pg.ConnectionString(DatabaseName, Role, RolePassword);

    public static async Task<ClusterBed> CreateAsync()
    {
        var root = Directory.CreateTempSubdirectory("veloz-cluster-").FullName;
        File.SetUnixFileMode(root, (UnixFileMode)Convert.ToInt32("755", 8));
        var pg = await PgCluster.CreateAsync();
        var s3 = await S3rverServer.StartNewAsync();
        var bucket = "cluster-" + Guid.NewGuid().ToString("N")[..8];
        await s3.CreateBucketAsync(bucket);
        var password = "pw-" + Guid.NewGuid().ToString("N");
        await pg.CreateRoleAsync(Role, password, replication: true);
        await pg.ExecuteAsync($"CREATE DATABASE {DatabaseName} OWNER {Role}");
        await OrdersWriter.CreateAsync(pg, DatabaseName);
        await pg.ExecuteAsync($"ALTER TABLE orders OWNER TO {Role}", DatabaseName);
        return new ClusterBed(root, pg, s3, bucket, password);
    }

    public string LocalRoot(string node) => Path.Combine(Root, node, "backup");

    public string ConfigPath(string node) => Path.Combine(Root, node, "appsettings.json");

    /// <summary>Writes <paramref name="node"/>'s configuration: the dump every few seconds, clustered; <paramref name="configure"/> changes it.</summary>
    public async Task WriteConfigAsync(string node, Action<Dictionary<string, object?>>? configure = null)
    {
        Directory.CreateDirectory(LocalRoot(node));
        var backup = new Dictionary<string, object?>
        {
            ["NodeName"] = node,
            ["LocalRoot"] = LocalRoot(node),
            ["Wal"] = new { Enabled = false },
            ["Config"] = new { Enabled = false },
            ["Database"] = new Dictionary<string, object?>
            {
                ["Enabled"] = true, ["ConnectionString"] = ConnectionString, ["BinDirectory"] = TestEnvironment.PostgresBinDirectory,
                ["Schedule"] = "0/5 * * * * ?",
            },
            ["Secrets"] = new { Enabled = false, Recipients = new[] { TestEnvironment.GpgRecipient }, GnupgHome = TestEnvironment.GnupgHome },
            ["Pitr"] = new Dictionary<string, object?> { ["Enabled"] = false },
            ["S3"] = new { Enabled = true, Bucket, ServiceUrl = S3.ServiceUrl, ForcePathStyle = true, ChunkedUpload = false, MaxRetries = 1 },
            ["Verify"] = new { DrillEnabled = false },
            ["Cluster"] = new Dictionary<string, object?> { ["Enabled"] = true, ["CheckinInterval"] = "00:00:01", ["CheckinMisfireThreshold"] = "00:00:05" },
            ["Log"] = new { File = "", Level = "Information" },
        };
        configure?.Invoke(backup);
        await File.WriteAllTextAsync(ConfigPath(node), JsonSerializer.Serialize(new { Backup = backup }, Indented));
    }

    /// <summary>
    /// Turns on PITR streaming (the slot, partial pieces every second, this bed's server's stop/start) in a configuration
    /// being written, with these dump and base backup schedules (nightly by default: nothing fires during a test, though a
    /// new cluster takes its first of each at start-up).
    /// </summary>
    public void WithPitr(Dictionary<string, object?> backup, string dumpSchedule = "0 0 2 * * ?", string baseSchedule = "0 0 3 * * ?")
    {
        ArgumentNullException.ThrowIfNull(backup);
        Section(backup, "Database")["Schedule"] = dumpSchedule;
        backup["Pitr"] = new Dictionary<string, object?>
        {
            ["Enabled"] = true, ["DataDirectory"] = Pg.DataDirectory, ["Slot"] = "veloz_backup", ["ShipPartialEvery"] = "00:00:01",
            ["BaseSchedule"] = baseSchedule, ["StopCommand"] = Pg.StopCommand, ["StartCommand"] = Pg.StartCommand,
        };
    }

    /// <summary>The section <paramref name="key"/> of a configuration being written.</summary>
    public static Dictionary<string, object?> Section(Dictionary<string, object?> backup, string key) => (Dictionary<string, object?>)backup[key]!;

    public RunningDaemon Start(string node)
    {
        var daemon = RunningDaemon.Start(["--config", ConfigPath(node)], RunningDaemon.FreePort());
        _running[node] = daemon;
        return daemon;
    }

    public RunningDaemon Node(string node) => _running[node];

    /// <summary>SIGKILL <paramref name="node"/> and its children.</summary>
    public Task KillAsync(string node) => _running[node].KillAsync();

    /// <summary>Every node's console, its last lines each, for a failure message.</summary>
    public string Consoles(int lines = 40)
    {
        var sb = new StringBuilder();
        foreach (var (node, daemon) in _running)
        {
            var all = daemon.Console.Split('\n');
            sb.AppendLine($"----- {node} (pid {daemon.ProcessId}{(daemon.HasExited ? ", exited" : "")}), last {lines} lines -----");
            sb.AppendLine(string.Join('\n', all.TakeLast(lines)));
        }

        return sb.ToString();
    }

    /// <summary>Polls <paramref name="done"/> until it holds; on timeout fails with every node's console tail.</summary>
    public async Task WaitForAsync(Func<Task<bool>> done, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (await done())
            {
                return;
            }

            await Task.Delay(200);
        }

        if (!await done())
        {
            throw new TimeoutException($"{what}: not within {timeout.TotalSeconds} s\n{Consoles()}");
        }
    }

    /// <summary>The nodes the node table has as checked in within the last few seconds.</summary>
    public async Task<IReadOnlyList<string>> LiveNodesAsync()
    {
        try
        {
            await using var c = new Npgsql.NpgsqlConnection(Pg.ConnectionString(DatabaseName));
            await c.OpenAsync();
            await using var cmd = new Npgsql.NpgsqlCommand("SELECT node FROM veloz_quartz.veloz_nodes WHERE now() - last_seen < interval '5 seconds' ORDER BY node", c);
            var nodes = new List<string>();
            await using var r = await cmd.ExecuteReaderAsync();
            while (await r.ReadAsync())
            {
                nodes.Add(r.GetString(0));
            }

            return nodes;
        }
        catch (Npgsql.PostgresException ex) when (ex.SqlState is "42P01" or "3F000")
        {
            return [];
        }
    }

    /// <summary>The node whose pg_receivewal streams through the slot now (its application name carries the node), or null.</summary>
    /// <remarks>
    /// Past start-up only, as <see cref="ReceiverConsumersAsync"/>: a node whose retry the server is about to refuse the
    /// active slot shows for a moment in state <c>startup</c>, and was taken for the holder (by name order) while another
    /// node streamed (a failed run: "node-b stores the WAL of a commit after the kill" while node-a held the slot).
    /// </remarks>
    public async Task<string?> ReceiverHolderAsync()
    {
        var name = await Pg.ScalarAsync<string?>("SELECT max(application_name) FROM pg_stat_replication WHERE application_name LIKE 'veloz-backup-receiver %' AND state <> 'startup'");
        return name is string s ? s["veloz-backup-receiver ".Length..] : null;
    }

    /// <summary>The node running a dump that started at or after <paramref name="since"/> (veloz_runs), or null.</summary>
    public async Task<(string Node, DateTime Started)?> RunningDumpAsync(DateTime since)
    {
        await using var c = new Npgsql.NpgsqlConnection(Pg.ConnectionString(DatabaseName));
        await c.OpenAsync();
        await using var cmd = new Npgsql.NpgsqlCommand("SELECT node, started_at FROM veloz_quartz.veloz_runs WHERE kind = 'database' AND outcome = 'running' AND started_at >= @s", c);
        cmd.Parameters.AddWithValue("s", since.AddSeconds(-1));
        await using var r = await cmd.ExecuteReaderAsync();
        return await r.ReadAsync() ? (r.GetString(0), r.GetDateTime(1)) : null;
    }

    /// <summary>How many receivers stream now.</summary>
    /// <remarks>
    /// Walsenders past start-up only: a standby's retry connects (and shows here, state <c>startup</c>) for the moment
    /// before the server refuses it the active slot, which is the one-consumer rule working, not a second consumer.
    /// </remarks>
    public async Task<long> ReceiverConsumersAsync() =>
        await Pg.ScalarAsync<long>("SELECT count(*) FROM pg_stat_replication WHERE application_name LIKE 'veloz-backup-receiver %' AND state <> 'startup'");

    /// <summary>What <paramref name="node"/>'s receiver last wrote.</summary>
    public VelozBackupAgent.Pitr.PitrStatus? PitrStatus(string node) =>
        VelozBackupAgent.Pitr.PitrStatus.Load(Path.Combine(LocalRoot(node), ".state", "pitr", "status.json"));

    /// <summary>Complete dumps (with their sidecar) in <paramref name="node"/>'s local store.</summary>
    public IReadOnlyList<string> Dumps(string node)
    {
        var dir = Path.Combine(LocalRoot(node), BackupKinds.Database);
        return Directory.Exists(dir)
            ? [.. Directory.EnumerateFiles(dir, "*.dump").Select(Path.GetFileName).OfType<string>()
                .Where(n => File.Exists(Path.Combine(dir, n + ".sha256"))).Order(StringComparer.Ordinal)]
            : [];
    }

    /// <summary>Every file (hidden ones too) in <paramref name="node"/>'s database directory.</summary>
    public IReadOnlyList<string> DatabaseFiles(string node)
    {
        var dir = Path.Combine(LocalRoot(node), BackupKinds.Database);
        return Directory.Exists(dir) ? [.. Directory.EnumerateFiles(dir).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal)] : [];
    }

    /// <summary>Object keys in the bucket (no sidecars).</summary>
    public async Task<IReadOnlyList<string>> S3KeysAsync()
    {
        using var client = S3.CreateClient();
        var keys = new List<string>();
        string? token = null;
        do
        {
            var page = await client.ListObjectsV2Async(new Amazon.S3.Model.ListObjectsV2Request { BucketName = Bucket, ContinuationToken = token });
            // Encrypted copies (Backup:S3:Encrypt, on when recipients are set) by the artifact's name.
            keys.AddRange((page.S3Objects ?? []).Select(o => o.Key).Where(k => !k.EndsWith(".sha256", StringComparison.Ordinal))
                .Select(k => k.EndsWith(".enc.gpg", StringComparison.Ordinal) ? k[..^".enc.gpg".Length] : k));
            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token is not null);
        return keys;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var daemon in _running.Values)
        {
            await daemon.DisposeAsync();
        }

        await S3.DisposeAsync();
        await Pg.DisposeAsync();
        foreach (var pid in LinuxProcesses.Under(Root))
        {
            LinuxProcesses.Kill(pid);
        }

        Directory.Delete(Root, recursive: true);
    }
}
