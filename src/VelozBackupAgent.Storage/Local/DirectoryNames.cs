using System.IO.Enumeration;
using VelozBackupAgent.Storage.Checksums;

namespace VelozBackupAgent.Storage.Local;

/// <summary>
/// The names of the files in one directory, from the directory listing alone: no stat of any entry (a regular
/// file's type comes with its directory entry), no <see cref="FileInfo"/> and no full path per entry. Hidden
/// names (a leading '.') are included. A store directory of 10,000 segments holds 20,000 names: listed with a
/// <see cref="FileInfo"/> each and its timestamp read, that was 20,000 lstat calls at every run (issue 16).
/// </summary>
internal static class DirectoryNames
{
    private static readonly EnumerationOptions Options = new()
    {
        RecurseSubdirectories = false,
        AttributesToSkip = 0,
        IgnoreInaccessible = false,
        MatchType = MatchType.Simple,
        ReturnSpecialDirectories = false,
    };

    /// <summary>The file names in <paramref name="directory"/> (not its subdirectories).</summary>
    /// <exception cref="DirectoryNotFoundException">It does not exist.</exception>
    public static HashSet<string> Files(string directory)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        var listing = new FileSystemEnumerable<string>(directory, static (ref FileSystemEntry e) => e.FileName.ToString(), Options)
        {
            ShouldIncludePredicate = static (ref FileSystemEntry e) => !e.IsDirectory,
        };
        foreach (var name in listing)
        {
            names.Add(name);
        }

        return names;
    }

    /// <summary>
    /// The complete artifacts among <paramref name="names"/>: every name that is not a sidecar, not hidden, and has its
    /// <c>.sha256</c> sidecar in the set (a data file without one is crash debris or a write in progress).
    /// </summary>
    public static HashSet<string> Complete(HashSet<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        var complete = new HashSet<string>(names.Count / 2 + 1, StringComparer.Ordinal);
        foreach (var name in names)
        {
            if (!name.StartsWith('.') && !name.EndsWith(Sha256Sidecar.Suffix, StringComparison.Ordinal) && HasSidecar(names, name))
            {
                complete.Add(name);
            }
        }

        return complete;
    }

    /// <summary>True when <paramref name="names"/> holds <c>&lt;name&gt;.sha256</c> (looked up without building the string).</summary>
    public static bool HasSidecar(HashSet<string> names, string name)
    {
        ArgumentNullException.ThrowIfNull(names);
        ArgumentNullException.ThrowIfNull(name);
        var length = name.Length + Sha256Sidecar.Suffix.Length;
        Span<char> buffer = length <= 256 ? stackalloc char[length] : new char[length];
        name.AsSpan().CopyTo(buffer);
        Sha256Sidecar.Suffix.AsSpan().CopyTo(buffer[name.Length..]);
        return names.GetAlternateLookup<ReadOnlySpan<char>>().Contains(buffer);
    }

    /// <summary>True when <paramref name="names"/> holds the artifact the sidecar <paramref name="sidecar"/> belongs to.</summary>
    public static bool HasArtifact(HashSet<string> names, string sidecar)
    {
        ArgumentNullException.ThrowIfNull(names);
        ArgumentNullException.ThrowIfNull(sidecar);
        return names.GetAlternateLookup<ReadOnlySpan<char>>().Contains(sidecar.AsSpan(0, sidecar.Length - Sha256Sidecar.Suffix.Length));
    }
}
