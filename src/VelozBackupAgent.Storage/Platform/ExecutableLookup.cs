namespace VelozBackupAgent.Storage.Platform;

/// <summary>Finding a program the way the system does (PATH, and on Windows PATHEXT), never in the current directory.</summary>
public static class ExecutableLookup
{
    /// <summary>
    /// An absolute or relative path as given when it exists; a bare name searched on PATH; null when not found.
    /// On Windows PATH is split on <c>;</c> and a name without an extension is also tried with each of PATHEXT's
    /// (<c>pg_dump</c> finds <c>pg_dump.exe</c>, also under Backup:Database:BinDirectory); the current directory
    /// is never searched, on any OS.
    /// </summary>
    public static string? Resolve(string fileName) =>
        OperatingSystem.IsWindows()
            ? Resolve(fileName, Environment.GetEnvironmentVariable("PATH"), Environment.GetEnvironmentVariable("PATHEXT") ?? DefaultPathExt, windows: true, File.Exists)
            : Resolve(fileName, Environment.GetEnvironmentVariable("PATH"), pathExt: null, windows: false, File.Exists);

    /// <summary>Windows's own default when PATHEXT is unset.</summary>
    internal const string DefaultPathExt = ".COM;.EXE;.BAT;.CMD";

    /// <summary>The OS-neutral rule behind <see cref="Resolve(string)"/>, with the environment and the file system passed in.</summary>
    internal static string? Resolve(string fileName, string? pathVariable, string? pathExt, bool windows, Func<string, bool> exists)
    {
        ArgumentException.ThrowIfNullOrEmpty(fileName);
        ArgumentNullException.ThrowIfNull(exists);
        var separators = windows ? new[] { '/', '\\' } : ['/'];
        var extensions = windows && !HasExtension(fileName)
            ? (pathExt ?? DefaultPathExt).Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(e => e.StartsWith('.')).Select(e => e.ToLowerInvariant()).ToArray()
            : [""];
        if (fileName.IndexOfAny(separators) >= 0)
        {
            foreach (var extension in extensions)
            {
                if (exists(fileName + extension))
                {
                    return Path.GetFullPath(fileName + extension);
                }
            }

            return null;
        }

        var path = pathVariable ?? (windows ? "" : "/usr/local/bin:/usr/bin:/bin");
        foreach (var directory in path.Split(windows ? ';' : ':', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // A relative PATH entry (".", "bin") would depend on the current directory: never searched.
            if (!(windows ? IsWindowsRooted(directory) : directory.StartsWith('/')))
            {
                continue;
            }

            foreach (var extension in extensions)
            {
                var candidate = (windows ? directory.Trim('"').TrimEnd('\\', '/') + "\\" : directory.TrimEnd('/') + "/") + fileName + extension;
                if (exists(candidate))
                {
                    return candidate;
                }
            }
        }

        return null;
    }

    private static bool HasExtension(string fileName)
    {
        var name = fileName[(fileName.LastIndexOfAny(['/', '\\']) + 1)..];
        var dot = name.LastIndexOf('.');
        return dot > 0 && dot < name.Length - 1;
    }

    private static bool IsWindowsRooted(string directory)
    {
        var d = directory.Trim('"');
        return (d.Length >= 3 && char.IsAsciiLetter(d[0]) && d[1] == ':' && d[2] is '\\' or '/') || d.StartsWith(@"\\", StringComparison.Ordinal);
    }
}
