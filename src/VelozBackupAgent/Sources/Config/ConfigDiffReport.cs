using System.Globalization;
using System.Text;
using System.Text.Json;

namespace VelozBackupAgent.Sources.Config;

/// <summary>The three renderings of <c>diff config</c>: unified text, <c>--stat</c>, <c>--json</c>.</summary>
internal static class ConfigDiffReport
{
    private static readonly string[] Statuses = ["added", "removed", "modified", "mode", "type"];

    /// <summary>Permission bits as diff/git print them: four octal digits (0640).</summary>
    public static string Octal(int mode) => Convert.ToString(mode & 0xFFF, 8).PadLeft(4, '0');

    /// <summary>The unified diff of every change, in path order; directories and modes as one line each.</summary>
    public static string Text(string labelA, string labelB, IReadOnlyList<ConfigFileChange> changes)
    {
        ArgumentNullException.ThrowIfNull(changes);
        var sb = new StringBuilder();
        if (changes.Count == 0)
        {
            sb.Append(CultureInfo.InvariantCulture, $"no differences between {labelA} and {labelB}\n");
            return sb.ToString();
        }

        sb.Append(CultureInfo.InvariantCulture, $"diff config {labelA} {labelB}\n");
        foreach (var c in changes)
        {
            switch (c.Status)
            {
                case "added":
                    sb.Append(CultureInfo.InvariantCulture, $"added {Noun(c.Type)} {c.Path} (mode {Octal(c.NewMode ?? 0)}{Size(c.NewSize, c.Type)})\n");
                    break;
                case "removed":
                    sb.Append(CultureInfo.InvariantCulture, $"removed {Noun(c.Type)} {c.Path} (mode {Octal(c.OldMode ?? 0)}{Size(c.OldSize, c.Type)})\n");
                    break;
                case "type":
                    sb.Append(CultureInfo.InvariantCulture, $"type changed {c.Path}: {c.Type}\n");
                    break;
                case "mode":
                    sb.Append(CultureInfo.InvariantCulture, $"mode changed {c.Path}: {Octal(c.OldMode ?? 0)} -> {Octal(c.NewMode ?? 0)}\n");
                    break;
                default:
                    if (c.OldMode != c.NewMode)
                    {
                        sb.Append(CultureInfo.InvariantCulture, $"mode changed {c.Path}: {Octal(c.OldMode ?? 0)} -> {Octal(c.NewMode ?? 0)}\n");
                    }

                    break;
            }

            if (c.Binary)
            {
                sb.Append(CultureInfo.InvariantCulture, $"binary files {Side('a', c)} and {Side('b', c)} differ\n");
            }
            else if (c.TooLarge)
            {
                sb.Append(CultureInfo.InvariantCulture,
                    $"files {Side('a', c)} and {Side('b', c)} differ (over {ConfigTree.ContentLimit / (1 << 20)} MiB: compared by SHA-256, not shown)\n");
            }
            else if (c.Diff is not null)
            {
                sb.Append(c.Diff);
            }
        }

        return sb.ToString();
    }

    /// <summary><c>--stat</c>: one line per changed path and a total, like <c>git diff --stat</c> in words.</summary>
    public static string Stat(string labelA, string labelB, IReadOnlyList<ConfigFileChange> changes)
    {
        ArgumentNullException.ThrowIfNull(changes);
        if (changes.Count == 0)
        {
            return $"no differences between {labelA} and {labelB}\n";
        }

        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"diff config {labelA} {labelB}\n");
        var width = changes.Max(c => c.Path.Length);
        foreach (var c in changes)
        {
            var what = c.Binary ? "binary" : c.TooLarge ? "over 1 MiB" : string.Create(CultureInfo.InvariantCulture, $"+{c.LinesAdded} -{c.LinesRemoved}");
            if (c.Status == "mode" || c.Type != "file" && c.Status is "added" or "removed")
            {
                what = c.Status == "mode" ? $"{Octal(c.OldMode ?? 0)} -> {Octal(c.NewMode ?? 0)}" : c.Type;
            }
            else if (c.Status == "modified" && c.OldMode != c.NewMode)
            {
                what += $", mode {Octal(c.OldMode ?? 0)} -> {Octal(c.NewMode ?? 0)}";
            }

            sb.Append(CultureInfo.InvariantCulture, $" {c.Path.PadRight(width)} | {c.Status,-8} {what}\n");
        }

        sb.Append(' ').Append(Summary(changes)).Append('\n');
        return sb.ToString();
    }

    /// <summary>"5 paths changed (1 added, 1 removed, 2 modified, 1 mode), 7 insertions(+), 3 deletions(-)".</summary>
    public static string Summary(IReadOnlyList<ConfigFileChange> changes)
    {
        ArgumentNullException.ThrowIfNull(changes);
        int Count(string status) => changes.Count(c => c.Status == status);
        var parts = Statuses
            .Select(s => (s, n: Count(s))).Where(p => p.n > 0).Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.n} {p.s}"));
        return string.Create(CultureInfo.InvariantCulture,
            $"{changes.Count} {(changes.Count == 1 ? "path" : "paths")} changed ({string.Join(", ", parts)}), {changes.Sum(c => c.LinesAdded)} insertions(+), {changes.Sum(c => c.LinesRemoved)} deletions(-)");
    }

    /// <summary>
    /// <c>--json</c>, a stable shape (documented in the README):
    /// <c>{"a":{"name","source"},"b":{...},"identical":bool,"summary":{"paths","added","removed","modified","mode","type","linesAdded","linesRemoved"},
    /// "changes":[{"path","status","type","oldMode","newMode","oldSize","newSize","binary","tooLarge","linesAdded","linesRemoved","diff"}]}</c>;
    /// modes are octal strings ("0640"), absent sides null.
    /// </summary>
    public static string Json((string Name, string Source) a, (string Name, string Source) b, IReadOnlyList<ConfigFileChange> changes)
    {
        ArgumentNullException.ThrowIfNull(changes);
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            foreach (var (key, side) in new[] { ("a", a), ("b", b) })
            {
                w.WriteStartObject(key);
                w.WriteString("name", side.Name);
                w.WriteString("source", side.Source);
                w.WriteEndObject();
            }

            w.WriteBoolean("identical", changes.Count == 0);
            w.WriteStartObject("summary");
            w.WriteNumber("paths", changes.Count);
            foreach (var s in Statuses)
            {
                w.WriteNumber(s, changes.Count(c => c.Status == s));
            }

            w.WriteNumber("linesAdded", changes.Sum(c => c.LinesAdded));
            w.WriteNumber("linesRemoved", changes.Sum(c => c.LinesRemoved));
            w.WriteEndObject();
            w.WriteStartArray("changes");
            foreach (var c in changes)
            {
                w.WriteStartObject();
                w.WriteString("path", c.Path);
                w.WriteString("status", c.Status);
                w.WriteString("type", c.Type);
                WriteMode(w, "oldMode", c.OldMode);
                WriteMode(w, "newMode", c.NewMode);
                WriteSize(w, "oldSize", c.OldSize);
                WriteSize(w, "newSize", c.NewSize);
                w.WriteBoolean("binary", c.Binary);
                w.WriteBoolean("tooLarge", c.TooLarge);
                w.WriteNumber("linesAdded", c.LinesAdded);
                w.WriteNumber("linesRemoved", c.LinesRemoved);
                if (c.Diff is null)
                {
                    w.WriteNull("diff");
                }
                else
                {
                    w.WriteString("diff", c.Diff);
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    private static void WriteMode(Utf8JsonWriter w, string name, int? mode)
    {
        if (mode is { } m)
        {
            w.WriteString(name, Octal(m));
        }
        else
        {
            w.WriteNull(name);
        }
    }

    private static void WriteSize(Utf8JsonWriter w, string name, long? size)
    {
        if (size is { } s)
        {
            w.WriteNumber(name, s);
        }
        else
        {
            w.WriteNull(name);
        }
    }

    private static string Noun(string type) => type switch
    {
        "dir" => "directory",
        "symlink" => "link",
        _ => "file",
    };

    private static string Size(long? size, string type) =>
        type == "file" && size is { } s ? string.Create(CultureInfo.InvariantCulture, $", {s} bytes") : "";

    private static string Side(char side, ConfigFileChange c) =>
        (side == 'a' && c.Status == "added") || (side == 'b' && c.Status == "removed") ? "/dev/null" : $"{side}/{c.Path}";
}
