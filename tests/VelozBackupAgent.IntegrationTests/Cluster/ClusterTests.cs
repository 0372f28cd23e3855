using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace VelozBackupAgent.IntegrationTests.Cluster;

/// <summary>
/// Several real agent processes (<c>Backup:Cluster:Enabled</c>) against one private PostgreSQL and one s3rver: the
/// database-wide jobs run once per fire in Quartz's clustered store; the WAL receiver is a singleton through the
/// replication slot. Every wait is bounded and fails with each node's console tail.
/// </summary>
public sealed partial class ClusterTests(ITestOutputHelper output)
{
    private static readonly string[] Three = ["node-a", "node-b", "node-c"];

    [Fact]
    public async Task Three_agents_run_every_fire_of_the_dump_exactly_once_for_a_minute_each_once_under_the_shared_prefix()
    {
        await using var bed = await ClusterBed.CreateAsync();
        foreach (var node in Three)
        {
            await bed.WriteConfigAsync(node);
            bed.Start(node);
        }

        await bed.WaitForAsync(async () => (await bed.LiveNodesAsync()).Count == 3, TimeSpan.FromSeconds(60), "all three nodes checked in");
        var joined = TimeProvider.System.GetUtcNow().UtcDateTime;

        // Every 5 s for a minute: twelve fires after all three joined.
        List<(string Node, string Name, DateTime Time)> After() =>
            [.. Three.SelectMany(n => bed.Dumps(n).Select(d => (Node: n, Name: d, Time: TimeOf(d)))).Where(d => d.Time >= joined.AddSeconds(-1)).OrderBy(d => d.Time)];
        await bed.WaitForAsync(() => Task.FromResult(After().Count >= 12), TimeSpan.FromSeconds(85), "twelve dumps after the nodes joined");

        // Each in S3 once, under the cluster's shared prefix (Backup:Cluster:SharedPrefix), whichever node made it.
        var dumps = After();
        await bed.WaitForAsync(async () =>
        {
            var keys = await bed.S3KeysAsync();
            return dumps.All(d => keys.Count(k => k.EndsWith("/database/" + d.Name, StringComparison.Ordinal)) == 1 && keys.Contains($"cluster/database/{d.Name}"));
        }, TimeSpan.FromSeconds(30), "every dump in S3 under the shared prefix");
        foreach (var node in Three)
        {
            await bed.Node(node).StopAsync();
        }

        dumps = After();
        output.WriteLine(string.Join('\n', dumps.Select(d => $"{d.Time:HH:mm:ss} {d.Node} {d.Name}")));
        var fires = dumps.Select(d => FireOf(d.Time)).ToList();
        fires.Should().OnlyHaveUniqueItems("each fire runs on one node only:\n" + string.Join('\n', dumps.Select(d => $"{d.Node} {d.Name}")));
        var first = fires.Min();
        var last = fires.Max();
        var expected = (int)((last - first).TotalSeconds / 5) + 1;
        fires.Should().HaveCount(expected, $"every fire from {first:HH:mm:ss} to {last:HH:mm:ss} ran once, none was skipped");
        dumps.Select(d => d.Name).Should().OnlyHaveUniqueItems();

        // Nothing but whole dumps and their companions is left in any store.
        foreach (var node in Three)
        {
            bed.DatabaseFiles(node).Where(f => f.StartsWith('.')).Should().BeEmpty($"{node} left no partial file");
        }
    }

    [Fact]
    public async Task Killing_the_node_that_holds_the_WAL_receiver_hands_the_slot_to_another_within_seconds()
    {
        await using var bed = await ClusterBed.CreateAsync();
        foreach (var node in Three)
        {
            await bed.WriteConfigAsync(node, b => bed.WithPitr(b));
            bed.Start(node);
        }

        await bed.WaitForAsync(async () => (await bed.LiveNodesAsync()).Count == 3, TimeSpan.FromSeconds(60), "all three nodes checked in");
        string? holder = null;
        await bed.WaitForAsync(async () => (holder = await bed.ReceiverHolderAsync()) is not null, TimeSpan.FromSeconds(30), "one node streaming");
        (await bed.ReceiverConsumersAsync()).Should().Be(1, "the slot takes one consumer");
        await bed.Orders.CommitAsync();

        var clock = Stopwatch.StartNew();
        await bed.KillAsync(holder!);
        string? next = null;
        await bed.WaitForAsync(async () => (next = await bed.ReceiverHolderAsync()) is not null && next != holder, TimeSpan.FromSeconds(30), $"another node streaming after {holder} was killed");
        var failover = clock.Elapsed;
        output.WriteLine($"receiver failover: {holder} killed, {next} streaming after {failover.TotalSeconds:0.0} s");
        File.AppendAllText(Path.Combine(Path.GetTempPath(), "veloz-cluster-failover.txt"),
            string.Create(CultureInfo.InvariantCulture, $"{TimeProvider.System.GetUtcNow().UtcDateTime:u} {holder} -> {next} {failover.TotalSeconds:0.00} s\n"));
        (await bed.ReceiverConsumersAsync()).Should().Be(1);

        // The new holder's WAL covers commits after the kill: its receiver stores what is written now.
        var after = await bed.Orders.CommitAsync();
        await bed.WaitForAsync(() => Task.FromResult(bed.PitrStatus(next!)?.StoredLsn is { } stored
            && VelozBackupAgent.Pitr.Lsn.Parse(stored) >= VelozBackupAgent.Pitr.Lsn.Parse(after.Lsn)), TimeSpan.FromSeconds(30), $"{next} stores the WAL of a commit after the kill");
    }

    [Fact]
    public async Task A_node_with_a_wrong_database_password_says_so_in_one_line_and_the_others_carry_on()
    {
        await using var bed = await ClusterBed.CreateAsync();
        foreach (var node in Three[..2])
        {
            await bed.WriteConfigAsync(node);
            bed.Start(node);
        }

        await bed.WriteConfigAsync("node-c", b => ClusterBed.Section(b, "Database")["ConnectionString"] =
            new Npgsql.NpgsqlConnectionStringBuilder(bed.ConnectionString) { Password = "wrong-Pa55word-canary" }.ConnectionString);
        var wrong = bed.Start("node-c");
        await bed.WaitForAsync(() => Task.FromResult(wrong.HasExited), TimeSpan.FromSeconds(60), "node-c stops");
        (await wrong.StopAsync()).Should().Be(1); // (exited already: this waits until its output is read to the end)
        var errors = wrong.Console.Split('\n').Where(l => l.StartsWith("veloz-backup: ", StringComparison.Ordinal)).ToList();
        errors.Should().ContainSingle().Which.Should().Contain("cluster: node node-c cannot use database veloz").And.Contain("password authentication failed");
        wrong.Console.Should().NotContain("wrong-Pa55word-canary");

        var since = TimeProvider.System.GetUtcNow().UtcDateTime;
        await bed.WaitForAsync(async () => (await bed.LiveNodesAsync()).SequenceEqual(["node-a", "node-b"])
            && Three[..2].SelectMany(bed.Dumps).Any(d => TimeOf(d) > since), TimeSpan.FromSeconds(45), "the other two check in and dump on");
    }

    [Fact]
    public async Task Killing_the_node_running_a_dump_leaves_no_partial_artifact_and_the_dump_runs_on_another_node()
    {
        await using var bed = await ClusterBed.CreateAsync();
        foreach (var node in Three)
        {
            await bed.WriteConfigAsync(node);
            bed.Start(node);
        }

        await bed.WaitForAsync(async () => (await bed.LiveNodesAsync()).Count == 3, TimeSpan.FromSeconds(60), "all three nodes checked in");

        // A migration holding the orders table: the next dump waits on it, mid-run, on whichever node took the fire.
        await using var locker = new Npgsql.NpgsqlConnection(bed.Pg.ConnectionString(ClusterBed.DatabaseName));
        await locker.OpenAsync();
        await using var tx = await locker.BeginTransactionAsync();
        await using (var lockCommand = new Npgsql.NpgsqlCommand("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE", locker, tx))
        {
            await lockCommand.ExecuteNonQueryAsync();
        }

        var locked = TimeProvider.System.GetUtcNow().UtcDateTime;
        (string Node, DateTime Started)? running = null;
        await bed.WaitForAsync(async () => (running = await bed.RunningDumpAsync(locked)) is not null, TimeSpan.FromSeconds(30), "a dump waiting on the lock");
        var victim = running!.Value.Node;
        await bed.KillAsync(victim);
        await tx.RollbackAsync();

        var others = Three.Where(n => n != victim).ToList();
        await bed.WaitForAsync(() => Task.FromResult(others.SelectMany(bed.Dumps).Any(d => TimeOf(d) >= locked.AddSeconds(-1))), TimeSpan.FromSeconds(45),
            $"a dump on another node than {victim}");
        // From the killed run's start, not the lock's: the fire before it may have started within the second before the
        // lock (the LOCK waited for it), finished on the same node and rightly kept its dump.
        var killedRun = running.Value.Started.AddSeconds(-1);
        bed.Dumps(victim).Where(d => TimeOf(d) >= killedRun).Should().BeEmpty("the killed run kept nothing");
        var keys = await bed.S3KeysAsync();
        var made = others.SelectMany(bed.Dumps).ToHashSet(StringComparer.Ordinal);
        keys.Where(k => k.StartsWith("cluster/database/", StringComparison.Ordinal) && k.EndsWith(".dump", StringComparison.Ordinal) && TimeOf(k) >= killedRun)
            .Where(k => !made.Contains(k["cluster/database/".Length..]))
            .Should().BeEmpty("no partial dump reached S3: every dump there since the lock is one a live node made");
        output.WriteLine($"{victim} killed mid-dump; then: {string.Join(", ", others.SelectMany(n => bed.Dumps(n).Select(d => n + ":" + d)))}");
    }

    [Fact]
    public async Task Every_agent_reconnects_after_PostgreSQL_restarts()
    {
        await using var bed = await ClusterBed.CreateAsync();
        foreach (var node in Three[..2])
        {
            await bed.WriteConfigAsync(node);
            bed.Start(node);
        }

        await bed.WaitForAsync(async () => (await bed.LiveNodesAsync()).Count == 2, TimeSpan.FromSeconds(60), "both nodes checked in");
        await bed.Pg.RestartAsync();
        var restarted = TimeProvider.System.GetUtcNow().UtcDateTime;
        await bed.WaitForAsync(async () => (await bed.LiveNodesAsync()).Count == 2
            && Three[..2].SelectMany(bed.Dumps).Any(d => TimeOf(d) > restarted.AddSeconds(1)), TimeSpan.FromSeconds(60), "both nodes check in again and the dumps go on");
        foreach (var node in Three[..2])
        {
            bed.Node(node).HasExited.Should().BeFalse();
        }

        // status shows the cluster: the nodes, who ran the last dump, who holds the receiver (nobody: PITR is off here).
        var status = await VelozBackupBinary.RunAsync(["status", "--config", bed.ConfigPath("node-a")], timeout: TimeSpan.FromSeconds(60));
        status.ExitCode.Should().Be(0, status.StdErr);
        status.StdOut.Should().Contain("Cluster: 2 of 2 nodes alive (this node: node-a); WAL receiver held by NO NODE")
            .And.MatchRegex(@"node node-a: alive, checked in .* ago, clock [+-]\d\.\d{3} s")
            .And.MatchRegex(@"last dump: node node-[ab], started \d{4}-");
    }

    private static DateTime TimeOf(string dump)
    {
        var m = DumpTime().Match(dump);
        return DateTime.ParseExact(m.Groups[1].Value, "yyyyMMdd_HHmmss", CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);
    }

    private static DateTime FireOf(DateTime time) => new(time.Ticks - (time.Ticks % TimeSpan.FromSeconds(5).Ticks), DateTimeKind.Utc);

    [GeneratedRegex(@"_(\d{8}_\d{6})\.dump$")]
    private static partial Regex DumpTime();
}
