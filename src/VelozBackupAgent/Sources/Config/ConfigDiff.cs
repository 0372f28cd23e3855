using System.Formats.Tar;
using System.Globalization;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using DiffPlex;
using VelozBackupAgent.Restore;
using VelozBackupAgent.Sources.Archives;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Sources.Config;

/// <summary>One file, link or directory of a configuration tree (an archive or the live directory).</summary>
/// <param name="Path">Root-relative, <c>/</c>-separated.</param>
/// <param name="Type">file, dir or symlink.</param>
/// <param name="Mode">Permission bits (e.g. 0640).</param>
/// <param name="Size">Bytes of a file; 0 otherwise.</param>
/// <param name="Sha256">Of a file's content; of a link's target text; empty for a directory.</param>
/// <param name="Content">A file's bytes when at most <see cref="ConfigTree.ContentLimit"/>; null when larger (compared by hash only).</param>
/// <param name="LinkTarget">A link's target.</param>
internal sealed record ConfigTreeEntry(string Path, string Type, int Mode, long Size, string Sha256, byte[]? Content, string? LinkTarget);

/// <summary>
/// A configuration tree read into memory for comparison: every entry's metadata and hash, and the content of
/// files up to <see cref="ContentLimit"/> (configuration files are small; a larger one is compared by hash and
/// reported as "content differs (too large to show)"). Archives are read with the restore's entry-name rules
/// (<see cref="SafeTarExtractor.NormalizeName"/>): a name escaping the root, a device or FIFO entry, a duplicate,
/// a corrupt stream is one <see cref="RestoreIntegrityException"/> line, never a crash.
/// </summary>
internal sealed class ConfigTree
{
    /// <summary>Files larger than this (1 MiB) are compared by SHA-256 only, not diffed line by line.</summary>
    public const long ContentLimit = 1 << 20;

    private readonly SortedDictionary<string, ConfigTreeEntry> _entries = new(StringComparer.Ordinal);

    public ConfigTree(string label) => Label = label;

    /// <summary>The artifact name, or <c>live</c>.</summary>
    public string Label { get; }

    public IReadOnlyDictionary<string, ConfigTreeEntry> Entries => _entries;

    /// <summary>Reads a (verified) <c>.tar.gz</c> configuration archive.</summary>
    public static async Task<ConfigTree> ReadArchiveAsync(Stream compressed, string label, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(compressed);
        var tree = new ConfigTree(label);
        try
        {
            var gzip = new GZipStream(compressed, CompressionMode.Decompress, leaveOpen: true);
            await using (gzip.ConfigureAwait(false))
            {
                var reader = new TarReader(gzip, leaveOpen: true);
                await using (reader.ConfigureAwait(false))
                {
                    while (await reader.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false) is { } entry)
                    {
                        await tree.AddArchiveEntryAsync(entry, label, cancellationToken).ConfigureAwait(false);
                    }
                }
            }
        }
        catch (Exception ex) when (ex is InvalidDataException or FormatException or EndOfStreamException or ArgumentException)
        {
            throw new RestoreIntegrityException($"{label}: not a readable configuration archive: {ex.Message.Split('\n')[0].Trim()}", ex);
        }

        return tree;
    }

    /// <summary>
    /// The live configuration exactly as the next configuration backup would select it: Backup:Config:Root with
    /// its Include/Exclude globs, never <c>*.secret</c> nor Backup:Secrets:Directory.
    /// </summary>
    public static async Task<ConfigTree> ReadLiveAsync(string root, IEnumerable<string> include, IEnumerable<string> exclude, string? secretsDirectory, CancellationToken cancellationToken)
    {
        if (!Directory.Exists(root))
        {
            throw new ArgumentException($"live: Backup:Config:Root does not exist: {root}");
        }

        var selection = new ConfigSelection(root, include, exclude, secretsDirectory);
        FileStatus? secrets = selection.SecretsDirectory is { } s ? SourceTree.Stat(s) : null;
        var walked = SourceTree.Walk(root, e => selection.Keep(e) && !(e.Kind == FileKind.Directory && secrets is { } d && e.Status.SameInode(d)));
        var plan = selection.Plan(walked);
        var tree = new ConfigTree("live");
        foreach (var e in plan.Entries)
        {
            var mode = e.Status.Mode & 0xFFF;
            switch (e.Kind)
            {
                case FileKind.Directory:
                    tree.Add(new ConfigTreeEntry(e.RelativePath, "dir", mode, 0, "", null, null));
                    break;
                case FileKind.SymbolicLink:
                    tree.Add(new ConfigTreeEntry(e.RelativePath, "symlink", mode, 0, Hash(Encoding.UTF8.GetBytes(e.LinkTarget ?? "")), null, e.LinkTarget));
                    break;
                case FileKind.Regular:
                    var input = new FileStream(e.FullPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
                    await using (input.ConfigureAwait(false))
                    {
                        var (size, sha, content) = await ReadContentAsync(input, cancellationToken).ConfigureAwait(false);
                        tree.Add(new ConfigTreeEntry(e.RelativePath, "file", mode, size, sha, content, null));
                    }

                    break;
            }
        }

        return tree;
    }

    private async Task AddArchiveEntryAsync(TarEntry entry, string label, CancellationToken cancellationToken)
    {
        var path = SafeTarExtractor.NormalizeName(entry.Name, label);
        var mode = (int)entry.Mode & 0xFFF;
        switch (entry.EntryType)
        {
            case TarEntryType.Directory:
                if (path.Length > 0)
                {
                    Add(new ConfigTreeEntry(path, "dir", mode, 0, "", null, null), label);
                }

                break;
            case TarEntryType.SymbolicLink:
                SafeTarExtractor.ResolveLinkTarget(path, entry.LinkName, label);
                Add(new ConfigTreeEntry(path, "symlink", mode, 0, Hash(Encoding.UTF8.GetBytes(entry.LinkName)), null, entry.LinkName), label);
                break;
            case TarEntryType.HardLink:
                var linked = SafeTarExtractor.NormalizeName(entry.LinkName, label);
                if (!_entries.TryGetValue(linked, out var original) || original.Type != "file")
                {
                    throw new RestoreIntegrityException($"{label}: refusing hard link '{path}' -> '{entry.LinkName}': it must name an earlier file of the archive");
                }

                Add(original with { Path = path, Mode = mode }, label);
                break;
            case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                if (path.Length == 0)
                {
                    throw new RestoreIntegrityException($"{label}: refusing archive entry '{entry.Name}': it names the root itself");
                }

                var (size, sha, content) = entry.DataStream is { } data
                    ? await ReadContentAsync(data, cancellationToken).ConfigureAwait(false)
                    : (0L, Hash([]), Array.Empty<byte>());
                Add(new ConfigTreeEntry(path, "file", mode, size, sha, content, null), label);
                break;
            default:
                throw new RestoreIntegrityException($"{label}: refusing archive entry '{entry.Name}': unsupported entry type {entry.EntryType}");
        }
    }

    private void Add(ConfigTreeEntry entry, string? label = null)
    {
        if (!_entries.TryAdd(entry.Path, entry))
        {
            throw new RestoreIntegrityException($"{label ?? Label}: refusing archive entry '{entry.Path}': it appears twice");
        }
    }

    /// <summary>Hashes the whole stream, keeping at most <see cref="ContentLimit"/> bytes of it.</summary>
    private static async Task<(long Size, string Sha256, byte[]? Content)> ReadContentAsync(Stream input, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var kept = new MemoryStream();
        var buffer = new byte[1 << 16];
        long size = 0;
        int n;
        while ((n = await input.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            hash.AppendData(buffer, 0, n);
            if (size + n <= ContentLimit)
            {
                kept.Write(buffer, 0, n);
            }

            size += n;
        }

        return (size, Convert.ToHexStringLower(hash.GetHashAndReset()), size <= ContentLimit ? kept.ToArray() : null);
    }

    private static string Hash(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));
}

/// <summary>What happened to one path between two trees.</summary>
/// <param name="Path">Root-relative path.</param>
/// <param name="Type">file, dir, symlink, or "OLD -> NEW" for a type change.</param>
/// <param name="OldMode">Permission bits in A (null when added).</param>
/// <param name="NewMode">Permission bits in B (null when removed).</param>
/// <param name="OldSize">Bytes in A (null when added).</param>
/// <param name="NewSize">Bytes in B (null when removed).</param>
/// <param name="LinesAdded">Lines only in B.</param>
/// <param name="LinesRemoved">Lines only in A.</param>
/// <param name="Status">added, removed, modified (content or link target changed, maybe the mode too), mode (only the mode changed), type (file became link, ...).</param>
/// <param name="Binary">Either side is not UTF-8 text (has a NUL or invalid UTF-8).</param>
/// <param name="TooLarge">Either side exceeds <see cref="ConfigTree.ContentLimit"/>: compared by hash only.</param>
/// <param name="Diff">The unified diff text (--- a/ +++ b/ and @@ hunks), or null for binary, too large, mode-only or directories.</param>
internal sealed record ConfigFileChange(
    string Path, string Status, string Type, int? OldMode, int? NewMode, long? OldSize, long? NewSize,
    bool Binary, bool TooLarge, int LinesAdded, int LinesRemoved, string? Diff);

/// <summary>Compares two configuration trees and writes unified diffs (3 lines of context, like diff -u).</summary>
internal static class ConfigDiffer
{
    public const int Context = 3;

    public static IReadOnlyList<ConfigFileChange> Compare(ConfigTree a, ConfigTree b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var changes = new List<ConfigFileChange>();
        foreach (var path in a.Entries.Keys.Union(b.Entries.Keys, StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            a.Entries.TryGetValue(path, out var old);
            b.Entries.TryGetValue(path, out var @new);
            if (old is null)
            {
                changes.Add(Whole(@new!, "added", a.Label, b.Label));
            }
            else if (@new is null)
            {
                changes.Add(Whole(old, "removed", a.Label, b.Label));
            }
            else if (old.Type != @new.Type)
            {
                changes.Add(new ConfigFileChange(path, "type", $"{old.Type} -> {@new.Type}", old.Mode, @new.Mode, old.Size, @new.Size, false, false, 0, 0, null));
            }
            else if (old.Sha256 != @new.Sha256)
            {
                changes.Add(Modified(old, @new));
            }
            else if (old.Mode != @new.Mode)
            {
                changes.Add(new ConfigFileChange(path, "mode", old.Type, old.Mode, @new.Mode, old.Size, @new.Size, false, false, 0, 0, null));
            }
        }

        return changes;
    }

    private static ConfigFileChange Whole(ConfigTreeEntry entry, string status, string labelA, string labelB)
    {
        var added = status == "added";
        if (entry.Type != "file")
        {
            return new ConfigFileChange(entry.Path, status, entry.Type, added ? null : entry.Mode, added ? entry.Mode : null,
                added ? null : 0, added ? 0 : null, false, false, 0, 0, null);
        }

        var text = entry.Content is null ? null : AsText(entry.Content);
        var tooLarge = entry.Content is null;
        var binary = !tooLarge && text is null;
        string? diff = null;
        int plus = 0, minus = 0;
        if (text is not null)
        {
            var lines = SplitLines(text, out var noNewline);
            (plus, minus) = added ? (lines.Count, 0) : (0, lines.Count);
            var sb = new StringBuilder();
            sb.Append("--- ").Append(added ? "/dev/null" : "a/" + entry.Path).Append('\n');
            sb.Append("+++ ").Append(added ? "b/" + entry.Path : "/dev/null").Append('\n');
            if (lines.Count > 0)
            {
                sb.Append(added ? $"@@ -0,0 +1{Count(lines.Count)} @@\n" : $"@@ -1{Count(lines.Count)} +0,0 @@\n");
                for (var i = 0; i < lines.Count; i++)
                {
                    sb.Append(added ? '+' : '-').Append(lines[i]).Append('\n');
                    if (i == lines.Count - 1 && noNewline)
                    {
                        sb.Append("\\ No newline at end of file\n");
                    }
                }
            }

            diff = sb.ToString();
        }

        _ = labelA;
        _ = labelB;
        return new ConfigFileChange(entry.Path, status, entry.Type, added ? null : entry.Mode, added ? entry.Mode : null,
            added ? null : entry.Size, added ? entry.Size : null, binary, tooLarge, plus, minus, diff);
    }

    private static ConfigFileChange Modified(ConfigTreeEntry old, ConfigTreeEntry @new)
    {
        if (old.Type == "symlink")
        {
            var linkDiff = $"--- a/{old.Path}\n+++ b/{@new.Path}\n@@ -1 +1 @@\n-{old.LinkTarget}\n\\ No newline at end of file\n+{@new.LinkTarget}\n\\ No newline at end of file\n";
            return new ConfigFileChange(old.Path, "modified", old.Type, old.Mode, @new.Mode, 0, 0, false, false, 1, 1, linkDiff);
        }

        if (old.Content is null || @new.Content is null)
        {
            return new ConfigFileChange(old.Path, "modified", old.Type, old.Mode, @new.Mode, old.Size, @new.Size, false, true, 0, 0, null);
        }

        var a = AsText(old.Content);
        var b = AsText(@new.Content);
        if (a is null || b is null)
        {
            return new ConfigFileChange(old.Path, "modified", old.Type, old.Mode, @new.Mode, old.Size, @new.Size, true, false, 0, 0, null);
        }

        var (diff, plus, minus) = Unified(old.Path, a, b);
        return new ConfigFileChange(old.Path, "modified", old.Type, old.Mode, @new.Mode, old.Size, @new.Size, false, false, plus, minus, diff);
    }

    /// <summary>The unified diff of two texts (paths a/PATH and b/PATH), with its added and removed line counts.</summary>
    internal static (string Diff, int Added, int Removed) Unified(string path, string oldText, string newText)
    {
        var a = SplitLines(oldText, out var aNoNewline);
        var b = SplitLines(newText, out var bNoNewline);

        // DiffPlex's Myers diff over whole lines (we split ourselves so a missing final newline is kept apart).
        // A last line without its newline is a different line from the same text with one (as in diff -u), so it is
        // compared with a NUL appended (text never holds a NUL: AsText calls such a file binary); lines print unmarked.
        var blocks = Differ.Instance.CreateCustomDiffs(Key(a, aNoNewline), Key(b, bNoNewline), ignoreWhiteSpace: false, ignoreCase: false,
            s => s.Length == 0 ? [] : s.Split('\n')).DiffBlocks;
        if ((a.Count == 1 && a[0].Length == 0) || (b.Count == 1 && b[0].Length == 0))
        {
            // CreateCustomDiffs splits "" into no lines; a one-empty-line file is rare enough to handle as a whole-file change.
            blocks = [new DiffPlex.Model.DiffBlock(0, a.Count, 0, b.Count)];
        }

        var sb = new StringBuilder();
        sb.Append("--- a/").Append(path).Append('\n').Append("+++ b/").Append(path).Append('\n');
        int added = 0, removed = 0;
        var i = 0;
        while (i < blocks.Count)
        {
            // Blocks closer than 2*Context lines share a hunk.
            var j = i;
            while (j + 1 < blocks.Count && blocks[j + 1].DeleteStartA - (blocks[j].DeleteStartA + blocks[j].DeleteCountA) <= 2 * Context)
            {
                j++;
            }

            var first = blocks[i];
            var last = blocks[j];
            var startA = Math.Max(0, first.DeleteStartA - Context);
            var startB = Math.Max(0, first.InsertStartB - Context);
            var endA = Math.Min(a.Count, last.DeleteStartA + last.DeleteCountA + Context);
            var endB = Math.Min(b.Count, last.InsertStartB + last.InsertCountB + Context);
            sb.Append(CultureInfo.InvariantCulture, $"@@ -{Range(startA, endA - startA)} +{Range(startB, endB - startB)} @@\n");
            var posA = startA;
            for (var k = i; k <= j; k++)
            {
                var block = blocks[k];
                for (; posA < block.DeleteStartA; posA++)
                {
                    Line(sb, ' ', a, posA, aNoNewline);
                }

                for (var d = 0; d < block.DeleteCountA; d++, posA++)
                {
                    Line(sb, '-', a, posA, aNoNewline);
                    removed++;
                }

                for (var n = 0; n < block.InsertCountB; n++)
                {
                    Line(sb, '+', b, block.InsertStartB + n, bNoNewline);
                    added++;
                }
            }

            for (; posA < endA; posA++)
            {
                Line(sb, ' ', a, posA, aNoNewline && bNoNewline);
            }

            i = j + 1;
        }

        return (sb.ToString(), added, removed);
    }

    private static string Key(List<string> lines, bool noNewline) => string.Join('\n', lines) + (noNewline ? "\0" : "");

    private static void Line(StringBuilder sb, char sign, List<string> lines, int index, bool noNewlineAtEnd)
    {
        sb.Append(sign).Append(lines[index]).Append('\n');
        if (noNewlineAtEnd && index == lines.Count - 1)
        {
            sb.Append("\\ No newline at end of file\n");
        }
    }

    /// <summary>diff -u's range: "start,count", "start" when count is 1, "start-1,0" when empty.</summary>
    private static string Range(int start, int count) => count switch
    {
        0 => string.Create(CultureInfo.InvariantCulture, $"{start},0"),
        1 => string.Create(CultureInfo.InvariantCulture, $"{start + 1}"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{start + 1},{count}"),
    };

    private static string Count(int n) => n == 1 ? "" : string.Create(CultureInfo.InvariantCulture, $",{n}");

    /// <summary>Lines without their terminators; <paramref name="noNewline"/> when the last line has none.</summary>
    internal static List<string> SplitLines(string text, out bool noNewline)
    {
        noNewline = text.Length > 0 && text[^1] != '\n';
        var body = text.Length > 0 && text[^1] == '\n' ? text[..^1] : text;
        return body.Length == 0 && text.Length == 0 ? [] : [.. body.Split('\n')];
    }

    /// <summary>The UTF-8 text of a file, or null when it is binary (a NUL byte, or not valid UTF-8).</summary>
    internal static string? AsText(byte[] content)
    {
        if (Array.IndexOf(content, (byte)0) >= 0)
        {
            return null;
        }

        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(content);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }
}
