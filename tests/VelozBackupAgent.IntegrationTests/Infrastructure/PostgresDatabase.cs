using Npgsql;

namespace VelozBackupAgent.IntegrationTests.Infrastructure;

/// <summary>
/// A fresh, uniquely named database on the test cluster, dropped on dispose. Each test gets its own, so
/// tests run in parallel without seeing each other's rows.
/// </summary>
public sealed class PostgresDatabase : IAsyncDisposable
{
    private readonly string _adminConnectionString;

    private PostgresDatabase(string adminConnectionString, string name)
    {
        _adminConnectionString = adminConnectionString;
        Name = name;
        ConnectionString = new NpgsqlConnectionStringBuilder(adminConnectionString) { Database = name, Pooling = false }.ConnectionString;
    }

    public string Name { get; }

    /// <summary>Connection string to this database, password included (as a real config would have it).</summary>
    public string ConnectionString { get; }

    public static async Task<PostgresDatabase> CreateAsync(string prefix = "veloz_test")
    {
        var admin = new NpgsqlConnectionStringBuilder(TestEnvironment.PostgresConnectionString) { Pooling = false }.ConnectionString;
        var name = $"{prefix}_{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 17, 63)];
        await using var connection = new NpgsqlConnection(admin);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
        await command.ExecuteNonQueryAsync();
        return new PostgresDatabase(admin, name);
    }

    /// <summary>An existing database beside <paramref name="sibling"/> (e.g. one a restore created), dropped on dispose.</summary>
    public static PostgresDatabase Attach(PostgresDatabase sibling, string name) => new(sibling._adminConnectionString, name);

    /// <summary>Runs SQL in this database.</summary>
    public async Task ExecuteAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 600 };
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Runs a query in this database and returns the first column of the first row.</summary>
    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>A small VeloZ-like schema: orders and positions, with <paramref name="orders"/> rows.</summary>
    public Task SeedOrdersAsync(int orders = 1000) => ExecuteAsync($"""
        CREATE TABLE orders (id bigserial PRIMARY KEY, symbol text NOT NULL, side char(1) NOT NULL,
                             qty numeric(18,8) NOT NULL, price numeric(18,8) NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
        CREATE TABLE positions (symbol text PRIMARY KEY, qty numeric(18,8) NOT NULL);
        INSERT INTO orders (symbol, side, qty, price)
            SELECT (ARRAY['BTCUSDT','ETHUSDT','SOLUSDT'])[1 + i % 3], CASE WHEN i % 2 = 0 THEN 'B' ELSE 'S' END, i * 0.001, 100 + i
            FROM generate_series(1, {orders}) AS i;
        INSERT INTO positions SELECT symbol, sum(CASE side WHEN 'B' THEN qty ELSE -qty END) FROM orders GROUP BY symbol;
        """);

    public async ValueTask DisposeAsync()
    {
        await using var connection = new NpgsqlConnection(_adminConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{Name}\" WITH (FORCE)", connection);
        await command.ExecuteNonQueryAsync();
    }
}
