using System.Text.Json;
using System.Text.Json.Serialization;
using VelozBackupAgent.Restore;

namespace VelozBackupAgent.Host.Cli;

/// <summary>The JSON conventions of every verb's <c>--json</c>: camelCase, indented, every field always present.</summary>
internal static class CliJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        // Output goes to terminals and scripts, never into HTML: keep '+' and quotes readable.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Seconds as every <c>--json</c> gives them: a number rounded to the millisecond.</summary>
    public static double Seconds(TimeSpan t) => Math.Round(t.TotalSeconds, 3);
}

/// <summary>
/// What <c>restore … --json</c> reports, gathered while the restore runs: every step line as it begins (each
/// ends when the next begins; the one running when the restore failed is <c>failed</c>) and every artifact once
/// its checksum was verified. Times come from the agent's <see cref="TimeProvider"/>.
/// </summary>
internal sealed class RestoreRecorder
{
    private readonly TimeProvider _time;
    private readonly List<Step> _steps = [];
    private readonly List<StagedArtifact> _verified = [];
    private readonly Lock _gate = new();
    private string? _current;
    private long _started;

    public RestoreRecorder(TimeProvider time) => _time = time;

    /// <summary>Listens to <paramref name="restorer"/>'s step lines and verified artifacts.</summary>
    public void Attach(Restorer restorer)
    {
        ArgumentNullException.ThrowIfNull(restorer);
        restorer.Step += Begin;
        restorer.Sources.Staged += Verified;
    }

    public void Begin(string name)
    {
        lock (_gate)
        {
            End("ok");
            _current = name;
            _started = _time.GetTimestamp();
        }
    }

    public void Verified(StagedArtifact staged)
    {
        lock (_gate)
        {
            _verified.Add(staged);
        }
    }

    /// <summary>Ends the running step with <paramref name="status"/> (ok, failed).</summary>
    public void End(string status)
    {
        lock (_gate)
        {
            if (_current is not null)
            {
                _steps.Add(new Step(_current, status, _time.GetElapsedTime(_started)));
                _current = null;
            }
        }
    }

    public IReadOnlyList<Step> Steps => _steps;

    /// <summary>
    /// The document: <paramref name="operation"/> is the sub-verb (wal, config, database, secrets, pitr, full);
    /// <paramref name="report"/> is null when the restore failed with <paramref name="error"/>.
    /// </summary>
    public string Document(string operation, RestoreReport? report, string? error, object? pitr = null)
    {
        End(error is null ? "ok" : "failed");
        var verified = _verified.Select(v => new
        {
            kind = v.Source.Kind, name = v.Source.Name, source = SourceOf(v.Source), sha256 = v.Sha256, bytes = v.Size,
        }).ToList();
        return JsonSerializer.Serialize(new
        {
            operation,
            ok = error is null,
            results = (report?.Results ?? []).Select(r =>
            {
                var staged = _verified.FirstOrDefault(v => v.Source.Kind == r.Kind && v.Source.Name == r.Artifact)
                             ?? _verified.FirstOrDefault(v => v.Source.Kind == r.Kind);
                return new
                {
                    kind = r.Kind, artifact = r.Artifact, source = staged is null ? null : SourceOf(staged.Source), target = r.Target,
                    sha256 = staged?.Sha256, summary = r.Summary,
                    prepareSeconds = CliJson.Seconds(r.Prepare), switchSeconds = CliJson.Seconds(r.Commit), seconds = CliJson.Seconds(r.Duration),
                    tables = r.Details is IReadOnlyList<RestoredTable> tables ? tables.Select(t => new { name = t.Name, rows = t.Rows }) : null,
                    warnings = r.Warnings,
                };
            }),
            verified,
            steps = _steps.Select(s => new { name = s.Name, status = s.Status, seconds = CliJson.Seconds(s.Duration) }),
            service = report?.Service is { } service
                ? new
                {
                    stopped = service.Stopped, started = service.Started,
                    healthySeconds = service.HealthyAfter is { } h ? CliJson.Seconds(h) : (double?)null, downtimeSeconds = CliJson.Seconds(service.Downtime),
                }
                : null,
            skipped = report?.Skipped ?? [],
            pitr,
            totalSeconds = report is null ? (double?)null : CliJson.Seconds(report.Total),
            objectiveSeconds = report is null ? (double?)null : CliJson.Seconds(report.Objective),
            withinObjective = report is null ? (bool?)null : report.Total <= report.Objective,
            error,
        }, CliJson.Options);
    }

    /// <summary>local or s3 for a stored artifact, the file's path for a loose one.</summary>
    private static string SourceOf(ArtifactRef artifact) => artifact.LoosePath ?? artifact.Store?.Target ?? "-";

    internal sealed record Step(string Name, string Status, TimeSpan Duration);
}
