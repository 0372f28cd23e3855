using System.Globalization;
using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace VelozBackupAgent.Telemetry;

/// <summary>
/// An OpenTelemetry MeterProvider, registered by hand, listening to one meter and read on demand: every
/// <see cref="Collect"/> (one per scrape) runs the observable callbacks and hands the exporter every series,
/// which it turns into <see cref="MetricFamily"/> values while the SDK's points are valid. Cumulative
/// temporality, so counters only go up. Collections are serialized: the exporter's buffer is not shared.
/// </summary>
/// <remarks>
/// <para>The reader is a plain <see cref="BaseExportingMetricReader"/> around an exporter that is NOT marked
/// <c>[ExportModes(ExportModes.Pull)]</c>: marked Pull-only, <c>Collect()</c> returns false unless wired the way
/// OpenTelemetry's own Prometheus exporter is. Nothing is pushed: without a periodic reader the SDK only collects
/// when asked.</para>
/// <para>Why not OpenTelemetry.Exporter.Prometheus.HttpListener/AspNetCore 1.20.1-beta.1 (the registry serves it now;
/// still beta): scraped side by side on the same meter (2026-12-03), its series equal ours in names, labels and
/// values, except that it writes no histogram series before the first recording, where the agent exposes
/// <c>veloz_backup_duration_seconds</c> of every enabled kind empty from start-up (so a query over a kind that never
/// ran sees zeros, not nothing); it adds <c>otel_scope_name</c> to every series and a <c>target_info</c> family
/// unless switched off. The HttpListener variant serves on a port of its own, apart from <c>/health</c>; the
/// AspNetCore one could share the endpoint. Not worth a beta dependency for the same text.</para>
/// </remarks>
internal sealed class MetricsPipeline : IDisposable
{
    private readonly FamilyExporter _exporter = new();
    private readonly BaseExportingMetricReader _reader;
    private readonly MeterProvider _provider;
    private readonly Lock _gate = new();

    public MetricsPipeline(string meterName)
    {
        _reader = new BaseExportingMetricReader(_exporter);
        _provider = Sdk.CreateMeterProviderBuilder().AddMeter(meterName).AddReader(_reader).Build();
    }

    /// <summary>Collects every instrument of the meter now. Throws <see cref="InvalidOperationException"/> when the SDK refuses.</summary>
    public IReadOnlyList<MetricFamily> Collect()
    {
        lock (_gate)
        {
            _exporter.Families.Clear();
            if (!_reader.Collect())
            {
                throw new InvalidOperationException("the OpenTelemetry reader did not collect (is the meter provider disposed?)");
            }

            return [.. _exporter.Families];
        }
    }

    public void Dispose() => _provider.Dispose();

    /// <summary>Copies what the SDK collected into <see cref="MetricFamily"/> values (the SDK reuses its points afterwards).</summary>
    private sealed class FamilyExporter : BaseExporter<Metric>
    {
        public List<MetricFamily> Families { get; } = [];

        public override ExportResult Export(in Batch<Metric> batch)
        {
            foreach (var metric in batch)
            {
                if (Convert(metric) is { } family)
                {
                    Families.Add(family);
                }
            }

            return ExportResult.Success;
        }

        private static MetricFamily? Convert(Metric metric)
        {
            MetricFamilyType? type = metric.MetricType switch
            {
                MetricType.LongSum or MetricType.DoubleSum => MetricFamilyType.Counter,
                MetricType.LongGauge or MetricType.DoubleGauge or MetricType.LongSumNonMonotonic or MetricType.DoubleSumNonMonotonic => MetricFamilyType.Gauge,
                MetricType.Histogram => MetricFamilyType.Histogram,

                // Exponential histograms have no 0.0.4 form; none is defined here.
                _ => null,
            };
            if (type is null)
            {
                return null;
            }

            var samples = new List<MetricSample>();
            var histograms = new List<HistogramSample>();
            foreach (ref readonly var point in metric.GetMetricPoints())
            {
                var labels = new List<KeyValuePair<string, string>>();
                foreach (var tag in point.Tags)
                {
                    labels.Add(KeyValuePair.Create(tag.Key, System.Convert.ToString(tag.Value, CultureInfo.InvariantCulture) ?? ""));
                }

                switch (metric.MetricType)
                {
                    case MetricType.LongSum or MetricType.LongSumNonMonotonic:
                        samples.Add(new MetricSample(labels, point.GetSumLong()));
                        break;
                    case MetricType.DoubleSum or MetricType.DoubleSumNonMonotonic:
                        samples.Add(new MetricSample(labels, point.GetSumDouble()));
                        break;
                    case MetricType.LongGauge:
                        samples.Add(new MetricSample(labels, point.GetGaugeLastValueLong()));
                        break;
                    case MetricType.DoubleGauge:
                        samples.Add(new MetricSample(labels, point.GetGaugeLastValueDouble()));
                        break;
                    default:
                        var bounds = new List<double>();
                        var counts = new List<long>();
                        foreach (var bucket in point.GetHistogramBuckets())
                        {
                            if (!double.IsPositiveInfinity(bucket.ExplicitBound))
                            {
                                bounds.Add(bucket.ExplicitBound);
                            }

                            counts.Add(bucket.BucketCount);
                        }

                        histograms.Add(new HistogramSample(labels, bounds, counts, point.GetHistogramSum(), point.GetHistogramCount()));
                        break;
                }
            }

            return new MetricFamily(metric.Name, metric.Description ?? "", type.Value, samples, histograms);
        }
    }
}
