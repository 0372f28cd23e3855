using VelozBackupAgent.Sources.Database;

namespace VelozBackupAgent.Tests.Sources.Database;

/// <summary>The globals parser and the SQL built from it: pure, on pg_dumpall 15's real output and on tampered files.</summary>
public sealed class GlobalsScriptTests
{
    private const string VelozHash = "SCRAM-SHA-256$4096:xG8vr4Vx12ywBYV3+4YJyg==$LPwB+YlwCfTmQU0XZlzAON1y1h361qCQ8Yu0KWMdnLQ=:zkCT6TyWDGH9JV8jsIeNjoPo6R0wDeX8+HJrcXIXylw=";

    /// <summary>What pg_dumpall 15.18 --globals-only wrote for a small cluster (the agent's header on top).</summary>
    private const string Dump = """
        -- veloz-backup: the cluster globals stored with veloz_20261201_020000.dump (pg_dumpall --globals-only)
        --
        -- PostgreSQL database cluster dump
        --

        \restrict eI55Z1FmN9hQzEY3HgNsyzb4ogmT9gedaejwkfUGkNBD44sgCL5d7Y5pR9agET4

        SET default_transaction_read_only = off;

        SET client_encoding = 'UTF8';
        SET standard_conforming_strings = on;

        --
        -- Roles
        --

        CREATE ROLE admin2;
        ALTER ROLE admin2 WITH NOSUPERUSER INHERIT CREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;
        CREATE ROLE analyst;
        ALTER ROLE analyst WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
        COMMENT ON ROLE analyst IS 'read only';
        CREATE ROLE postgres;
        ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:3Z+jmOYCSF3yyqF0+Sz5Jg==$a6XIBcWNl6gSVA8HOYTYFe6/A3nQdrwrWhcV0ImIV3U=:CqwwwFbpvOz3HeiVWeKWxxpC9qHSarakrCiYAZKbK9s=';
        CREATE ROLE veloz;
        ALTER ROLE veloz WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 20 PASSWORD 'SCRAM-SHA-256$4096:xG8vr4Vx12ywBYV3+4YJyg==$LPwB+YlwCfTmQU0XZlzAON1y1h361qCQ8Yu0KWMdnLQ=:zkCT6TyWDGH9JV8jsIeNjoPo6R0wDeX8+HJrcXIXylw=';
        CREATE ROLE "we""ird role";
        ALTER ROLE "we""ird role" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'md5a5e1a2b3c4d5e6f708192a3b4c5d6e7f' VALID UNTIL '2030-01-01 00:00:00+00';

        --
        -- User Configurations
        --

        --
        -- User Config "veloz"
        --

        ALTER ROLE veloz SET search_path TO 'public', '$user';
        ALTER ROLE veloz SET work_mem TO '8MB';
        ALTER ROLE veloz SET "myapp.tenant" TO 'desk-1';


        --
        -- Role memberships
        --

        GRANT analyst TO admin2 WITH ADMIN OPTION GRANTED BY postgres;
        GRANT analyst TO veloz GRANTED BY postgres;


        --
        -- Role privileges on configuration parameters
        --

        GRANT SET ON PARAMETER work_mem TO veloz;


        --
        -- Tablespaces
        --

        CREATE TABLESPACE ts1 OWNER postgres LOCATION '/srv/pg/ts1';
        GRANT CREATE ON TABLESPACE ts1 TO veloz;


        \unrestrict eI55Z1FmN9hQzEY3HgNsyzb4ogmT9gedaejwkfUGkNBD44sgCL5d7Y5pR9agET4

        --
        -- PostgreSQL database cluster dump complete
        --

        """;

    [Fact]
    public void Pg_dumpall_output_parses_into_roles_settings_memberships_grants_and_tablespaces()
    {
        var script = GlobalsScript.Parse(Dump);

        script.Roles.Select(r => r.Name).Should().Equal("admin2", "analyst", "postgres", "veloz", "we\"ird role");
        var veloz = script.Role("veloz")!;
        veloz.Flags.Should().Equal("NOSUPERUSER", "INHERIT", "NOCREATEROLE", "NOCREATEDB", "LOGIN", "NOREPLICATION", "NOBYPASSRLS");
        veloz.ConnectionLimit.Should().Be(20);
        veloz.PasswordHash.Should().Be(VelozHash);
        veloz.CanLogin.Should().BeTrue();
        veloz.IsSuperuser.Should().BeFalse();
        veloz.Settings.Should().BeEquivalentTo(new[]
        {
            new GlobalsSetting("search_path", ["public", "$user"]),
            new GlobalsSetting("work_mem", ["8MB"]),
            new GlobalsSetting("myapp.tenant", ["desk-1"]),
        }, o => o.WithStrictOrdering());
        script.Role("postgres")!.IsSuperuser.Should().BeTrue();
        script.Role("analyst")!.Comment.Should().Be("read only");
        script.Role("analyst")!.CanLogin.Should().BeFalse();
        script.Role("we\"ird role")!.ValidUntil.Should().Be("2030-01-01 00:00:00+00");
        script.Memberships.Select(m => (m.Role, m.Member, string.Join(",", m.Options))).Should().Equal(("analyst", "admin2", "ADMIN OPTION"), ("analyst", "veloz", ""));
        script.ParameterGrants.Should().ContainSingle().Which.Should().BeEquivalentTo(new GlobalsParameterGrant(["SET"], ["work_mem"], "veloz", false));
        script.Tablespaces.Should().Equal("ts1");
        script.WithoutRolePasswords.Should().BeFalse();
    }

    [Fact]
    public void The_agents_no_role_passwords_header_is_recognised()
    {
        var text = GlobalsScript.NoPasswordsMarker + ": the backup role backup_ro cannot read pg_authid (not a superuser)\nCREATE ROLE veloz;\nALTER ROLE veloz WITH LOGIN;\n";

        var script = GlobalsScript.Parse(text);

        script.WithoutRolePasswords.Should().BeTrue();
        script.Role("veloz")!.PasswordHash.Should().BeNull();
    }

    [Theory]
    [InlineData("CREATE ROLE veloz;\nDROP TABLE orders;\n", "line 2: DROP TABLE orders; is not a statement pg_dumpall --globals-only writes")]
    [InlineData("CREATE ROLE veloz;\nSELECT pg_terminate_backend(1);\n", "line 2: SELECT pg_terminate_backend(1); is not a statement pg_dumpall --globals-only writes")]
    [InlineData("CREATE ROLE veloz;\nALTER ROLE veloz RENAME TO app;\n", "line 2: ALTER ROLE veloz RENAME TO app; is not a statement pg_dumpall --globals-only writes")]
    [InlineData("CREATE ROLE veloz;\nALTER ROLE veloz WITH LOGIN; DROP DATABASE veloz;\n", "line 2: DROP DATABASE veloz; is not a statement pg_dumpall --globals-only writes")]
    [InlineData("CREATE ROLE veloz;\nGRANT ALL ON TABLE orders TO veloz;\n", "line 2: GRANT ALL ON TABLE orders TO veloz; is not a statement pg_dumpall --globals-only writes")]
    [InlineData("ALTER ROLE postgres WITH PASSWORD 'SCRAM-SHA-256$4096:a$b:c';\n", "line 1: ALTER ROLE postgres names a role the file does not create (ALTER ROLE postgres WITH PASSWORD '…';); pg_dumpall creates every role it alters")]
    [InlineData("CREATE ROLE veloz;\n\\! rm -rf /\n", "line 2: the psql meta-command \\! rm -rf / is not one pg_dumpall --globals-only writes")]
    [InlineData("CREATE ROLE veloz;\n\\i /tmp/evil.sql\n", "line 2: the psql meta-command \\i /tmp/evil.sql is not one pg_dumpall --globals-only writes")]
    [InlineData("CREATE ROLE veloz;\nCOMMENT ON ROLE veloz IS E'x\\' ; DROP TABLE t; --';\n", "line 2: COMMENT ON ROLE veloz IS E'…' ; DROP TABLE t; --'…' uses a prefixed string literal, which pg_dumpall --globals-only does not write")]
    [InlineData("CREATE ROLE veloz;\nCOMMENT ON ROLE veloz IS $$x$$;\n", "line 2: COMMENT ON ROLE veloz IS $$x$$; has '$', which pg_dumpall --globals-only does not write there")]
    [InlineData("CREATE ROLE veloz;\nALTER ROLE veloz WITH LOGIN PASSWORD 'hunter2';\n", "line 2: the PASSWORD of role veloz is not a SCRAM-SHA-256 or md5 hash, which is all pg_dumpall writes")]
    [InlineData("CREATE ROLE veloz;\nCREATE ROLE veloz;\n", "line 2: role veloz is created twice (CREATE ROLE veloz;)")]
    [InlineData("CREATE ROLE veloz;\nALTER ROLE veloz WITH LOGIN", "line 2: ALTER ROLE veloz WITH LOGIN does not end with ';': the file is cut short")]
    [InlineData("CREATE ROLE veloz;\nCOMMENT ON ROLE veloz IS 'never closed;\n", "line 2: a string is never closed: the file is cut short")]
    [InlineData("CREATE ROLE veloz;\nALTER ROLE veloz SET search_path TO DEFAULT;\n", "line 2: ALTER ROLE veloz SET search_path TO DEFAULT; is not a statement pg_dumpall --globals-only writes")]
    [InlineData("CREATE ROLE veloz;\n/* hidden */ ALTER ROLE veloz WITH LOGIN;\n", "line 2: /* hidden */ ALTER ROLE veloz WITH LOGIN; has '/', which pg_dumpall --globals-only does not write there")]
    public void Anything_pg_dumpall_does_not_write_refuses_the_file_with_its_line(string text, string message)
    {
        var parse = () => GlobalsScript.Parse(text);

        parse.Should().Throw<GlobalsScriptException>().Which.Message.Should().Be(message);
    }

    [Fact]
    public void A_refusal_never_quotes_a_password_hash()
    {
        var parse = () => GlobalsScript.Parse($"CREATE ROLE veloz;\nALTER ROLE veloz WITH LOGIN PASSWORD '{VelozHash}' SYSID 12;\n");

        parse.Should().Throw<GlobalsScriptException>().Which.Message.Should().NotContain("SCRAM").And.Contain("PASSWORD '…' SYSID 12;");
    }

    [Fact]
    public void A_semicolon_inside_a_literal_or_a_quoted_name_does_not_end_the_statement()
    {
        var script = GlobalsScript.Parse("CREATE ROLE \"a;b\";\nCOMMENT ON ROLE \"a;b\" IS 'x''; DROP TABLE t; --';\n");

        script.Roles.Should().ContainSingle().Which.Comment.Should().Be("x'; DROP TABLE t; --");
        GlobalsSql.CreateRole(script.Roles[0]).Should().Equal("CREATE ROLE \"a;b\"", "COMMENT ON ROLE \"a;b\" IS 'x''; DROP TABLE t; --'");
    }

    [Fact]
    public void Postgres_16_membership_options_and_unquoted_names_fold_to_lower_case()
    {
        var script = GlobalsScript.Parse("CREATE ROLE Readers;\nCREATE ROLE app;\nGRANT readers TO APP WITH INHERIT FALSE, SET TRUE GRANTED BY postgres;\n");

        script.Memberships.Should().ContainSingle().Which.Should().BeEquivalentTo(new GlobalsMembership("readers", "app", ["INHERIT FALSE", "SET TRUE"], 3));
        GlobalsSql.Grant(script.Memberships[0]).Should().Be("GRANT \"readers\" TO \"app\" WITH INHERIT FALSE, SET TRUE");
    }

    [Fact]
    public void The_sql_for_a_missing_role_quotes_every_name_and_value_and_keeps_the_hash()
    {
        var script = GlobalsScript.Parse(Dump);

        GlobalsSql.CreateRole(script.Role("veloz")!).Should().Equal(
            "CREATE ROLE \"veloz\"",
            $"ALTER ROLE \"veloz\" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 20 PASSWORD '{VelozHash}'",
            "ALTER ROLE \"veloz\" SET \"search_path\" TO 'public', '$user'",
            "ALTER ROLE \"veloz\" SET \"work_mem\" TO '8MB'",
            "ALTER ROLE \"veloz\" SET \"myapp.tenant\" TO 'desk-1'");
        GlobalsSql.CreateRole(script.Role("we\"ird role")!)[1].Should().Be(
            "ALTER ROLE \"we\"\"ird role\" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'md5a5e1a2b3c4d5e6f708192a3b4c5d6e7f' VALID UNTIL '2030-01-01 00:00:00+00'");
        GlobalsSql.Grant(script.Memberships[0]).Should().Be("GRANT \"analyst\" TO \"admin2\" WITH ADMIN OPTION");
        GlobalsSql.Grant(script.ParameterGrants[0]).Should().Be("GRANT SET ON PARAMETER \"work_mem\" TO \"veloz\"");
    }

    [Fact]
    public void Repeated_attributes_become_one_keyword_each_the_last_one_written()
    {
        var script = GlobalsScript.Parse("CREATE ROLE r WITH LOGIN;\nALTER ROLE r WITH NOLOGIN SUPERUSER;\nALTER ROLE r WITH NOSUPERUSER;\n");

        GlobalsSql.CreateRole(script.Roles[0])[1].Should().Be("ALTER ROLE \"r\" WITH NOLOGIN NOSUPERUSER");
    }

    [Fact]
    public void Security_labels_and_tablespace_statements_are_accepted_and_never_restored()
    {
        var script = GlobalsScript.Parse("""
            CREATE ROLE veloz;
            SECURITY LABEL FOR selinux ON ROLE veloz IS 'system_u:object_r:sepgsql_db_t:s0';
            CREATE TABLESPACE "Fast" OWNER veloz LOCATION '/srv/fast' WITH (random_page_cost=1.1);
            ALTER TABLESPACE "Fast" SET (seq_page_cost=1);
            COMMENT ON TABLESPACE "Fast" IS 'nvme';
            GRANT ALL ON TABLESPACE "Fast" TO veloz;
            REVOKE ALL ON TABLESPACE "Fast" FROM PUBLIC;
            SET SESSION AUTHORIZATION veloz;
            RESET SESSION AUTHORIZATION;

            """);

        script.Tablespaces.Should().Equal("Fast");
        script.NotRestored.Should().Equal("SECURITY LABEL ON ROLE veloz");
        GlobalsSql.CreateRole(script.Roles[0]).Should().Equal("CREATE ROLE \"veloz\"");
    }

    [Fact]
    public void Names_follow_the_dumps_time_and_sequence()
    {
        ClusterGlobals.NameFor("veloz_20261201_020000.dump").Should().Be("globals_20261201_020000.sql.gpg");
        ClusterGlobals.NameFor("veloz_20261201_020000-2.dump").Should().Be("globals_20261201_020000-2.sql.gpg");
        ClusterGlobals.NameFor("veloz_prod_20261201_020000.dump").Should().Be("globals_20261201_020000.sql.gpg");
        ClusterGlobals.NameFor("manual.dump").Should().BeNull();
        ClusterGlobals.IsGlobalsName("globals_20261201_020000-2.sql.gpg").Should().BeTrue();
        ClusterGlobals.IsGlobalsName("globals_20261201_020000.dump").Should().BeFalse("a database named globals dumps to this");
        ClusterGlobals.IsGlobalsName("secrets_20261201_020000.tar.gz.gpg").Should().BeFalse();
    }

    [Fact]
    public void Pg_dumpall_gets_no_secret_on_its_command_line()
    {
        ClusterGlobals.Arguments("veloz", withPasswords: true).Should().Equal("--globals-only", "--no-password", "--database=veloz");
        ClusterGlobals.Arguments("veloz", withPasswords: false).Should().Equal("--globals-only", "--no-password", "--no-role-passwords", "--database=veloz");
        ClusterGlobals.Arguments("host=evil dbname=x", withPasswords: true).Should().Equal("--globals-only", "--no-password");
    }
}
