using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Npgsql;

namespace VelozBackupAgent.IntegrationTests.Infrastructure;

/// <summary>How <see cref="PgCluster.CreateAsync"/> builds a cluster.</summary>
public sealed record PgClusterOptions
{
    /// <summary>
    /// Extra postgresql.conf settings, written after the cluster's own (so they win), each value quoted, e.g.
    /// <c>["wal_level"] = "minimal", ["max_wal_senders"] = "0"</c> (PostgreSQL 15 refuses to start with
    /// <c>wal_level=minimal</c> unless <c>max_wal_senders=0</c>).
    /// </summary>
    public IReadOnlyDictionary<string, string> Settings { get; init; } = new Dictionary<string, string>();

    /// <summary>Keep initdb's <c>replication</c> lines in pg_hba.conf; false removes them (the "no pg_hba.conf entry" case).</summary>
    public bool ReplicationHba { get; init; } = true;

    /// <summary>Start the server before <see cref="PgCluster.CreateAsync"/> returns.</summary>
    public bool Start { get; init; } = true;

    /// <summary><c>initdb --data-checksums</c>.</summary>
    public bool DataChecksums { get; init; }
}

/// <summary>Which WAL segment a <c>pg_switch_wal()</c> completed.</summary>
/// <param name="Lsn">What <c>pg_switch_wal()</c> returned: the end of the switch record + 1 in the completed segment.</param>
/// <param name="CompletedSegment">That segment's file name, e.g. <c>000000010000000000000003</c>.</param>
public sealed record WalSwitch(string Lsn, string CompletedSegment);

/// <summary>
/// A throwaway, private PostgreSQL 15 cluster: its own data directory, socket directory and log under a temp
/// <see cref="Root"/> (<c>/tmp/veloz-pgc-*</c>), on a free loopback port, scram-sha-256 with a random
/// superuser password. PITR tests stop, kill, wipe and restore whole clusters, which the shared cluster of
/// scripts/test.sh cannot take. As root the server runs as the <c>postgres</c> OS user (PostgreSQL refuses
/// root), otherwise as the current user.
/// <para>
/// Port, listen address and socket directory are written to the data directory's postgresql.conf, so every
/// start of this data directory (<see cref="StartAsync"/>, <see cref="StartCommand"/>, a base backup of it
/// restored into <see cref="DataDirectory"/>) listens in the same place. Small by default:
/// <c>shared_buffers=16MB</c>, <c>max_connections=20</c>, <c>fsync=off</c> (a SIGKILL of the server is safe
/// with fsync off, only an OS crash is not; set <c>["fsync"]="on"</c> where a test needs it).
/// </para>
/// <para>
/// <see cref="DisposeAsync"/> stops (immediate) every postmaster under <see cref="Root"/>, also one started
/// from a restored or copied data directory, SIGKILLs any process left whose working directory or arguments
/// are under <see cref="Root"/> (e.g. a pg_receivewal spooling there), unmounts mounts below it (a test's
/// tmpfs), and deletes <see cref="Root"/>.
/// </para>
/// </summary>
public sealed partial class PgCluster : IAsyncDisposable
{
    private const string ConfMarker = "# ---- PgCluster (tests/VelozBackupAgent.IntegrationTests/Infrastructure/PgCluster.cs) ----";
    private const int PortAttempts = 8;
    private static readonly TimeSpan ServerTimeout = TimeSpan.FromSeconds(90);

    private readonly PgClusterOptions _options;
    private string _initdbConf = "";
    private bool _everStarted;

    private PgCluster(PgClusterOptions options, string root)
    {
        _options = options;
        Root = root;
        Port = FreePort();
    }

    /// <summary>True when the tests run as root: the server then runs as <c>postgres</c>.</summary>
    public static bool RunningAsRoot => Environment.UserName == "root";

    /// <summary>The temp directory holding everything (mode 0755 so the postgres user can traverse it).</summary>
    public string Root { get; }

    /// <summary>PGDATA: <c>Root/data</c>, mode 0700, owned by <see cref="OsUser"/>.</summary>
    public string DataDirectory => Path.Combine(Root, "data");

    /// <summary><c>unix_socket_directories</c> (and the lock file): <c>Root/run</c>.</summary>
    public string SocketDirectory => Path.Combine(Root, "run");

    /// <summary>The server log (<c>pg_ctl -l</c>, appended to by every start): <c>Root/log/postgres.log</c>.</summary>
    public string LogFile => Path.Combine(Root, "log", "postgres.log");

    /// <summary>Where initdb, pg_ctl, pg_receivewal… are: <see cref="TestEnvironment.PostgresBinDirectory"/>.</summary>
    public string BinDirectory { get; } = TestEnvironment.PostgresBinDirectory;

    /// <summary>The loopback TCP port (fixed once the server has started the first time).</summary>
    public int Port { get; private set; }

    /// <summary>The bootstrap superuser: <c>postgres</c> as root, else the current user name.</summary>
    public string Superuser { get; } = RunningAsRoot ? "postgres" : Environment.UserName;

    public string SuperuserPassword { get; } = NewPassword();

    /// <summary>The OS user initdb, pg_ctl and the server run as.</summary>
    public string OsUser { get; } = RunningAsRoot ? "postgres" : Environment.UserName;

    /// <summary>
    /// A shell command line (for <c>/bin/sh -c</c>, as root or as <see cref="OsUser"/>) that stops this
    /// cluster: <c>pg_ctl stop -m fast -w</c>. Exits 0 at once when the server is not running (like
    /// <c>systemctl stop</c>); otherwise pg_ctl's exit code.
    /// </summary>
    public string StopCommand => $"cd {Quote(Root)} && if ! {PgCtlLine("status")} >/dev/null 2>&1; then exit 0; fi; exec {PgCtlLine("-m", "fast", "-w", "-t", "90", "stop")}";

    /// <summary>
    /// A shell command line that starts this cluster with its port, socket directory and log, waiting
    /// (<c>pg_ctl -w -t 90</c>) until the server accepts connections (exit 0) or fails (exit 1). Exits 0 at
    /// once when it is already running. In archive recovery "accepts connections" means read-only ones (hot
    /// standby): pg_ctl returns before recovery has finished; poll <c>pg_is_in_recovery()</c>.
    /// </summary>
    public string StartCommand => $"cd {Quote(Root)} && if {PgCtlLine("status")} >/dev/null 2>&1; then exit 0; fi; exec {PgCtlLine("-l", LogFile, "-w", "-t", "90", "start")}";

    /// <summary>True while the postmaster named in <see cref="DataDirectory"/>/postmaster.pid is alive.</summary>
    public bool IsRunning => PostmasterPid() is not null;

    /// <summary>initdb (about a second) and, unless <see cref="PgClusterOptions.Start"/> is false, start.</summary>
    public static async Task<PgCluster> CreateAsync(PgClusterOptions? options = null)
    {
        options ??= new PgClusterOptions();
        var cluster = new PgCluster(options, Directory.CreateTempSubdirectory("veloz-pgc-").FullName);
        try
        {
            var root = cluster.Root;
            File.SetUnixFileMode(root, (UnixFileMode)Convert.ToInt32("755", 8));
            var data = Path.Combine(root, "data");
            var run = Path.Combine(root, "run");
            var log = Path.Combine(root, "log");
            Directory.CreateDirectory(data, (UnixFileMode)Convert.ToInt32("700", 8));
            Directory.CreateDirectory(run, (UnixFileMode)Convert.ToInt32("755", 8));
            Directory.CreateDirectory(log, (UnixFileMode)Convert.ToInt32("755", 8));
            await ChownToServerAsync(data, run, log);

            // The password goes to initdb through a file only the server's user can read, removed at once.
            var passwordFile = Path.Combine(root, "pwfile");
            await File.WriteAllTextAsync(passwordFile, cluster.SuperuserPassword + "\n");
            File.SetUnixFileMode(passwordFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            await ChownToServerAsync(passwordFile);
            string[] initdb =
            [
                "-D", data, "-U", cluster.Superuser, "--auth=scram-sha-256", $"--pwfile={passwordFile}",
                "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync", .. options.DataChecksums ? new[] { "--data-checksums" } : [],
            ];
            var result = await cluster.RunAsOsUserAsync("initdb", initdb);
            File.Delete(passwordFile);
            if (result.ExitCode != 0)
            {
                throw new InvalidOperationException($"initdb failed (exit {result.ExitCode}): {result.StdErr}{result.StdOut}");
            }

            cluster._initdbConf = await File.ReadAllTextAsync(Path.Combine(data, "postgresql.conf"));
            await cluster.WriteConfAsync();
            if (!options.ReplicationHba)
            {
                await cluster.RemoveReplicationHbaAsync();
            }

            if (options.Start)
            {
                await cluster.StartAsync();
            }

            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Npgsql connection string over TCP (Host=127.0.0.1, Pooling=false); the superuser by default.</summary>
    public string ConnectionString(string database = "postgres", string? user = null, string? password = null) =>
        new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = Port,
            Database = database,
            Username = user ?? Superuser,
            Password = user is null ? password ?? SuperuserPassword : password,
            Pooling = false,
            Timeout = 10,
            IncludeErrorDetail = true,
        }.ConnectionString;

    /// <summary>
    /// libpq variables (PGHOST=127.0.0.1, PGPORT, PGUSER, PGPASSWORD, PGDATABASE=postgres) for running
    /// psql/pg_receivewal/pg_basebackup against this cluster with <see cref="ChildProcess"/>.
    /// </summary>
    public Dictionary<string, string?> ClientEnvironment(string? user = null, string? password = null) => new()
    {
        ["PGHOST"] = "127.0.0.1",
        ["PGPORT"] = Port.ToString(CultureInfo.InvariantCulture),
        ["PGUSER"] = user ?? Superuser,
        ["PGPASSWORD"] = user is null ? password ?? SuperuserPassword : password,
        ["PGDATABASE"] = "postgres",
    };

    /// <summary>The path of a PostgreSQL tool, e.g. <c>Tool("pg_receivewal")</c>.</summary>
    public string Tool(string name) => Path.Combine(BinDirectory, name);

    /// <summary>
    /// <c>pg_ctl start -w</c> unless running. Before the first successful start a port that turned out to be
    /// taken (another test's server) is replaced by a new free one; later the port never changes.
    /// </summary>
    public async Task StartAsync()
    {
        if (IsRunning)
        {
            return;
        }

        await WaitForDeadPostmasterToBeReapedAsync();
        for (var attempt = 1; ; attempt++)
        {
            var logBefore = File.Exists(LogFile) ? new FileInfo(LogFile).Length : 0;
            var result = await RunAsOsUserAsync("pg_ctl", "-D", DataDirectory, "-l", LogFile, "-w", "-t", "90", "start");
            if (result.ExitCode == 0)
            {
                _everStarted = true;
                return;
            }

            var log = ReadLogFrom(logBefore);
            if (!_everStarted && attempt < PortAttempts && log.Contains("could not bind", StringComparison.Ordinal))
            {
                Port = FreePort();
                await WriteConfAsync();
                continue;
            }

            throw new InvalidOperationException($"pg_ctl start of {DataDirectory} failed (exit {result.ExitCode}): {result.StdErr.Trim()}\nserver log:\n{log}");
        }
    }

    /// <summary><c>pg_ctl stop -w</c>, <c>-m fast</c> or <c>-m immediate</c>; nothing when not running.</summary>
    public async Task StopAsync(bool immediate = false)
    {
        if (!IsRunning)
        {
            return;
        }

        var result = await RunAsOsUserAsync("pg_ctl", "-D", DataDirectory, "-m", immediate ? "immediate" : "fast", "-w", "-t", "90", "stop");
        if (result.ExitCode != 0 && IsRunning)
        {
            throw new InvalidOperationException($"pg_ctl stop of {DataDirectory} failed (exit {result.ExitCode}): {result.StdErr.Trim()}");
        }
    }

    /// <summary>Fast stop, then start (not <c>pg_ctl restart</c>, which would replay postmaster.opts).</summary>
    public async Task RestartAsync()
    {
        await StopAsync();
        await StartAsync();
    }

    /// <summary>
    /// A crash: SIGKILL the postmaster, then wait until it and its children (which exit on their own when they
    /// see the postmaster die; SIGKILLed after 5 s) are gone, so a following start does crash recovery rather
    /// than fail on "pre-existing shared memory block is still in use". Throws when not running.
    /// </summary>
    public async Task KillAsync()
    {
        var pid = PostmasterPid() ?? throw new InvalidOperationException($"no postmaster is running for {DataDirectory}");
        var family = LinuxProcesses.ChildrenOf(pid);
        LinuxProcesses.Kill(pid);
        if (!await LinuxProcesses.WaitVanishedAsync([pid], TimeSpan.FromSeconds(15)))
        {
            throw new InvalidOperationException($"postmaster {pid} is still listed in /proc 15 s after SIGKILL (not reaped)");
        }

        family.AddRange(LinuxProcesses.Under(DataDirectory));
        if (!await LinuxProcesses.WaitGoneAsync(family, TimeSpan.FromSeconds(5)))
        {
            family.ForEach(LinuxProcesses.Kill);
            await LinuxProcesses.WaitGoneAsync(family, TimeSpan.FromSeconds(5));
        }
    }

    /// <summary>Runs SQL (several statements allowed) on a fresh connection as the superuser.</summary>
    public async Task ExecuteAsync(string sql, string database = "postgres")
    {
        await using var connection = new NpgsqlConnection(ConnectionString(database));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 120 };
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>
    /// First column of the first row, read as <typeparamref name="T"/> by Npgsql (so timestamptz can be read as
    /// DateTimeOffset); SQL NULL gives default. Cast pg_lsn to text (<c>::text</c>) to read it as a string.
    /// </summary>
    public async Task<T> ScalarAsync<T>(string sql, string database = "postgres")
    {
        await using var connection = new NpgsqlConnection(ConnectionString(database));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 120 };
        await using var reader = await command.ExecuteReaderAsync();
        if (!await reader.ReadAsync())
        {
            throw new InvalidOperationException($"no row from: {sql}");
        }

        return await reader.IsDBNullAsync(0) ? default! : await reader.GetFieldValueAsync<T>(0);
    }

    /// <summary><c>CREATE ROLE name LOGIN PASSWORD …</c> with the options asked for (NOREPLICATION otherwise).</summary>
    public Task CreateRoleAsync(string name, string password, bool replication = false, bool superuser = false, bool createdb = false) =>
        ExecuteAsync($"CREATE ROLE {Identifier(name)} LOGIN PASSWORD {Literal(password)}"
            + (replication ? " REPLICATION" : " NOREPLICATION") + (superuser ? " SUPERUSER" : "") + (createdb ? " CREATEDB" : ""));

    /// <summary>
    /// Runs a program as <see cref="OsUser"/> (<c>runuser -u postgres --</c> as root) in <see cref="Root"/>,
    /// with <see cref="ClientEnvironment"/> and PGDATA set. A bare name is looked up in <see cref="BinDirectory"/>
    /// first, e.g. <c>RunAsOsUserAsync("pg_controldata")</c>.
    /// </summary>
    public Task<ProcessResult> RunAsOsUserAsync(string file, params string[] args)
    {
        var path = !Path.IsPathRooted(file) && File.Exists(Path.Combine(BinDirectory, file)) ? Path.Combine(BinDirectory, file) : file;
        var environment = ClientEnvironment();
        environment["PGDATA"] = DataDirectory;
        return RunAsOsUserStaticAsync(path, args, environment, Root);
    }

    /// <summary>Appends a line to pg_hba.conf and reloads (when running). pg_hba.conf is first-match: see <see cref="PrependHbaAsync"/>.</summary>
    public async Task AppendHbaAsync(string line)
    {
        await File.AppendAllTextAsync(Path.Combine(DataDirectory, "pg_hba.conf"), line + "\n");
        await ReloadIfRunningAsync();
    }

    /// <summary>Puts a line before initdb's lines (so it wins, e.g. a <c>reject</c>) and reloads (when running).</summary>
    public async Task PrependHbaAsync(string line)
    {
        var hba = Path.Combine(DataDirectory, "pg_hba.conf");
        await File.WriteAllTextAsync(hba, line + "\n" + await File.ReadAllTextAsync(hba));
        await ReloadIfRunningAsync();
    }

    /// <summary>
    /// <c>pg_reload_conf()</c>, then waits until a new connection shows a newer <c>pg_conf_load_time()</c>, i.e.
    /// until the postmaster has re-read postgresql.conf, postgresql.auto.conf and pg_hba.conf.
    /// </summary>
    public async Task ReloadAsync()
    {
        var before = await ScalarAsync<DateTimeOffset>("SELECT pg_conf_load_time()");
        await ExecuteAsync("SELECT pg_reload_conf()");
        var deadline = TimeProvider.System.GetUtcNow() + TimeSpan.FromSeconds(10);
        while (await ScalarAsync<DateTimeOffset>("SELECT pg_conf_load_time()") <= before)
        {
            if (TimeProvider.System.GetUtcNow() > deadline)
            {
                throw new TimeoutException($"the server of {DataDirectory} did not reload its configuration in 10 s");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>
    /// <c>ALTER SYSTEM SET setting = 'value'</c>, then a reload, or a restart when the setting's context is
    /// <c>postmaster</c> (wal_level, max_wal_senders, shared_buffers, port…). Returns true when it restarted.
    /// </summary>
    public async Task<bool> SetAsync(string setting, string value)
    {
        if (!SettingName().IsMatch(setting))
        {
            throw new ArgumentException($"not a setting name: {setting}", nameof(setting));
        }

        var context = await ScalarAsync<string?>($"SELECT context FROM pg_settings WHERE name = {Literal(setting.ToLowerInvariant())}")
            ?? throw new ArgumentException($"PostgreSQL has no setting {setting}", nameof(setting));
        await ExecuteAsync($"ALTER SYSTEM SET {setting} = {Literal(value)}");
        if (context == "postmaster")
        {
            await RestartAsync();
            return true;
        }

        await ReloadAsync();
        return false;
    }

    /// <summary>
    /// <c>pg_current_wal_insert_lsn()</c> as text (on a server in recovery: <c>pg_last_wal_replay_lsn()</c>).
    /// Read after a COMMIT returned, it is at or after the end of that commit's record.
    /// </summary>
    public Task<string> CurrentLsnAsync() =>
        ScalarAsync<string>("SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END)::text");

    /// <summary>
    /// Completes the current WAL segment. Writes a commit record first (<c>SELECT txid_current()</c>), because
    /// <c>pg_switch_wal()</c> does nothing on a segment with no WAL since the last switch.
    /// </summary>
    public async Task<WalSwitch> SwitchWalAsync()
    {
        await ExecuteAsync("SELECT txid_current()");
        await using var connection = new NpgsqlConnection(ConnectionString());
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT s::text, pg_walfile_name(s) FROM pg_switch_wal() AS s", connection);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return new WalSwitch(reader.GetString(0), reader.GetString(1));
    }

    /// <summary><c>pg_create_restore_point(name)</c>; returns its LSN (a target for <c>recovery_target_name</c>).</summary>
    public Task<string> CreateRestorePointAsync(string name) => ScalarAsync<string>($"SELECT pg_create_restore_point({Literal(name)})::text");

    /// <summary>The whole server log so far.</summary>
    public string ReadLog() => ReadLogFrom(0);

    public async ValueTask DisposeAsync() => await CleanUpAsync(Root, OsUser, BinDirectory);

    /// <summary>
    /// Stops every postmaster whose data directory is under <paramref name="root"/>, kills what is left there,
    /// unmounts mounts below it and deletes it.
    /// </summary>
    private static async Task CleanUpAsync(string root, string osUser, string bin)
    {
        if (!Directory.Exists(root))
        {
            return;
        }

        foreach (var pidFile in SafeEnumerate(root, "postmaster.pid"))
        {
            var dataDirectory = Path.GetDirectoryName(pidFile)!;
            if (ReadPostmasterPid(dataDirectory) is not null)
            {
                await RunAsOsUserStaticAsync(Path.Combine(bin, "pg_ctl"), ["-D", dataDirectory, "-m", "immediate", "-w", "-t", "30", "stop"], null, root);
            }
        }

        for (var round = 0; round < 3; round++)
        {
            var left = LinuxProcesses.Under(root);
            if (left.Count == 0)
            {
                break;
            }

            left.ForEach(LinuxProcesses.Kill);
            await LinuxProcesses.WaitGoneAsync(left, TimeSpan.FromSeconds(5));
        }

        foreach (var mount in MountsUnder(root))
        {
            await ChildProcess.RunAsync("umount", ["-l", mount]);
        }

        for (var attempt = 1; ; attempt++)
        {
            try
            {
                Directory.Delete(root, recursive: true);
                return;
            }
            catch (IOException) when (attempt < 10)
            {
                await Task.Delay(100);
            }
            catch (UnauthorizedAccessException) when (attempt < 10 && osUser != Environment.UserName)
            {
                await Task.Delay(100);
            }
        }
    }

    /// <summary>
    /// After a crash (SIGKILL) the pid in postmaster.pid may still be an unreaped zombie for a moment; pg_ctl
    /// start would then fail with "lock file "postmaster.pid" already exists". Waits for it to vanish.
    /// </summary>
    private async Task WaitForDeadPostmasterToBeReapedAsync()
    {
        try
        {
            var firstLine = File.ReadLines(Path.Combine(DataDirectory, "postmaster.pid")).FirstOrDefault();
            if (int.TryParse(firstLine?.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && LinuxProcesses.Exists(pid) && !LinuxProcesses.IsAlive(pid))
            {
                await LinuxProcesses.WaitVanishedAsync([pid], TimeSpan.FromSeconds(15));
            }
        }
        catch (IOException)
        {
            // no pid file: nothing to wait for
        }
    }

    /// <summary>The live postmaster of <see cref="DataDirectory"/>, or null (no pid file, a stale one, or a reused pid).</summary>
    private int? PostmasterPid() => ReadPostmasterPid(DataDirectory);

    private static int? ReadPostmasterPid(string dataDirectory)
    {
        string firstLine;
        try
        {
            using var reader = new StreamReader(Path.Combine(dataDirectory, "postmaster.pid"));
            firstLine = reader.ReadLine() ?? "";
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }

        if (!int.TryParse(firstLine.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || !LinuxProcesses.IsAlive(pid))
        {
            return null;
        }

        var cwd = LinuxProcesses.WorkingDirectory(pid);
        return cwd is null || cwd == Path.GetFullPath(dataDirectory).TrimEnd('/') ? pid : null;
    }

    private static IEnumerable<string> SafeEnumerate(string root, string name)
    {
        try
        {
            return [.. Directory.EnumerateFiles(root, name, new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0 })];
        }
        catch (IOException)
        {
            return [];
        }
    }

    /// <summary>Mount points strictly below <paramref name="root"/>, deepest first (from /proc/self/mountinfo).</summary>
    private static List<string> MountsUnder(string root)
    {
        var prefix = root.TrimEnd('/') + "/";
        return [.. File.ReadAllLines("/proc/self/mountinfo")
            .Select(l => l.Split(' '))
            .Where(f => f.Length > 4)
            .Select(f => f[4].Replace("\\040", " ", StringComparison.Ordinal))
            .Where(m => m.StartsWith(prefix, StringComparison.Ordinal))
            .OrderByDescending(m => m.Length)];
    }

    private string ReadLogFrom(long offset)
    {
        if (!File.Exists(LogFile))
        {
            return "";
        }

        using var stream = new FileStream(LogFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        stream.Seek(Math.Min(offset, stream.Length), SeekOrigin.Begin);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    private async Task ReloadIfRunningAsync()
    {
        if (IsRunning)
        {
            await ReloadAsync();
        }
    }

    /// <summary>Writes initdb's postgresql.conf followed by this cluster's block (port, sockets, sizes, the test's settings).</summary>
    private Task WriteConfAsync()
    {
        var lines = new List<string>
        {
            "",
            ConfMarker,
            "listen_addresses = '127.0.0.1'",
            $"port = {Port.ToString(CultureInfo.InvariantCulture)}",
            $"unix_socket_directories = {Literal(SocketDirectory)}",
            "shared_buffers = '16MB'",
            "max_connections = 20",
            "fsync = off",
            "log_line_prefix = '%m [%p] '",
        };
        lines.AddRange(_options.Settings.Select(s => $"{s.Key} = {Literal(s.Value)}"));
        return File.WriteAllTextAsync(Path.Combine(DataDirectory, "postgresql.conf"), _initdbConf + string.Join('\n', lines) + "\n");
    }

    /// <summary>Drops every pg_hba.conf line whose database column is <c>replication</c>.</summary>
    private async Task RemoveReplicationHbaAsync()
    {
        var hba = Path.Combine(DataDirectory, "pg_hba.conf");
        var kept = (await File.ReadAllLinesAsync(hba)).Where(line =>
        {
            var fields = line.Split((char[]?)null, 3, StringSplitOptions.RemoveEmptyEntries);
            return fields.Length < 2 || fields[0].StartsWith('#') || fields[1] != "replication";
        });
        await File.WriteAllLinesAsync(hba, kept);
    }

    private string PgCtlLine(params string[] args) =>
        (RunningAsRoot ? $"runuser -u {OsUser} -- " : "") + string.Join(' ', new[] { Path.Combine(BinDirectory, "pg_ctl"), "-D", DataDirectory }.Concat(args).Select(Quote));

    private static async Task<ProcessResult> RunAsOsUserStaticAsync(string path, IEnumerable<string> args, IDictionary<string, string?>? environment, string workingDirectory) =>
        RunningAsRoot
            ? await ChildProcess.RunAsync("runuser", ["-u", "postgres", "--", path, .. args], environment, ServerTimeout, workingDirectory: workingDirectory)
            : await ChildProcess.RunAsync(path, args, environment, ServerTimeout, workingDirectory: workingDirectory);

    private static async Task ChownToServerAsync(params string[] paths)
    {
        if (!RunningAsRoot)
        {
            return;
        }

        var result = await ChildProcess.RunAsync("chown", ["postgres:", .. paths]);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"chown postgres failed: {result.StdErr}");
        }
    }

    private static int FreePort() => Infrastructure.TestPorts.Free();

    private static string NewPassword() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(18)).Replace('+', 'x').Replace('/', 'y');

    /// <summary>A POSIX shell word: single quotes, with ' as '\''.</summary>
    internal static string Quote(string word) => "'" + word.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <summary>An SQL string literal.</summary>
    internal static string Literal(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";

    /// <summary>An SQL identifier, always double-quoted.</summary>
    internal static string Identifier(string name) => "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_.]*$")]
    private static partial Regex SettingName();
}
