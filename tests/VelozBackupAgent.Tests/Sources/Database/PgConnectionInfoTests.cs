using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Database;

namespace VelozBackupAgent.Tests.Sources.Database;

public sealed class PgConnectionInfoTests
{
    private const string Secret = "s3cr3t-Pa55word";

    private static Func<string, string?> Env(params (string Name, string Value)[] variables) =>
        name => variables.FirstOrDefault(v => v.Name == name).Value;

    private static PgConnectionInfo Parse(string connectionString, params (string Name, string Value)[] env) =>
        PgConnectionInfo.Parse(connectionString, Env(env));

    [Fact]
    public void The_default_connection_string_becomes_libpq_variables()
    {
        var c = Parse("Host=localhost;Database=veloz;Username=veloz");

        c.ChildEnvironment().Should().Contain(new Dictionary<string, string?>
        {
            ["PGHOST"] = "localhost",
            ["PGPORT"] = "5432",
            ["PGDATABASE"] = "veloz",
            ["PGUSER"] = "veloz",
            ["PGSSLMODE"] = "prefer",
            ["PGCONNECT_TIMEOUT"] = "15",
            ["PGAPPNAME"] = "veloz-backup",
        });
        c.Describe().Should().Be("database veloz at localhost:5432");
    }

    [Fact]
    public void A_password_goes_to_PGPASSWORD_and_nowhere_else()
    {
        var c = Parse($"Server=db.internal;Port=6432;Database=veloz;User Id=backup;Password={Secret};SSL Mode=VerifyFull;Timeout=7");

        c.ChildEnvironment()["PGPASSWORD"].Should().Be(Secret);
        c.ChildEnvironment().Where(kv => kv.Key != "PGPASSWORD").Select(kv => kv.Value).Should().NotContain(v => v != null && v.Contains(Secret));
        c.ToString().Should().NotContain(Secret);
        c.Describe().Should().Be("database veloz at db.internal:6432");
        c.ChildEnvironment()["PGSSLMODE"].Should().Be("verify-full");
        c.ChildEnvironment()["PGCONNECT_TIMEOUT"].Should().Be("7");
        c.ChildEnvironment()["PGUSER"].Should().Be("backup");
        DatabaseSource.DumpArguments(TimeSpan.FromMinutes(5)).Should().NotContain(a => a.Contains(Secret));
    }

    [Fact]
    public void Without_a_password_the_agents_PGPASSWORD_or_PGPASSFILE_is_used()
    {
        var fromPassword = Parse("Host=localhost;Database=veloz;Username=veloz", ("PGPASSWORD", Secret));
        fromPassword.Password.Should().Be(Secret);
        fromPassword.ChildEnvironment()["PGPASSWORD"].Should().Be(Secret);

        var fromFile = Parse("Host=localhost;Database=veloz;Username=veloz", ("PGPASSFILE", "/etc/veloz-backup/pgpass"));
        fromFile.Password.Should().BeNull();
        fromFile.ChildEnvironment().Should().NotContainKey("PGPASSWORD", "an inherited PGPASSWORD (if any) must be left alone");
        fromFile.ChildEnvironment()["PGPASSFILE"].Should().Be("/etc/veloz-backup/pgpass");
        fromFile.PrecheckConnectionString().Should().Contain("Passfile=/etc/veloz-backup/pgpass");

        var none = Parse("Host=localhost;Database=veloz;Username=veloz");
        none.ChildEnvironment().Should().NotContainKeys("PGPASSWORD", "PGPASSFILE");
    }

    [Fact]
    public void The_connection_string_wins_over_the_environment()
    {
        var c = Parse($"Host=localhost;Database=veloz;Username=veloz;Password={Secret};Passfile=/run/pgpass", ("PGPASSWORD", "other"), ("PGPASSFILE", "/other"), ("PGUSER", "someone"));

        c.ChildEnvironment()["PGPASSWORD"].Should().Be(Secret);
        c.ChildEnvironment()["PGPASSFILE"].Should().Be("/run/pgpass");
        c.User.Should().Be("veloz");
    }

    [Fact]
    public void Service_files_and_host_addresses_of_the_agent_cannot_redirect_the_dump()
    {
        var env = Parse("Host=localhost;Database=veloz;Username=veloz").ChildEnvironment();

        env.Should().ContainKey("PGSERVICE").WhoseValue.Should().BeNull("null removes the inherited variable");
        env.Should().ContainKey("PGHOSTADDR").WhoseValue.Should().BeNull();
    }

    [Fact]
    public void The_user_defaults_to_PGUSER_and_the_database_to_the_user()
    {
        var c = Parse("Host=localhost", ("PGUSER", "trader"));

        c.User.Should().Be("trader");
        c.Database.Should().Be("trader");
        c.ChildEnvironment()["PGDATABASE"].Should().Be("trader");
    }

    [Theory]
    [InlineData("a:5433,b", 5432, "a,b", "5433,5432")]
    [InlineData("a,b", 6000, "a,b", "6000")]
    [InlineData("/var/run/postgresql", 5432, "/var/run/postgresql", "5432")]
    [InlineData("[::1]:5433", 5432, "::1", "5433")]
    [InlineData("::1", 5432, "::1", "5432")]
    public void Hosts_with_ports_are_split_for_libpq(string host, int port, string hosts, string ports)
    {
        PgConnectionInfo.SplitHosts(host, port).Should().Be((hosts, ports));
    }

    [Fact]
    public void A_unix_socket_is_described_with_its_port()
    {
        Parse("Host=/var/run/postgresql;Database=veloz;Username=veloz").Describe()
            .Should().Be("database veloz at /var/run/postgresql (port 5432)");
    }

    [Fact]
    public void A_bad_connection_string_is_named_without_echoing_it()
    {
        var parse = () => Parse($"Hots=localhost;Password={Secret}");

        var error = parse.Should().Throw<BackupSourceException>().Which.Message;
        error.Should().StartWith("Backup:Database:ConnectionString is not a valid Npgsql connection string");
        error.Should().NotContain(Secret);
    }

    [Fact]
    public void A_connection_string_without_host_is_refused()
    {
        var parse = () => Parse("Database=veloz;Username=veloz");

        parse.Should().Throw<BackupSourceException>().Which.Message.Should().StartWith("Backup:Database:ConnectionString has no Host");
    }

    [Fact]
    public void Optional_settings_are_passed_on_only_when_set()
    {
        var plain = Parse("Host=h;Database=d;Username=u").ChildEnvironment();
        plain.Should().NotContainKeys("PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGOPTIONS", "PGTARGETSESSIONATTRS", "PGKRBSRVNAME", "PGGSSENCMODE", "PGCHANNELBINDING");

        var set = Parse("Host=h;Database=d;Username=u;Root Certificate=/ca.pem;SSL Certificate=/c.pem;SSL Key=/k.pem;Options=-c statement_timeout=0;Target Session Attributes=prefer-standby;Application Name=nightly")
            .ChildEnvironment();
        set["PGSSLROOTCERT"].Should().Be("/ca.pem");
        set["PGSSLCERT"].Should().Be("/c.pem");
        set["PGSSLKEY"].Should().Be("/k.pem");
        set["PGOPTIONS"].Should().Be("-c statement_timeout=0");
        set["PGTARGETSESSIONATTRS"].Should().Be("prefer-standby");
        set["PGAPPNAME"].Should().Be("nightly");
    }

    [Fact]
    public void Scrub_removes_the_password_from_any_text()
    {
        Parse($"Host=h;Database=d;Username=u;Password={Secret}").Scrub($"failed with {Secret} inside").Should().Be("failed with *** inside");
    }
}
