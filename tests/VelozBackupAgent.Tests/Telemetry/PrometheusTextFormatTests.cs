using VelozBackupAgent.Telemetry;

namespace VelozBackupAgent.Tests.Telemetry;

public sealed class PrometheusTextFormatTests
{
    private static KeyValuePair<string, string>[] Labels(params (string Key, string Value)[] labels) =>
        [.. labels.Select(l => KeyValuePair.Create(l.Key, l.Value))];

    private static MetricFamily Gauge(string name, string help, params MetricSample[] samples) =>
        new(name, help, MetricFamilyType.Gauge, samples, []);

    [Fact]
    public void A_gauge_has_help_type_and_one_line_per_series_with_labels_sorted()
    {
        var text = PrometheusTextFormat.Write([
            Gauge("veloz_backup_artifacts", "Artifacts stored.",
                new MetricSample(Labels(("target", "local"), ("kind", "wal")), 3),
                new MetricSample(Labels(("kind", "config"), ("target", "s3")), 0)),
        ]);

        text.Should().Be(
            "# HELP veloz_backup_artifacts Artifacts stored.\n" +
            "# TYPE veloz_backup_artifacts gauge\n" +
            "veloz_backup_artifacts{kind=\"wal\",target=\"local\"} 3\n" +
            "veloz_backup_artifacts{kind=\"config\",target=\"s3\"} 0\n");
    }

    [Fact]
    public void A_series_without_labels_has_no_braces()
    {
        PrometheusTextFormat.Write([Gauge("veloz_backup_upload_backlog_bytes", "b", new MetricSample([], 1048576))])
            .Should().EndWith("\nveloz_backup_upload_backlog_bytes 1048576\n");
    }

    [Fact]
    public void Label_values_escape_backslash_quote_and_newline()
    {
        var text = PrometheusTextFormat.Write([Gauge("m", "h", new MetricSample(Labels(("path", "C:\\x \"y\"\nz")), 1))]);

        text.Should().Contain("m{path=\"C:\\\\x \\\"y\\\"\\nz\"} 1\n");
    }

    [Fact]
    public void Help_escapes_backslash_and_newline_but_not_quotes()
    {
        var text = PrometheusTextFormat.Write([Gauge("m", "first \"line\"\nsecond \\ end", new MetricSample([], 1))]);

        text.Should().StartWith("# HELP m first \"line\"\\nsecond \\\\ end\n");
    }

    [Fact]
    public void Counters_end_in_total_once()
    {
        var text = PrometheusTextFormat.Write([
            new MetricFamily("veloz_backup_runs", "Runs.", MetricFamilyType.Counter, [new MetricSample(Labels(("kind", "wal")), 2)], []),
            new MetricFamily("already_total", "Runs.", MetricFamilyType.Counter, [new MetricSample([], 1)], []),
        ]);

        text.Should().Contain("# TYPE veloz_backup_runs_total counter\nveloz_backup_runs_total{kind=\"wal\"} 2\n");
        text.Should().Contain("# TYPE already_total counter\nalready_total 1\n");
        text.Should().NotContain("_total_total");
    }

    [Fact]
    public void Invalid_characters_in_names_become_underscores()
    {
        PrometheusTextFormat.SanitizeMetricName("veloz.backup-runs/x").Should().Be("veloz_backup_runs_x");
        PrometheusTextFormat.SanitizeMetricName("9lives").Should().Be("_9lives");
        PrometheusTextFormat.SanitizeMetricName("ns:name").Should().Be("ns:name");
        PrometheusTextFormat.SanitizeLabelName("ns:kind").Should().Be("ns_kind");
        PrometheusTextFormat.SanitizeLabelName("").Should().Be("_");
        PrometheusTextFormat.FamilyName("veloz.backup.runs", MetricFamilyType.Counter).Should().Be("veloz_backup_runs_total");
    }

    [Fact]
    public void A_histogram_has_cumulative_buckets_ending_in_plus_inf_then_sum_and_count()
    {
        var text = PrometheusTextFormat.Write([
            new MetricFamily("veloz_backup_duration_seconds", "Durations.", MetricFamilyType.Histogram, [], [
                new HistogramSample(Labels(("kind", "database")), [1, 2.5, 10], [1, 0, 2, 1], 41.5, 4),
            ]),
        ]);

        text.Should().Be(
            "# HELP veloz_backup_duration_seconds Durations.\n" +
            "# TYPE veloz_backup_duration_seconds histogram\n" +
            "veloz_backup_duration_seconds_bucket{kind=\"database\",le=\"1\"} 1\n" +
            "veloz_backup_duration_seconds_bucket{kind=\"database\",le=\"2.5\"} 1\n" +
            "veloz_backup_duration_seconds_bucket{kind=\"database\",le=\"10\"} 3\n" +
            "veloz_backup_duration_seconds_bucket{kind=\"database\",le=\"+Inf\"} 4\n" +
            "veloz_backup_duration_seconds_sum{kind=\"database\"} 41.5\n" +
            "veloz_backup_duration_seconds_count{kind=\"database\"} 4\n");
    }

    [Fact]
    public void A_histogram_without_labels_still_gets_le()
    {
        PrometheusTextFormat.Write([
            new MetricFamily("h", "h", MetricFamilyType.Histogram, [], [new HistogramSample([], [0.5], [0, 0], 0, 0)]),
        ]).Should().Contain("h_bucket{le=\"0.5\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n");
    }

    [Fact]
    public void Values_are_written_as_Go_parses_them()
    {
        PrometheusTextFormat.FormatValue(0).Should().Be("0");
        PrometheusTextFormat.FormatValue(1795432214.233).Should().Be("1795432214.233");
        PrometheusTextFormat.FormatValue(0.1).Should().Be("0.1");
        PrometheusTextFormat.FormatValue(double.NaN).Should().Be("NaN");
        PrometheusTextFormat.FormatValue(double.PositiveInfinity).Should().Be("+Inf");
        PrometheusTextFormat.FormatValue(double.NegativeInfinity).Should().Be("-Inf");
        PrometheusTextFormat.FormatValue(1e21).Should().Be("1E+21");
    }

    [Fact]
    public void Families_without_series_and_repeated_names_are_left_out()
    {
        var text = PrometheusTextFormat.Write([
            Gauge("empty", "nothing"),
            Gauge("twice", "first", new MetricSample([], 1)),
            Gauge("twice", "second", new MetricSample([], 2)),
        ]);

        text.Should().NotContain("empty");
        text.Should().Be("# HELP twice first\n# TYPE twice gauge\ntwice 1\n");
    }
}
