using System.Text.Json;
using System.Text.Json.Serialization;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Verification;

/// <summary>The outcome of one test restore (<c>verify --test-restore</c> or the scheduled drill).</summary>
/// <param name="Time">When the test restore finished.</param>
/// <param name="Passed">True when every kind it tried restored and checked out.</param>
/// <param name="DurationSeconds">Seconds each kind's test restore took, by kind; <c>total</c> is the sum.</param>
/// <param name="Failure">The first failing check's line, when it did not pass.</param>
public sealed record RestoreTestResult(DateTimeOffset Time, bool Passed, IReadOnlyDictionary<string, double> DurationSeconds, string? Failure);

/// <summary>What <c>.state/restore-test.json</c> holds: the newest test restore, and the newest that passed.</summary>
/// <param name="Last">The newest test restore, passed or not.</param>
/// <param name="LastSuccess">The newest test restore that passed; it is what the restore-test metrics report.</param>
public sealed record RestoreTestRecord(RestoreTestResult? Last, RestoreTestResult? LastSuccess);

/// <summary>
/// Keeps the test-restore record in <c>&lt;LocalRoot&gt;/.state/restore-test.json</c>, written by the CLI's
/// <c>verify --test-restore</c> and by the daemon's drill alike, read by the metrics on every scrape.
/// </summary>
public static class RestoreTestState
{
    /// <summary>The file name inside the state directory.</summary>
    public const string FileName = "restore-test.json";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The record, or an empty one when no test restore has run (or the file is unreadable).</summary>
    public static RestoreTestRecord Read(string stateDirectory)
    {
        var path = Path.Combine(stateDirectory, FileName);
        try
        {
            return File.Exists(path)
                ? JsonSerializer.Deserialize<RestoreTestRecord>(File.ReadAllText(path), Json) ?? new RestoreTestRecord(null, null)
                : new RestoreTestRecord(null, null);
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
        {
            return new RestoreTestRecord(null, null);
        }
    }

    /// <summary>Records <paramref name="result"/> as the newest (and, when it passed, the newest success), atomically.</summary>
    public static RestoreTestRecord Write(string stateDirectory, RestoreTestResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var previous = Read(stateDirectory);
        var record = new RestoreTestRecord(result, result.Passed ? result : previous.LastSuccess);
        PrivateFiles.CreateDirectory(stateDirectory);
        PrivateFiles.ReplaceAtomically(Path.Combine(stateDirectory, FileName), JsonSerializer.Serialize(record, Json) + "\n");
        return record;
    }
}
