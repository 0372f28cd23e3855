using System.Globalization;

namespace VelozBackupAgent.IntegrationTests.Telemetry;

/// <summary>A Prometheus text exposition read back: each series line (labels as the agent writes them, sorted) to its value.</summary>
internal sealed class Scrape
{
    private readonly Dictionary<string, double> _samples = new(StringComparer.Ordinal);

    public Scrape(string text)
    {
        Text = text;
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('#')))
        {
            var space = line.LastIndexOf(' ');
            _samples[line[..space]] = double.Parse(line[(space + 1)..], CultureInfo.InvariantCulture);
        }
    }

    public string Text { get; }

    public bool Has(string series) => _samples.ContainsKey(series);

    public double this[string series] =>
        _samples.TryGetValue(series, out var v) ? v : throw new KeyNotFoundException($"no series {series} in the scrape:\n{Text}");

    public override string ToString() => Text;
}
