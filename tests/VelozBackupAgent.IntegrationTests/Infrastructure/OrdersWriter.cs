using System.Globalization;
using Npgsql;

namespace VelozBackupAgent.IntegrationTests.Infrastructure;

/// <summary>
/// One committed order and where its commit is, read right after COMMIT returned in the same session.
/// </summary>
/// <param name="Id">The order's id.</param>
/// <param name="Xid">The transaction id (<c>txid_current()</c>); a <c>recovery_target_xid</c> for exactly this commit.</param>
/// <param name="Lsn">
/// <c>pg_current_wal_insert_lsn()</c> after COMMIT: at or after the end of the commit record (equal to it when
/// nothing else wrote WAL meanwhile). Every WAL consumer that has flushed up to here has this commit; as a
/// <c>recovery_target_lsn</c> (inclusive, the default) it keeps this commit and stops before the next one.
/// </param>
/// <param name="CommittedBy">
/// The server's <c>clock_timestamp()</c> after COMMIT: at or after the commit record's timestamp and before the
/// next commit's, so as a <c>recovery_target_time</c> (inclusive) it keeps this commit and no later one.
/// </param>
public sealed record CommittedOrder(long Id, long Xid, string Lsn, DateTimeOffset CommittedBy)
{
    /// <summary><see cref="CommittedBy"/> as a recovery_target_time value with an explicit zone, e.g. <c>2026-12-01 22:27:51.797469+00</c>.</summary>
    public string RecoveryTargetTime => CommittedBy.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00";
}

/// <summary>
/// Writes a VeloZ-like <c>orders</c> table one committed row at a time, for PITR tests that need to know which
/// rows a restore must keep. Each call opens its own connection, so the writer survives restarts, kills and
/// restores of the cluster (same port) in between.
/// </summary>
public sealed class OrdersWriter
{
    private static readonly string[] Symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];
    private readonly string _connectionString;
    private readonly string _table;
    private int _count;

    public OrdersWriter(string connectionString, string table = "orders")
    {
        _connectionString = connectionString;
        _table = PgCluster.Identifier(table);
    }

    /// <summary>A writer on <paramref name="cluster"/> whose table exists (created when missing).</summary>
    public static async Task<OrdersWriter> CreateAsync(PgCluster cluster, string database = "postgres", string table = "orders")
    {
        var writer = new OrdersWriter(cluster.ConnectionString(database), table);
        await using var connection = new NpgsqlConnection(writer._connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"""
            CREATE TABLE IF NOT EXISTS {writer._table} (
                id bigserial PRIMARY KEY, symbol text NOT NULL, side char(1) NOT NULL,
                qty numeric(18,8) NOT NULL, price numeric(18,8) NOT NULL, created_at timestamptz NOT NULL DEFAULT now())
            """, connection);
        await command.ExecuteNonQueryAsync();
        return writer;
    }

    /// <summary>Inserts and commits one order (autocommit), then reads the commit's position and time.</summary>
    public async Task<CommittedOrder> CommitAsync()
    {
        var n = Interlocked.Increment(ref _count);
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        long id, xid;
        await using (var insert = new NpgsqlCommand($"INSERT INTO {_table} (symbol, side, qty, price) VALUES (@symbol, @side, @qty, @price) RETURNING id, txid_current()", connection))
        {
            insert.Parameters.AddWithValue("symbol", Symbols[n % Symbols.Length]);
            insert.Parameters.AddWithValue("side", n % 2 == 0 ? "B" : "S");
            insert.Parameters.AddWithValue("qty", 0.001m * n);
            insert.Parameters.AddWithValue("price", 100m + n);
            await using var reader = await insert.ExecuteReaderAsync();
            await reader.ReadAsync();
            id = reader.GetInt64(0);
            xid = reader.GetInt64(1);
        }

        // The INSERT's implicit transaction has committed once the command completed.
        await using var after = new NpgsqlCommand("SELECT pg_current_wal_insert_lsn()::text, clock_timestamp()", connection);
        await using var position = await after.ExecuteReaderAsync();
        await position.ReadAsync();
        return new CommittedOrder(id, xid, position.GetString(0), position.GetFieldValue<DateTimeOffset>(1));
    }

    /// <summary>The ids in the table, ascending (what a restore kept).</summary>
    public async Task<IReadOnlyList<long>> IdsAsync()
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"SELECT id FROM {_table} ORDER BY id", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var ids = new List<long>();
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetInt64(0));
        }

        return ids;
    }
}
