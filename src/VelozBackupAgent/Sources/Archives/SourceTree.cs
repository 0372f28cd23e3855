using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Sources.Archives;

/// <summary>A file, directory, symbolic link or special file found under a root.</summary>
/// <param name="RelativePath">Path below the root with <c>/</c> separators, never starting with <c>/</c> or <c>..</c>.</param>
/// <param name="FullPath">Absolute path on disk.</param>
/// <param name="Status">lstat of the entry when it was listed.</param>
/// <param name="LinkTarget">The target text of a symbolic link (as readlink gives it), else null.</param>
internal sealed record SourceEntry(string RelativePath, string FullPath, FileStatus Status, string? LinkTarget)
{
    public FileKind Kind => Status.Kind;
}

/// <summary>
/// Lists a directory tree without following symbolic links (a link is an entry of its own, never a way out
/// of the root), in a deterministic order: names sorted ordinally, each directory right before its
/// contents. That order is the archive order, so two listings of the same tree compare entry by entry.
/// </summary>
internal static class SourceTree
{
    private static readonly EnumerationOptions ListOneDirectory = new()
    {
        RecurseSubdirectories = false,
        IgnoreInaccessible = false,
        AttributesToSkip = 0,
        ReturnSpecialDirectories = false,
        MatchType = MatchType.Simple,
    };

    /// <summary>
    /// Lists everything below <paramref name="root"/> (not the root itself) for which <paramref name="keep"/>
    /// is true; a directory it rejects is neither listed nor read. Entries that vanish while listing are
    /// left out (a change the next run sees).
    /// </summary>
    /// <exception cref="BackupSourceException">A directory that had to be read cannot be; the message names it.</exception>
    public static List<SourceEntry> Walk(string root, Func<SourceEntry, bool> keep)
    {
        ArgumentNullException.ThrowIfNull(keep);
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        var rootStatus = Stat(full) ?? throw new BackupSourceException($"{full} does not exist");
        var entries = new List<SourceEntry>();
        var visited = new HashSet<(ulong, ulong)> { (rootStatus.Device, rootStatus.Inode) };
        WalkDirectory(full, "", keep, entries, visited);
        return entries;
    }

    /// <summary>lstat that turns "cannot examine" into a one-line <see cref="BackupSourceException"/>.</summary>
    public static FileStatus? Stat(string path)
    {
        try
        {
            return FileStatus.TryLstat(path);
        }
        catch (IOException ex)
        {
            throw new BackupSourceException($"cannot examine {path}: {ex.Message}", ex);
        }
    }

    private static void WalkDirectory(string directory, string relative, Func<SourceEntry, bool> keep, List<SourceEntry> entries, HashSet<(ulong, ulong)> visited)
    {
        List<string> names;
        try
        {
            names = [.. Directory.EnumerateFileSystemEntries(directory, "*", ListOneDirectory).Select(Path.GetFileName).OfType<string>()];
        }
        catch (DirectoryNotFoundException)
        {
            return;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new BackupSourceException($"cannot read directory {directory}: {Reason(ex)}", ex);
        }

        names.Sort(StringComparer.Ordinal);
        foreach (var name in names)
        {
            var path = Path.Combine(directory, name);
            if (Stat(path) is not { } status)
            {
                continue;
            }

            var entry = new SourceEntry(relative.Length == 0 ? name : relative + "/" + name, path, status,
                status.Kind == FileKind.SymbolicLink ? ReadLink(path) : null);
            if (entry.Kind == FileKind.SymbolicLink && entry.LinkTarget is null)
            {
                continue;
            }

            if (!keep(entry))
            {
                continue;
            }

            entries.Add(entry);
            if (status.Kind == FileKind.Directory && visited.Add((status.Device, status.Inode)))
            {
                WalkDirectory(path, entry.RelativePath, keep, entries, visited);
            }
        }
    }

    private static string? ReadLink(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget;
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new BackupSourceException($"cannot read symbolic link {path}: {Reason(ex)}", ex);
        }
    }

    /// <summary>The system's reason without .NET's restatement of the path.</summary>
    internal static string Reason(Exception ex) => ex switch
    {
        UnauthorizedAccessException => "permission denied",
        _ => ex.Message,
    };
}
