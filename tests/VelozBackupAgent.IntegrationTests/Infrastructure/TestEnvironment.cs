namespace VelozBackupAgent.IntegrationTests.Infrastructure;

/// <summary>
/// Where the real servers scripts/test.sh started are. Tests that need one fail (not skip) with a line
/// saying how to run them when the script did not set it up: a silently skipped database test would be a
/// test that cannot fail.
/// </summary>
public static class TestEnvironment
{
    private const string HowToRun = "run the tests with ./scripts/test.sh, which starts the real servers and sets it";

    /// <summary>Npgsql connection string of the throwaway PostgreSQL 15 superuser (database <c>postgres</c>).</summary>
    public static string PostgresConnectionString => Required("VELOZ_TEST_PG_CONNECTION");

    /// <summary>Directory with pg_dump, pg_restore, psql of the same major version as the server.</summary>
    public static string PostgresBinDirectory => Required("VELOZ_TEST_PG_BIN");

    /// <summary>The temp GNUPGHOME holding a passphrase-less test key.</summary>
    public static string GnupgHome => Required("GNUPGHOME");

    /// <summary>The e-mail address of the test key in <see cref="GnupgHome"/>.</summary>
    public static string GpgRecipient => Required("VELOZ_TEST_GPG_RECIPIENT");

    private static string Required(string name)
    {
        var value = Environment.GetEnvironmentVariable(name);
        return string.IsNullOrEmpty(value)
            ? throw new InvalidOperationException($"{name} is not set: {HowToRun}")
            : value;
    }
}
