using System.Globalization;
using Npgsql;

namespace VelozBackupAgent.Cluster;

/// <summary>
/// This node's name, claimed for the agent's life: a PostgreSQL session advisory lock keyed on the cluster schema and
/// <c>Backup:NodeName</c>, held on a connection of its own (not pooled). A second agent started with the same name
/// against the same database cannot take it and refuses to start (its check-ins, runs and S3 prefix would be the first
/// one's). The server releases the lock when the holder's session ends, a killed process included, so a node that
/// is restarted (or replaced) after a crash takes its name again at once.
/// </summary>
public sealed class ClusterNodeLock : IAsyncDisposable
{
    private readonly string _connectionString;
    private readonly string _key;
    private readonly string _applicationName;
    private NpgsqlConnection? _connection;

    public ClusterNodeLock(ClusterDatabase cluster)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        _key = $"veloz-backup node {cluster.Schema}.{cluster.Node}";
        _applicationName = $"veloz-backup {cluster.Node} (node name)";
        _connectionString = new NpgsqlConnectionStringBuilder(cluster.ConnectionString)
        {
            Pooling = false,
            ApplicationName = _applicationName,
            KeepAlive = 30,
        }.ConnectionString;
    }

    /// <summary>Whether this process holds the name now.</summary>
    public bool Held => _connection is not null;

    /// <summary>
    /// Takes the name. Null when this process holds it now; otherwise who holds it, in words (the other agent's
    /// PostgreSQL session: backend pid, client address, since when). Throws <see cref="NpgsqlException"/> when the
    /// database cannot be used.
    /// </summary>
    public async Task<string?> TryAcquireAsync(CancellationToken cancellationToken)
    {
        if (_connection is not null)
        {
            return null;
        }

        var connection = new NpgsqlConnection(_connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            await using (var command = new NpgsqlCommand("SELECT pg_try_advisory_lock(hashtextextended(@k, 0))", connection))
            {
                command.Parameters.AddWithValue("k", _key);
                if ((bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
                {
                    _connection = connection;
                    connection = null;
                    return null;
                }
            }

            return await HolderAsync(connection, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (connection is not null)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// At each check-in: null while the lock's session is alive; when it was lost (a PostgreSQL restart, a dropped
    /// connection) the name is taken again, and who holds it instead is returned when another agent was quicker.
    /// Throws <see cref="NpgsqlException"/> when the database cannot be used (the name is then not held).
    /// </summary>
    public async Task<string?> KeepAsync(CancellationToken cancellationToken)
    {
        if (_connection is { } connection)
        {
            try
            {
                await using var command = new NpgsqlCommand("SELECT 1", connection);
                await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
                return null;
            }
            catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or TimeoutException)
            {
                _connection = null;
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }

        return await TryAcquireAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is { } connection)
        {
            _connection = null;
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task<string> HolderAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            SELECT pid, coalesce(host(client_addr), 'a local socket'), backend_start FROM pg_stat_activity
            WHERE application_name = @a AND pid <> pg_backend_pid() ORDER BY backend_start LIMIT 1
            """, connection);
        command.Parameters.AddWithValue("a", _applicationName);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? string.Create(CultureInfo.InvariantCulture,
                $"PostgreSQL session {reader.GetInt32(0)} from {reader.GetString(1)}, since {new DateTimeOffset(DateTime.SpecifyKind(reader.GetDateTime(2), DateTimeKind.Utc)):yyyy-MM-dd'T'HH:mm:ss'Z'}")
            : "a PostgreSQL session this role cannot see";
    }
}
