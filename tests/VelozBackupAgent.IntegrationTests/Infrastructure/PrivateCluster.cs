using System.Globalization;
using Npgsql;

namespace VelozBackupAgent.IntegrationTests.Infrastructure;

/// <summary>
/// A brand-new, empty PostgreSQL cluster of its own, for tests that need a server no other test shares: a new host
/// with no roles, or roles created and dropped without other tests' dumps seeing them. Started the way
/// scripts/lib.sh starts the shared one (initdb and pg_ctl as the postgres user when root, a free loopback port,
/// scram-sha-256 with a random superuser password), kept tiny, stopped and removed on dispose.
/// </summary>
public sealed class PrivateCluster : IAsyncDisposable
{
    private static readonly bool IsRoot = Environment.UserName == "root";

    private PrivateCluster(string root, int port, string superuser, string password)
    {
        Root = root;
        Port = port;
        Superuser = superuser;
        SuperuserPassword = password;
    }

    public string Root { get; }

    public string DataDirectory => Path.Combine(Root, "pg");

    public int Port { get; }

    public string Superuser { get; }

    public string SuperuserPassword { get; }

    /// <summary>Npgsql connection string to <paramref name="database"/>, as the superuser unless another user is given.</summary>
    public string ConnectionString(string database = "postgres", string? user = null, string? password = null) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Database = database,
        Username = user ?? Superuser,
        Password = user is null ? SuperuserPassword : password,
        Pooling = false,
    }.ConnectionString;

    public static async Task<PrivateCluster> StartAsync()
    {
        var root = Directory.CreateTempSubdirectory("veloz-pgc-").FullName;
        File.SetUnixFileMode(root, (UnixFileMode)0b111_101_101); // the postgres user must reach its data directory
        var superuser = IsRoot ? "postgres" : Environment.UserName;
        var password = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(12));
        var data = Path.Combine(root, "pg");
        var run = Path.Combine(root, "run");
        var pwfile = Path.Combine(root, "pwfile");
        Directory.CreateDirectory(data, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Directory.CreateDirectory(run, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        await File.WriteAllTextAsync(pwfile, password + "\n");
        File.SetUnixFileMode(pwfile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        try
        {
            if (IsRoot)
            {
                Check(await ChildProcess.RunAsync("chown", ["postgres", data, run, pwfile]), "chown");
            }

            Check(await AsPostgresAsync("initdb", ["-D", data, "-U", superuser, "--auth=scram-sha-256", "--pwfile=" + pwfile,
                "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]), "initdb");
            File.Delete(pwfile);
            for (var attempt = 1; ; attempt++)
            {
                var port = FreePort();
                var start = await AsPostgresAsync("pg_ctl", ["-D", data, "-l", Path.Combine(run, "postgres.log"), "-w", "-t", "30", "start", "-o",
                    $"-c listen_addresses=127.0.0.1 -p {port.ToString(CultureInfo.InvariantCulture)} -c unix_socket_directories={run} -c fsync=off -c shared_buffers=16MB -c max_connections=30"]);
                if (start.ExitCode == 0)
                {
                    return new PrivateCluster(root, port, superuser, password);
                }

                if (attempt == 5)
                {
                    Check(start, "pg_ctl start");
                }
            }
        }
        catch
        {
            Directory.Delete(root, recursive: true);
            throw;
        }
    }

    /// <summary>Runs SQL (several statements, no transaction block) in <paramref name="database"/> as the superuser or the given user.</summary>
    public async Task ExecuteAsync(string sql, string database = "postgres", string? user = null, string? password = null)
    {
        await using var connection = new NpgsqlConnection(ConnectionString(database, user, password));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    public async Task<T> ScalarAsync<T>(string sql, string database = "postgres", string? user = null, string? password = null)
    {
        await using var connection = new NpgsqlConnection(ConnectionString(database, user, password));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    public async ValueTask DisposeAsync()
    {
        await AsPostgresAsync("pg_ctl", ["-D", DataDirectory, "-m", "immediate", "-w", "stop"]);
        Directory.Delete(Root, recursive: true);
    }

    private static Task<ProcessResult> AsPostgresAsync(string tool, IEnumerable<string> args)
    {
        var path = Path.Combine(TestEnvironment.PostgresBinDirectory, tool);
        return IsRoot
            ? ChildProcess.RunAsync("runuser", ["-u", "postgres", "--", path, .. args], new Dictionary<string, string?> { ["LC_ALL"] = "C" })
            : ChildProcess.RunAsync(path, args);
    }

    private static void Check(ProcessResult result, string what)
    {
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"{what} failed (exit code {result.ExitCode}): {result.StdErr}{result.StdOut}");
        }
    }

    private static int FreePort() => Infrastructure.TestPorts.Free();
}
