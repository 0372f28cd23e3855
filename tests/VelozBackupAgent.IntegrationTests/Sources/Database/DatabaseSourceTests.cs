using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Database;
using VelozBackupAgent.Storage.Local;
using static VelozBackupAgent.IntegrationTests.Sources.Database.DatabaseTestKit;
using ChildProcess = VelozBackupAgent.IntegrationTests.Infrastructure.ChildProcess;

namespace VelozBackupAgent.IntegrationTests.Sources.Database;

/// <summary>The database source against the real PostgreSQL 15 cluster of scripts/test.sh, with the real pg_dump and pg_restore.</summary>
public sealed class DatabaseSourceTests : IAsyncLifetime, IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-db-").FullName;
    private readonly string _state = Directory.CreateTempSubdirectory("veloz-db-state-").FullName;
    private readonly ManualClock _clock = new(At);
    private readonly CapturedLogs _logs = new();
    private PostgresDatabase _db = null!;

    public async Task InitializeAsync() => _db = await PostgresDatabase.CreateAsync("veloz_db");

    public async Task DisposeAsync()
    {
        await _db.DisposeAsync();
        Directory.Delete(_root, recursive: true);
        Directory.Delete(_state, recursive: true);
    }

    public void Dispose() => _logs.Dispose();

    private string DatabaseDirectory => Path.Combine(_root, "database");

    private string ExpectedName(DateTimeOffset at) => Catalog.ArtifactName.Format(DatabaseSource.ArtifactPrefix(_db.Name), at, ".dump");

    private DatabaseSource Source(string? connectionString = null, Action<DatabaseOptions>? configure = null, Func<string, string?>? environment = null)
    {
        var options = new BackupOptions { LocalRoot = _root };
        options.Database.ConnectionString = connectionString ?? _db.ConnectionString;
        options.Database.BinDirectory = TestEnvironment.PostgresBinDirectory;
        configure?.Invoke(options.Database);
        var repository = new BackupRepository(new LocalArtifactStore(_root, _clock));
        return new DatabaseSource(options, repository, _clock, _logs.Factory, environment ?? (_ => null));
    }

    /// <summary>Runs the source the way the daemon does: through the runner, which turns failures into results.</summary>
    private Task<BackupRunResult> RunThroughRunnerAsync(DatabaseSource source) =>
        new BackupRunner([source], _state, _clock, _logs.Factory.CreateLogger<BackupRunner>()).RunAsync(BackupKinds.Database, BackupTrigger.Scheduled);

    private string WithConnection(Action<NpgsqlConnectionStringBuilder> change)
    {
        var b = new NpgsqlConnectionStringBuilder(_db.ConnectionString);
        change(b);
        return b.ConnectionString;
    }

    private static async Task SeedTradingSchemaAsync(PostgresDatabase db)
    {
        await db.SeedOrdersAsync(5000);
        await db.ExecuteAsync("""
            CREATE TABLE fills (id bigserial PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders(id),
                                payload bytea NOT NULL, meta jsonb, at timestamptz NOT NULL DEFAULT now());
            INSERT INTO fills (order_id, payload, meta)
                SELECT i, decode(md5(i::text) || md5((i * 7)::text), 'hex'), jsonb_build_object('venue', 'X' || (i % 5), 'n', i)
                FROM generate_series(1, 5000) AS i;
            CREATE INDEX fills_order ON fills (order_id);
            CREATE VIEW open_positions AS SELECT * FROM positions WHERE qty <> 0;
            """);
    }

    [Fact]
    public async Task A_dump_restores_into_a_fresh_database_with_the_same_rows()
    {
        await SeedTradingSchemaAsync(_db);

        var output = await Source().RunAsync(BackupTrigger.Scheduled, CancellationToken.None);

        var artifact = output.Artifacts.Should().ContainSingle().Subject;
        artifact.Name.Should().Be(ExpectedName(At));
        var path = Path.Combine(DatabaseDirectory, artifact.Name);
        await using var restored = await PostgresDatabase.CreateAsync("veloz_restored");
        var restore = await ChildProcess.RunAsync(Tool("pg_restore"), ["--no-owner", "--exit-on-error", "--dbname", restored.Name, path], PgEnv(restored.ConnectionString));
        restore.ExitCode.Should().Be(0, restore.StdErr);

        foreach (var table in new[] { "orders", "positions", "fills" })
        {
            (await FingerprintAsync(restored, table)).Should().Be(await FingerprintAsync(_db, table), $"table {table} must come back row for row");
        }

        (await restored.ScalarAsync<long>("SELECT last_value FROM orders_id_seq")).Should().Be(5000);
        (await restored.ScalarAsync<long>("SELECT count(*) FROM open_positions")).Should().Be(await _db.ScalarAsync<long>("SELECT count(*) FROM open_positions"));
        (await restored.ScalarAsync<long>("SELECT count(*) FROM pg_indexes WHERE indexname = 'fills_order'")).Should().Be(1);
    }

    [Fact]
    public async Task The_dump_is_a_private_custom_archive_whose_checksum_verifies_by_hand()
    {
        await _db.SeedOrdersAsync(1000);
        var source = Source();

        var output = await source.RunAsync(BackupTrigger.Manual, CancellationToken.None);

        var artifact = output.Artifacts.Single();
        var list = await ChildProcess.RunAsync(Tool("pg_restore"), ["--list", Path.Combine(DatabaseDirectory, artifact.Name)]);
        list.ExitCode.Should().Be(0, list.StdErr);
        list.StdOut.Should().Contain("TABLE DATA public orders");
        File.GetUnixFileMode(Path.Combine(DatabaseDirectory, artifact.Name)).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var check = await ChildProcess.RunAsync("sha256sum", ["-c", artifact.Name + ".sha256"], workingDirectory: DatabaseDirectory);
        check.ExitCode.Should().Be(0, check.StdOut + check.StdErr);
        check.StdOut.Should().Contain($"{artifact.Name}: OK");

        var info = source.LastDumpInfo!;
        info.Database.Should().Be(_db.Name);
        info.ServerMajorVersion.Should().Be(15);
        info.ServerVersion.Should().StartWith("15.");
        info.DatabaseSizeBytes.Should().BeGreaterThan(1_000_000, "pg_database_size of even a small database is several MB");
        info.DumpSizeBytes.Should().Be(artifact.Size);
        info.TablesWithData.Should().Be(2);
        info.ArtifactName.Should().Be(artifact.Name);
        info.Replica.Should().Be(ReplicaOutcome.None);
        output.Detail.Should().StartWith($"PostgreSQL {info.ServerVersion}, database ").And.Contain("2 tables with data");
    }

    [Fact]
    public async Task A_second_dump_in_the_same_second_gets_its_own_name()
    {
        await _db.SeedOrdersAsync(10);
        var source = Source();

        var first = await source.RunAsync(BackupTrigger.Scheduled, CancellationToken.None);
        var second = await source.RunAsync(BackupTrigger.Manual, CancellationToken.None);

        first.Artifacts.Single().Name.Should().Be(ExpectedName(At));
        second.Artifacts.Single().Name.Should().Be(Catalog.ArtifactName.Format(DatabaseSource.ArtifactPrefix(_db.Name), At, ".dump", 2));
    }

    [Fact]
    public async Task A_wrong_password_is_one_clear_line_that_shows_the_password_nowhere()
    {
        var wrong = "Wrong-" + Guid.NewGuid().ToString("N");
        var builder = new NpgsqlConnectionStringBuilder(_db.ConnectionString) { Password = wrong };

        var result = await RunThroughRunnerAsync(Source(builder.ConnectionString));

        result.Outcome.Should().Be(BackupOutcome.Failed);
        result.Detail.Should().Be($"database {_db.Name} at {builder.Host}:{builder.Port}: password authentication failed for user \"{builder.Username}\"");
        _logs.Lines.Should().NotBeEmpty().And.NotContain(l => l.Contains(wrong, StringComparison.Ordinal));
        Files(_root).Should().BeEmpty();
    }

    [Fact]
    public async Task An_unreachable_port_is_one_clear_line()
    {
        var port = FreePort();

        var result = await RunThroughRunnerAsync(Source(WithConnection(b => b.Port = port)));

        result.Outcome.Should().Be(BackupOutcome.Failed);
        result.Detail.Should().Be($"database {_db.Name} at 127.0.0.1:{port}: cannot connect: Connection refused");
        Files(_root).Should().BeEmpty();
    }

    [Fact]
    public async Task A_missing_database_is_one_clear_line()
    {
        var missing = "veloz_missing_" + Guid.NewGuid().ToString("N")[..8];
        var port = new NpgsqlConnectionStringBuilder(_db.ConnectionString).Port;

        var result = await RunThroughRunnerAsync(Source(WithConnection(b => b.Database = missing)));

        result.Detail.Should().Be($"database {missing} at 127.0.0.1:{port}: database \"{missing}\" does not exist (Database in Backup:Database:ConnectionString)");
        Files(_root).Should().BeEmpty();
    }

    [Fact]
    public async Task A_missing_pg_dump_names_the_binary_and_the_key()
    {
        var empty = Directory.CreateTempSubdirectory("veloz-nobin-").FullName;
        try
        {
            var result = await RunThroughRunnerAsync(Source(configure: o => o.BinDirectory = empty));

            result.Outcome.Should().Be(BackupOutcome.Failed);
            result.Detail.Should().Be($"pg_dump not found: {empty}/pg_dump (Backup:Database:BinDirectory is {empty}; it must hold pg_dump and pg_restore)");
            Files(_root).Should().BeEmpty();
        }
        finally
        {
            Directory.Delete(empty);
        }
    }

    [Fact]
    public async Task Without_any_password_the_line_says_where_one_can_come_from()
    {
        var result = await RunThroughRunnerAsync(Source(WithConnection(b => b.Password = null)));

        result.Detail.Should().StartWith($"database {_db.Name} at ").And.Contain("the server asks for a password and none is configured");
        Files(_root).Should().BeEmpty();
    }

    [Fact]
    public async Task A_password_from_PGPASSFILE_reaches_both_the_check_and_pg_dump()
    {
        await _db.SeedOrdersAsync(10);
        var b = new NpgsqlConnectionStringBuilder(_db.ConnectionString);
        var passfile = Path.Combine(_state, "pgpass");
        await File.WriteAllTextAsync(passfile, $"{b.Host}:{b.Port}:*:{b.Username}:{b.Password}\n");
        File.SetUnixFileMode(passfile, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        var output = await Source(WithConnection(c => c.Password = null), environment: name => name == "PGPASSFILE" ? passfile : null)
            .RunAsync(BackupTrigger.Scheduled, CancellationToken.None);

        output.Artifacts.Should().ContainSingle();
    }

    [Fact]
    public async Task A_password_from_PGPASSWORD_reaches_both_the_check_and_pg_dump()
    {
        await _db.SeedOrdersAsync(10);
        var password = new NpgsqlConnectionStringBuilder(_db.ConnectionString).Password;

        var output = await Source(WithConnection(c => c.Password = null), environment: name => name == "PGPASSWORD" ? password : null)
            .RunAsync(BackupTrigger.Scheduled, CancellationToken.None);

        output.Artifacts.Should().ContainSingle();
    }

    [Fact]
    public async Task A_pg_dump_killed_mid_stream_leaves_no_artifact_and_the_earlier_one_intact()
    {
        await _db.SeedOrdersAsync(100);
        var source = Source();
        var earlier = (await source.RunAsync(BackupTrigger.Scheduled, CancellationToken.None)).Artifacts.Single();
        await AddRandomTableAsync(_db, "ticks", 100);
        _clock.Advance(TimeSpan.FromDays(1));

        var run = source.RunAsync(BackupTrigger.Scheduled, CancellationToken.None);
        await WaitForPartialWriteAsync(DatabaseDirectory, run);
        var pid = FindPgDump(_db.Name) ?? throw new InvalidOperationException("pg_dump is not running");

        // While it runs: the password is in its environment, never on its command line.
        var password = new NpgsqlConnectionStringBuilder(_db.ConnectionString).Password!;
        (await File.ReadAllTextAsync($"/proc/{pid}/cmdline")).Should().NotContain(password);
        (await File.ReadAllTextAsync($"/proc/{pid}/environ")).Split('\0').Should().Contain($"PGPASSWORD={password}");
        Process.GetProcessById(pid).Kill();

        var failed = async () => await run;
        (await failed.Should().ThrowAsync<BackupSourceException>()).Which.Message.Should().StartWith("pg_dump failed (exit code 137)");
        Files(_root).Should().Equal(earlier.Name, earlier.Name + ".sha256");
        (await ChildProcess.RunAsync("sha256sum", ["-c", earlier.Name + ".sha256"], workingDirectory: DatabaseDirectory)).ExitCode.Should().Be(0);
        (await ChildProcess.RunAsync(Tool("pg_restore"), ["--list", Path.Combine(DatabaseDirectory, earlier.Name)])).ExitCode.Should().Be(0);
        source.LastDumpInfo!.ArtifactName.Should().Be(earlier.Name, "a failed run does not replace what the last good dump found");
    }

    [Fact]
    public async Task A_connection_terminated_by_the_server_mid_dump_leaves_no_artifact()
    {
        await AddRandomTableAsync(_db, "ticks", 100);
        var appName = "veloz-backup-test-" + Guid.NewGuid().ToString("N")[..8];
        var source = Source(WithConnection(b => b.ApplicationName = appName));

        var run = source.RunAsync(BackupTrigger.Scheduled, CancellationToken.None);
        await WaitForPartialWriteAsync(DatabaseDirectory, run);
        (await _db.ScalarAsync<long>($"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{appName}'")).Should().Be(1);

        var failed = async () => await run;
        (await failed.Should().ThrowAsync<BackupSourceException>()).Which.Message.Should().StartWith("pg_dump failed (exit code 1): pg_dump: error:");
        Files(_root).Should().BeEmpty();
    }

    [Fact]
    public async Task A_table_locked_longer_than_the_lock_wait_fails_the_run_with_pg_dumps_reason()
    {
        await _db.SeedOrdersAsync(100);
        await using var locker = new NpgsqlConnection(_db.ConnectionString);
        await locker.OpenAsync();
        await using var transaction = await locker.BeginTransactionAsync();
        await using (var lockOrders = new NpgsqlCommand("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE", locker, transaction))
        {
            await lockOrders.ExecuteNonQueryAsync();
        }

        var result = await RunThroughRunnerAsync(Source(configure: o => o.LockWaitTimeout = TimeSpan.FromSeconds(1)));

        result.Outcome.Should().Be(BackupOutcome.Failed);
        result.Detail.Should().Be("pg_dump failed (exit code 1): pg_dump: error: query failed: ERROR:  canceling statement due to statement timeout " +
                                  "(a table stayed locked longer than Backup:Database:LockWaitTimeout, 00:00:01; pg_locks shows who holds it)");
        Files(_root).Should().BeEmpty();
    }

    [Fact]
    public async Task Cancelling_a_running_dump_kills_pg_dump_and_keeps_nothing_partial()
    {
        await AddRandomTableAsync(_db, "ticks", 100);
        using var stop = new CancellationTokenSource();
        var run = Source().RunAsync(BackupTrigger.Scheduled, stop.Token);
        await WaitForPartialWriteAsync(DatabaseDirectory, run);

        await stop.CancelAsync();

        var cancelled = async () => await run;
        await cancelled.Should().ThrowAsync<OperationCanceledException>();
        FindPgDump(_db.Name).Should().BeNull("pg_dump is killed, not left running");
        Files(_root).Should().BeEmpty();
    }

    [RootFact]
    public async Task A_full_disk_fails_with_one_clear_line_and_harms_no_earlier_dump()
    {
        var mount = Directory.CreateTempSubdirectory("veloz-tiny-db-").FullName;
        (await ChildProcess.RunAsync("mount", ["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", mount])).ExitCode.Should().Be(0);
        try
        {
            await _db.SeedOrdersAsync(100);
            var options = new BackupOptions { LocalRoot = mount };
            options.Database.ConnectionString = _db.ConnectionString;
            options.Database.BinDirectory = TestEnvironment.PostgresBinDirectory;
            var source = new DatabaseSource(options, new BackupRepository(new LocalArtifactStore(mount)), _clock, _logs.Factory, _ => null);
            var earlier = (await source.RunAsync(BackupTrigger.Scheduled, CancellationToken.None)).Artifacts.Single();
            await AddRandomTableAsync(_db, "ticks", 8);
            _clock.Advance(TimeSpan.FromDays(1));

            var result = await RunThroughRunnerAsync(source);

            result.Outcome.Should().Be(BackupOutcome.Failed);
            result.Detail.Should().StartWith("local store is full: no space left on device");
            Files(mount).Should().Equal(earlier.Name, earlier.Name + ".sha256");
            (await ChildProcess.RunAsync("sha256sum", ["-c", earlier.Name + ".sha256"], workingDirectory: Path.Combine(mount, "database"))).ExitCode.Should().Be(0);
        }
        finally
        {
            await ChildProcess.RunAsync("umount", [mount]);
            Directory.Delete(mount, recursive: true);
        }
    }

    [Fact]
    public async Task An_archive_pg_restore_cannot_read_is_refused()
    {
        var path = Path.Combine(_state, "not-a-dump.dump");
        await File.WriteAllTextAsync(path, "PGDMP but not really");

        var check = () => DatabaseSource.CheckReadableAsync(Tool("pg_restore"), path, null, _logs.Factory.CreateLogger("test"), CancellationToken.None);

        (await check.Should().ThrowAsync<BackupSourceException>()).Which.Message.Should()
            .StartWith("the dump not-a-dump.dump is not a readable pg_dump archive, so it was discarded: pg_restore failed (exit code 1)");
    }
}
