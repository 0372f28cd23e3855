using System.Globalization;
using System.Text.Json;

namespace VelozBackupAgent.Configuration;

/// <summary>
/// What is wrong with the appsettings.json file itself, in one line naming the file: missing, a directory,
/// unreadable, empty, or not JSON (with the parser's line and byte). The configuration provider's own
/// exceptions say "Failed to load configuration from file" three levels deep, which the CLI would otherwise
/// have to print as a stack trace.
/// </summary>
internal static class ConfigFileProblem
{
    /// <summary>
    /// Returns the full path of <paramref name="path"/> when it is a readable file, otherwise throws
    /// <see cref="BackupConfigurationException"/> saying why not. <paramref name="origin"/> is appended to the
    /// message (e.g. " (from VELOZ_BACKUP_CONFIG)").
    /// </summary>
    public static string CheckReadable(string path, string origin)
    {
        if (Directory.Exists(path))
        {
            throw new BackupConfigurationException($"configuration file {path}{origin} is a directory, not a file: name the appsettings.json inside it");
        }

        if (!File.Exists(path))
        {
            throw new BackupConfigurationException($"configuration file not found: {path}{origin}");
        }

        try
        {
            using var probe = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);
            _ = probe.ReadByte();
        }
        catch (UnauthorizedAccessException)
        {
            throw new BackupConfigurationException($"configuration file {path}{origin} cannot be read: permission denied (the agent's user needs read access)");
        }
        catch (IOException ex)
        {
            throw new BackupConfigurationException($"configuration file {path}{origin} cannot be read: {FirstLine(ex.Message)}");
        }

        return Path.GetFullPath(path);
    }

    /// <summary>One line for a file the JSON configuration provider refused (<see cref="InvalidDataException"/>).</summary>
    public static string Describe(string path, Exception failure)
    {
        ArgumentNullException.ThrowIfNull(failure);
        if (IsBlank(path))
        {
            return $"configuration file {path} is empty: it must hold a JSON object such as {{ \"Backup\": {{ \"LocalRoot\": \"/backup\" }} }}";
        }

        for (var e = failure; e is not null; e = e.InnerException)
        {
            if (e is JsonException json)
            {
                // LineNumber and BytePositionInLine are zero-based; editors count from 1.
                var where = json.LineNumber is { } line
                    ? string.Create(CultureInfo.InvariantCulture, $" at line {line + 1}, byte {(json.BytePositionInLine ?? 0) + 1}")
                    : "";
                return $"configuration file {path} is not valid JSON{where}: {ParserMessage(json.Message)}";
            }
        }

        // Valid JSON the provider still refuses: a top-level array or value, a key given twice.
        var innermost = failure;
        while (innermost.InnerException is not null)
        {
            innermost = innermost.InnerException;
        }

        return $"configuration file {path} cannot be used: {FirstLine(innermost.Message).TrimEnd('.')}";
    }

    private static bool IsBlank(string path)
    {
        try
        {
            var info = new FileInfo(path);
            return info.Length == 0 || (info.Length < 4096 && string.IsNullOrWhiteSpace(File.ReadAllText(path)));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>System.Text.Json's message without its own " LineNumber: 0 | BytePositionInLine: 1." tail.</summary>
    private static string ParserMessage(string message)
    {
        var text = FirstLine(message);
        var tail = text.IndexOf(" LineNumber:", StringComparison.Ordinal);
        if (tail >= 0)
        {
            text = text[..tail];
        }

        text = text.Trim().TrimEnd('.');
        return text.Length > 0 ? char.ToLowerInvariant(text[0]) + text[1..] : "unreadable";
    }

    private static string FirstLine(string message) => message.Split('\n')[0].Trim();
}
