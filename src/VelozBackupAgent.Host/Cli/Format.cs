using System.Globalization;

namespace VelozBackupAgent.Host.Cli;

/// <summary>Human-readable output: sizes, ages and aligned tables.</summary>
internal static class Format
{
    public static string Bytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        var unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return unit == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{bytes} B")
            : string.Create(CultureInfo.InvariantCulture, $"{value:0.0} {units[unit]}");
    }

    /// <summary>ISO 8601 in UTC to the second, e.g. <c>2026-02-14T12:00:00Z</c>; null stays null.</summary>
    public static string? IsoUtc(DateTimeOffset? time) =>
        time?.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    public static string Age(TimeSpan age)
    {
        if (age < TimeSpan.Zero)
        {
            return "in the future";
        }

        return age.TotalSeconds < 120 ? string.Create(CultureInfo.InvariantCulture, $"{age.TotalSeconds:0}s")
            : age.TotalMinutes < 120 ? string.Create(CultureInfo.InvariantCulture, $"{age.TotalMinutes:0}m")
            : age.TotalHours < 48 ? string.Create(CultureInfo.InvariantCulture, $"{age.TotalHours:0.0}h")
            : string.Create(CultureInfo.InvariantCulture, $"{age.TotalDays:0.0}d");
    }

    public static async Task TableAsync(TextWriter output, string[] header, IEnumerable<string[]> rows)
    {
        var all = new List<string[]> { header };
        all.AddRange(rows);
        var widths = Enumerable.Range(0, header.Length).Select(i => all.Max(r => r[i].Length)).ToArray();
        foreach (var row in all)
        {
            await output.WriteLineAsync(string.Join("  ", row.Select((cell, i) => i == row.Length - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd());
        }
    }
}
