using System.Globalization;
using System.Text;
using System.Text.Json;
using VelozBackupAgent.Catalog;

namespace VelozBackupAgent.Telemetry;

/// <summary>What the daemon's Quartz scheduler is doing, as <c>/health</c> reports it.</summary>
public enum SchedulerState
{
    /// <summary>Not started yet (the daemon is starting).</summary>
    NotStarted,

    /// <summary>Started and firing triggers: the only healthy state.</summary>
    Running,

    /// <summary>Started but paused: no scheduled backup fires.</summary>
    Standby,

    /// <summary>Shut down (the daemon is stopping).</summary>
    ShutDown,

    /// <summary>The scheduler could not be asked.</summary>
    Unknown,
}

/// <summary>
/// The <c>/health</c> verdict: healthy only while the scheduler runs and every enabled kind is within its
/// freshness objective (<see cref="Freshness"/>, the same rule <c>verify</c> uses). The JSON body names each
/// kind's last success, age, objective and how far past it the kind is, and lists the problems in words.
/// </summary>
/// <param name="Healthy">True when the scheduler runs and no enabled kind is stale.</param>
/// <param name="Scheduler">The scheduler's state.</param>
/// <param name="Kinds">Freshness of every enabled kind.</param>
/// <param name="Problems">One line per reason it is unhealthy; empty when healthy.</param>
public sealed record HealthReport(bool Healthy, SchedulerState Scheduler, IReadOnlyList<FreshnessStatus> Kinds, IReadOnlyList<string> Problems)
{
    /// <summary>Judges <paramref name="scheduler"/> and the freshness of each enabled kind; <paramref name="more"/> are further problems (a skewed clock).</summary>
    public static HealthReport Evaluate(SchedulerState scheduler, IReadOnlyList<FreshnessStatus> kinds, IEnumerable<string>? more = null)
    {
        ArgumentNullException.ThrowIfNull(kinds);
        var problems = new List<string>();
        if (scheduler != SchedulerState.Running)
        {
            problems.Add($"the scheduler is not running ({SchedulerName(scheduler)}): no scheduled backup fires");
        }

        foreach (var kind in kinds.Where(k => k.Stale))
        {
            problems.Add(kind.LastSuccess is { } last
                ? $"{kind.Kind} is stale: last success {last.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)}Z{(kind.Node is { } node ? $" on node {node}" : "")}, {Duration(kind.Age!.Value)} ago, {Duration(kind.Overdue!.Value)} past its {Duration(kind.Objective)} objective"
                : $"{kind.Kind} is stale: no successful backup yet (objective {Duration(kind.Objective)})");
        }

        foreach (var kind in kinds.Where(k => k.RunOverdue))
        {
            problems.Add($"{kind.Kind}: the backup run in progress has been going for {Duration(kind.RunningFor ?? TimeSpan.Zero)}, past its {Duration(kind.MaxRun ?? TimeSpan.Zero)} MaxRunDuration: hung? (no other run of the kind can start meanwhile)");
        }

        problems.AddRange(more ?? []);

        return new HealthReport(problems.Count == 0, scheduler, kinds, problems);
    }

    /// <summary>The HTTP status of <c>/health</c>: 200 when healthy, 503 when not.</summary>
    public int StatusCode => Healthy ? 200 : 503;

    /// <summary>The JSON body of <c>/health</c> (the contract documented in the README).</summary>
    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("status", Healthy ? "healthy" : "unhealthy");
            json.WriteString("scheduler", SchedulerName(Scheduler));
            json.WriteStartArray("kinds");
            foreach (var kind in Kinds)
            {
                json.WriteStartObject();
                json.WriteString("kind", kind.Kind);
                if (kind.LastSuccess is { } last)
                {
                    json.WriteString("lastSuccess", last.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
                }
                else
                {
                    json.WriteNull("lastSuccess");
                }

                if (kind.Node is { } node)
                {
                    json.WriteString("node", node);
                }

                WriteSeconds(json, "ageSeconds", kind.Age);
                WriteSeconds(json, "objectiveSeconds", kind.Objective);
                json.WriteBoolean("stale", kind.Stale);
                if (kind.RunningSince is { } since)
                {
                    json.WriteString("runningSince", since.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
                    json.WriteBoolean("keptFreshByRun", kind.KeptFreshByRun);
                    json.WriteBoolean("runOverdue", kind.RunOverdue);
                }

                WriteSeconds(json, "overdueSeconds", kind.Overdue);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteStartArray("problems");
            foreach (var problem in Problems)
            {
                json.WriteStringValue(problem);
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    /// <summary>The scheduler state as the JSON body spells it.</summary>
    public static string SchedulerName(SchedulerState state) => state switch
    {
        SchedulerState.NotStarted => "not-started",
        SchedulerState.Running => "running",
        SchedulerState.Standby => "standby",
        SchedulerState.ShutDown => "shut-down",
        _ => "unknown",
    };

    /// <summary>A duration for people: <c>2d 3h</c>, <c>5h 12m</c>, <c>4m 30s</c>, <c>12s</c>.</summary>
    public static string Duration(TimeSpan span)
    {
        if (span < TimeSpan.Zero)
        {
            span = span.Negate();
        }

        static string Two(long big, string bigUnit, long small, string smallUnit) =>
            small == 0 ? $"{big}{bigUnit}" : $"{big}{bigUnit} {small}{smallUnit}";

        return span.TotalDays >= 1 ? Two((long)span.TotalDays, "d", span.Hours, "h")
            : span.TotalHours >= 1 ? Two((long)span.TotalHours, "h", span.Minutes, "m")
            : span.TotalMinutes >= 1 ? Two((long)span.TotalMinutes, "m", span.Seconds, "s")
            : string.Create(CultureInfo.InvariantCulture, $"{(long)span.TotalSeconds}s");
    }

    private static void WriteSeconds(Utf8JsonWriter json, string name, TimeSpan? span)
    {
        if (span is { } s)
        {
            json.WriteNumber(name, Math.Round(s.TotalSeconds, 3));
        }
        else
        {
            json.WriteNull(name);
        }
    }
}
