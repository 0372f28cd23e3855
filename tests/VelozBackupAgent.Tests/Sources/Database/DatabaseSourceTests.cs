using System.Net.Sockets;
using Npgsql;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Sources.Database;

namespace VelozBackupAgent.Tests.Sources.Database;

/// <summary>The database source's pure decisions: names, arguments, version checks and error lines.</summary>
public sealed class DatabaseSourceTests
{
    private const string Secret = "s3cr3t-Pa55word";

    private static PgConnectionInfo Connection() =>
        PgConnectionInfo.Parse($"Host=127.0.0.1;Port=5432;Database=veloz;Username=veloz;Password={Secret}", _ => null);

    [Fact]
    public void The_default_database_names_dumps_like_the_seed_script()
    {
        var prefix = DatabaseSource.ArtifactPrefix("veloz");

        ArtifactName.Format(prefix, new DateTimeOffset(2026, 11, 23, 2, 0, 0, TimeSpan.Zero), ".dump").Should().Be("veloz_20261123_020000.dump");
    }

    [Theory]
    [InlineData("veloz", "veloz")]
    [InlineData("veloz_prod", "veloz_prod")]
    [InlineData("veloz_2026", "veloz-2026")]
    [InlineData("trading desk", "trading-desk")]
    [InlineData("ördersö", "-rders-")]
    [InlineData("_x", "x")]
    [InlineData("___", "database")]
    public void Database_names_become_prefixes_the_catalog_can_parse(string database, string prefix)
    {
        var p = DatabaseSource.ArtifactPrefix(database);

        p.Should().Be(prefix);
        ArtifactName.TryParse(ArtifactName.Format(p, DateTimeOffset.UnixEpoch, ".dump"), out var parsed, out _, out _, out var suffix).Should().BeTrue();
        parsed.Should().Be(p);
        suffix.Should().Be(".dump");
    }

    [Fact]
    public void pg_dump_writes_the_custom_format_never_prompts_and_waits_for_locks_only_so_long()
    {
        DatabaseSource.DumpArguments(TimeSpan.FromMinutes(5)).Should().Equal("--format=custom", "--no-password", "--lock-wait-timeout=300000");
        DatabaseSource.DumpArguments(TimeSpan.Zero).Should().Equal("--format=custom", "--no-password");
    }

    [Theory]
    [InlineData("pg_dump (PostgreSQL) 15.14 (Debian 15.14-1.pgdg120+1)", 15, "15.14")]
    [InlineData("pg_dump (PostgreSQL) 16.2", 16, "16.2")]
    [InlineData("pg_restore (PostgreSQL) 9.6.24", 9, "9.6.24")]
    [InlineData("pg_dump (PostgreSQL) 17beta1", 17, "17beta1")]
    public void Tool_versions_are_read(string output, int major, string text)
    {
        DatabaseSource.ParseToolVersion(output).Should().Be(new PgVersion(major, text));
    }

    [Fact]
    public void Output_that_is_no_version_is_not_a_version()
    {
        DatabaseSource.ParseToolVersion("GNU bash, version 5.2").Should().BeNull();
    }

    [Fact]
    public void An_older_pg_dump_than_the_server_is_refused_in_one_line()
    {
        DatabaseSource.CheckVersions(new PgVersion(15, "15.14"), new PgVersion(15, "15.4"), "/usr/bin/pg_dump").Should().BeNull();
        DatabaseSource.CheckVersions(new PgVersion(16, "16.1"), new PgVersion(15, "15.4"), "/usr/bin/pg_dump").Should().BeNull();

        DatabaseSource.CheckVersions(new PgVersion(14, "14.9"), new PgVersion(15, "15.4"), "/usr/lib/postgresql/14/bin/pg_dump").Should().Be(
            "pg_dump 14.9 (/usr/lib/postgresql/14/bin/pg_dump) is older than the server (PostgreSQL 15.4) and refuses to dump it: " +
            "install postgresql-client-15 (or newer) and point Backup:Database:BinDirectory at its bin directory");
    }

    [Fact]
    public void A_wrong_password_is_one_line_naming_database_server_and_user()
    {
        var error = new PostgresException("password authentication failed for user \"veloz\"", "FATAL", "FATAL", PostgresErrorCodes.InvalidPassword);

        DatabaseSource.ConnectFailure(Connection(), 15, error).Should().Be("database veloz at 127.0.0.1:5432: password authentication failed for user \"veloz\"");
    }

    [Fact]
    public void A_missing_database_names_the_key()
    {
        var error = new PostgresException("database \"veloz\" does not exist", "FATAL", "FATAL", PostgresErrorCodes.InvalidCatalogName);

        DatabaseSource.ConnectFailure(Connection(), 15, error).Should().Be(
            "database veloz at 127.0.0.1:5432: database \"veloz\" does not exist (Database in Backup:Database:ConnectionString)");
    }

    [Fact]
    public void A_refused_connection_and_a_timeout_say_so()
    {
        var refused = new NpgsqlException("Failed to connect to 127.0.0.1:5432", new SocketException((int)SocketError.ConnectionRefused));
        DatabaseSource.ConnectFailure(Connection(), 15, refused).Should().StartWith("database veloz at 127.0.0.1:5432: cannot connect: ");

        var timeout = new NpgsqlException("The operation has timed out", new TimeoutException());
        DatabaseSource.ConnectFailure(Connection(), 15, timeout).Should().Be(
            "database veloz at 127.0.0.1:5432: no answer within 15 s (Timeout in Backup:Database:ConnectionString; is the host reachable?)");
    }

    [Fact]
    public void A_missing_password_says_where_one_can_come_from()
    {
        var error = new NpgsqlException("No password has been provided but the backend requires one (in SASL/SCRAM-SHA-256)");

        DatabaseSource.ConnectFailure(Connection(), 15, error).Should().Contain("PGPASSWORD").And.Contain("PGPASSFILE");
    }

    [Fact]
    public void A_driver_message_that_quotes_the_password_is_scrubbed()
    {
        var error = new NpgsqlException($"something went wrong near '{Secret}'");

        DatabaseSource.ConnectFailure(Connection(), 15, error).Should().NotContain(Secret).And.Contain("***");
    }
}
