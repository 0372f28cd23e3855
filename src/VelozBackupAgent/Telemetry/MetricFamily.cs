namespace VelozBackupAgent.Telemetry;

/// <summary>The Prometheus metric types this agent exposes.</summary>
internal enum MetricFamilyType
{
    Counter,
    Gauge,
    Histogram,
}

/// <summary>One series of a counter or gauge.</summary>
/// <param name="Labels">Label names and values, in any order (the writer sorts them).</param>
/// <param name="Value">The sample's value.</param>
internal sealed record MetricSample(IReadOnlyList<KeyValuePair<string, string>> Labels, double Value);

/// <summary>One series of a histogram, as the SDK aggregates it.</summary>
/// <param name="Labels">Label names and values, without <c>le</c>.</param>
/// <param name="UpperBounds">The finite bucket bounds, ascending (the <c>+Inf</c> bucket is implied).</param>
/// <param name="BucketCounts">Observations per bucket, NOT cumulative: one per bound, then the overflow above the last bound.</param>
/// <param name="Sum">Sum of the observations.</param>
/// <param name="Count">Number of observations.</param>
internal sealed record HistogramSample(
    IReadOnlyList<KeyValuePair<string, string>> Labels,
    IReadOnlyList<double> UpperBounds,
    IReadOnlyList<long> BucketCounts,
    double Sum,
    long Count);

/// <summary>
/// One metric as the Prometheus text format groups it: a name, a help text, a type and its series. The
/// bridge between the OpenTelemetry SDK's collected metrics and <see cref="PrometheusTextFormat"/>.
/// </summary>
/// <param name="Name">The instrument's name; the writer adds <c>_total</c> to counters that lack it.</param>
/// <param name="Help">The instrument's description.</param>
/// <param name="Type">Counter, gauge or histogram.</param>
/// <param name="Samples">Series of a counter or gauge.</param>
/// <param name="Histograms">Series of a histogram.</param>
internal sealed record MetricFamily(
    string Name,
    string Help,
    MetricFamilyType Type,
    IReadOnlyList<MetricSample> Samples,
    IReadOnlyList<HistogramSample> Histograms);
