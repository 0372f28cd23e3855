using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Pitr;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Telemetry;
using VelozBackupAgent.Verification;

namespace VelozBackupAgent.Tests.Telemetry;

/// <summary>
/// The alert rules and the dashboard only use metric names the exporter really exposes (a renamed metric would
/// otherwise leave an alert that can never fire), and every exposed metric is alerted on or shown.
/// </summary>
public sealed partial class DeployedQueriesTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-deployed-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static string Repository()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "VelozBackupAgent.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("the repository root (VelozBackupAgent.sln) is not above the test assembly");
    }

    /// <summary>
    /// Names a real scrape offers to queries, with every family present: a restore-test record written first, and
    /// PITR on with a streaming receiver's status attached (its families exist only then).
    /// </summary>
    private HashSet<string> Exposed(out HashSet<string> families)
    {
        var options = BackupConfiguration.Load(new ConfigurationBuilder().AddInMemoryCollection(
            new Dictionary<string, string?> { ["Backup:LocalRoot"] = _root, ["Backup:Pitr:Enabled"] = "true" }).Build());
        RestoreTestState.Write(options.StateDirectory, new RestoreTestResult(
            new DateTimeOffset(2026, 11, 1, 4, 0, 0, TimeSpan.Zero), true, new Dictionary<string, double> { ["total"] = 60 }, null));
        var local = new LocalArtifactStore(_root);
        var meterName = "VelozBackupAgent.Tests." + Guid.NewGuid().ToString("N");
        using var metrics = new BackupMetrics(options, local, null, meterName: meterName);

        // With Backup:Cluster:Enabled the daemon adds the cluster's series on the same meter.
        using var cluster = new VelozBackupAgent.Cluster.ClusterMetrics("n1", () => new VelozBackupAgent.Cluster.ClusterView([], [], "n1"), () => 0.01, () => true, () => false, meterName);
        var streaming = new PitrStatus
        {
            ReceiverUp = true,
            ServerLsn = "0/3000148",
            ReceivedLsn = "0/3000148",
            StoredLsn = "0/3000148",
            RecoveryPoint = new DateTimeOffset(2026, 11, 1, 4, 0, 0, TimeSpan.Zero),
        };
        metrics.AttachPitr(new WalArchive(options, new BackupRepository(local), NullLogger.Instance), () => streaming);
        var scrape = new ScrapeText(metrics.Scrape());
        scrape.Types.Keys.Should().Contain(["veloz_backup_pitr_receiver_up", "veloz_backup_pitr_failures_total", "veloz_backup_pitr_base_backup_timestamp_seconds"],
            "the PITR families are exposed, so the checks below cover them");
        families = [.. scrape.Types.Keys];
        return scrape.QueryableNames;
    }

    private static HashSet<string> NamesIn(string text) => [.. MetricName().Matches(text).Select(m => m.Value)];

    private static IEnumerable<string> DashboardQueries(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => element.EnumerateObject().SelectMany(p =>
            p.Name is "expr" or "definition" && p.Value.ValueKind == JsonValueKind.String ? [p.Value.GetString()!] : DashboardQueries(p.Value)),
        JsonValueKind.Array => element.EnumerateArray().SelectMany(DashboardQueries),
        _ => [],
    };

    [Fact]
    public void The_alert_rules_use_only_metrics_the_agent_exposes()
    {
        var exposed = Exposed(out _);
        var used = NamesIn(File.ReadAllText(Path.Combine(Repository(), "deploy", "prometheus", "veloz-backup-rules.yml")));

        used.Should().NotBeEmpty();
        used.Should().BeSubsetOf(exposed);
    }

    [Fact]
    public void The_dashboard_queries_use_only_metrics_the_agent_exposes_and_its_datasource_is_an_input()
    {
        var exposed = Exposed(out _);
        using var dashboard = JsonDocument.Parse(File.ReadAllText(Path.Combine(Repository(), "deploy", "grafana", "veloz-backup-dashboard.json")));
        var root = dashboard.RootElement;
        var used = DashboardQueries(root).SelectMany(NamesIn).ToHashSet(StringComparer.Ordinal);

        used.Should().NotBeEmpty();
        used.Should().BeSubsetOf(exposed);
        root.GetProperty("__inputs").EnumerateArray().Select(i => i.GetProperty("name").GetString()).Should().Equal("DS_PROMETHEUS");
        foreach (var panel in root.GetProperty("panels").EnumerateArray().Where(p => p.GetProperty("type").GetString() != "row"))
        {
            panel.GetProperty("datasource").GetProperty("uid").GetString().Should().Be("${DS_PROMETHEUS}", panel.GetProperty("title").GetString());
            panel.GetProperty("targets").EnumerateArray().Should().NotBeEmpty();
        }
    }

    [Fact]
    public void Every_exposed_metric_is_alerted_on_or_on_the_dashboard()
    {
        Exposed(out var families);
        var repository = Repository();
        using var dashboard = JsonDocument.Parse(File.ReadAllText(Path.Combine(repository, "deploy", "grafana", "veloz-backup-dashboard.json")));
        var used = NamesIn(File.ReadAllText(Path.Combine(repository, "deploy", "prometheus", "veloz-backup-rules.yml")))
            .Concat(DashboardQueries(dashboard.RootElement).SelectMany(NamesIn))
            .Select(n => Regex.Replace(n, "_(bucket|sum|count)$", ""))
            .ToHashSet(StringComparer.Ordinal);

        families.Should().BeSubsetOf(used);
    }

    [GeneratedRegex(@"\bveloz_backup_[a-z0-9_]+")]
    private static partial Regex MetricName();
}
