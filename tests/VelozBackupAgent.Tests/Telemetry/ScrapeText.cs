using System.Globalization;

namespace VelozBackupAgent.Tests.Telemetry;

/// <summary>Reads a Prometheus text exposition back: series (as written, labels sorted) to values, and family types.</summary>
internal sealed class ScrapeText
{
    public ScrapeText(string text)
    {
        Text = text;
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ');
                Types[parts[2]] = parts[3];
            }
            else if (!line.StartsWith('#'))
            {
                var space = line.LastIndexOf(' ');
                Samples[line[..space]] = double.Parse(line[(space + 1)..], CultureInfo.InvariantCulture);
            }
        }
    }

    public string Text { get; }

    /// <summary>Series such as <c>veloz_backup_runs_total{kind="wal",outcome="failed"}</c> to their value.</summary>
    public Dictionary<string, double> Samples { get; } = new(StringComparer.Ordinal);

    /// <summary>Family name to counter, gauge or histogram.</summary>
    public Dictionary<string, string> Types { get; } = new(StringComparer.Ordinal);

    /// <summary>Every name a query can use: families, and a histogram's _bucket, _sum and _count.</summary>
    public HashSet<string> QueryableNames =>
    [
        .. Types.Keys,
        .. Types.Where(t => t.Value == "histogram").SelectMany(t => new[] { t.Key + "_bucket", t.Key + "_sum", t.Key + "_count" }),
    ];

    public double this[string series] =>
        Samples.TryGetValue(series, out var v) ? v : throw new KeyNotFoundException($"no series {series} in the scrape:\n{Text}");
}
