using System.Formats.Tar;
using System.Globalization;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Restore;

/// <summary>How <see cref="SafeTarExtractor"/> gives restored entries their modes and owners.</summary>
public sealed record TarExtractOptions
{
    /// <summary>Give entries the uid/gid recorded in the archive (only when running as root, like <c>tar -p</c>).</summary>
    public bool PreserveOwners { get; init; }

    /// <summary>Force this mode on every file instead of the archive's (secrets: 0600).</summary>
    public UnixFileMode? FileMode { get; init; }

    /// <summary>Force this mode on every directory instead of the archive's (secrets: 0700).</summary>
    public UnixFileMode? DirectoryMode { get; init; }

    /// <summary>Mode of directories the archive implies but does not list, and of a missing target. Default 0755.</summary>
    public UnixFileMode ImpliedDirectoryMode { get; init; } =
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    /// <summary>When set (uid, gid), every restored entry is given this owner instead (secrets: the configured owner).</summary>
    public (int Uid, int Gid)? Owner { get; init; }
}

/// <summary>One entry extracted into the staging directory.</summary>
/// <param name="Path">Relative path, '/'-separated, normalised.</param>
/// <param name="Type">Regular file, directory, symbolic link or hard link.</param>
/// <param name="Size">Bytes of a regular file; 0 otherwise.</param>
public sealed record StagedEntry(string Path, TarEntryType Type, long Size);

/// <summary>
/// Extracts a tar stream as if it were hostile: every entry is checked before it is written, and written only
/// into a fresh staging directory inside the target (same file system), never into the target itself.
/// Absolute paths, <c>..</c> segments, symbolic links whose target leaves the directory, hard links to
/// anything but an earlier file of the archive, writes through a link, duplicates and device files, FIFOs or
/// any other special entry are refused with <see cref="RestoreIntegrityException"/> — and the staging
/// directory is removed, so the target is exactly as it was. <see cref="StagedTree.Commit"/> then moves the
/// entries into place, each with one atomic rename.
/// </summary>
public static class SafeTarExtractor
{
    private const UnixFileMode PermissionBits = (UnixFileMode)0x1FF; // 0777: no setuid, setgid or sticky from an archive

    /// <summary>
    /// The normalised relative path of an entry name (leading <c>./</c> and empty or <c>.</c> segments removed), or an
    /// empty string for the archive's root; throws <see cref="RestoreIntegrityException"/> for a path that is
    /// absolute or climbs out with <c>..</c>.
    /// </summary>
    public static string NormalizeName(string name, string label)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Contains('\0', StringComparison.Ordinal))
        {
            throw new RestoreIntegrityException($"{label}: refusing an archive entry with a NUL byte in its name");
        }

        if (name.StartsWith('/') || (name.Length >= 2 && name[1] == ':' && char.IsAsciiLetter(name[0])))
        {
            throw new RestoreIntegrityException($"{label}: refusing archive entry '{name}': absolute path");
        }

        var segments = name.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(s => s != ".").ToList();
        if (segments.Contains(".."))
        {
            throw new RestoreIntegrityException($"{label}: refusing archive entry '{name}': '..' would leave the target directory");
        }

        return string.Join('/', segments);
    }

    /// <summary>
    /// Where a symbolic link at <paramref name="entryPath"/> pointing to <paramref name="linkTarget"/> resolves,
    /// relative to the archive root; throws when it is absolute or leaves the root.
    /// </summary>
    public static string ResolveLinkTarget(string entryPath, string linkTarget, string label)
    {
        ArgumentNullException.ThrowIfNull(entryPath);
        ArgumentNullException.ThrowIfNull(linkTarget);
        if (linkTarget.Length == 0 || linkTarget.StartsWith('/'))
        {
            throw new RestoreIntegrityException($"{label}: refusing symbolic link '{entryPath}' -> '{linkTarget}': it points outside the target directory");
        }

        var stack = new List<string>(entryPath.Split('/')[..^1]);
        foreach (var segment in linkTarget.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (segment == ".")
            {
                continue;
            }

            if (segment == "..")
            {
                if (stack.Count == 0)
                {
                    throw new RestoreIntegrityException($"{label}: refusing symbolic link '{entryPath}' -> '{linkTarget}': it points outside the target directory");
                }

                stack.RemoveAt(stack.Count - 1);
            }
            else
            {
                stack.Add(segment);
            }
        }

        return string.Join('/', stack);
    }

    /// <summary>
    /// Reads <paramref name="tar"/> (an uncompressed tar stream) to its end, extracting every entry into a new
    /// staging directory inside <paramref name="targetDirectory"/> (created 0700, and the target too when
    /// missing). Throws, with the staging directory removed, on the first hostile entry or read error.
    /// </summary>
    public static async Task<StagedTree> ExtractAsync(Stream tar, string targetDirectory, TarExtractOptions options, string label, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        var target = Path.GetFullPath(targetDirectory);
        CreateDirectory(target, options.ImpliedDirectoryMode);
        var staging = Path.Combine(target, ".veloz-restore-" + Guid.NewGuid().ToString("N")[..12]);
        CreateDirectory(staging, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var tree = new StagedTree(target, staging, options);
        try
        {
            var reader = new TarReader(tar, leaveOpen: true);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false) is { } entry)
                {
                    await tree.AddAsync(entry, label, cancellationToken).ConfigureAwait(false);
                }
            }

            return tree;
        }
        catch (Exception ex)
        {
            tree.Dispose();
            if (ex is InvalidDataException or EndOfStreamException or FormatException)
            {
                throw new RestoreIntegrityException($"{label}: not a readable tar archive: {ex.Message}", ex);
            }

            throw;
        }
    }

    internal static void CreateDirectory(string path, UnixFileMode mode)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
        }
        else
        {
            Directory.CreateDirectory(path, mode);
        }
    }

    internal static UnixFileMode Permissions(UnixFileMode mode) => mode & PermissionBits;
}

/// <summary>
/// Entries extracted into a staging directory inside the target, not yet in place. <see cref="Commit"/> moves
/// them in; disposing removes whatever is still staged (after a refusal: everything).
/// </summary>
public sealed class StagedTree : IDisposable
{
    private readonly string _target;
    private readonly string _staging;
    private readonly TarExtractOptions _options;
    private readonly List<StagedEntry> _entries = [];
    private readonly Dictionary<string, TarEntryType> _types = new(StringComparer.Ordinal);
    private readonly List<(string Path, TarEntry Meta)> _directories = [];

    internal StagedTree(string target, string staging, TarExtractOptions options)
    {
        _target = target;
        _staging = staging;
        _options = options;
    }

    /// <summary>The entries in archive order.</summary>
    public IReadOnlyList<StagedEntry> Entries => _entries;

    /// <summary>The staging directory (inside the target).</summary>
    public string StagingDirectory => _staging;

    /// <summary>Where a staged entry is until committed.</summary>
    public string StagedFile(string relative) => StagedPath(relative);

    /// <summary>Regular files and their sizes.</summary>
    public long FileBytes => _entries.Where(e => e.Type is TarEntryType.RegularFile).Sum(e => e.Size);

    internal async Task AddAsync(TarEntry entry, string label, CancellationToken cancellationToken)
    {
        var type = entry.EntryType switch
        {
            TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile => TarEntryType.RegularFile,
            TarEntryType.Directory => TarEntryType.Directory,
            TarEntryType.SymbolicLink => TarEntryType.SymbolicLink,
            TarEntryType.HardLink => TarEntryType.HardLink,
            TarEntryType.CharacterDevice or TarEntryType.BlockDevice => throw new RestoreIntegrityException($"{label}: refusing archive entry '{entry.Name}': device files are never restored"),
            TarEntryType.Fifo => throw new RestoreIntegrityException($"{label}: refusing archive entry '{entry.Name}': FIFOs are never restored"),
            _ => throw new RestoreIntegrityException($"{label}: refusing archive entry '{entry.Name}': unsupported entry type {entry.EntryType}"),
        };

        var path = SafeTarExtractor.NormalizeName(entry.Name, label);
        if (path.Length == 0)
        {
            if (type != TarEntryType.Directory)
            {
                throw new RestoreIntegrityException($"{label}: refusing archive entry '{entry.Name}': it names the target directory itself");
            }

            return;
        }

        if (!_types.TryAdd(path, type))
        {
            throw new RestoreIntegrityException($"{label}: refusing archive entry '{path}': it appears twice");
        }

        // Every parent must be a directory of the archive (or implied): never write through a link or into a file.
        var parts = path.Split('/');
        for (var i = 1; i < parts.Length; i++)
        {
            var parent = string.Join('/', parts[..i]);
            if (_types.TryGetValue(parent, out var parentType) && parentType != TarEntryType.Directory)
            {
                throw new RestoreIntegrityException($"{label}: refusing archive entry '{path}': its parent '{parent}' is a {Describe(parentType)}, not a directory");
            }
        }

        var staged = StagedPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(staged)!);
        long size = 0;
        switch (type)
        {
            case TarEntryType.Directory:
                SafeTarExtractor.CreateDirectory(staged, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                _directories.Add((path, entry));
                break;

            case TarEntryType.SymbolicLink:
                SafeTarExtractor.ResolveLinkTarget(path, entry.LinkName, label);
                File.CreateSymbolicLink(staged, entry.LinkName);
                ApplyOwner(staged, entry);
                break;

            case TarEntryType.HardLink:
                var linked = SafeTarExtractor.NormalizeName(entry.LinkName, label);
                if (!_types.TryGetValue(linked, out var linkedType) || linkedType != TarEntryType.RegularFile || linked == path)
                {
                    throw new RestoreIntegrityException($"{label}: refusing hard link '{path}' -> '{entry.LinkName}': it must name an earlier file of the archive");
                }

                File.Copy(StagedPath(linked), staged);
                ApplyFileMeta(staged, entry);
                size = new FileInfo(staged).Length;
                break;

            default:
                size = await WriteFileAsync(staged, entry, cancellationToken).ConfigureAwait(false);
                ApplyFileMeta(staged, entry);
                break;
        }

        _entries.Add(new StagedEntry(path, type, size));
    }

    /// <summary>
    /// Moves every staged entry into the target: first checks that no file would replace a directory (or the
    /// reverse), then renames each file and link over its target (atomic per entry), creates missing
    /// directories and applies directory modes last. Files of the target that the archive does not hold are left.
    /// </summary>
    public void Commit()
    {
        foreach (var entry in _entries)
        {
            var live = LivePath(entry.Path);
            var isDirectory = entry.Type == TarEntryType.Directory;
            if (isDirectory && File.Exists(live) && !Directory.Exists(live))
            {
                throw new RestoreException($"cannot restore directory {live}: a file of that name exists; move it away and retry");
            }

            if (!isDirectory && Directory.Exists(live) && (File.GetAttributes(live) & FileAttributes.ReparsePoint) == 0)
            {
                throw new RestoreException($"cannot restore {live}: a directory of that name exists; move it away and retry");
            }
        }

        var touched = new HashSet<string>(StringComparer.Ordinal) { _target };
        foreach (var entry in _entries)
        {
            var live = LivePath(entry.Path);
            var parent = Path.GetDirectoryName(live)!;
            EnsureLiveDirectory(parent);
            touched.Add(parent);
            if (entry.Type == TarEntryType.Directory)
            {
                if (!Directory.Exists(live))
                {
                    SafeTarExtractor.CreateDirectory(live, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                }

                continue;
            }

            File.Move(StagedPath(entry.Path), live, overwrite: true);
        }

        // Directory modes and owners last, deepest first, so a read-only directory does not block its own entries.
        foreach (var (path, meta) in _directories.OrderByDescending(d => d.Path.Length))
        {
            var live = LivePath(path);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(live, _options.DirectoryMode ?? SafeTarExtractor.Permissions(meta.Mode));
            }

            ApplyOwner(live, meta);
        }

        if (!OperatingSystem.IsWindows())
        {
            foreach (var directory in touched)
            {
                FileSync.FsyncDirectory(directory);
            }
        }

        Dispose();
    }

    /// <summary>Removes the staging directory and whatever is still in it.</summary>
    public void Dispose()
    {
        try
        {
            if (Directory.Exists(_staging))
            {
                Directory.Delete(_staging, recursive: true);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Best effort: a leftover hidden staging directory is visible and harmless.
        }
    }

    private static string Describe(TarEntryType type) => type switch
    {
        TarEntryType.SymbolicLink => "symbolic link",
        TarEntryType.HardLink => "hard link",
        _ => "file",
    };

    private string StagedPath(string relative) => Path.Combine(_staging, relative.Replace('/', Path.DirectorySeparatorChar));

    private string LivePath(string relative) => Path.Combine(_target, relative.Replace('/', Path.DirectorySeparatorChar));

    private void EnsureLiveDirectory(string directory)
    {
        if (!Directory.Exists(directory))
        {
            SafeTarExtractor.CreateDirectory(directory, _options.DirectoryMode ?? _options.ImpliedDirectoryMode);
            if (_options.Owner is { } owner)
            {
                Owners.LChown(directory, owner.Uid, owner.Gid);
            }
        }
    }

    private static async Task<long> WriteFileAsync(string staged, TarEntry entry, CancellationToken cancellationToken)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Options = FileOptions.Asynchronous };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        var file = new FileStream(staged, options);
        await using (file.ConfigureAwait(false))
        {
            if (entry.DataStream is { } data)
            {
                await data.CopyToAsync(file, cancellationToken).ConfigureAwait(false);
            }

            file.Flush(flushToDisk: true);
            return file.Length;
        }
    }

    private void ApplyFileMeta(string staged, TarEntry entry)
    {
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(staged, _options.FileMode ?? SafeTarExtractor.Permissions(entry.Mode));
        }

        File.SetLastWriteTimeUtc(staged, entry.ModificationTime.UtcDateTime);
        ApplyOwner(staged, entry);
    }

    private void ApplyOwner(string path, TarEntry entry)
    {
        if (_options.Owner is { } owner)
        {
            Owners.LChown(path, owner.Uid, owner.Gid);
        }
        else if (_options.PreserveOwners && Owners.IsRoot && entry is PosixTarEntry posix)
        {
            Owners.LChown(path, posix.Uid, posix.Gid);
        }
    }

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{_entries.Count} entries staged in {_staging}");
}
