using System.Diagnostics;
using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Setup;

/// <summary>The servers scripts/test.sh promises are really there: later suites rely on them.</summary>
public sealed class TestEnvironmentTests
{
    [Fact]
    public async Task PostgreSQL_15_answers_on_loopback_with_a_password()
    {
        TestEnvironment.PostgresConnectionString.Should().Contain("Host=127.0.0.1").And.Contain("Password=");
        await using var database = await PostgresDatabase.CreateAsync();
        await database.SeedOrdersAsync(10);

        (await database.ScalarAsync<string>("SHOW server_version")).Should().StartWith("15.");
        (await database.ScalarAsync<long>("SELECT count(*) FROM orders")).Should().Be(10);
    }

    [Fact]
    public async Task Pg_dump_of_the_same_major_version_is_there()
    {
        var output = await RunAsync(Path.Combine(TestEnvironment.PostgresBinDirectory, "pg_dump"), "--version");
        output.Should().Contain("(PostgreSQL) 15.");
    }

    [Fact]
    public async Task The_temp_gnupg_home_has_the_test_encryption_key()
    {
        TestEnvironment.GnupgHome.Should().StartWith(Path.GetTempPath().TrimEnd('/'));
        var output = await RunAsync("gpg", "--batch", "--with-colons", "--list-keys", TestEnvironment.GpgRecipient);
        output.Split('\n').Should().Contain(line => line.StartsWith("sub:", StringComparison.Ordinal) && line.Contains(":e:", StringComparison.Ordinal));
    }

    private static async Task<string> RunAsync(string file, params string[] arguments)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        process.ExitCode.Should().Be(0, error);
        return output;
    }
}
