using System.Globalization;
using Microsoft.Extensions.Logging;
using Npgsql;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Sources.Database;

/// <summary>
/// Backs up the PostgreSQL database with <c>pg_dump -Fc</c> into <c>&lt;LocalRoot&gt;/database/&lt;db&gt;_YYYYMMDD_HHMMSS.dump</c>,
/// and beside it the cluster's roles as <c>globals_YYYYMMDD_HHMMSS.sql.gpg</c> (<see cref="ClusterGlobals"/>).
/// </summary>
/// <remarks>
/// A run first connects with Npgsql, so a wrong password, an unreachable server or a missing database fails
/// fast in one line, and records the server's version and the database's size; it refuses a pg_dump older than
/// the server (pg_dump would refuse too, less clearly). pg_dump's stdout streams straight into the store (and,
/// with S3 on, into an overlapped S3 upload, see <see cref="BackupRepository"/>); its stderr goes to the log.
/// The stored dump must then list with <c>pg_restore --list</c>, or it is removed and never replicated. A dump
/// that fails, is killed or is cancelled leaves no artifact. Connection settings reach pg_dump as libpq
/// environment variables only (<see cref="PgConnectionInfo"/>).
/// </remarks>
public sealed partial class DatabaseSource : IBackupSource
{
    private const long MiB = 1024 * 1024;
    private const string BinDirectoryKey = "Backup:Database:BinDirectory";

    private readonly DatabaseOptions _options;
    private readonly BackupRepository _repository;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ILogger _childLogger;
    private readonly Func<string, string?> _environment;
    private readonly ClusterGlobals _globals;

    public DatabaseSource(BackupOptions options, BackupRepository repository, TimeProvider time, ILoggerFactory loggerFactory)
        : this(options, repository, time, loggerFactory, System.Environment.GetEnvironmentVariable)
    {
    }

    /// <param name="options">The agent's options; <c>Backup:Database</c> is used.</param>
    /// <param name="repository">Where the dump goes.</param>
    /// <param name="time">The clock naming the dump.</param>
    /// <param name="loggerFactory">Loggers for this source and pg_dump's stderr.</param>
    /// <param name="environment">Reads the agent's environment (PGUSER, PGPASSWORD, PGPASSFILE); tests pass their own.</param>
    internal DatabaseSource(BackupOptions options, BackupRepository repository, TimeProvider time, ILoggerFactory loggerFactory, Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _options = options.Database;
        _repository = repository;
        _time = time;
        _environment = environment;
        _logger = loggerFactory.CreateLogger<DatabaseSource>();
        _childLogger = loggerFactory.CreateLogger("VelozBackupAgent.Sources.Database.PgDump");
        _globals = new ClusterGlobals(options, repository, loggerFactory.CreateLogger<ClusterGlobals>(), _childLogger);
    }

    /// <inheritdoc />
    public string Kind => BackupKinds.Database;

    /// <summary>What the last successful run found and wrote (server version, database size, dump size), for metrics and status; null before one.</summary>
    public DatabaseDumpInfo? LastDumpInfo { get; private set; }

    /// <summary>Dumps the database once, whatever the trigger (a database has no change trigger).</summary>
    public async Task<BackupOutput> RunAsync(BackupTrigger trigger, CancellationToken cancellationToken)
    {
        var connection = PgConnectionInfo.Parse(_options.ConnectionString, _environment);
        var pgDump = ToolPath("pg_dump");
        var pgRestore = ToolPath("pg_restore");
        var dumpVersion = await ToolVersionAsync(pgDump, "pg_dump", cancellationToken);
        var server = await ProbeServerAsync(connection, cancellationToken);
        if (CheckVersions(dumpVersion, server.Version, pgDump) is { } tooOld)
        {
            throw new BackupSourceException(tooOld);
        }

        var restoreVersion = await ToolVersionAsync(pgRestore, "pg_restore", cancellationToken);
        if (restoreVersion.Major < dumpVersion.Major)
        {
            throw new BackupSourceException(
                $"pg_restore {restoreVersion.Text} ({pgRestore}) is older than pg_dump {dumpVersion.Text} ({pgDump}) and cannot read its archives: install both from one PostgreSQL version ({BinDirectoryKey})");
        }

        Log.Connected(_logger, connection.Describe(), server.Version.Text, server.DatabaseSizeBytes, dumpVersion.Text);

        var startedAt = _time.GetUtcNow();
        var started = _time.GetTimestamp();
        var name = await ArtifactNameAllocator.AllocateAsync(_repository.Local, Kind, ArtifactPrefix(connection.Database), ".dump", startedAt, cancellationToken);
        var spec = new ChildProcessSpec(pgDump, DumpArguments(_options.LockWaitTimeout), "pg_dump")
        {
            Environment = connection.ChildEnvironment(),
            Inherit = InheritedVariables.Libpq,
            InstallHint = InstallHint(),
        };

        var tablesWithData = 0;
        StoreResult stored;
        try
        {
            await using var dump = ChildProcess.Start(spec, _childLogger);
            stored = await _repository.StoreAsync(Kind, name, dump.Output, new ArtifactWriteOptions
            {
                Validate = async (artifact, token) =>
                {
                    tablesWithData = await CheckReadableAsync(pgRestore, _repository.Local.PathOf(artifact.Kind, artifact.Name), InstallHint(), _childLogger, token);
                    Log.StoredLocally(_logger, artifact.Name, artifact.Size, tablesWithData);
                },
                OverlapBufferBytes = _options.S3OverlapBufferMiB * MiB,
            }, cancellationToken);
        }
        catch (BackupSourceException ex) when (_options.LockWaitTimeout > TimeSpan.Zero && ex.Message.Contains("due to statement timeout", StringComparison.Ordinal))
        {
            // pg_dump sets statement_timeout to 0 except around its LOCK TABLE statements: this is the lock wait.
            throw new BackupSourceException(
                $"{ex.Message} (a table stayed locked longer than Backup:Database:LockWaitTimeout, {_options.LockWaitTimeout:c}; pg_locks shows who holds it)", ex);
        }

        if (stored.Replica == ReplicaOutcome.Queued && stored.ReplicaDetail is { } why)
        {
            Log.OverlapGivenUp(_logger, name, why);
        }

        var artifact = stored.Artifact;
        LastDumpInfo = new DatabaseDumpInfo(connection.Database, server.Version.Text, server.Version.Major, server.DatabaseSizeBytes,
            dumpVersion.Text, artifact.Name, artifact.Size, tablesWithData, _time.GetUtcNow(), _time.GetElapsedTime(started), stored.Replica);
        var detail = Detail(server, artifact.Size, tablesWithData, stored);
        GlobalsBackup globals;
        try
        {
            globals = await _globals.BackUpAsync(connection, artifact.Name, cancellationToken);
        }
        catch (Exception ex) when (ex is BackupSourceException or StoreException)
        {
            // The dump is stored and counts; the run fails so that the broken new-server path is noticed.
            throw new PartialBackupException([artifact],
                $"the dump {artifact.Name} is stored, but the cluster globals are not: {connection.Scrub(ex.Message)}; a restore onto a new server would lack its roles", ex);
        }

        // The dump last: the run's log line names the last artifact (veloz_….dump (+1 more)).
        return new BackupOutput(globals.Artifact is { } g ? [g, artifact] : [artifact], $"{detail}; {globals.Detail}");
    }

    /// <summary>pg_dump's arguments: custom format, never prompt for a password, bounded lock wait. Nothing secret, ever.</summary>
    internal static IReadOnlyList<string> DumpArguments(TimeSpan lockWaitTimeout)
    {
        var arguments = new List<string> { "--format=custom", "--no-password" };
        if (lockWaitTimeout > TimeSpan.Zero)
        {
            arguments.Add(string.Create(CultureInfo.InvariantCulture, $"--lock-wait-timeout={(long)Math.Ceiling(lockWaitTimeout.TotalMilliseconds)}"));
        }

        return arguments;
    }

    /// <summary>
    /// The artifact prefix for a database name: the name itself where the naming scheme allows it
    /// (<c>veloz</c> → <c>veloz_20261123_020000.dump</c>), otherwise with the offending characters replaced by '-'.
    /// </summary>
    internal static string ArtifactPrefix(string database)
    {
        var chars = database.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : '-').ToArray();
        var candidate = new string(chars).Trim('.', '_');
        if (candidate.Length > 100)
        {
            candidate = candidate[..100];
        }

        foreach (var prefix in new[] { candidate, candidate.Replace('_', '-') })
        {
            if (prefix.Length > 0 && Catalog.ArtifactName.TryParse(Catalog.ArtifactName.Format(prefix, DateTimeOffset.UnixEpoch, ".dump"), out var parsed, out _, out _, out _)
                && parsed == prefix)
            {
                return prefix;
            }
        }

        return "database";
    }

    /// <summary>Null when pg_dump can dump the server; otherwise why not, in one line.</summary>
    internal static string? CheckVersions(PgVersion pgDump, PgVersion server, string pgDumpPath) =>
        pgDump.Major >= server.Major
            ? null
            : $"pg_dump {pgDump.Text} ({pgDumpPath}) is older than the server (PostgreSQL {server.Text}) and refuses to dump it: " +
              $"install postgresql-client-{server.Major} (or newer) and point {BinDirectoryKey} at its bin directory";

    /// <summary>One line for a failed connection: where, and the server's or the network's reason. Never the password.</summary>
    internal static string ConnectFailure(PgConnectionInfo connection, int timeoutSeconds, Exception error)
    {
        ArgumentNullException.ThrowIfNull(connection);
        const string Key = "Backup:Database:ConnectionString";
        var reason = error switch
        {
            PostgresException pg when pg.SqlState == PostgresErrorCodes.InvalidCatalogName => $"{pg.MessageText} (Database in {Key})",
            PostgresException pg => pg.MessageText,
            NpgsqlException { InnerException: TimeoutException } or TimeoutException =>
                $"no answer within {timeoutSeconds} s (Timeout in {Key}; is the host reachable?)",
            NpgsqlException { InnerException: System.Net.Sockets.SocketException socket } => $"cannot connect: {socket.Message}",
            NpgsqlException n when n.Message.Contains("No password", StringComparison.OrdinalIgnoreCase) =>
                $"the server asks for a password and none is configured (Password in {Key}, PGPASSWORD, or an entry in PGPASSFILE or ~/.pgpass)",
            _ => FirstLine(error.Message),
        };
        return connection.Scrub($"{connection.Describe()}: {reason}");
    }

    /// <summary>Reads <c>pg_dump (PostgreSQL) 15.14 (Debian 15.14-1)</c>.</summary>
    internal static PgVersion? ParseToolVersion(string output)
    {
        var match = System.Text.RegularExpressions.Regex.Match(output ?? "", @"\(PostgreSQL\)\s+(?<v>(?<major>\d+)(?:\.\d+)*(?:[a-z]+\d*)?)");
        return match.Success ? new PgVersion(int.Parse(match.Groups["major"].Value, CultureInfo.InvariantCulture), match.Groups["v"].Value) : null;
    }

    private string ToolPath(string tool) =>
        string.IsNullOrWhiteSpace(_options.BinDirectory) ? tool : Path.Combine(_options.BinDirectory, tool);

    private string InstallHint() =>
        string.IsNullOrWhiteSpace(_options.BinDirectory)
            ? $"install the PostgreSQL client tools, as new as the server (e.g. postgresql-client-15), or set {BinDirectoryKey}"
            : $"{BinDirectoryKey} is {_options.BinDirectory}; it must hold pg_dump and pg_restore";

    private async Task<PgVersion> ToolVersionAsync(string path, string tool, CancellationToken cancellationToken)
    {
        await using var child = ChildProcess.Start(new ChildProcessSpec(path, ["--version"], tool) { Inherit = InheritedVariables.Libpq, InstallHint = InstallHint() }, _childLogger);
        var output = await child.ReadAllTextAsync(cancellationToken);
        return ParseToolVersion(output) ?? throw new BackupSourceException($"{path} --version printed '{FirstLine(output)}', not a PostgreSQL version: is it {tool}?");
    }

    private static async Task<ServerFacts> ProbeServerAsync(PgConnectionInfo connection, CancellationToken cancellationToken)
    {
        var connectionString = connection.PrecheckConnectionString();
        var timeout = new NpgsqlConnectionStringBuilder(connectionString).Timeout;
        try
        {
            await using var db = new NpgsqlConnection(connectionString);
            await db.OpenAsync(cancellationToken);
            await using var command = new NpgsqlCommand("SELECT current_setting('server_version_num')::int, pg_database_size(current_database())", db);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            var number = reader.GetInt32(0);
            var size = reader.GetInt64(1);
            var text = db.ServerVersion.Split(' ', 2)[0];
            return new ServerFacts(new PgVersion(number / 10000, text), size);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException && !cancellationToken.IsCancellationRequested)
        {
            throw new BackupSourceException(ConnectFailure(connection, timeout, ex));
        }
    }

    /// <summary>
    /// <c>pg_restore --list</c> on a stored dump: a cheap proof that the archive's header and table of contents
    /// are readable (it does not read the data). Returns how many tables have data in it; throws
    /// <see cref="BackupSourceException"/> when pg_restore cannot read it.
    /// </summary>
    internal static async Task<int> CheckReadableAsync(string pgRestore, string path, string? installHint, ILogger logger, CancellationToken cancellationToken)
    {
        var name = Path.GetFileName(path);
        try
        {
            await using var child = ChildProcess.Start(new ChildProcessSpec(pgRestore, ["--list", path], "pg_restore") { Inherit = InheritedVariables.Libpq, InstallHint = installHint }, logger);
            using var reader = new StreamReader(child.Output);
            var tables = 0;
            while (await reader.ReadLineAsync(cancellationToken) is { } line)
            {
                if (line.Contains(" TABLE DATA ", StringComparison.Ordinal))
                {
                    tables++;
                }
            }

            return tables;
        }
        catch (BackupSourceException ex)
        {
            throw new BackupSourceException($"the dump {name} is not a readable pg_dump archive, so it was discarded: {ex.Message}", ex);
        }
    }

    private static string Detail(ServerFacts server, long dumpBytes, int tables, StoreResult stored)
    {
        var replica = stored.Replica switch
        {
            ReplicaOutcome.Uploaded => "; s3: copied during the dump, checksum verified",
            ReplicaOutcome.Queued when stored.ReplicaDetail is { } why => $"; s3: queued ({why})",
            ReplicaOutcome.Queued => "; s3: queued",
            _ => "",
        };
        return $"PostgreSQL {server.Version.Text}, database {Bytes(server.DatabaseSizeBytes)}, dump {Bytes(dumpBytes)}, {tables} tables with data{replica}";
    }

    private static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):0.0} GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):0.0} MiB"),
        >= 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:0.0} KiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes} bytes"),
    };

    private static string FirstLine(string text) => (text ?? "").Split('\n')[0].Trim();

    private sealed record ServerFacts(PgVersion Version, long DatabaseSizeBytes);

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Database.Connected, LogLevel.Information, "{Database}: PostgreSQL {ServerVersion}, {SizeBytes} bytes; dumping with pg_dump {PgDumpVersion}")]
        public static partial void Connected(ILogger logger, string database, string serverVersion, long sizeBytes, string pgDumpVersion);

        [LoggerMessage(LogEvents.Database.StoredLocally, LogLevel.Debug, "{Name}: stored locally ({Bytes} bytes) and readable by pg_restore ({Tables} tables with data)")]
        public static partial void StoredLocally(ILogger logger, string name, long bytes, int tables);

        [LoggerMessage(LogEvents.Database.OverlapGivenUp, LogLevel.Warning, "{Name}: the S3 copy made during the dump was given up, the upload queue copies it instead: {Reason}")]
        public static partial void OverlapGivenUp(ILogger logger, string name, string reason);
    }
}

/// <summary>A PostgreSQL version: the major number that decides compatibility, and the version as printed.</summary>
/// <param name="Major">15 for 15.14.</param>
/// <param name="Text">15.14.</param>
public sealed record PgVersion(int Major, string Text);

/// <summary>What the last successful database dump found and wrote.</summary>
/// <param name="Database">The database dumped.</param>
/// <param name="ServerVersion">The server's version, e.g. 15.14.</param>
/// <param name="ServerMajorVersion">The server's major version, e.g. 15.</param>
/// <param name="DatabaseSizeBytes"><c>pg_database_size</c> before the dump.</param>
/// <param name="PgDumpVersion">The pg_dump that wrote it.</param>
/// <param name="ArtifactName">The dump's file name.</param>
/// <param name="DumpSizeBytes">The dump's size.</param>
/// <param name="TablesWithData">Tables with data in the dump's table of contents.</param>
/// <param name="CompletedAt">When the run finished.</param>
/// <param name="Duration">How long the run took, S3 copy included.</param>
/// <param name="Replica">Whether S3 got it during the dump or it waits in the upload queue.</param>
public sealed record DatabaseDumpInfo(
    string Database,
    string ServerVersion,
    int ServerMajorVersion,
    long DatabaseSizeBytes,
    string PgDumpVersion,
    string ArtifactName,
    long DumpSizeBytes,
    int TablesWithData,
    DateTimeOffset CompletedAt,
    TimeSpan Duration,
    ReplicaOutcome Replica);
