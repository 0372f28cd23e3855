using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Npgsql;
using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Sources.Database;

/// <summary>Helpers of the database source tests: real tools, real processes, the real test cluster.</summary>
internal static class DatabaseTestKit
{
    public static readonly DateTimeOffset At = new(2026, 11, 23, 2, 0, 0, TimeSpan.Zero);

    public static string Tool(string name) => Path.Combine(TestEnvironment.PostgresBinDirectory, name);

    /// <summary>libpq variables for running psql/pg_restore by hand against <paramref name="connectionString"/>.</summary>
    public static Dictionary<string, string?> PgEnv(string connectionString)
    {
        var b = new NpgsqlConnectionStringBuilder(connectionString);
        return new Dictionary<string, string?>
        {
            ["PGHOST"] = b.Host,
            ["PGPORT"] = b.Port.ToString(CultureInfo.InvariantCulture),
            ["PGUSER"] = b.Username,
            ["PGPASSWORD"] = b.Password,
            ["PGDATABASE"] = b.Database,
        };
    }

    /// <summary>Row count and a hash of every row's text, in a stable order: equal fingerprints, equal contents.</summary>
    public static Task<string> FingerprintAsync(PostgresDatabase db, string table) =>
        db.ScalarAsync<string>($"SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '-') FROM {table} t");

    /// <summary>About <paramref name="mebibytes"/> MiB of incompressible rows, so a dump takes a moment and cannot be compressed away.</summary>
    public static Task AddRandomTableAsync(PostgresDatabase db, string table, int mebibytes) => db.ExecuteAsync($"""
        CREATE EXTENSION IF NOT EXISTS pgcrypto;
        CREATE TABLE {table} (id bigserial PRIMARY KEY, raw bytea NOT NULL);
        INSERT INTO {table} (raw) SELECT gen_random_bytes(1024) FROM generate_series(1, {mebibytes * 1024});
        """);

    public static int FreePort() => Infrastructure.TestPorts.Free();

    /// <summary>The pid of a running pg_dump whose environment names <paramref name="database"/>, from /proc.</summary>
    public static int? FindPgDump(string database)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                var argv = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                if (!argv[0].EndsWith("pg_dump", StringComparison.Ordinal))
                {
                    continue;
                }

                if (File.ReadAllText(Path.Combine(dir, "environ")).Split('\0').Contains($"PGDATABASE={database}"))
                {
                    return pid;
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Gone meanwhile, or not ours to read.
            }
        }

        return null;
    }

    /// <summary>Polls until a hidden temporary file under <paramref name="directory"/> holds bytes: the dump is streaming.</summary>
    public static async Task WaitForPartialWriteAsync(string directory, Task run)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (run.IsCompleted)
            {
                await run;
                Assert.Fail("the dump ended before it could be interrupted");
            }

            if (Directory.Exists(directory) && new DirectoryInfo(directory).EnumerateFiles(".*.tmp").Any(f => f.Length > 0))
            {
                return;
            }

            await Task.Delay(20);
        }

        Assert.Fail($"no partial write appeared in {directory}");
    }

    /// <summary>Names of the files in <c>&lt;root&gt;/database</c>, hidden ones included.</summary>
    public static string[] Files(string root)
    {
        var dir = Path.Combine(root, "database");
        return Directory.Exists(dir) ? [.. Directory.GetFiles(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal)!] : [];
    }
}

/// <summary>A real logger provider that keeps every line (message and exception), so tests can look for leaked secrets.</summary>
internal sealed class CapturedLogs : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public CapturedLogs() => Factory = LoggerFactory.Create(b => b.AddProvider(this).SetMinimumLevel(LogLevel.Trace));

    public ILoggerFactory Factory { get; }

    public IReadOnlyList<string> Lines => [.. _lines];

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

    public void Dispose() => Factory.Dispose();

    private sealed class Logger(string category, ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lines.Enqueue($"{logLevel} {category}: {formatter(state, exception)}{(exception is null ? "" : " " + exception)}");
        }
    }
}
