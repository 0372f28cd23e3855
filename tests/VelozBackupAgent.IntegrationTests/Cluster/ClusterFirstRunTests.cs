using System.Globalization;
using Xunit.Abstractions;

namespace VelozBackupAgent.IntegrationTests.Cluster;

/// <summary>
/// A new cluster (no run of a database-wide kind recorded) takes its first backup at start-up on one node, as a single
/// agent does for a kind it has never backed up, instead of waiting for the first nightly fire; a node joining later
/// takes none. Real agent processes, one PostgreSQL, one s3rver (<see cref="ClusterBed"/>).
/// </summary>
public sealed class ClusterFirstRunTests(ITestOutputHelper output)
{
    private const string FirstRunLine = "no database backup of the cluster is recorded yet";
    private static readonly string[] Nodes = ["node-a", "node-b", "node-c"];

    [Fact]
    public async Task A_new_cluster_takes_its_first_dump_on_one_node_at_start_up_and_a_node_joining_later_takes_none()
    {
        await using var bed = await ClusterBed.CreateAsync();
        // Daily, about twelve hours from now: nothing fires during the test, and the first run is not "due soon anyway".
        var hour = (TimeProvider.System.GetUtcNow().ToLocalTime().Hour + 12) % 24;
        var daily = string.Create(CultureInfo.InvariantCulture, $"0 0 {hour} * * ?");
        void Daily(Dictionary<string, object?> backup) => ClusterBed.Section(backup, "Database")["Schedule"] = daily;
        foreach (var node in Nodes[..2])
        {
            await bed.WriteConfigAsync(node, Daily);
            bed.Start(node);
        }

        await bed.WaitForAsync(async () => (await bed.LiveNodesAsync()).Count == 2, TimeSpan.FromSeconds(60), "both nodes checked in");
        await bed.WaitForAsync(async () => await SucceededDumpsAsync(bed) == 1, TimeSpan.FromSeconds(90), "the cluster's first dump recorded");

        await bed.WriteConfigAsync("node-c", Daily);
        bed.Start("node-c");
        await bed.WaitForAsync(async () => (await bed.LiveNodesAsync()).Count == 3, TimeSpan.FromSeconds(60), "node-c checked in");
        // node-c has read the cluster's runs and scheduled its triggers once it checks in; its schedule replaced nothing.
        await bed.WaitForAsync(async () => await bed.Pg.ScalarAsync<long>(
            "SELECT count(*) FROM veloz_quartz.qrtz_triggers WHERE trigger_name LIKE 'first-run-%'", ClusterBed.DatabaseName) == 0,
            TimeSpan.FromSeconds(30), "the one-shot first-run trigger gone once it ran");

        var dumps = Nodes.SelectMany(n => bed.Dumps(n).Select(d => $"{n} {d}")).ToList();
        output.WriteLine(string.Join('\n', dumps));
        dumps.Should().ContainSingle("one node took the cluster's first dump, once:\n" + bed.Consoles(80));
        bed.Consoles(400).Split('\n').Count(l => l.Contains(FirstRunLine, StringComparison.Ordinal)).Should().Be(1, "one node scheduled it; the others found it stored or done");
        (await bed.Pg.ScalarAsync<string>("SELECT outcome FROM veloz_quartz.veloz_runs WHERE kind = 'database'", ClusterBed.DatabaseName)).Should().Be("succeeded");
        (await SucceededDumpsAsync(bed)).Should().Be(1);
    }

    private static Task<long> SucceededDumpsAsync(ClusterBed bed) => bed.Pg.ScalarAsync<long>(
        "SELECT count(*) FROM veloz_quartz.veloz_runs WHERE kind = 'database' AND success_artifact IS NOT NULL", ClusterBed.DatabaseName);
}
