using System.Collections.Concurrent;
using Microsoft.Extensions.FileSystemGlobbing;
using VelozBackupAgent.Sources.Archives;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Sources.Config;

/// <summary>What a configuration backup will contain, and what the operator should hear about it.</summary>
/// <param name="Entries">Files and links to archive plus their parent directories, in archive order.</param>
/// <param name="FileCount">Regular files and links among <paramref name="Entries"/>.</param>
/// <param name="UnmatchedIncludes">Include globs without a wildcard that matched nothing (a file that went missing).</param>
/// <param name="LinksNotContained">Archived symbolic links whose target is not in the archive (outside the root or not included).</param>
/// <param name="SkippedSpecial">Matched paths that are FIFOs, sockets or devices, which are never archived.</param>
internal sealed record ConfigPlan(
    IReadOnlyList<SourceEntry> Entries,
    int FileCount,
    IReadOnlyList<string> UnmatchedIncludes,
    IReadOnlyList<string> LinksNotContained,
    IReadOnlyList<string> SkippedSpecial);

/// <summary>
/// Which paths under <c>Backup:Config:Root</c> a configuration backup takes: those matching an Include glob
/// and no Exclude glob, and never (whatever the globs say) a <c>*.secret</c> file or anything inside one,
/// nor anything inside <c>Backup:Secrets:Directory</c> — secrets only ever leave the machine encrypted.
/// Globs are case-sensitive, relative to the root, with <c>/</c> separators (<c>strategies/*.yaml</c>,
/// <c>**/*.yaml</c>).
/// </summary>
internal sealed class ConfigSelection
{
    private const string SecretSuffix = ".secret";

    private readonly Matcher _matcher = new(StringComparison.Ordinal);
    private readonly string[][] _includeSegments;
    private readonly string? _secretsRelative;
    private readonly ConcurrentDictionary<string, Matcher> _segmentMatchers = new(StringComparer.Ordinal);

    public ConfigSelection(string root, IEnumerable<string> include, IEnumerable<string> exclude, string? secretsDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        Root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        Include = [.. include];
        Exclude = [.. exclude];
        _matcher.AddIncludePatterns(Include);
        _matcher.AddExcludePatterns(Exclude);
        _includeSegments = [.. Include.Select(Segments)];
        if (!string.IsNullOrWhiteSpace(secretsDirectory))
        {
            SecretsDirectory = Path.TrimEndingDirectorySeparator(Path.GetFullPath(secretsDirectory));
            var relative = Path.GetRelativePath(Root, SecretsDirectory).Replace('\\', '/');
            if (relative == ".")
            {
                _secretsRelative = "";
            }
            else if (!Path.IsPathRooted(relative) && relative != ".." && !relative.StartsWith("../", StringComparison.Ordinal))
            {
                _secretsRelative = relative;
            }
        }
    }

    /// <summary>The absolute root.</summary>
    public string Root { get; }

    public IReadOnlyList<string> Include { get; }

    public IReadOnlyList<string> Exclude { get; }

    /// <summary>The absolute secrets directory, which is never archived here.</summary>
    public string? SecretsDirectory { get; }

    /// <summary>A one-line description of the globs for error messages.</summary>
    public string Describe() =>
        $"Include [{string.Join(", ", Include)}], Exclude [{string.Join(", ", Exclude)}]; *.secret and {SecretsDirectory ?? "the secrets directory"} are always excluded";

    /// <summary>Never archived, whatever the globs say: a <c>*.secret</c> name (or anything inside one), or the secrets directory and its contents.</summary>
    public bool IsAlwaysExcluded(string relativePath)
    {
        ArgumentNullException.ThrowIfNull(relativePath);
        if (_secretsRelative is not null
            && (_secretsRelative.Length == 0 || relativePath == _secretsRelative || relativePath.StartsWith(_secretsRelative + "/", StringComparison.Ordinal)))
        {
            return true;
        }

        return relativePath.Split('/').Any(s => s.EndsWith(SecretSuffix, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>Whether a file or link at <paramref name="relativePath"/> is archived.</summary>
    public bool Matches(string relativePath) =>
        !IsAlwaysExcluded(relativePath) && _matcher.Match(relativePath).HasMatches;

    /// <summary>
    /// Whether some Include glob could match a path below the directory <paramref name="relativeDirectory"/>:
    /// the walk only reads directories that can hold something to back up, so an unrelated unreadable or
    /// huge directory under the root costs nothing.
    /// </summary>
    public bool MayContainMatches(string relativeDirectory)
    {
        ArgumentNullException.ThrowIfNull(relativeDirectory);
        if (IsAlwaysExcluded(relativeDirectory))
        {
            return false;
        }

        var directory = relativeDirectory.Split('/');
        foreach (var pattern in _includeSegments)
        {
            if (CanReachBelow(pattern, directory))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Whether a watcher event for <paramref name="fullPath"/> can change what a backup contains.</summary>
    public bool IsRelevant(string fullPath)
    {
        ArgumentNullException.ThrowIfNull(fullPath);
        var relative = Path.GetRelativePath(Root, Path.GetFullPath(fullPath)).Replace('\\', '/');
        if (relative == "." || relative == ".." || relative.StartsWith("../", StringComparison.Ordinal) || Path.IsPathRooted(relative))
        {
            return false;
        }

        return Matches(relative) || MayContainMatches(relative);
    }

    /// <summary>Whether the walk reads (for directories) or considers (otherwise) <paramref name="entry"/>.</summary>
    public bool Keep(SourceEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return entry.Kind == FileKind.Directory ? MayContainMatches(entry.RelativePath) : !IsAlwaysExcluded(entry.RelativePath);
    }

    /// <summary>Picks the matched files and links from a walk, adds their parent directories, keeps the walk's order.</summary>
    public ConfigPlan Plan(IReadOnlyList<SourceEntry> walked)
    {
        ArgumentNullException.ThrowIfNull(walked);
        var selected = new HashSet<string>(StringComparer.Ordinal);
        var parents = new HashSet<string>(StringComparer.Ordinal);
        var skipped = new List<string>();
        foreach (var entry in walked)
        {
            if (entry.Kind == FileKind.Directory || !Matches(entry.RelativePath))
            {
                continue;
            }

            if (entry.Kind == FileKind.Other)
            {
                skipped.Add(entry.FullPath);
                continue;
            }

            selected.Add(entry.RelativePath);
            for (var slash = entry.RelativePath.LastIndexOf('/'); slash > 0; slash = entry.RelativePath.LastIndexOf('/', slash - 1))
            {
                parents.Add(entry.RelativePath[..slash]);
            }
        }

        var entries = walked.Where(e => e.Kind == FileKind.Directory ? parents.Contains(e.RelativePath) : selected.Contains(e.RelativePath)).ToList();
        var unmatched = Include.Where(p => p.IndexOfAny(['*', '?', '[', '{']) < 0
                                           && !selected.Contains(string.Join('/', Segments(p)))).ToList();
        var links = entries.Where(e => e.Kind == FileKind.SymbolicLink && !selected.Contains(LinkTargetInRoot(e) ?? "/"))
            .Select(e => $"{e.FullPath} -> {e.LinkTarget}").ToList();
        return new ConfigPlan(entries, selected.Count, unmatched, links, skipped);
    }

    /// <summary>The root-relative path a link points to, or null when it points outside the root.</summary>
    private string? LinkTargetInRoot(SourceEntry link)
    {
        var target = Path.GetFullPath(link.LinkTarget!, Path.GetDirectoryName(link.FullPath)!);
        var relative = Path.GetRelativePath(Root, target).Replace('\\', '/');
        return relative == ".." || relative.StartsWith("../", StringComparison.Ordinal) || Path.IsPathRooted(relative) ? null : relative;
    }

    private bool CanReachBelow(string[] pattern, string[] directory)
    {
        for (var i = 0; i < directory.Length; i++)
        {
            if (i >= pattern.Length)
            {
                return false;
            }

            if (pattern[i].Contains("**", StringComparison.Ordinal))
            {
                return true;
            }

            // The pattern's last segment names files: a directory at that depth holds no match.
            if (i == pattern.Length - 1 || !SegmentMatches(pattern[i], directory[i]))
            {
                return false;
            }
        }

        return pattern.Length > directory.Length;
    }

    private bool SegmentMatches(string glob, string name)
    {
        var matcher = _segmentMatchers.GetOrAdd(glob, g =>
        {
            var m = new Matcher(StringComparison.Ordinal);
            m.AddInclude(g);
            return m;
        });
        return matcher.Match(name).HasMatches;
    }

    private static string[] Segments(string glob) =>
        [.. glob.Replace('\\', '/').Split('/', StringSplitOptions.RemoveEmptyEntries).Where(s => s != ".")];
}
