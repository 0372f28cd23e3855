using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Npgsql;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Database;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Restore;

/// <summary>What a database restore asks for.</summary>
/// <param name="Into">Restore side by side into this database instead of the configured one.</param>
/// <param name="Replace">Allowed to replace an existing database of that name (<c>--yes</c>).</param>
/// <param name="Jobs">pg_restore parallel jobs (1: one connection).</param>
/// <param name="KeepOld">Keep the replaced database, renamed, instead of dropping it.</param>
public sealed record DatabaseRestoreRequest(string? Into, bool Replace, int Jobs = 2, bool KeepOld = false);

/// <summary>One restored table and its row count.</summary>
/// <param name="Name">schema.table.</param>
/// <param name="Rows">Exact row count after the restore.</param>
public sealed record RestoredTable(string Name, long Rows);

/// <summary>What a test restore of a dump found.</summary>
/// <param name="Database">The scratch database it was restored into (dropped again).</param>
/// <param name="Artifact">The dump restored.</param>
/// <param name="Tables">Every user table with its row count.</param>
/// <param name="Duration">pg_restore and the counts.</param>
public sealed record DatabaseRestoreReport(string Database, string Artifact, IReadOnlyList<RestoredTable> Tables, TimeSpan Duration)
{
    public long Rows => Tables.Sum(t => t.Rows);
}

/// <summary>
/// Restores a verified <c>pg_dump -Fc</c> archive. The dump always goes into a fresh scratch database first
/// (<c>pg_restore --exit-on-error</c>, parallel jobs); only when that succeeded is the target swapped for it by
/// two renames (other sessions on the target are terminated first), and the old one dropped. A failed
/// pg_restore therefore never harms the database it would have replaced. Credentials reach pg_restore through
/// the environment only.
/// </summary>
public sealed partial class DatabaseRestorer
{
    private const string Key = "Backup:Database:ConnectionString";
    private readonly DatabaseOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public DatabaseRestorer(DatabaseOptions options, TimeProvider time, ILogger logger)
    {
        _options = options;
        _time = time;
        _logger = logger;
    }

    /// <summary>
    /// Restores the roles stored with a dump (its <c>globals_….sql.gpg</c>) before pg_restore runs, so a dump restores
    /// onto a new server; null skips that step (test restores, which never touch the server's roles).
    /// </summary>
    public GlobalsRestorer? Globals { get; init; }

    /// <summary>
    /// pg_restore's objects done of total while it runs (a terminal's progress bar); null: pg_restore runs exactly as
    /// without progress (no <c>-l</c> first, no <c>--verbose</c>).
    /// </summary>
    public IProgress<ObjectProgress>? Objects { get; set; }

    /// <summary>The database name the configuration points at.</summary>
    public string ConfiguredDatabase => Connection().Database;

    /// <summary>
    /// pg_restore of <paramref name="dump"/> into a fresh scratch database, rows counted; the target is untouched
    /// until <see cref="IPreparedRestore.CommitAsync"/> swaps it in. Refuses an existing target without <c>--yes</c>.
    /// </summary>
    public async Task<IPreparedRestore> PrepareAsync(StagedArtifact dump, DatabaseRestoreRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(dump);
        ArgumentNullException.ThrowIfNull(request);
        if (ClusterGlobals.IsGlobalsName(dump.Source.Name))
        {
            throw new ArgumentException($"{dump.Source.Name} holds the cluster's roles, not a dump: restore the dump stored with it ({DatabaseSource.ArtifactPrefix(ConfiguredDatabase)}_….dump), and its roles come first");
        }

        var connection = Connection();
        var target = request.Into ?? connection.Database;
        CheckName(target, request.Into is null ? Key : "--into");
        var clock = Stopwatch.StartNew();
        var stamp = _time.GetUtcNow().ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture);
        var scratch = Truncate(target, 63 - 22) + "_restoring_" + stamp[2..];
        var maintenance = await OpenMaintenanceAsync(connection, cancellationToken).ConfigureAwait(false);
        await using (maintenance.ConfigureAwait(false))
        {
            if (await ExistsAsync(maintenance, target, cancellationToken).ConfigureAwait(false) && !request.Replace)
            {
                throw new ArgumentException($"database {target} exists: pass --yes to replace it (it is swapped only after the restore succeeded), or --into NAME for a side-by-side copy");
            }

            // The roles the dump's objects belong to, before pg_restore needs them (a new server has none of them).
            var roles = Globals is null ? null : await Globals.RestoreMissingRolesAsync(dump.Source, maintenance, cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(maintenance, $"CREATE DATABASE {Quote(scratch)} TEMPLATE template0", cancellationToken).ConfigureAwait(false);
            try
            {
                try
                {
                    await PgRestoreAsync(connection, scratch, dump.Path, request.Jobs, cancellationToken).ConfigureAwait(false);
                }
                catch (RestoreException ex) when (roles is not null && GlobalsRestorer.MissingRole(ex.Message) is { } missing)
                {
                    throw new RestoreException(ex.Message + roles.ExplainMissing(missing, roles.Created), ex);
                }

                var tables = await CountRowsAsync(connection, scratch, cancellationToken).ConfigureAwait(false);
                return new PreparedDatabase(this, connection, dump.Source.Name, target, scratch, stamp, tables, request.KeepOld, clock.Elapsed) { Roles = roles };
            }
            catch
            {
                await DropQuietlyAsync(maintenance, scratch).ConfigureAwait(false);
                throw;
            }
        }
    }

    private sealed class PreparedDatabase(DatabaseRestorer owner, PgConnectionInfo connection, string artifact, string target, string scratch, string stamp,
        IReadOnlyList<RestoredTable> tables, bool keepOld, TimeSpan prepared) : IPreparedRestore
    {
        private bool _committed;

        public string Kind => BackupKinds.Database;

        public string Artifact => artifact;

        public IReadOnlyList<RestoredTable> Tables => tables;

        /// <summary>What the globals step did before pg_restore; null when it did not run.</summary>
        public GlobalsRestoreReport? Roles { get; init; }

        public async Task<RestoreResult> CommitAsync(CancellationToken cancellationToken)
        {
            var clock = Stopwatch.StartNew();
            var warnings = new List<string>(Roles?.Warnings ?? []);
            var maintenance = await OpenMaintenanceAsync(connection, cancellationToken).ConfigureAwait(false);
            await using (maintenance.ConfigureAwait(false))
            {
                if (await ExistsAsync(maintenance, target, cancellationToken).ConfigureAwait(false))
                {
                    var kept = Truncate(target, 63 - 26) + "_pre_restore_" + stamp;
                    await SwapAsync(maintenance, target, scratch, kept, cancellationToken).ConfigureAwait(false);
                    _committed = true;
                    if (keepOld)
                    {
                        warnings.Add($"the replaced database was kept as {kept}; drop it when satisfied");
                    }
                    else
                    {
                        await ExecuteAsync(maintenance, $"DROP DATABASE {Quote(kept)} WITH (FORCE)", cancellationToken).ConfigureAwait(false);
                    }
                }
                else
                {
                    await ExecuteAsync(maintenance, $"ALTER DATABASE {Quote(scratch)} RENAME TO {Quote(target)}", cancellationToken).ConfigureAwait(false);
                    _committed = true;
                }
            }

            var rows = tables.Sum(t => t.Rows);
            Log.Restored(owner._logger, artifact, target, tables.Count, rows, (prepared + clock.Elapsed).TotalSeconds);
            return new RestoreResult(Kind, artifact, target, string.Create(CultureInfo.InvariantCulture, $"database {target}: {tables.Count} tables, {rows} rows{Roles?.SummarySuffix}"),
                prepared, clock.Elapsed, warnings) { Details = tables };
        }

        public async ValueTask DisposeAsync()
        {
            if (!_committed)
            {
                try
                {
                    var maintenance = await OpenMaintenanceAsync(connection, CancellationToken.None).ConfigureAwait(false);
                    await using (maintenance.ConfigureAwait(false))
                    {
                        await owner.DropQuietlyAsync(maintenance, scratch).ConfigureAwait(false);
                    }
                }
                catch (RestoreException ex)
                {
                    Log.DropFailed(owner._logger, scratch, ex.Message);
                }
            }
        }
    }

    /// <summary>
    /// Restores <paramref name="dump"/> into a throwaway database, counts its rows and drops it again: the
    /// test restore of <c>verify --test-restore</c>. Touches nothing else.
    /// </summary>
    public async Task<DatabaseRestoreReport> TestRestoreAsync(StagedArtifact dump, int jobs, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(dump);
        var connection = Connection();
        var clock = Stopwatch.StartNew();
        var scratch = Truncate(connection.Database, 63 - 24) + "_verify_" + _time.GetUtcNow().ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture);
        var maintenance = await OpenMaintenanceAsync(connection, cancellationToken).ConfigureAwait(false);
        await using (maintenance.ConfigureAwait(false))
        {
            await ExecuteAsync(maintenance, $"CREATE DATABASE {Quote(scratch)} TEMPLATE template0", cancellationToken).ConfigureAwait(false);
            try
            {
                await PgRestoreAsync(connection, scratch, dump.Path, jobs, cancellationToken).ConfigureAwait(false);
                var tables = await CountRowsAsync(connection, scratch, cancellationToken).ConfigureAwait(false);
                return new DatabaseRestoreReport(scratch, dump.Source.Name, tables, clock.Elapsed);
            }
            finally
            {
                await DropQuietlyAsync(maintenance, scratch).ConfigureAwait(false);
            }
        }
    }

    private PgConnectionInfo Connection() => PgConnectionInfo.Parse(_options.ConnectionString, Environment.GetEnvironmentVariable);

    private async Task PgRestoreAsync(PgConnectionInfo connection, string database, string path, int jobs, CancellationToken cancellationToken)
    {
        var environment = new Dictionary<string, string?>(connection.ChildEnvironment(), StringComparer.Ordinal) { ["PGDATABASE"] = database };
        List<string> arguments = ["--exit-on-error", "--no-password", "--dbname", database];
        if (jobs > 1)
        {
            arguments.Add(string.Create(CultureInfo.InvariantCulture, $"--jobs={jobs}"));
        }

        var tool = string.IsNullOrWhiteSpace(_options.BinDirectory) ? "pg_restore" : Path.Combine(_options.BinDirectory, "pg_restore");
        const string Hint = "install the PostgreSQL client tools (e.g. postgresql-client-15) or set Backup:Database:BinDirectory";
        Log.Restoring(_logger, Path.GetFileName(path), database, jobs);
        try
        {
            Func<string, bool>? filter = null;
            if (Objects is { } objects)
            {
                // The total from the dump's table of contents, then done from --verbose's line per object.
                string listing;
                await using (var list = ChildProcess.Start(new ChildProcessSpec(tool, ["--list", path], "pg_restore") { InstallHint = Hint }, _logger))
                {
                    listing = await list.ReadAllTextAsync(cancellationToken).ConfigureAwait(false);
                }

                var counter = new PgRestoreCounter(PgRestoreCounter.ParseToc(listing));
                var step = $"pg_restore {Path.GetFileName(path)}";
                arguments.Add("--verbose");
                objects.Report(new ObjectProgress(step, 0, counter.Total));
                filter = line =>
                {
                    var before = counter.Done;
                    var chatter = counter.Observe(line);
                    if (counter.Done != before)
                    {
                        objects.Report(new ObjectProgress(step, counter.Done, counter.Total));
                    }

                    return chatter;
                };
            }

            arguments.Add(path);
            await using var child = ChildProcess.Start(new ChildProcessSpec(tool, arguments, "pg_restore")
            {
                Environment = environment,
                Inherit = InheritedVariables.Libpq,
                InstallHint = Hint,
                ErrorLineFilter = filter,
            }, _logger);
            await child.ReadAllTextAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (BackupSourceException ex)
        {
            throw new RestoreException(connection.Scrub($"restoring {Path.GetFileName(path)} into {database}: {ex.Message}"), ex);
        }
    }

    private static async Task<IReadOnlyList<RestoredTable>> CountRowsAsync(PgConnectionInfo connection, string database, CancellationToken cancellationToken)
    {
        var builder = new NpgsqlConnectionStringBuilder(connection.PrecheckConnectionString()) { Database = database };
        var db = new NpgsqlConnection(builder.ConnectionString);
        await using (db.ConfigureAwait(false))
        {
            await db.OpenAsync(cancellationToken).ConfigureAwait(false);
            var names = new List<string>();
            var list = new NpgsqlCommand(
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " +
                "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1", db);
            await using (list.ConfigureAwait(false))
            {
                var reader = await list.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        names.Add(reader.GetString(0));
                    }
                }
            }

            var tables = new List<RestoredTable>();
            foreach (var name in names)
            {
                var count = new NpgsqlCommand($"SELECT count(*) FROM {name}", db) { CommandTimeout = 0 };
                await using (count.ConfigureAwait(false))
                {
                    tables.Add(new RestoredTable(name, (long)(await count.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!));
                }
            }

            return tables;
        }
    }

    private static async Task<NpgsqlConnection> OpenMaintenanceAsync(PgConnectionInfo connection, CancellationToken cancellationToken)
    {
        foreach (var database in new[] { "postgres", "template1" })
        {
            var builder = new NpgsqlConnectionStringBuilder(connection.PrecheckConnectionString()) { Database = database };
            var db = new NpgsqlConnection(builder.ConnectionString);
            try
            {
                await db.OpenAsync(cancellationToken).ConfigureAwait(false);
                return db;
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.InvalidCatalogName && database == "postgres")
            {
                await db.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException && !cancellationToken.IsCancellationRequested)
            {
                await db.DisposeAsync().ConfigureAwait(false);
                throw new RestoreException(DatabaseSource.ConnectFailure(connection, builder.Timeout, ex) + " (restores connect to its maintenance database 'postgres')", ex);
            }
        }

        throw new RestoreException($"{connection.Describe()}: neither the 'postgres' nor the 'template1' database accepts connections");
    }

    private static async Task SwapAsync(NpgsqlConnection db, string target, string scratch, string kept, CancellationToken cancellationToken)
    {
        // Sessions reconnect quickly; terminate and rename in one round trip, a few times if needed.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var terminate = new NpgsqlCommand("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = @d AND pid <> pg_backend_pid()", db);
                await using (terminate.ConfigureAwait(false))
                {
                    terminate.Parameters.AddWithValue("d", target);
                    await terminate.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
                }

                await ExecuteAsync(db, $"ALTER DATABASE {Quote(target)} RENAME TO {Quote(kept)}", cancellationToken).ConfigureAwait(false);
                break;
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.ObjectInUse && attempt < 10)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt), cancellationToken).ConfigureAwait(false);
            }
        }

        try
        {
            await ExecuteAsync(db, $"ALTER DATABASE {Quote(scratch)} RENAME TO {Quote(target)}", cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Put the original back under its name rather than leave the target missing.
            await ExecuteAsync(db, $"ALTER DATABASE {Quote(kept)} RENAME TO {Quote(target)}", CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    private static async Task<bool> ExistsAsync(NpgsqlConnection db, string name, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = @d", db);
        await using (command.ConfigureAwait(false))
        {
            command.Parameters.AddWithValue("d", name);
            return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not null;
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection db, string sql, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand(sql, db) { CommandTimeout = 0 };
        await using (command.ConfigureAwait(false))
        {
            try
            {
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.InsufficientPrivilege)
            {
                throw new RestoreException($"the database user may not do this ({ex.MessageText}): restores need CREATEDB and ownership of the database they replace ({Key})", ex);
            }
        }
    }

    private async Task DropQuietlyAsync(NpgsqlConnection db, string name)
    {
        try
        {
            await ExecuteAsync(db, $"DROP DATABASE IF EXISTS {Quote(name)} WITH (FORCE)", CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or RestoreException)
        {
            Log.DropFailed(_logger, name, ex.Message);
        }
    }

    private static void CheckName(string name, string key)
    {
        if (name.Length is 0 or > 63 || name.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException($"{key}: not a usable database name: '{name}'");
        }
    }

    private static string Truncate(string name, int length) => name.Length <= length ? name : name[..length];

    private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Restore.DatabaseRestoring, LogLevel.Information, "pg_restore of {Artifact} into {Database} ({Jobs} jobs)")]
        public static partial void Restoring(ILogger logger, string artifact, string database, int jobs);

        [LoggerMessage(LogEvents.Restore.DatabaseRestored, LogLevel.Information, "restored {Artifact} as database {Database}: {Tables} tables, {Rows} rows in {Seconds:0.0} s")]
        public static partial void Restored(ILogger logger, string artifact, string database, int tables, long rows, double seconds);

        [LoggerMessage(LogEvents.Restore.ScratchDropFailed, LogLevel.Warning, "could not drop the scratch database {Database}: {Reason}; drop it by hand")]
        public static partial void DropFailed(ILogger logger, string database, string reason);
    }
}
