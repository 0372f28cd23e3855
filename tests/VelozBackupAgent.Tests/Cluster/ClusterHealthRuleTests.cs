using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Time.Testing;
using VelozBackupAgent.Cluster;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Telemetry;
using VelozBackupAgent.Tests.Support;

namespace VelozBackupAgent.Tests.Cluster;

/// <summary>
/// The cluster's clock-skew judgement and its freshness rule (<see cref="ClusterFreshness"/>): a node that did not do a
/// database-wide job is fresh on the node that did, and names it; a cluster whose receiver nobody holds goes stale.
/// Pure logic on a FakeTimeProvider: nothing waits.
/// </summary>
public sealed class ClusterHealthRuleTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 12, 3, 6, 0, 0, TimeSpan.Zero);
    private readonly FakeTimeProvider _clock = new(Now);
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-cluster-health-").FullName;
    private readonly List<BackupMetrics> _metrics = [];

    public void Dispose()
    {
        foreach (var m in _metrics)
        {
            m.Dispose();
        }

        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public void Skew_is_the_node_clock_against_the_middle_of_the_round_trip_and_past_the_bound_either_way_is_skewed()
    {
        // The server read 06:00:00.000 while this node's clock went from +1.4 s to +1.8 s around the query: +1.6 s.
        var server = _clock.GetUtcNow();
        _clock.Advance(TimeSpan.FromMilliseconds(1400));
        var before = _clock.GetUtcNow();
        _clock.Advance(TimeSpan.FromMilliseconds(400));
        var after = _clock.GetUtcNow();

        var skew = ClockSkew.Measure(before, server, after);

        skew.Should().BeApproximately(1.6, 1e-9);
        ClockSkew.IsSkewed(skew, TimeSpan.FromSeconds(1)).Should().BeTrue();
        ClockSkew.IsSkewed(-skew, TimeSpan.FromSeconds(1)).Should().BeTrue("behind the server counts as much as ahead");
        ClockSkew.IsSkewed(1.0, TimeSpan.FromSeconds(1)).Should().BeFalse("exactly the bound is within it");
        ClockSkew.IsSkewed(0.2, TimeSpan.FromSeconds(1)).Should().BeFalse();
    }

    [Theory]
    [InlineData(-0.0001, "+0.000 s")]
    [InlineData(0.0, "+0.000 s")]
    [InlineData(-0.0006, "-0.001 s")]
    [InlineData(0.0125, "+0.013 s")]
    [InlineData(-2.25, "-2.250 s")]
    [InlineData(1.5, "+1.500 s")]
    public void A_skew_is_written_with_one_sign_and_milliseconds(double seconds, string text) =>
        ClusterDatabase.FormatSkew(seconds).Should().Be(text);

    [Fact]
    public void A_skew_is_reported_once_when_it_begins_and_once_when_it_ends()
    {
        var judge = new ClockSkew(TimeSpan.FromSeconds(1));

        var changes = new[] { 0.01, 1.5, 2.0, -1.2, 0.3, 0.1, -3 }.Select(judge.Observe).ToList();

        changes.Should().Equal(SkewChange.None, SkewChange.Began, SkewChange.None, SkewChange.None, SkewChange.Ended, SkewChange.None, SkewChange.Began);
        judge.Skewed.Should().BeTrue();
    }

    [Fact]
    public void Only_live_nodes_past_the_bound_count_as_skewed()
    {
        var view = new ClusterView(
        [
            Node("node-a", 0.002), Node("node-b", -2.5), Node("node-c", 4, alive: false),
        ], [], "node-a");

        ClockSkew.SkewedNodes(view, TimeSpan.FromSeconds(1)).Select(n => n.Node).Should().Equal("node-b");
    }

    [Fact]
    public void The_cluster_last_success_stands_after_a_failed_run_and_is_timed_by_its_artifact()
    {
        var run = new ClusterRun("database", "node-c", Now.AddMinutes(-1), Now, "failed", null)
        {
            LastSuccess = new ClusterSuccess("node-b", Now.AddMinutes(-10).AddSeconds(2), "veloz_20261203_055000.dump"),
        };
        var view = new ClusterView([], [run], null);

        var last = ClusterFreshness.LastSuccess(view, "database");

        last.Should().Be(new NodeBackup(Now.AddMinutes(-10), "node-b", "veloz_20261203_055000.dump"), "the artifact's time, as a local store is judged");
        ClusterFreshness.LastSuccess(view, "pitr").Should().BeNull();
        ClusterFreshness.RunningSince(view, "database").Should().BeNull("the last run finished");
        ClusterFreshness.RunningSince(new ClusterView([], [run with { FinishedAt = null, Outcome = "running" }], null), "database").Should().Be(Now.AddMinutes(-1));
    }

    [Fact]
    public void The_newer_of_this_node_and_the_cluster_wins_and_a_tie_is_this_node()
    {
        var other = new NodeBackup(Now.AddMinutes(-5), "node-b", "x");

        ClusterFreshness.Newest(Now.AddHours(-3), "node-a", other).Should().Be(other);
        ClusterFreshness.Newest(Now.AddMinutes(-1), "node-a", other)!.Node.Should().Be("node-a");
        ClusterFreshness.Newest(Now.AddMinutes(-5), "node-a", other)!.Node.Should().Be("node-a");
        ClusterFreshness.Newest(null, "node-a", other).Should().Be(other);
        ClusterFreshness.Newest(null, "node-a", null).Should().BeNull();
        // The same artifact seen here through the shared S3 prefix: the cluster's record says who took it.
        ClusterFreshness.Newest(new NodeBackup(Now.AddMinutes(-5), "node-a", "x"), other).Should().Be(other);
    }

    [Fact]
    public void A_standby_is_healthy_on_the_dump_another_node_took_and_says_which_node_and_the_series_agree()
    {
        var metrics = Metrics(Options());
        ClusterView? view = new ClusterView([Node("node-a", 0), Node("node-b", 0)],
            [Run("database", "node-b", Now.AddMinutes(-30), "veloz_20261203_053000.dump")], null);
        metrics.AttachCluster(() => view, () => 0.004);

        var health = metrics.Health(SchedulerState.Running);

        health.Healthy.Should().BeTrue(string.Join("; ", health.Problems));
        var database = health.Kinds.Should().ContainSingle(k => k.Kind == "database").Which;
        database.Node.Should().Be("node-b");
        database.Age.Should().Be(TimeSpan.FromMinutes(30));
        health.ToJson().Should().Contain("\"node\": \"node-b\"");
        new Telemetry.ScrapeText(metrics.Scrape())["veloz_backup_last_success_timestamp_seconds{kind=\"database\",target=\"local\"}"]
            .Should().Be(Now.AddMinutes(-30).ToUnixTimeSeconds(), "the freshness series is the same cluster-wide time as /health");

        // The dump goes stale cluster-wide: every node says so, naming the node that took the last one.
        _clock.Advance(TimeSpan.FromHours(24));
        var stale = metrics.Health(SchedulerState.Running);
        stale.Healthy.Should().BeFalse();
        stale.Problems.Should().ContainSingle().Which.Should().StartWith("database is stale: last success 2026-12-03 05:30:00Z on node node-b");
    }

    [Fact]
    public void The_recovery_point_is_the_holders_and_with_no_holder_it_stops_and_goes_stale()
    {
        var metrics = Metrics(Options(("Backup:Pitr:Enabled", "true"), ("Backup:Database:Enabled", "false")));
        var view = new ClusterView(
            [Node("node-a", 0), Node("node-b", 0) with { Receiver = true, RecoveryPoint = Now.AddSeconds(-3) }],
            [Run("pitr", "node-b", Now.AddHours(-2), "base_20261203_040000.tar.gz")], "node-b");
        metrics.AttachCluster(() => view, () => 0);

        var health = metrics.Health(SchedulerState.Running);

        health.Problems.Should().BeEmpty();
        health.Kinds.Single(k => k.Kind == "pitr").Node.Should().Be("node-b");
        health.Kinds.Single(k => k.Kind == BackupMetrics.PitrBaseKind).Should().Match<VelozBackupAgent.Catalog.FreshnessStatus>(k => k.Node == "node-b" && !k.Stale);

        // node-b dies: nobody holds the receiver, its last recovery point ages past the 5-minute objective.
        view = view with { ReceiverHolder = null };
        _clock.Advance(TimeSpan.FromMinutes(10));
        metrics.Health(SchedulerState.Running).Problems.Should().ContainSingle(p => p.StartsWith("pitr is stale", StringComparison.Ordinal));
    }

    [Fact]
    public void This_nodes_skewed_clock_makes_health_fail_with_one_line()
    {
        var metrics = Metrics(Options());
        metrics.AttachCluster(() => new ClusterView([], [Run("database", "node-a", Now.AddMinutes(-1), "veloz_20261203_055900.dump")], null), () => -2.25);

        var health = metrics.Health(SchedulerState.Running);

        health.Healthy.Should().BeFalse();
        health.Problems.Should().ContainSingle().Which.Should().Contain("this node's clock is -2.250 s off the database server's, more than Backup:Cluster:MaxClockSkew (1s)");
    }

    [Fact]
    public async Task The_dumps_S3_copy_is_judged_by_the_newest_any_node_reported_and_a_node_reports_its_own_prefix_only()
    {
        var s3Root = Directory.CreateDirectory(Path.Combine(_root, "s3")).FullName;
        var remote = new S3Folder(new LocalArtifactStore(s3Root, _clock));
        await using (var content = new MemoryStream(new byte[10]))
        {
            await remote.WriteAsync("database", "veloz_20261203_030000.dump", content);
        }

        var metrics = new BackupMetrics(Options(), new LocalArtifactStore(Path.Combine(_root, "local"), _clock), remote, _clock, meterName: "VelozBackupAgent.Tests." + Guid.NewGuid().ToString("N"));
        _metrics.Add(metrics);
        await metrics.RefreshAsync(remote);
        var view = new ClusterView([Node("node-a", 0) with { S3Dump = Now.AddHours(-3) }, Node("node-b", 0) with { S3Dump = Now.AddMinutes(-10) }],
            [Run("database", "node-b", Now.AddMinutes(-10), "veloz_20261203_055000.dump")], null);
        metrics.AttachCluster(() => view, () => 0);

        metrics.OwnS3Dump().Should().Be(Now.AddHours(-3), "what node-a reports is its own prefix's, not what it read from the others");
        var scrape = new Telemetry.ScrapeText(metrics.Scrape());
        scrape["veloz_backup_last_success_timestamp_seconds{kind=\"database\",target=\"s3\"}"].Should().Be(Now.AddMinutes(-10).ToUnixTimeSeconds(), "node-b's dump is in node-b's prefix");
        scrape["veloz_backup_last_success_timestamp_seconds{kind=\"database\",target=\"local\"}"].Should().Be(Now.AddMinutes(-10).ToUnixTimeSeconds());
    }

    [Fact]
    public void A_standbys_S3_recovery_point_is_the_upload_of_the_receivers_holder_as_it_checked_in()
    {
        var remote = new S3Folder(new LocalArtifactStore(Directory.CreateDirectory(Path.Combine(_root, "s3")).FullName, _clock));
        var metrics = new BackupMetrics(Options(("Backup:Pitr:Enabled", "true"), ("Backup:Database:Enabled", "false")),
            new LocalArtifactStore(Path.Combine(_root, "local"), _clock), remote, _clock, meterName: "VelozBackupAgent.Tests." + Guid.NewGuid().ToString("N"));
        _metrics.Add(metrics);
        var view = new ClusterView(
            [Node("node-a", 0), Node("node-b", 0) with { Receiver = true, RecoveryPoint = Now.AddSeconds(-3), S3RecoveryPoint = Now.AddSeconds(-40) }], [], "node-b");
        metrics.AttachCluster(() => view, () => 0);

        ClusterFreshness.S3RecoveryPoint(view).Should().Be(new NodeBackup(Now.AddSeconds(-40), "node-b", null));
        metrics.LastSuccess("pitr", "s3").Should().Be(Now.AddSeconds(-40), "this node (node-a) streams nothing: node-b's upload is the cluster's S3 recovery point");
        metrics.LastSuccess("pitr", "local").Should().Be(Now.AddSeconds(-3));

        // node-b dies: the S3 recovery point stops where it was, and ages.
        view = view with { ReceiverHolder = null };
        _clock.Advance(TimeSpan.FromHours(2));
        metrics.LastSuccess("pitr", "s3").Should().Be(Now.AddSeconds(-40));
    }

    private static ClusterNode Node(string name, double skew, bool alive = true) => new(name, Now, Now.AddHours(-1), skew, false, alive);

    private static ClusterRun Run(string kind, string node, DateTimeOffset started, string artifact) =>
        new(kind, node, started, started.AddMinutes(1), "succeeded", artifact) { LastSuccess = new ClusterSuccess(node, started, artifact) };

    private BackupOptions Options(params (string Key, string Value)[] settings)
    {
        var all = new Dictionary<string, string?>
        {
            ["Backup:LocalRoot"] = _root, ["Backup:NodeName"] = "node-a", ["Backup:Cluster:Enabled"] = "true",
            ["Backup:Wal:Enabled"] = "false", ["Backup:Config:Enabled"] = "false", ["Backup:Secrets:Enabled"] = "false",
        };
        foreach (var (k, v) in settings)
        {
            all[k] = v;
        }

        return BackupConfiguration.Load(new ConfigurationBuilder().AddInMemoryCollection(all).Build());
    }

    private BackupMetrics Metrics(BackupOptions options)
    {
        var metrics = new BackupMetrics(options, new LocalArtifactStore(_root, _clock), null, _clock, meterName: "VelozBackupAgent.Tests." + Guid.NewGuid().ToString("N"));
        _metrics.Add(metrics);
        return metrics;
    }
}
