using System.Globalization;
using Npgsql;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Sources.Database;

namespace VelozBackupAgent.Cluster;

/// <summary>One node as the node table has it: when it last checked in, its clock against the server's, whether its WAL receiver streams.</summary>
public sealed record ClusterNode(string Node, DateTimeOffset LastSeen, DateTimeOffset StartedAt, double SkewSeconds, bool Receiver, bool Alive)
{
    /// <summary>The recovery point of this node's WAL receiver at its last check-in (only while it streams); null when none.</summary>
    public DateTimeOffset? RecoveryPoint { get; init; }

    /// <summary>The time of the newest dump in this node's own S3 prefix at its last check-in; null when none (or no S3).</summary>
    public DateTimeOffset? S3Dump { get; init; }

    /// <summary>The recovery point of the WAL this node's receiver has in S3 at its last check-in (only while it streams); null when none.</summary>
    public DateTimeOffset? S3RecoveryPoint { get; init; }
}

/// <summary>The last successful run of one database-wide job: the node that ran it, when it started, what it stored.</summary>
public sealed record ClusterSuccess(string Node, DateTimeOffset StartedAt, string? Artifact);

/// <summary>The last run of one database-wide job, whichever node ran it.</summary>
public sealed record ClusterRun(string Kind, string Node, DateTimeOffset StartedAt, DateTimeOffset? FinishedAt, string Outcome, string? Artifact)
{
    /// <summary>The last run of the kind that succeeded (this one, or an earlier one when this one failed or runs); null when none did.</summary>
    public ClusterSuccess? LastSuccess { get; init; }
}

/// <summary>What the cluster's tables say, for <c>status</c> and the metrics.</summary>
/// <param name="Nodes">Every node in the node table, alive or not.</param>
/// <param name="Runs">The last run of each database-wide job.</param>
/// <param name="ReceiverHolder">The node whose pg_receivewal streams through the replication slot now, as the server's
/// pg_stat_replication says (the application name carries the node), or null when none does.</param>
public sealed record ClusterView(IReadOnlyList<ClusterNode> Nodes, IReadOnlyList<ClusterRun> Runs, string? ReceiverHolder);

/// <summary>
/// The agents' own two tables beside Quartz's in <c>Backup:Cluster:Schema</c>: <c>veloz_nodes</c> (one row per node,
/// refreshed every check-in: server time, clock skew, receiver) and <c>veloz_runs</c> (the last run of each
/// database-wide job and the node that ran it). The schema is created when missing; that needs CREATE on the database,
/// which an administrator can avoid by creating the schema beforehand (owned by, or with CREATE granted to, the agents' role).
/// </summary>
public sealed class ClusterDatabase
{
    private readonly string _connectionString;
    private readonly string _schema;
    private readonly string _node;
    private readonly TimeSpan _deadAfter;
    private readonly PgConnectionInfo _connection;

    public ClusterDatabase(BackupOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _connection = PgConnectionInfo.Parse(options.Database.ConnectionString, Environment.GetEnvironmentVariable);
        _connectionString = new NpgsqlConnectionStringBuilder(_connection.PrecheckConnectionString())
        {
            Pooling = true,
            ApplicationName = $"veloz-backup {options.NodeName}",
            Timeout = 10,
        }.ConnectionString;
        _schema = options.Cluster.Schema;
        _node = options.NodeName;
        _deadAfter = options.Cluster.CheckinInterval + options.Cluster.CheckinMisfireThreshold;
    }

    /// <summary>The connection string Quartz's job store uses: the configured one, resolved like pg_dump's, pooled.</summary>
    public string ConnectionString => _connectionString;

    /// <summary>Quartz's table prefix: its <c>qrtz_</c> tables in the cluster schema.</summary>
    public string TablePrefix => _schema + ".qrtz_";

    /// <summary>This node's name (Backup:NodeName).</summary>
    public string Node => _node;

    /// <summary>The cluster schema (Backup:Cluster:Schema).</summary>
    public string Schema => _schema;

    /// <summary>"database veloz at host:port", never the password.</summary>
    public string Describe() => _connection.Describe();

    /// <summary>Removes the password from a driver message.</summary>
    public string Scrub(string text) => _connection.Scrub(text);

    /// <summary>
    /// Creates the schema (when missing) and the agents' tables, serialised across nodes by an advisory lock so
    /// several nodes starting at once do not race. Throws <see cref="NpgsqlException"/> when the database cannot be used.
    /// </summary>
    public async Task EnsureSchemaAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await ExecuteAsync(connection, "SELECT pg_advisory_xact_lock(hashtext('veloz-backup cluster schema'))", cancellationToken).ConfigureAwait(false);
        await using (var exists = new NpgsqlCommand("SELECT count(*) FROM pg_namespace WHERE nspname = @s", connection))
        {
            exists.Parameters.AddWithValue("s", _schema);
            if ((long)(await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))! == 0)
            {
                // Only when missing: CREATE SCHEMA IF NOT EXISTS would need CREATE on the database even when it exists.
                await ExecuteAsync(connection, $"CREATE SCHEMA \"{_schema}\"", cancellationToken).ConfigureAwait(false);
            }
        }

        await ExecuteAsync(connection, $"""
            CREATE TABLE IF NOT EXISTS "{_schema}".veloz_nodes (
                node text PRIMARY KEY, last_seen timestamptz NOT NULL, started_at timestamptz NOT NULL,
                skew_seconds double precision NOT NULL DEFAULT 0, receiver boolean NOT NULL DEFAULT false);
            CREATE TABLE IF NOT EXISTS "{_schema}".veloz_runs (
                kind text PRIMARY KEY, node text NOT NULL, started_at timestamptz NOT NULL, finished_at timestamptz,
                outcome text NOT NULL, artifact text);
            ALTER TABLE "{_schema}".veloz_nodes ADD COLUMN IF NOT EXISTS recovery_point timestamptz, ADD COLUMN IF NOT EXISTS s3_dump_at timestamptz,
                ADD COLUMN IF NOT EXISTS s3_recovery_point timestamptz;
            ALTER TABLE "{_schema}".veloz_runs ADD COLUMN IF NOT EXISTS success_node text,
                ADD COLUMN IF NOT EXISTS success_started_at timestamptz, ADD COLUMN IF NOT EXISTS success_artifact text;
            """, cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// This node's clock minus the server's, in seconds: the server's <c>clock_timestamp()</c> against the middle of
    /// the round trip, so the network adds at most half of it. The server is every node's common reference.
    /// </summary>
    public async Task<double> MeasureSkewAsync(TimeProvider time, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(time);
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT clock_timestamp()", connection);
        var before = time.GetUtcNow();
        var server = (DateTime)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        var after = time.GetUtcNow();
        return ClockSkew.Measure(before, new DateTimeOffset(DateTime.SpecifyKind(server, DateTimeKind.Utc)), after);
    }

    /// <summary>
    /// Records this node's check-in (server time), its clock skew, whether its receiver streams and, while it does, the
    /// recovery point it has stored (so the other nodes judge PITR's freshness by the holder's archive), and the time of
    /// the newest dump in its own S3 prefix (so the others judge the dump's S3 copy by it), and the recovery point of the
    /// WAL its receiver has in S3 (so the others judge PITR's S3 copy by the holder's upload).
    /// </summary>
    public async Task CheckInAsync(DateTimeOffset startedAt, double skewSeconds, bool receiver, CancellationToken cancellationToken, DateTimeOffset? recoveryPoint = null, DateTimeOffset? s3Dump = null, DateTimeOffset? s3RecoveryPoint = null)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"""
            INSERT INTO "{_schema}".veloz_nodes (node, last_seen, started_at, skew_seconds, receiver, recovery_point, s3_dump_at, s3_recovery_point) VALUES (@n, now(), @s, @k, @r, @p, @d, @q)
            ON CONFLICT (node) DO UPDATE SET last_seen = now(), started_at = @s, skew_seconds = @k, receiver = @r, recovery_point = @p, s3_dump_at = @d, s3_recovery_point = @q
            """, connection);
        command.Parameters.Add(new NpgsqlParameter("d", NpgsqlTypes.NpgsqlDbType.TimestampTz) { Value = (object?)s3Dump?.UtcDateTime ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("p", NpgsqlTypes.NpgsqlDbType.TimestampTz) { Value = (object?)recoveryPoint?.UtcDateTime ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("q", NpgsqlTypes.NpgsqlDbType.TimestampTz) { Value = (object?)s3RecoveryPoint?.UtcDateTime ?? DBNull.Value });
        command.Parameters.AddWithValue("n", _node);
        command.Parameters.AddWithValue("s", startedAt.UtcDateTime);
        command.Parameters.AddWithValue("k", skewSeconds);
        command.Parameters.AddWithValue("r", receiver);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Removes this node's row (a clean stop), so the others stop counting it at once.</summary>
    public async Task LeaveAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"DELETE FROM \"{_schema}\".veloz_nodes WHERE node = @n", connection);
        command.Parameters.AddWithValue("n", _node);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Records that this node started (finished: null) or finished a database-wide job. A run that succeeded with an
    /// artifact is also the kind's last success, which a later failed or running one leaves standing: the other nodes
    /// judge the kind's freshness by it.
    /// </summary>
    public async Task RecordRunAsync(string kind, DateTimeOffset startedAt, DateTimeOffset? finishedAt, string outcome, string? artifact, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"""
            INSERT INTO "{_schema}".veloz_runs AS r (kind, node, started_at, finished_at, outcome, artifact, success_node, success_started_at, success_artifact)
            VALUES (@k, @n, @s, @f, @o, @a, CASE WHEN @ok THEN @n END, CASE WHEN @ok THEN @s END, CASE WHEN @ok THEN @a END)
            ON CONFLICT (kind) DO UPDATE SET node = @n, started_at = @s, finished_at = @f, outcome = @o, artifact = @a,
                success_node = CASE WHEN @ok THEN @n ELSE r.success_node END,
                success_started_at = CASE WHEN @ok THEN @s ELSE r.success_started_at END,
                success_artifact = CASE WHEN @ok THEN @a ELSE r.success_artifact END
            """, connection);
        command.Parameters.AddWithValue("ok", IsSuccess(outcome, finishedAt, artifact));
        command.Parameters.AddWithValue("k", kind);
        command.Parameters.AddWithValue("n", _node);
        command.Parameters.AddWithValue("s", startedAt.UtcDateTime);
        command.Parameters.AddWithValue("f", (object?)finishedAt?.UtcDateTime ?? DBNull.Value);
        command.Parameters.AddWithValue("o", outcome);
        command.Parameters.AddWithValue("a", (object?)artifact ?? DBNull.Value);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The nodes (alive: checked in within the check-in interval plus the misfire threshold) and the last runs.</summary>
    public async Task<ClusterView> ReadAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        var nodes = new List<ClusterNode>();
        await using (var command = new NpgsqlCommand($"""
            SELECT node, last_seen, started_at, skew_seconds, receiver, now() - last_seen <= @dead, recovery_point, s3_dump_at, s3_recovery_point FROM "{_schema}".veloz_nodes ORDER BY node
            """, connection))
        {
            command.Parameters.AddWithValue("dead", _deadAfter);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                nodes.Add(new ClusterNode(reader.GetString(0), Utc(reader.GetDateTime(1)), Utc(reader.GetDateTime(2)), reader.GetDouble(3), reader.GetBoolean(4), reader.GetBoolean(5))
                {
                    RecoveryPoint = reader.IsDBNull(6) ? null : Utc(reader.GetDateTime(6)),
                    S3Dump = reader.IsDBNull(7) ? null : Utc(reader.GetDateTime(7)),
                    S3RecoveryPoint = reader.IsDBNull(8) ? null : Utc(reader.GetDateTime(8)),
                });
            }
        }

        var runs = new List<ClusterRun>();
        await using (var command = new NpgsqlCommand($"SELECT kind, node, started_at, finished_at, outcome, artifact, success_node, success_started_at, success_artifact FROM \"{_schema}\".veloz_runs ORDER BY kind", connection))
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                runs.Add(new ClusterRun(reader.GetString(0), reader.GetString(1), Utc(reader.GetDateTime(2)),
                    reader.IsDBNull(3) ? null : Utc(reader.GetDateTime(3)), reader.GetString(4), reader.IsDBNull(5) ? null : reader.GetString(5))
                {
                    LastSuccess = reader.IsDBNull(6) || reader.IsDBNull(7) ? null
                        : new ClusterSuccess(reader.GetString(6), Utc(reader.GetDateTime(7)), reader.IsDBNull(8) ? null : reader.GetString(8)),
                });
            }
        }

        string? holder = null;
        await using (var command = new NpgsqlCommand(
            "SELECT application_name FROM pg_stat_replication WHERE application_name LIKE @p ORDER BY backend_start LIMIT 1", connection))
        {
            command.Parameters.AddWithValue("p", Pitr.WalReceiver.ReceiverApplicationName + " %");
            if (await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is string name)
            {
                holder = name[(Pitr.WalReceiver.ReceiverApplicationName.Length + 1)..];
            }
        }

        return new ClusterView(nodes, runs, holder);
    }

    /// <summary>Whether a finished run counts as the kind's last success: it succeeded and stored an artifact.</summary>
    public static bool IsSuccess(string outcome, DateTimeOffset? finishedAt, string? artifact) =>
        finishedAt is not null && artifact is not null && string.Equals(outcome, "succeeded", StringComparison.Ordinal);

    /// <summary>"+0.012 s" for a skew.</summary>
    public static string FormatSkew(double seconds)
    {
        // Rounded first: a skew of -0.0001 s is "+0.000 s" (the section format alone wrote "-+0.000").
        var rounded = Math.Round(seconds, 3, MidpointRounding.AwayFromZero);
        return (rounded == 0 ? 0 : rounded).ToString("+0.000;-0.000;+0.000", CultureInfo.InvariantCulture) + " s";
    }

    private static DateTimeOffset Utc(DateTime value) => new(DateTime.SpecifyKind(value, DateTimeKind.Utc));

    private async Task<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new NpgsqlConnection(_connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
