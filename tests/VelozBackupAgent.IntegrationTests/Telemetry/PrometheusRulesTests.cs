using System.Text;
using System.Text.Json;
using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Telemetry;

/// <summary>deploy/prometheus and deploy/grafana checked by the real promtool (Debian's prometheus package).</summary>
public sealed class PrometheusRulesTests
{
    private static string Deploy(params string[] parts)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "VelozBackupAgent.sln")))
            {
                return Path.Combine([dir.FullName, "deploy", .. parts]);
            }
        }

        throw new DirectoryNotFoundException("the repository root (VelozBackupAgent.sln) is not above the test assembly");
    }

    [Fact]
    public async Task The_alert_rules_pass_promtool_check_rules()
    {
        var r = await ChildProcess.RunAsync("promtool", ["check", "rules", Deploy("prometheus", "veloz-backup-rules.yml")]);

        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        r.StdOut.Should().Contain("SUCCESS");
    }

    [Fact]
    public async Task The_alert_rules_pass_their_promtool_unit_tests()
    {
        var tests = Directory.GetFiles(Deploy("prometheus", "tests"), "*.yml").Order(StringComparer.Ordinal).ToArray();
        tests.Should().NotBeEmpty();

        var r = await ChildProcess.RunAsync("promtool", ["test", "rules", .. tests], timeout: TimeSpan.FromMinutes(5));

        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        Regex(r.StdOut, "SUCCESS").Should().Be(tests.Length);
    }

    [Fact]
    public async Task Every_dashboard_query_parses_as_PromQL()
    {
        using var dashboard = JsonDocument.Parse(await File.ReadAllTextAsync(Deploy("grafana", "veloz-backup-dashboard.json")));
        var queries = new List<string>();
        Collect(dashboard.RootElement, queries);
        queries.Should().HaveCountGreaterThan(10);

        // promtool parses PromQL when it checks rules: each query becomes a recording rule, Grafana's variable a regex.
        var rules = new StringBuilder("groups:\n  - name: dashboard\n    rules:\n");
        for (var i = 0; i < queries.Count; i++)
        {
            rules.Append("      - record: dashboard:query").Append(i).Append('\n')
                .Append("        expr: ").Append(JsonSerializer.Serialize(queries[i].Replace("$instance", ".*", StringComparison.Ordinal))).Append('\n');
        }

        var file = Path.Combine(Path.GetTempPath(), $"veloz-dashboard-{Guid.NewGuid():N}.yml");
        await File.WriteAllTextAsync(file, rules.ToString());
        try
        {
            var r = await ChildProcess.RunAsync("promtool", ["check", "rules", file]);
            r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static void Collect(JsonElement element, List<string> queries)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    if (property.Name == "expr" && property.Value.ValueKind == JsonValueKind.String)
                    {
                        queries.Add(property.Value.GetString()!);
                    }
                    else
                    {
                        Collect(property.Value, queries);
                    }
                }

                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    Collect(item, queries);
                }

                break;
        }
    }

    private static int Regex(string text, string pattern) => System.Text.RegularExpressions.Regex.Count(text, pattern);
}
