using VelozBackupAgent.Sources;

namespace VelozBackupAgent.Tests.Sources;

public sealed class ChildEnvironmentTests
{
    private static readonly Dictionary<string, string?> Agent = new()
    {
        ["PATH"] = "/usr/bin:/bin",
        ["HOME"] = "/var/lib/veloz-backup",
        ["LANG"] = "C.UTF-8",
        ["LC_ALL"] = "C",
        ["TZ"] = "UTC",
        ["AWS_ACCESS_KEY_ID"] = "AKIAEXAMPLE",
        ["AWS_SECRET_ACCESS_KEY"] = "aws-secret",
        ["AWS_SESSION_TOKEN"] = "token",
        ["Backup__Database__ConnectionString"] = "Host=db;Password=db-secret",
        ["Backup__S3__Bucket"] = "b",
        ["VELOZ_BACKUP_CONFIG"] = "/etc/veloz-backup/appsettings.json",
        ["PGPASSFILE"] = "/etc/veloz-backup/pgpass",
        ["PGSSLROOTCERT"] = "/etc/ssl/root.crt",
        ["PGPASSWORD"] = "agent-pgpassword",
        ["GNUPGHOME"] = "/var/lib/veloz-backup/gnupg",
        ["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=/run/dbus/system_bus_socket",
        ["JOURNAL_STREAM"] = "8:1234",
        ["INVOCATION_ID"] = "abc",
    };

    private static readonly Dictionary<string, string?> None = [];

    [Fact]
    public void A_plain_child_gets_path_home_locale_and_zone_only()
    {
        var env = ChildEnvironment.Build(Agent, InheritedVariables.Common, None);

        env.Keys.Should().BeEquivalentTo("PATH", "HOME", "LANG", "LC_ALL", "TZ");
    }

    [Fact]
    public void No_group_ever_passes_credentials_or_the_agents_configuration()
    {
        var env = ChildEnvironment.Build(Agent, InheritedVariables.Libpq | InheritedVariables.Gnupg | InheritedVariables.Service, None);

        env.Keys.Should().NotContain(k => k.StartsWith("AWS_", StringComparison.Ordinal) || k.StartsWith("Backup__", StringComparison.Ordinal) || k.StartsWith("VELOZ_", StringComparison.Ordinal));
        env.Values.Should().NotContain(v => v.Contains("secret", StringComparison.Ordinal));
        env.Keys.Should().NotContain(["JOURNAL_STREAM", "INVOCATION_ID"]);
    }

    [Fact]
    public void Libpq_tools_inherit_pg_variables_but_a_password_only_from_the_spec()
    {
        var inherited = ChildEnvironment.Build(Agent, InheritedVariables.Libpq, None);
        inherited.Should().Contain("PGPASSFILE", "/etc/veloz-backup/pgpass").And.Contain("PGSSLROOTCERT", "/etc/ssl/root.crt");
        inherited.Should().NotContainKey("PGPASSWORD");
        inherited.Should().NotContainKey("GNUPGHOME");

        var given = ChildEnvironment.Build(Agent, InheritedVariables.Libpq, new Dictionary<string, string?> { ["PGPASSWORD"] = "from-connection-string", ["PGPASSFILE"] = null });
        given.Should().Contain("PGPASSWORD", "from-connection-string");
        given.Should().NotContainKey("PGPASSFILE");
    }

    [Fact]
    public void Gpg_inherits_gnupghome_and_service_commands_the_bus()
    {
        ChildEnvironment.Build(Agent, InheritedVariables.Gnupg, None).Should().Contain("GNUPGHOME", "/var/lib/veloz-backup/gnupg").And.NotContainKey("PGPASSFILE");
        ChildEnvironment.Build(Agent, InheritedVariables.Service, None).Should().ContainKey("DBUS_SYSTEM_BUS_ADDRESS").And.NotContainKey("GNUPGHOME");
    }

    [Fact]
    public void The_specs_variables_win()
    {
        var env = ChildEnvironment.Build(Agent, InheritedVariables.Common, new Dictionary<string, string?> { ["TZ"] = "Europe/Berlin", ["LC_ALL"] = null, ["PGAPPNAME"] = "veloz-backup" });

        env.Should().Contain("TZ", "Europe/Berlin").And.Contain("PGAPPNAME", "veloz-backup").And.NotContainKey("LC_ALL");
    }
}
