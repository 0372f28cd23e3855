using System.Globalization;
using System.Text;

namespace VelozBackupAgent.Telemetry;

/// <summary>
/// Writes metric families in the Prometheus text exposition format 0.0.4: a <c># HELP</c> and a <c># TYPE</c>
/// line per family, then one line per series, labels sorted by name and escaped; counters end in
/// <c>_total</c>; a histogram is written as cumulative <c>_bucket</c> series with <c>le</c> (ending in
/// <c>+Inf</c>), <c>_sum</c> and <c>_count</c>. No timestamps: Prometheus stamps the scrape.
/// </summary>
internal static class PrometheusTextFormat
{
    /// <summary>The Content-Type of a scrape response.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>The families as one exposition document. Families without any series, or whose name was already written, are left out.</summary>
    public static string Write(IEnumerable<MetricFamily> families)
    {
        ArgumentNullException.ThrowIfNull(families);
        var text = new StringBuilder(8192);
        var written = new HashSet<string>(StringComparer.Ordinal);
        foreach (var family in families)
        {
            var name = FamilyName(family.Name, family.Type);
            var empty = family.Type == MetricFamilyType.Histogram ? family.Histograms.Count == 0 : family.Samples.Count == 0;
            if (empty || !written.Add(name))
            {
                continue;
            }

            text.Append("# HELP ").Append(name).Append(' ').Append(EscapeHelp(family.Help)).Append('\n');
            text.Append("# TYPE ").Append(name).Append(' ').Append(TypeName(family.Type)).Append('\n');
            if (family.Type == MetricFamilyType.Histogram)
            {
                foreach (var histogram in family.Histograms)
                {
                    WriteHistogram(text, name, histogram);
                }
            }
            else
            {
                foreach (var sample in family.Samples)
                {
                    WriteLine(text, name, sample.Labels, null, sample.Value);
                }
            }
        }

        return text.ToString();
    }

    /// <summary>The exposed name of a family: invalid characters become <c>_</c>, and a counter ends in <c>_total</c>.</summary>
    public static string FamilyName(string name, MetricFamilyType type)
    {
        var sanitized = SanitizeMetricName(name);
        return type == MetricFamilyType.Counter && !sanitized.EndsWith("_total", StringComparison.Ordinal) ? sanitized + "_total" : sanitized;
    }

    /// <summary>Metric names are <c>[a-zA-Z_:][a-zA-Z0-9_:]*</c>: anything else becomes <c>_</c>; a leading digit gets a <c>_</c> in front.</summary>
    public static string SanitizeMetricName(string name) => Sanitize(name, allowColon: true);

    /// <summary>Label names are <c>[a-zA-Z_][a-zA-Z0-9_]*</c>: anything else becomes <c>_</c>; a leading digit gets a <c>_</c> in front.</summary>
    public static string SanitizeLabelName(string name) => Sanitize(name, allowColon: false);

    /// <summary>Label values escape backslash, double quote and line feed.</summary>
    public static string EscapeLabelValue(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return value.Replace("\\", @"\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", @"\n", StringComparison.Ordinal);
    }

    /// <summary>Help texts escape backslash and line feed.</summary>
    public static string EscapeHelp(string help)
    {
        ArgumentNullException.ThrowIfNull(help);
        return help.Replace("\\", @"\\", StringComparison.Ordinal).Replace("\n", @"\n", StringComparison.Ordinal);
    }

    /// <summary>A sample value as Go's ParseFloat reads it: shortest round-trip form, <c>NaN</c>, <c>+Inf</c>, <c>-Inf</c>.</summary>
    public static string FormatValue(double value)
    {
        if (double.IsNaN(value))
        {
            return "NaN";
        }

        if (double.IsInfinity(value))
        {
            return value > 0 ? "+Inf" : "-Inf";
        }

        return value.ToString("R", CultureInfo.InvariantCulture);
    }

    private static void WriteHistogram(StringBuilder text, string name, HistogramSample histogram)
    {
        long cumulative = 0;
        for (var i = 0; i < histogram.UpperBounds.Count; i++)
        {
            cumulative += i < histogram.BucketCounts.Count ? histogram.BucketCounts[i] : 0;
            WriteLine(text, name + "_bucket", histogram.Labels, FormatValue(histogram.UpperBounds[i]), cumulative);
        }

        // +Inf holds every observation, whatever the buckets say.
        WriteLine(text, name + "_bucket", histogram.Labels, "+Inf", histogram.Count);
        WriteLine(text, name + "_sum", histogram.Labels, null, histogram.Sum);
        WriteLine(text, name + "_count", histogram.Labels, null, histogram.Count);
    }

    private static void WriteLine(StringBuilder text, string name, IReadOnlyList<KeyValuePair<string, string>> labels, string? le, double value)
    {
        text.Append(name);
        var sorted = labels
            .Select(l => KeyValuePair.Create(SanitizeLabelName(l.Key), l.Value))
            .Where(l => le is null || l.Key != "le")
            .OrderBy(l => l.Key, StringComparer.Ordinal)
            .ToList();
        if (sorted.Count > 0 || le is not null)
        {
            text.Append('{');
            var first = true;
            foreach (var (key, labelValue) in sorted)
            {
                if (!first)
                {
                    text.Append(',');
                }

                text.Append(key).Append("=\"").Append(EscapeLabelValue(labelValue)).Append('"');
                first = false;
            }

            if (le is not null)
            {
                text.Append(first ? "" : ",").Append("le=\"").Append(le).Append('"');
            }

            text.Append('}');
        }

        text.Append(' ').Append(FormatValue(value)).Append('\n');
    }

    private static string Sanitize(string name, bool allowColon)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0)
        {
            return "_";
        }

        var result = new StringBuilder(name.Length + 1);
        if (char.IsAsciiDigit(name[0]))
        {
            result.Append('_');
        }

        foreach (var c in name)
        {
            result.Append(char.IsAsciiLetterOrDigit(c) || c == '_' || (allowColon && c == ':') ? c : '_');
        }

        return result.ToString();
    }

    private static string TypeName(MetricFamilyType type) => type switch
    {
        MetricFamilyType.Counter => "counter",
        MetricFamilyType.Histogram => "histogram",
        _ => "gauge",
    };
}
