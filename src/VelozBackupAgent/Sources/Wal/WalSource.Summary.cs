using System.Globalization;

namespace VelozBackupAgent.Sources.Wal;

/// <summary>The wording of a run's result: detail line and the unreadable summary.</summary>
public sealed partial class WalSource
{
    private string Describe(Run run)
    {
        var parts = new List<string>();
        if (run.Stored > 0)
        {
            parts.Add(Count(run.Stored, "new segment"));
        }

        if (run.ActiveSnapshot is { } snapshot)
        {
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"{_naming.ActiveFile} snapshot {snapshot.Name} ({snapshot.Size} bytes)"));
        }

        if (run.Manifest is { } manifest)
        {
            var delta = run.ManifestDocument is { IsDelta: true } d
                ? string.Create(CultureInfo.InvariantCulture, $" (delta of {d.Parent!.Name}: {d.Added!.Count} added, {d.Removed!.Count} removed)")
                : "";
            parts.Add($"manifest {manifest.Name} lists {Count(run.Ok.Count, "segment")}{delta}");
        }

        if (run.Settling.Count > 0)
        {
            parts.Add($"{Count(run.Settling.Count, "segment")} still being written: {Names(run.Settling.Keys)}");
        }

        if (run.Conflicts.Count > 0)
        {
            parts.Add($"ALARM: {Count(run.Conflicts.Count, "stored segment")} changed in the source, stored copies kept: {Names(run.Conflicts.Keys)}");
        }

        if (run.Unreadable.Count > 0)
        {
            var (name, (_, reason)) = run.Unreadable.OrderBy(p => p.Key, StringComparer.Ordinal).First();
            parts.Add($"{Count(run.Unreadable.Count, "segment")} unreadable, not backed up: {name} ({reason}){More(run.Unreadable.Count)}");
        }

        if (run.ActiveProblem is { } problem)
        {
            parts.Add($"{_naming.ActiveFile} not snapshotted: {problem}");
        }

        return parts.Count == 0 ? "nothing new" : string.Join("; ", parts);
    }

    private string UnreadableLine(Run run)
    {
        var parts = new List<string>();
        if (run.Unreadable.Count > 0)
        {
            var (name, (_, reason)) = run.Unreadable.OrderBy(p => p.Key, StringComparer.Ordinal).First();
            parts.Add($"Backup:Wal:Directory: {Count(run.Unreadable.Count, "WAL segment")} cannot be read and {(run.Unreadable.Count == 1 ? "is" : "are")} not backed up: {Path.Combine(_directory, name)} ({reason}){More(run.Unreadable.Count)}");
        }

        if (run.ActiveUnreadable)
        {
            parts.Add($"Backup:Wal:ActiveFile cannot be read: {run.ActiveProblem}");
        }

        var rest = run.Manifest is { } m ? $"everything else was stored (manifest {m.Name})" : "everything else was stored";
        return $"{string.Join("; ", parts)}; {rest}";
    }

    private static string Count(int n, string noun) => string.Create(CultureInfo.InvariantCulture, $"{n} {noun}{(n == 1 ? "" : "s")}");

    private static string More(int n) => n > 1 ? string.Create(CultureInfo.InvariantCulture, $" and {n - 1} more") : "";

    private static string Names(IEnumerable<string> names)
    {
        var sorted = names.Order(StringComparer.Ordinal).ToList();
        return sorted.Count <= 3 ? string.Join(", ", sorted) : $"{string.Join(", ", sorted.Take(3))}{More(sorted.Count - 2)}";
    }
}
