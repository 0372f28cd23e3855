using System.Diagnostics;
using Npgsql;
using NpgsqlTypes;
using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Setup;

/// <summary>
/// The private PostgreSQL 15 clusters PITR tests build on really behave as promised: real initdb, real
/// servers, real pg_receivewal/pg_basebackup, real crashes. One class, so these clusters come one at a time.
/// </summary>
public sealed class PgClusterTests
{
    [Fact]
    public async Task A_cluster_starts_answers_stops_and_starts_again_with_its_rows()
    {
        await using var cluster = await PgCluster.CreateAsync();

        cluster.IsRunning.Should().BeTrue();
        cluster.Root.Should().StartWith(Path.GetTempPath().TrimEnd('/') + "/veloz-pgc-");
        (await cluster.ScalarAsync<string>("SHOW server_version")).Should().StartWith("15.");
        (await cluster.ScalarAsync<string>("SHOW shared_buffers")).Should().Be("16MB");
        (await cluster.ScalarAsync<string>("SHOW max_connections")).Should().Be("20");
        (await cluster.ScalarAsync<string>("SHOW fsync")).Should().Be("off");
        (await cluster.ScalarAsync<string>("SHOW unix_socket_directories")).Should().Be(cluster.SocketDirectory);
        (await cluster.ScalarAsync<string>("SELECT current_user")).Should().Be(cluster.Superuser);
        await cluster.ExecuteAsync("CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')");

        await cluster.StopAsync();
        cluster.IsRunning.Should().BeFalse();
        var refused = async () => await cluster.ScalarAsync<int>("SELECT 1");
        await refused.Should().ThrowAsync<NpgsqlException>();

        await cluster.StartAsync();
        (await cluster.ScalarAsync<string>("SELECT v FROM t")).Should().Be("kept");
        File.ReadAllText(cluster.LogFile).Should().Contain("database system is ready to accept connections");

        await cluster.RestartAsync();
        (await cluster.ScalarAsync<string>("SELECT v FROM t")).Should().Be("kept");
    }

    [Fact]
    public async Task A_killed_cluster_is_gone_at_once_and_recovers_on_the_next_start()
    {
        await using var cluster = await PgCluster.CreateAsync();
        await cluster.ExecuteAsync("CREATE TABLE t (v int); INSERT INTO t VALUES (42)");

        await cluster.KillAsync();

        cluster.IsRunning.Should().BeFalse();
        (await Pgrep(cluster.DataDirectory)).Should().BeEmpty("the postmaster was SIGKILLed");
        File.Exists(Path.Combine(cluster.DataDirectory, "postmaster.pid")).Should().BeTrue("a crash leaves the pid file behind");

        await cluster.StartAsync();
        (await cluster.ScalarAsync<int>("SELECT v FROM t")).Should().Be(42);
        cluster.ReadLog().Should().Contain("database system was not properly shut down; automatic recovery in progress");
    }

    [Fact]
    public async Task Two_clusters_run_at_once_on_their_own_ports_and_directories()
    {
        await using var first = await PgCluster.CreateAsync();
        await using var second = await PgCluster.CreateAsync();

        first.Port.Should().NotBe(second.Port);
        first.Root.Should().NotBe(second.Root);
        var firstId = await first.ScalarAsync<long>("SELECT system_identifier FROM pg_control_system()");
        var secondId = await second.ScalarAsync<long>("SELECT system_identifier FROM pg_control_system()");
        firstId.Should().NotBe(secondId);

        await first.StopAsync();
        (await second.ScalarAsync<int>("SELECT 1")).Should().Be(1);
    }

    [Fact]
    public async Task By_default_a_replication_role_can_create_a_slot_stream_and_take_a_base_backup()
    {
        await using var cluster = await PgCluster.CreateAsync();
        await cluster.CreateRoleAsync("veloz_repl", "repl-pw", replication: true);
        var env = cluster.ClientEnvironment("veloz_repl", "repl-pw");

        var slot = await ChildProcess.RunAsync(cluster.Tool("pg_receivewal"), ["-w", "--create-slot", "--if-not-exists", "--slot", "veloz"], env);
        slot.ExitCode.Should().Be(0, slot.StdErr);
        (await cluster.ScalarAsync<string>("SELECT slot_type FROM pg_replication_slots WHERE slot_name = 'veloz'")).Should().Be("physical");

        var backup = Path.Combine(cluster.Root, "base");
        var basebackup = await ChildProcess.RunAsync(cluster.Tool("pg_basebackup"), ["-w", "-D", backup, "-Ft", "-X", "fetch", "-c", "fast"], env);
        basebackup.ExitCode.Should().Be(0, basebackup.StdErr);
        File.Exists(Path.Combine(backup, "base.tar")).Should().BeTrue();
        File.Exists(Path.Combine(backup, "backup_manifest")).Should().BeTrue();
    }

    [Fact]
    public async Task Without_the_replication_hba_lines_replication_is_refused_while_sql_still_works()
    {
        await using var cluster = await PgCluster.CreateAsync(new PgClusterOptions { ReplicationHba = false });
        File.ReadAllLines(Path.Combine(cluster.DataDirectory, "pg_hba.conf"))
            .Where(l => !l.TrimStart().StartsWith('#')).Should().NotContain(l => l.Contains("replication", StringComparison.Ordinal));
        var spool = Directory.CreateDirectory(Path.Combine(cluster.Root, "spool")).FullName;

        var receive = await ChildProcess.RunAsync(cluster.Tool("pg_receivewal"), ["-w", "-D", spool, "--no-loop"], cluster.ClientEnvironment(), TimeSpan.FromSeconds(30));
        var basebackup = await ChildProcess.RunAsync(cluster.Tool("pg_basebackup"), ["-w", "-D", Path.Combine(cluster.Root, "base"), "-Ft", "-X", "fetch"], cluster.ClientEnvironment(), TimeSpan.FromSeconds(30));

        var expected = $"FATAL:  no pg_hba.conf entry for replication connection from host \"127.0.0.1\", user \"{cluster.Superuser}\", no encryption";
        receive.ExitCode.Should().Be(1);
        receive.StdErr.Should().Contain(expected);
        basebackup.ExitCode.Should().Be(1);
        basebackup.StdErr.Should().Contain(expected);
        (await cluster.ScalarAsync<int>("SELECT 1")).Should().Be(1);
    }

    [Fact]
    public async Task Wal_level_minimal_is_applied_and_leaves_no_wal_sender()
    {
        await using var cluster = await PgCluster.CreateAsync(new PgClusterOptions
        {
            Settings = new Dictionary<string, string> { ["wal_level"] = "minimal", ["max_wal_senders"] = "0" },
        });

        (await cluster.ScalarAsync<string>("SHOW wal_level")).Should().Be("minimal");
        var receive = await ChildProcess.RunAsync(cluster.Tool("pg_receivewal"), ["-w", "-D", cluster.Root, "--no-loop"], cluster.ClientEnvironment(), TimeSpan.FromSeconds(30));
        receive.ExitCode.Should().Be(1);
        receive.StdErr.Should().Contain("FATAL:  number of requested standby connections exceeds max_wal_senders (currently 0)");
    }

    [Fact]
    public async Task StopCommand_and_StartCommand_stop_and_start_this_cluster_through_bin_sh()
    {
        await using var cluster = await PgCluster.CreateAsync();
        await cluster.ExecuteAsync("CREATE TABLE t (v int); INSERT INTO t VALUES (7)");

        (await Shell(cluster.StopCommand)).ExitCode.Should().Be(0);
        cluster.IsRunning.Should().BeFalse();
        (await Shell(cluster.StopCommand)).ExitCode.Should().Be(0, "stopping a stopped cluster is not an error");

        var start = await Shell(cluster.StartCommand);
        start.ExitCode.Should().Be(0, start.StdErr);
        (await cluster.ScalarAsync<int>("SELECT v FROM t")).Should().Be(7, "pg_ctl -w returned only once the server accepted connections");
        (await Shell(cluster.StartCommand)).ExitCode.Should().Be(0, "starting a running cluster is not an error");
    }

    [Fact]
    public async Task A_start_that_fails_exits_nonzero_from_StartCommand()
    {
        await using var cluster = await PgCluster.CreateAsync(new PgClusterOptions { Start = false });
        await File.AppendAllTextAsync(Path.Combine(cluster.DataDirectory, "postgresql.auto.conf"), "shared_buffers = 'lots'\n");

        var start = await Shell(cluster.StartCommand);

        start.ExitCode.Should().Be(1);
        cluster.IsRunning.Should().BeFalse();
        cluster.ReadLog().Should().Contain("invalid value for parameter \"shared_buffers\": \"lots\"");
    }

    [Fact]
    public async Task SetAsync_reloads_or_restarts_as_the_setting_needs_and_hba_lines_take_effect()
    {
        await using var cluster = await PgCluster.CreateAsync();

        (await cluster.SetAsync("archive_timeout", "77")).Should().BeFalse();
        (await cluster.ScalarAsync<string>("SHOW archive_timeout")).Should().Be("77s");
        (await cluster.SetAsync("max_wal_senders", "4")).Should().BeTrue();
        (await cluster.ScalarAsync<string>("SHOW max_wal_senders")).Should().Be("4");

        await cluster.CreateRoleAsync("app", "app-pw");
        (await ScalarAs(cluster, "app", "app-pw")).Should().Be("app");
        await cluster.PrependHbaAsync("host all app 127.0.0.1/32 reject");
        var rejected = async () => await ScalarAs(cluster, "app", "app-pw");
        (await rejected.Should().ThrowAsync<PostgresException>()).Which.MessageText.Should().Contain("pg_hba.conf rejects connection");
    }

    [Fact]
    public async Task OrdersWriter_returns_increasing_commit_positions_and_wal_helpers_move_the_wal()
    {
        await using var cluster = await PgCluster.CreateAsync();
        var writer = await OrdersWriter.CreateAsync(cluster);

        var orders = new List<CommittedOrder>();
        for (var i = 0; i < 3; i++)
        {
            orders.Add(await writer.CommitAsync());
        }

        orders.Select(o => o.Id).Should().Equal(1, 2, 3);
        orders.Select(o => o.Xid).Should().BeInAscendingOrder();
        orders.Select(o => NpgsqlLogSequenceNumber.Parse(o.Lsn)).Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
        orders.Select(o => o.CommittedBy).Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
        orders[0].RecoveryTargetTime.Should().MatchRegex(@"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00$");
        (await writer.IdsAsync()).Should().Equal(1, 2, 3);

        var restorePoint = await cluster.CreateRestorePointAsync("after_3");
        NpgsqlLogSequenceNumber.Parse(restorePoint).Should().BeGreaterThanOrEqualTo(NpgsqlLogSequenceNumber.Parse(orders[^1].Lsn));
        var segment = await cluster.ScalarAsync<string>("SELECT pg_walfile_name(pg_current_wal_insert_lsn())");
        var switched = await cluster.SwitchWalAsync();
        switched.CompletedSegment.Should().Be(segment);
        var again = await cluster.SwitchWalAsync();
        again.CompletedSegment.Should().NotBe(segment, "a switch right after a switch still completes a segment");
        NpgsqlLogSequenceNumber.Parse(await cluster.CurrentLsnAsync()).Should().BeGreaterThan(NpgsqlLogSequenceNumber.Parse(again.Lsn));
    }

    [Fact]
    public async Task Dispose_stops_every_server_under_its_root_even_a_restored_copy_and_removes_the_directory()
    {
        var cluster = await PgCluster.CreateAsync();
        await cluster.ExecuteAsync("CREATE TABLE t (v int); INSERT INTO t VALUES (1)");
        await cluster.StopAsync();

        // A copy of the data directory on its own port, started the way a restore would start one.
        var copy = Path.Combine(cluster.Root, "restored");
        (await ChildProcess.RunAsync("cp", ["-a", cluster.DataDirectory, copy])).ExitCode.Should().Be(0);
        using (var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0))
        {
            listener.Start();
            var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            await File.AppendAllTextAsync(Path.Combine(copy, "postgresql.auto.conf"), $"port = {port}\n");
        }

        var copyStart = await cluster.RunAsOsUserAsync("pg_ctl", "-D", copy, "-l", Path.Combine(cluster.Root, "log", "restored.log"), "-w", "start");
        copyStart.ExitCode.Should().Be(0, copyStart.StdErr);
        await cluster.StartAsync();
        var spool = Directory.CreateDirectory(Path.Combine(cluster.Root, "spool")).FullName;
        using var receiver = ChildProcess.Start(cluster.Tool("pg_receivewal"), ["-w", "-D", spool, "--synchronous"], cluster.ClientEnvironment());
        await WaitUntil(() => Directory.EnumerateFiles(spool, "*.partial").Any());
        (await Pgrep(cluster.Root)).Should().HaveCountGreaterThanOrEqualTo(3, "two postmasters and a pg_receivewal run under the root");

        await cluster.DisposeAsync();

        (await Pgrep(cluster.DataDirectory)).Should().BeEmpty();
        (await Pgrep(cluster.Root)).Should().BeEmpty();
        Directory.Exists(cluster.Root).Should().BeFalse();
        receiver.HasExited.Should().BeTrue();
    }

    private static Task<ProcessResult> Shell(string commandLine) => ChildProcess.RunAsync("/bin/sh", ["-c", commandLine], timeout: TimeSpan.FromMinutes(2));

    private static async Task<string> ScalarAs(PgCluster cluster, string user, string password)
    {
        await using var connection = new NpgsqlConnection(cluster.ConnectionString(user: user, password: password));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT current_user", connection);
        return (string)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>Pids of <c>pgrep -f PATTERN</c> (a fixed string here: the paths hold no regex characters).</summary>
    private static async Task<string[]> Pgrep(string pattern)
    {
        var result = await ChildProcess.RunAsync("pgrep", ["-f", pattern]);
        return result.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(20), "the condition should hold by then");
            await Task.Delay(50);
        }
    }
}
