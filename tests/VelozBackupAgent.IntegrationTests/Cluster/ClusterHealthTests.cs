using System.Globalization;
using System.Net;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.IntegrationTests.Telemetry;
using Xunit.Abstractions;

namespace VelozBackupAgent.IntegrationTests.Cluster;

/// <summary>
/// Health across the agents sharing one database (<c>Backup:Cluster:Enabled</c>), with real agent processes, one
/// private PostgreSQL and one s3rver (<see cref="ClusterBed"/>): a node that did not take the dump, the base backup or
/// the WAL receiver is not stale for it and names the node that did; no receiver anywhere fails; and a node name is
/// one agent's only.
/// </summary>
public sealed class ClusterHealthTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_second_agent_with_a_node_name_in_use_refuses_to_start_in_one_line_and_the_name_is_free_again_once_its_holder_is_killed()
    {
        await using var bed = await ClusterBed.CreateAsync();
        await bed.WriteConfigAsync("node-a");
        bed.Start("node-a");
        await bed.WaitForAsync(async () => (await bed.LiveNodesAsync()).Contains("node-a"), TimeSpan.FromSeconds(60), "node-a checked in");

        // Another machine (its own local store) configured with the same Backup:NodeName.
        await bed.WriteConfigAsync("twin", b => b["NodeName"] = "node-a");
        var twin = bed.Start("twin");
        await bed.WaitForAsync(() => Task.FromResult(twin.HasExited), TimeSpan.FromSeconds(60), "the twin stops");
        (await twin.StopAsync()).Should().Be(1); // (exited already: this waits until its output is read to the end)
        var errors = twin.Console.Split('\n').Where(l => l.StartsWith("veloz-backup: ", StringComparison.Ordinal)).ToList();
        errors.Should().ContainSingle().Which.Should().Contain("cluster: another agent already runs as node node-a against database veloz")
            .And.Contain("every agent needs its own Backup:NodeName");
        output.WriteLine(errors[0]);
        twin.Console.Should().NotContain("Unhandled exception");
        bed.Dumps("twin").Should().BeEmpty("the twin stopped before it ran anything");

        // The first carries on: its row was not removed by the twin's stop, and it goes on dumping.
        var refused = TimeProvider.System.GetUtcNow().UtcDateTime;
        await bed.WaitForAsync(async () => (await bed.LiveNodesAsync()).Contains("node-a") && bed.Dumps("node-a").Any(d => TimeOf(d) > refused.AddSeconds(1)),
            TimeSpan.FromSeconds(45), "node-a checks in and dumps after the twin was refused");
        bed.Node("node-a").HasExited.Should().BeFalse();

        // SIGKILL: no clean stop releases anything, the server ends the session and with it the lock.
        var started = await StartedAtAsync(bed, "node-a");
        await bed.KillAsync("node-a");
        await using var again = RunningDaemon.Start(["--config", bed.ConfigPath("node-a")], RunningDaemon.FreePort());
        await bed.WaitForAsync(async () => again.HasExited || await StartedAtAsync(bed, "node-a") > started, TimeSpan.FromSeconds(60), "node-a started again checks in");
        again.HasExited.Should().BeFalse(again.Console);
        again.Console.Should().Contain("cluster: node node-a joins").And.NotContain("another agent already runs");
    }

    [Fact]
    public async Task A_standby_passes_the_dump_base_backup_and_WAL_another_node_did_naming_it_and_fails_when_no_node_holds_the_receiver()
    {
        await using var bed = await ClusterBed.CreateAsync();

        // node-a alone first: it holds the receiver, and takes a dump and a base backup at one second of each minute.
        var now = TimeProvider.System.GetUtcNow();
        var dumpSecond = (now.Second + 15) % 60;
        var baseSecond = (dumpSecond + 5) % 60;
        await bed.WriteConfigAsync("node-a", b => bed.WithPitr(b, $"{dumpSecond} * * * * ?", $"{baseSecond} * * * * ?"));
        bed.Start("node-a");
        await bed.WaitForAsync(async () => await bed.ReceiverHolderAsync() == "node-a", TimeSpan.FromSeconds(60), "node-a streams");
        await bed.WaitForAsync(async () => await SucceededOnAsync(bed, "database") == "node-a" && await SucceededOnAsync(bed, "pitr") == "node-a",
            TimeSpan.FromSeconds(120), "node-a's dump and base backup recorded");

        // node-b joins with nightly schedules, which replace the cluster's triggers (the last node to start wins): no more
        // fires, so everything database-wide stays node-a's and node-b's own store holds none of it.
        await bed.WriteConfigAsync("node-b", b => bed.WithPitr(b));
        var standby = bed.Start("node-b");
        await bed.WaitForAsync(async () => (await bed.LiveNodesAsync()).Contains("node-b"), TimeSpan.FromSeconds(60), "node-b checked in");
        await bed.WaitForAsync(async () => (await bed.Pg.ScalarAsync<string?>(
            "SELECT max(cron_expression) FROM veloz_quartz.qrtz_cron_triggers WHERE trigger_name = 'database'", ClusterBed.DatabaseName)) == "0 0 2 * * ?",
            TimeSpan.FromSeconds(30), "node-b's schedule in the shared store");
        bed.Dumps("node-b").Should().BeEmpty("node-b took no dump");

        var verify = await VelozBackupBinary.RunAsync(["verify", "--config", bed.ConfigPath("node-b")], timeout: TimeSpan.FromMinutes(3));
        output.WriteLine(verify.StdOut);
        var lines = verify.StdOut.Split('\n');
        Line(lines, "Database backup fresh").Should().StartWith("PASS").And.MatchRegex(@"newest veloz_\d{8}_\d{6}\.dump by node node-a, ");
        Line(lines, "PITR WAL current").Should().StartWith("PASS").And.Contain("node node-a holds the WAL receiver (this node node-b is not the holder): recovery point");
        Line(lines, "PITR base backup fresh").Should().StartWith("PASS").And.MatchRegex(@"newest base_\d{8}_\d{6}\.tar\.gz by node node-a, .*this node reads it through the shared S3 prefix");
        // node-b's view is its store and the shared S3 prefix as one (Backup:Cluster:SharedPrefix): node-a's base backup and WAL are there.
        Line(lines, "WAL continuity (local+s3").Should().StartWith("PASS").And.Contain("from base_");
        Line(lines, "Cluster nodes' clocks within 1s").Should().StartWith("PASS").And.Contain("2 of 2 nodes alive").And.Contain("WAL receiver held by node-a");

        // /health on the standby: healthy, the database-wide kinds node-a's.
        var health = await standby.WaitForAsync(async () => await standby.GetAsync("/health") is { } r ? new RunningDaemon.Reply(r.Status, r.Body) : null,
            r => r.Status == HttpStatusCode.OK && r.Body.Contains("\"node\": \"node-a\"", StringComparison.Ordinal), "node-b healthy on node-a's work");
        output.WriteLine(health.Body);
        (await bed.ReceiverHolderAsync()).Should().Be("node-a", "node-b stayed the standby");

        // Its freshness series are the same cluster-wide times (the stale alerts read them): node-a's dump, base backup and recovery point.
        var dump = await bed.Pg.ScalarAsync<string>("SELECT success_artifact FROM veloz_quartz.veloz_runs WHERE kind = 'database'", ClusterBed.DatabaseName);
        var scrape = new Scrape(await standby.ScrapeAsync());
        scrape["veloz_backup_last_success_timestamp_seconds{kind=\"database\",target=\"local\"}"].Should().Be(new DateTimeOffset(TimeOf(dump)).ToUnixTimeSeconds(), scrape.Text);
        scrape["veloz_backup_pitr_base_backup_timestamp_seconds{target=\"local\"}"].Should().BeGreaterThan(0, "node-a's base backup");
        scrape["veloz_backup_pitr_recovery_point_timestamp_seconds{target=\"local\"}"].Should().BeGreaterThan(0, "node-a's recovery point");
        scrape["veloz_backup_cluster_receiver_standby{node=\"node-b\"}"].Should().Be(1);
        // The dump's S3 copy is under node-a's prefix: the standby's S3 series is the time node-a reports for it once uploaded.
        await bed.WaitForAsync(async () => new Scrape(await standby.ScrapeAsync())["veloz_backup_last_success_timestamp_seconds{kind=\"database\",target=\"s3\"}"]
            == new DateTimeOffset(TimeOf(dump)).ToUnixTimeSeconds(), TimeSpan.FromSeconds(60), "node-b's S3 series of the dump is node-a's copy");
        // PITR's S3 copy (the shared prefix) likewise: node-b uploads no WAL, its S3 recovery point is node-a's upload, as node-a checked in.
        await bed.WaitForAsync(async () => new Scrape(await standby.ScrapeAsync()) is var s && s.Has("veloz_backup_pitr_recovery_point_timestamp_seconds{target=\"s3\"}")
            && s["veloz_backup_pitr_recovery_point_timestamp_seconds{target=\"s3\"}"] > 0, TimeSpan.FromSeconds(60), "node-b's S3 recovery point is node-a's upload");

        var status = await VelozBackupBinary.RunAsync(["status", "--config", bed.ConfigPath("node-b")], timeout: TimeSpan.FromSeconds(60));
        status.StdOut.Should().Contain("WAL receiver held by node-a").And.MatchRegex(@"last dump: node node-a, started .*succeeded").And.MatchRegex(@"last base backup: node node-a, ");

        // Neither node streams any more: a standby's verify fails the WAL stream, the dump stays fresh (node-a's).
        await bed.KillAsync("node-b");
        await bed.KillAsync("node-a");
        await bed.WaitForAsync(async () => await bed.ReceiverConsumersAsync() == 0, TimeSpan.FromSeconds(30), "no receiver streams");
        var orphaned = await VelozBackupBinary.RunAsync(["verify", "--config", bed.ConfigPath("node-b")], timeout: TimeSpan.FromMinutes(3));
        output.WriteLine(orphaned.StdOut);
        orphaned.ExitCode.Should().Be(3);
        lines = orphaned.StdOut.Split('\n');
        Line(lines, "PITR WAL current").Should().StartWith("FAIL").And.Contain("no node holds the WAL receiver").And.Contain("(node node-a)");
        Line(lines, "Database backup fresh").Should().StartWith("PASS").And.Contain("by node node-a");
    }

    private static string Line(string[] lines, string item) =>
        lines.FirstOrDefault(l => l.Length > 6 && l[6..].StartsWith(item, StringComparison.Ordinal)) ?? $"(no line {item})";

    private static async Task<string?> SucceededOnAsync(ClusterBed bed, string kind)
    {
        try
        {
            return await bed.Pg.ScalarAsync<string?>($"SELECT max(success_node) FROM veloz_quartz.veloz_runs WHERE kind = '{kind}'", ClusterBed.DatabaseName);
        }
        catch (Npgsql.PostgresException ex) when (ex.SqlState is "42P01" or "3F000")
        {
            return null;
        }
    }

    private static async Task<DateTime?> StartedAtAsync(ClusterBed bed, string node)
    {
        var started = await bed.Pg.ScalarAsync<object?>($"SELECT max(started_at) FROM veloz_quartz.veloz_nodes WHERE node = '{node}'", ClusterBed.DatabaseName);
        return started as DateTime?;
    }

    private static DateTime TimeOf(string dump) =>
        DateTime.ParseExact(System.Text.RegularExpressions.Regex.Match(dump, @"_(\d{8}_\d{6})\.dump$").Groups[1].Value, "yyyyMMdd_HHmmss",
            CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);
}
