using System.Globalization;
using System.Text;
using System.Text.Json;
using Npgsql;
using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Restore;

/// <summary>
/// A VeloZ database on a cluster of its own, owned by a non-superuser app role with a password and a setting, with a
/// second login role that reads a table through a group role: dumped once through the real binary (dump + globals).
/// Each test restores it somewhere: a brand-new empty cluster, one where a role already exists, a tampered store.
/// </summary>
public sealed class GlobalsSourceFixture : IAsyncLifetime
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public string VelozPassword { get; } = "Old-Veloz-pw-" + Guid.NewGuid().ToString("N")[..12];
    public string AnalystPassword { get; } = "Analyst-pw-" + Guid.NewGuid().ToString("N")[..12];
    public string Root { get; } = Directory.CreateTempSubdirectory("veloz-globals-restore-").FullName;
    public string LocalRoot => Path.Combine(Root, "backup");
    public string ConfigPath => Path.Combine(Root, "appsettings.json");
    public string DatabaseDirectory => Path.Combine(LocalRoot, "database");
    public PrivateCluster Source { get; private set; } = null!;
    public ProcessResult Backup { get; private set; } = null!;
    public string DumpName { get; private set; } = "";
    public string GlobalsName { get; private set; } = "";
    public string Fingerprint { get; private set; } = "";

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(LocalRoot);
        Source = await PrivateCluster.StartAsync();
        await Source.ExecuteAsync($"""
            CREATE ROLE veloz LOGIN PASSWORD '{VelozPassword}';
            ALTER ROLE veloz SET statement_timeout = '30s';
            CREATE ROLE readers NOLOGIN;
            CREATE ROLE analyst LOGIN PASSWORD '{AnalystPassword}';
            GRANT readers TO analyst;
            """);
        await Source.ExecuteAsync("CREATE DATABASE veloz OWNER veloz");
        await Source.ExecuteAsync("""
            CREATE TABLE orders (id bigserial PRIMARY KEY, symbol text NOT NULL, qty numeric(18,8) NOT NULL);
            CREATE TABLE positions (symbol text PRIMARY KEY, qty numeric(18,8) NOT NULL);
            INSERT INTO orders (symbol, qty) SELECT (ARRAY['BTCUSDT','ETHUSDT'])[1 + i % 2], i * 0.01 FROM generate_series(1, 500) AS i;
            INSERT INTO positions SELECT symbol, sum(qty) FROM orders GROUP BY symbol;
            GRANT SELECT ON orders TO readers;
            """, "veloz", "veloz", VelozPassword);
        Fingerprint = await FingerprintAsync(Source);
        await WriteConfigAsync(Source.ConnectionString("veloz"));

        Backup = await RunAsync("backup", "database");
        Backup.ExitCode.Should().Be(0, Backup.StdOut + Backup.StdErr);
        DumpName = Path.GetFileName(Directory.GetFiles(DatabaseDirectory, "veloz_*.dump").Single());
        GlobalsName = "globals_" + DumpName["veloz_".Length..^".dump".Length] + ".sql.gpg";
    }

    public async Task DisposeAsync()
    {
        await Source.DisposeAsync();
        Directory.Delete(Root, recursive: true);
    }

    /// <summary>The real binary with this fixture's configuration (and per-test overrides after it).</summary>
    public Task<ProcessResult> RunAsync(params string[] args) =>
        VelozBackupBinary.RunAsync([.. args, "--config", ConfigPath], timeout: TimeSpan.FromMinutes(3));

    /// <summary>Rows and a hash over every order, to compare a database before and after.</summary>
    public static Task<string> FingerprintAsync(PrivateCluster cluster) =>
        cluster.ScalarAsync<string>("SELECT count(*) || ':' || md5(string_agg(id || symbol || qty, ',' ORDER BY id)) FROM orders", "veloz");

    /// <summary>A store with only the fixture's dump (and, when asked, its globals), for tests that change what is stored.</summary>
    public string CopyStore(bool withGlobals)
    {
        var root = Directory.CreateTempSubdirectory("veloz-globals-store-").FullName;
        var database = Directory.CreateDirectory(Path.Combine(root, "database")).FullName;
        foreach (var name in withGlobals ? new[] { DumpName, GlobalsName } : [DumpName])
        {
            File.Copy(Path.Combine(DatabaseDirectory, name), Path.Combine(database, name));
            File.Copy(Path.Combine(DatabaseDirectory, name + ".sha256"), Path.Combine(database, name + ".sha256"));
        }

        return root;
    }

    private async Task WriteConfigAsync(string connectionString)
    {
        var backup = new Dictionary<string, object?>
        {
            ["NodeName"] = "veloz-globals",
            ["LocalRoot"] = LocalRoot,
            ["Wal"] = new { Enabled = false },
            ["Config"] = new { Enabled = false },
            ["Database"] = new { ConnectionString = connectionString, BinDirectory = TestEnvironment.PostgresBinDirectory },

            // The secrets kind is off; its recipients and keyring still encrypt and decrypt the globals.
            ["Secrets"] = new { Enabled = false, Recipients = new[] { TestEnvironment.GpgRecipient }, GnupgHome = TestEnvironment.GnupgHome },
            ["S3"] = new { Enabled = false },
            ["Restore"] = new { StopCommand = "true", StartCommand = "true", HealthUrl = "http://127.0.0.1:9/health", Jobs = 2 },
            ["Log"] = new { File = "" },
        };
        await File.WriteAllTextAsync(ConfigPath, JsonSerializer.Serialize(new { Backup = backup }, Indented));
    }
}

/// <summary>
/// Restoring a dump onto a new server brings its roles first (from the globals stored with it), creates only what is
/// missing, never touches an existing role, and refuses a globals file that holds anything pg_dumpall does not write.
/// Real PostgreSQL 15 clusters of their own, real gpg, the real binary.
/// </summary>
public sealed class GlobalsRestoreTests(GlobalsSourceFixture fixture) : IClassFixture<GlobalsSourceFixture>
{
    private static string Connection(PrivateCluster cluster) => "--Backup:Database:ConnectionString=" + cluster.ConnectionString("veloz");

    [Fact]
    public void The_backup_stores_the_dump_and_its_globals_and_says_so_in_one_row()
    {
        fixture.Backup.StdOut.Should().MatchRegex(@"database\s+succeeded\s+veloz_\d{8}_\d{6}\.dump \(\+1 more\)")
            .And.Contain($"globals: {fixture.GlobalsName}, 4 roles, 1 memberships");
        File.Exists(Path.Combine(fixture.DatabaseDirectory, fixture.GlobalsName + ".sha256")).Should().BeTrue();
    }

    [Fact]
    public async Task Restore_database_onto_a_brand_new_cluster_brings_back_the_roles_their_old_passwords_the_owner_and_the_grants()
    {
        await using var target = await PrivateCluster.StartAsync();

        var restore = await fixture.RunAsync("restore", "database", "--yes", "--no-service", Connection(target));

        restore.ExitCode.Should().Be(0, restore.StdOut + restore.StdErr);
        restore.StdOut.Should().Contain("database veloz: 2 tables, 502 rows; roles: created analyst, readers, veloz; existing postgres");
        restore.ErrorLines.Should().Equal(
            $"veloz-backup: warning: database: created 3 role(s) missing on this server from {fixture.GlobalsName} with their password hashes from the backup: analyst, readers, veloz; memberships granted: readers TO analyst");
        await ExpectRestoredAsync(target);
        ExpectNoPlaintextUnder(fixture.Root);
    }

    [Fact]
    public async Task Restore_full_from_s3_onto_a_new_host_and_a_brand_new_cluster_restores_the_database_with_its_roles()
    {
        await using var target = await PrivateCluster.StartAsync();
        await using var s3 = await S3rverServer.StartNewAsync();
        var bucket = "globals-" + Guid.NewGuid().ToString("N")[..8];
        await s3.CreateBucketAsync(bucket);
        string[] s3Settings =
        [
            "--Backup:S3:Enabled=true", $"--Backup:S3:Bucket={bucket}", $"--Backup:S3:ServiceUrl={s3.ServiceUrl}",
            "--Backup:S3:ForcePathStyle=true", "--Backup:S3:ChunkedUpload=false", "--Backup:S3:MaxRetries=1",
        ];
        var replicate = await fixture.RunAsync(["replicate", "--reconcile", .. s3Settings]);
        replicate.ExitCode.Should().Be(0, replicate.StdOut + replicate.StdErr);
        var newHost = Directory.CreateTempSubdirectory("veloz-globals-newhost-").FullName;
        try
        {
            var restore = await fixture.RunAsync(["restore", "full", "--yes", "--no-service", "--source", $"s3://{bucket}/veloz-globals",
                $"--Backup:LocalRoot={newHost}", Connection(target), .. s3Settings]);

            restore.ExitCode.Should().Be(0, restore.StdOut + restore.StdErr);
            restore.StdOut.Should().Contain("skipped secrets: disabled in the configuration")
                .And.Contain("roles: created analyst, readers, veloz; existing postgres");
            restore.StdErr.Should().Contain($"created 3 role(s) missing on this server from {fixture.GlobalsName}");
            await ExpectRestoredAsync(target);
            ExpectNoPlaintextUnder(newHost);
            ExpectNoPlaintextUnder(s3.DataDirectory);
            Directory.EnumerateFiles(Path.Combine(newHost, ".state", "restore")).Should().BeEmpty("the downloaded (encrypted) copies are removed");
        }
        finally
        {
            Directory.Delete(newHost, recursive: true);
        }
    }

    [Fact]
    public async Task An_existing_role_is_left_exactly_as_it_was_and_only_the_missing_ones_are_created()
    {
        await using var target = await PrivateCluster.StartAsync();
        const string NewPassword = "New-server-pw-1";
        await target.ExecuteAsync($"CREATE ROLE veloz LOGIN PASSWORD '{NewPassword}' CONNECTION LIMIT 5");
        var before = await RoleRowAsync(target, "veloz");

        var restore = await fixture.RunAsync("restore", "database", "--yes", "--no-service", Connection(target));

        restore.ExitCode.Should().Be(0, restore.StdOut + restore.StdErr);
        restore.StdOut.Should().Contain("roles: created analyst, readers; existing postgres, veloz");
        (await RoleRowAsync(target, "veloz")).Should().Be(before, "its password hash, attributes and settings are untouched");
        (await CanLogInAsync(target, "veloz", NewPassword)).Should().BeTrue();
        (await CanLogInAsync(target, "veloz", fixture.VelozPassword)).Should().BeFalse("the backup's password was not put on an existing role");
        (await target.ScalarAsync<string>("SELECT tableowner::text FROM pg_tables WHERE tablename = 'orders'", "veloz")).Should().Be("veloz");
        (await CanLogInAsync(target, "analyst", fixture.AnalystPassword)).Should().BeTrue();
        (await target.ScalarAsync<long>("SELECT count(*) FROM orders", "veloz", "analyst", fixture.AnalystPassword)).Should().Be(500);
    }

    [Fact]
    public async Task A_tampered_globals_file_is_refused_and_nothing_from_it_runs()
    {
        var store = fixture.CopyStore(withGlobals: false);
        try
        {
            // Checksummed and encrypted to the agent's own key, as someone with write access to the store could make it.
            var plain = $"""
                CREATE ROLE intruder;
                ALTER ROLE intruder WITH SUPERUSER LOGIN PASSWORD 'md5{new string('0', 32)}';
                DROP TABLE orders;

                """;
            await EncryptIntoStoreAsync(store, fixture.GlobalsName, plain);
            var fingerprint = await GlobalsSourceFixture.FingerprintAsync(fixture.Source);

            var restore = await fixture.RunAsync("restore", "database", "--into", "veloz_tampered", "--no-service", $"--Backup:LocalRoot={store}");

            restore.ExitCode.Should().Be(1);
            restore.ErrorLines.Should().Equal(
                $"veloz-backup: {fixture.GlobalsName}: refused, line 3: DROP TABLE orders; is not a statement pg_dumpall --globals-only writes; nothing from it was run and nothing was restored " +
                $"(if you trust the dump, move {fixture.GlobalsName} and its .sha256 aside to restore it without its roles)");
            (await fixture.Source.ScalarAsync<long>("SELECT count(*) FROM pg_roles WHERE rolname = 'intruder'")).Should().Be(0);
            (await fixture.Source.ScalarAsync<long>("SELECT count(*) FROM pg_database WHERE datname LIKE 'veloz_tampered%'")).Should().Be(0);
            (await GlobalsSourceFixture.FingerprintAsync(fixture.Source)).Should().Be(fingerprint);
        }
        finally
        {
            Directory.Delete(store, recursive: true);
        }
    }

    [Fact]
    public async Task Without_a_globals_artifact_pg_restore_fails_on_the_missing_role_and_the_line_names_the_globals_problem()
    {
        var store = fixture.CopyStore(withGlobals: false);
        await using var target = await PrivateCluster.StartAsync();
        try
        {
            var restore = await fixture.RunAsync("restore", "database", "--yes", "--no-service", $"--Backup:LocalRoot={store}", Connection(target));

            restore.ExitCode.Should().Be(1);
            restore.ErrorLines.Should().ContainSingle().Which.Should()
                .MatchRegex("role \"(veloz|readers|analyst)\" does not exist")
                .And.Contain($"; the dump's roles were not restored: no globals artifact {fixture.GlobalsName} beside {fixture.DumpName}");
            (await target.ScalarAsync<long>("SELECT count(*) FROM pg_database WHERE datname LIKE 'veloz%'")).Should().Be(0, "the scratch database is dropped again");
        }
        finally
        {
            Directory.Delete(store, recursive: true);
        }
    }

    [Fact]
    public async Task A_backup_role_that_is_not_a_superuser_stores_globals_without_passwords_and_the_restore_says_they_must_be_set()
    {
        const string BackupPassword = "Backup-ro-pw-1";
        // SELECT on VeloZ's tables only: pg_read_all_data would let it read pg_authid (and so the hashes) too.
        await fixture.Source.ExecuteAsync($"CREATE ROLE backup_ro LOGIN PASSWORD '{BackupPassword}'");
        await fixture.Source.ExecuteAsync("GRANT SELECT ON ALL TABLES IN SCHEMA public TO backup_ro; GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO backup_ro;", "veloz");
        var store = Directory.CreateTempSubdirectory("veloz-globals-nopw-").FullName;
        await using var target = await PrivateCluster.StartAsync();
        try
        {
            var backup = await fixture.RunAsync("backup", "database", $"--Backup:LocalRoot={store}",
                "--Backup:Database:ConnectionString=" + fixture.Source.ConnectionString("veloz", "backup_ro", BackupPassword));

            backup.ExitCode.Should().Be(0, backup.StdOut + backup.StdErr);
            backup.StdOut.Should().Contain("WITHOUT role passwords (the backup role backup_ro is not a superuser and cannot read pg_authid: pg_dumpall --no-role-passwords;");
            var globals = Directory.GetFiles(Path.Combine(store, "database"), "globals_*.sql.gpg").Single();
            var plain = await ChildProcess.RunAsync("gpg", ["--batch", "--quiet", "--decrypt", globals], new Dictionary<string, string?> { ["GNUPGHOME"] = TestEnvironment.GnupgHome });
            plain.StdOut.Should().Contain("-- veloz-backup: --no-role-passwords: the backup role backup_ro cannot read pg_authid (not a superuser)")
                .And.Contain("CREATE ROLE veloz;").And.NotContain("PASSWORD '");

            var restore = await fixture.RunAsync("restore", "database", "--yes", "--no-service", $"--Backup:LocalRoot={store}", Connection(target));

            restore.ExitCode.Should().Be(0, restore.StdOut + restore.StdErr);
            restore.ErrorLines.Should().Contain(
                $"veloz-backup: warning: database: {Path.GetFileName(globals)} was taken with --no-role-passwords (the backup role could not read pg_authid): analyst, backup_ro, veloz have NO password now; set one with ALTER ROLE … PASSWORD before VeloZ connects");
            (await target.ScalarAsync<string>("SELECT tableowner::text FROM pg_tables WHERE tablename = 'orders'", "veloz")).Should().Be("veloz");
        }
        finally
        {
            Directory.Delete(store, recursive: true);
            await fixture.Source.ExecuteAsync("DROP OWNED BY backup_ro", "veloz");
            await fixture.Source.ExecuteAsync("DROP ROLE backup_ro");
        }
    }

    [Fact]
    public async Task Naming_the_globals_file_as_the_dump_is_refused_in_one_line()
    {
        var restore = await fixture.RunAsync("restore", "database", Path.Combine(fixture.DatabaseDirectory, fixture.GlobalsName), "--into", "veloz_wrong", "--no-service");

        restore.ExitCode.Should().Be(2);
        restore.ErrorLines.Should().ContainSingle().Which.Should().Contain($"{fixture.GlobalsName} holds the cluster's roles, not a dump");
    }

    /// <summary>The roles are back on <paramref name="target"/> with their passwords, settings and memberships; the tables with their owner and grants.</summary>
    private async Task ExpectRestoredAsync(PrivateCluster target)
    {
        (await GlobalsSourceFixture.FingerprintAsync(target)).Should().Be(fixture.Fingerprint);
        (await CanLogInAsync(target, "veloz", fixture.VelozPassword)).Should().BeTrue("the app role logs in with its old password");
        (await target.ScalarAsync<string>("SHOW statement_timeout", "veloz", "veloz", fixture.VelozPassword)).Should().Be("30s");
        (await target.ScalarAsync<string>("SELECT string_agg(tableowner::text, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'", "veloz"))
            .Should().Be("veloz,veloz", "the tables belong to the app role again");
        (await target.ScalarAsync<bool>("SELECT pg_has_role('analyst', 'readers', 'MEMBER')")).Should().BeTrue();
        (await target.ScalarAsync<long>("SELECT count(*) FROM orders", "veloz", "analyst", fixture.AnalystPassword)).Should().Be(500, "the grant to readers is back");
        (await target.ScalarAsync<bool>("SELECT has_table_privilege('analyst', 'positions', 'SELECT')", "veloz")).Should().BeFalse("and no grant more");
        (await target.ScalarAsync<bool>("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'readers'")).Should().BeFalse();
    }

    private static async Task<bool> CanLogInAsync(PrivateCluster cluster, string user, string password)
    {
        try
        {
            await using var connection = new NpgsqlConnection(cluster.ConnectionString("veloz", user, password));
            await connection.OpenAsync();
            return true;
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.InvalidPassword)
        {
            return false;
        }
    }

    private static Task<string> RoleRowAsync(PrivateCluster cluster, string role) => cluster.ScalarAsync<string>(
        $"SELECT a::text || coalesce((SELECT string_agg(s.setconfig::text, ';') FROM pg_db_role_setting s WHERE s.setrole = a.oid), '-') FROM pg_authid a WHERE rolname = '{role}'");

    /// <summary>No file under <paramref name="directory"/> holds a globals script, a password hash or one of the passwords in clear.</summary>
    private void ExpectNoPlaintextUnder(string directory)
    {
        foreach (var file in Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories))
        {
            var text = Encoding.Latin1.GetString(File.ReadAllBytes(file));
            foreach (var secret in new[] { "CREATE ROLE", "SCRAM-SHA-256$", fixture.VelozPassword, fixture.AnalystPassword })
            {
                text.Should().NotContain(secret, $"{file} must not hold it in clear");
            }
        }
    }

    private static async Task EncryptIntoStoreAsync(string store, string name, string plain)
    {
        var path = Path.Combine(store, "database", name);
        var encrypt = await ChildProcess.RunAsync("gpg", ["--batch", "--quiet", "--trust-model", "always", "--encrypt", "--recipient", TestEnvironment.GpgRecipient, "--output", path],
            new Dictionary<string, string?> { ["GNUPGHOME"] = TestEnvironment.GnupgHome }, stdin: plain);
        encrypt.ExitCode.Should().Be(0, encrypt.StdErr);
        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(await File.ReadAllBytesAsync(path)));
        await File.WriteAllTextAsync(path + ".sha256", string.Create(CultureInfo.InvariantCulture, $"{hash}  {name}\n"));
    }
}
