using System.Formats.Tar;
using System.Globalization;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Restore;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Sources.Config;

/// <summary>A path's state in a git tree: its mode (<c>100644</c>, <c>100755</c>, <c>120000</c>) and object id.</summary>
internal readonly record struct GitTreeEntry(string Mode, string ObjectId);

/// <summary>What one configuration archive changes against the previous commit, for the commit message.</summary>
internal sealed record GitTreeChange(IReadOnlyList<string> Added, IReadOnlyList<string> Removed, IReadOnlyList<string> Modified, IReadOnlyList<(string Path, string From, string To)> ModeChanged)
{
    public bool IsEmpty => Added.Count + Removed.Count + Modified.Count + ModeChanged.Count == 0;

    /// <summary>Compares two trees (path → entry); a path whose content and mode both changed counts as modified only.</summary>
    public static GitTreeChange Between(IReadOnlyDictionary<string, GitTreeEntry> before, IReadOnlyDictionary<string, GitTreeEntry> after)
    {
        ArgumentNullException.ThrowIfNull(before);
        ArgumentNullException.ThrowIfNull(after);
        var added = after.Keys.Where(p => !before.ContainsKey(p)).Order(StringComparer.Ordinal).ToList();
        var removed = before.Keys.Where(p => !after.ContainsKey(p)).Order(StringComparer.Ordinal).ToList();
        var modified = new List<string>();
        var modes = new List<(string, string, string)>();
        foreach (var (path, now) in after.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (!before.TryGetValue(path, out var was))
            {
                continue;
            }

            if (was.ObjectId != now.ObjectId)
            {
                modified.Add(path);
            }
            else if (was.Mode != now.Mode)
            {
                modes.Add((path, was.Mode, now.Mode));
            }
        }

        return new GitTreeChange(added, removed, modified, modes);
    }

    /// <summary>The first line of the commit message: the artifact name and the counts.</summary>
    public string Subject(string artifact, bool first, int files) =>
        first
            ? $"{artifact}: first mirrored configuration ({files} file(s))"
            : $"{artifact}: {Modified.Count} modified, {Added.Count} added, {Removed.Count} removed" + (ModeChanged.Count > 0 ? $", {ModeChanged.Count} mode changed" : "");

    /// <summary>The whole commit message: subject, blank line, one line per changed path.</summary>
    public string Message(string artifact, bool first, int files)
    {
        var text = new StringBuilder(Subject(artifact, first, files)).Append('\n');
        if (!first && !IsEmpty)
        {
            text.Append('\n');
            foreach (var p in Modified)
            {
                text.Append("modified ").Append(p).Append('\n');
            }

            foreach (var p in Added)
            {
                text.Append("added ").Append(p).Append('\n');
            }

            foreach (var p in Removed)
            {
                text.Append("removed ").Append(p).Append('\n');
            }

            foreach (var (p, from, to) in ModeChanged)
            {
                text.Append("mode ").Append(p).Append(' ').Append(from).Append(" -> ").Append(to).Append('\n');
            }
        }

        return text.ToString();
    }
}

/// <summary>
/// <c>Backup:Config:GitRepository</c>: every new configuration archive is also committed to a local bare git
/// repository (branch <c>main</c>, author the agent, committer time = the archive's time, message = the artifact
/// name and what changed), so <c>git -C REPO log -p -- risk_limits.yaml</c> answers "what changed since
/// yesterday". The commit is built from the stored, checksum-verified archive (never from the live directory,
/// so the repository holds exactly what a restore would put back) and streamed into <c>git fast-import</c>:
/// no work tree, no temporary copy. Git keeps only the executable bit of a file's mode and no empty
/// directories; the archive stays the full record. A configuration identical to the last commit adds no
/// commit. A repository that has no commit yet is filled first with every configuration archive in the
/// local store, oldest first. <c>*.secret</c> files and the secrets directory are never archived, so never
/// committed. The git child gets no system or global git configuration.
/// </summary>
internal sealed partial class ConfigGitMirror
{
    public const string Branch = "refs/heads/main";
    public const string Key = $"{BackupOptions.SectionName}:{nameof(BackupOptions.Config)}:{nameof(ConfigBackupOptions.GitRepository)}";

    private readonly string _repository;
    private readonly ILogger _logger;

    public ConfigGitMirror(string repository, ILogger logger)
    {
        ArgumentException.ThrowIfNullOrEmpty(repository);
        ArgumentNullException.ThrowIfNull(logger);
        _repository = Path.GetFullPath(repository);
        _logger = logger;
    }

    /// <summary>The commit's author and committer.</summary>
    public static string Identity => $"VelozBackupAgent <veloz-backup@{SafeHost()}>";

    /// <summary>Creates the bare repository (mode 0700) unless it exists; refuses a path that is something else.</summary>
    /// <returns>True when the repository has no commit yet (new or empty).</returns>
    public async Task<bool> EnsureRepositoryAsync(CancellationToken cancellationToken)
    {
        if (File.Exists(_repository))
        {
            throw new BackupSourceException($"{Key} is a file, not a directory: {_repository}");
        }

        if (Directory.Exists(_repository) && Directory.EnumerateFileSystemEntries(_repository).Any())
        {
            if (!File.Exists(Path.Combine(_repository, "HEAD")) || !Directory.Exists(Path.Combine(_repository, "objects")))
            {
                throw new BackupSourceException($"{Key}: {_repository} exists and is not a bare git repository (no HEAD, no objects/); point it at an empty or new directory, or at a repository made by git init --bare");
            }
        }
        else
        {
            PrivateFiles.CreateDirectory(_repository);
            await RunGitAsync(["init", "--quiet", "--bare", "--initial-branch=main", _repository], cancellationToken).ConfigureAwait(false);
            Log.Initialised(_logger, _repository);
        }

        return await TipAsync(cancellationToken).ConfigureAwait(false) is null;
    }

    /// <summary>
    /// Commits the configuration archive <paramref name="archive"/> (a verifying stream of the stored
    /// <c>.tar.gz</c>) as <paramref name="artifact"/> at <paramref name="time"/>. Returns the commit's subject
    /// line, or null when the tree equals the last commit's (nothing committed).
    /// </summary>
    public async Task<string?> CommitAsync(string artifact, DateTimeOffset time, Stream archive, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(artifact);
        ArgumentNullException.ThrowIfNull(archive);
        var tip = await TipAsync(cancellationToken).ConfigureAwait(false);
        var before = tip is null ? new Dictionary<string, GitTreeEntry>(StringComparer.Ordinal) : await TreeAsync(tip, cancellationToken).ConfigureAwait(false);
        var objectIdLength = before.Count > 0 ? before.Values.First().ObjectId.Length : 40;
        string? subject = null;

        await using (var git = ChildProcess.Start(Spec(["--git-dir", _repository, "fast-import", "--quiet", "--done"]) with { RedirectInput = true }, _logger))
        {
            git.PumpInput(async (stdin, ct) =>
            {
                var after = new Dictionary<string, GitTreeEntry>(StringComparer.Ordinal);
                var marks = new Dictionary<string, int>(StringComparer.Ordinal);
                await WriteBlobsAsync(archive, artifact, stdin, after, marks, objectIdLength, ct).ConfigureAwait(false);
                var change = GitTreeChange.Between(before, after);
                if (tip is null || !change.IsEmpty)
                {
                    subject = change.Subject(artifact, tip is null, after.Count);
                    await WriteCommitAsync(stdin, tip, time, change.Message(artifact, tip is null, after.Count), after, marks, ct).ConfigureAwait(false);
                }

                await stdin.WriteAsync("done\n"u8.ToArray(), ct).ConfigureAwait(false);
            }, cancellationToken);
            await git.ReadAllTextAsync(cancellationToken).ConfigureAwait(false);
        }

        if (subject is null)
        {
            Log.Unchanged(_logger, artifact);
        }
        else
        {
            Log.Committed(_logger, artifact, _repository, subject);
        }

        return subject;
    }

    /// <summary>
    /// Streams every file and link of the archive to fast-import as a marked blob (links: their target), and
    /// records its git object id (computed as git does: <c>blob SIZE\0</c> + bytes). The archive is read to its
    /// end so its checksum is verified before any commit is written.
    /// </summary>
    private static async Task WriteBlobsAsync(Stream archive, string label, Stream stdin, Dictionary<string, GitTreeEntry> tree, Dictionary<string, int> marks, int objectIdLength, CancellationToken cancellationToken)
    {
        var algorithm = objectIdLength == 64 ? HashAlgorithmName.SHA256 : HashAlgorithmName.SHA1;
        var buffer = new byte[1 << 16];
        try
        {
            var gzip = new GZipStream(archive, CompressionMode.Decompress, leaveOpen: true);
            await using (gzip.ConfigureAwait(false))
            {
                var reader = new TarReader(gzip, leaveOpen: true);
                await using (reader.ConfigureAwait(false))
                {
                    while (await reader.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false) is { } entry)
                    {
                        var path = SafeTarExtractor.NormalizeName(entry.Name, label);
                        string mode;
                        switch (entry.EntryType)
                        {
                            case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                                mode = ((int)entry.Mode & 0b001_001_001) != 0 ? "100755" : "100644";
                                break;
                            case TarEntryType.SymbolicLink:
                                mode = "120000";
                                break;
                            default:
                                continue; // directories (git has none of its own) and anything a config archive never holds
                        }

                        if (path.Length == 0 || tree.ContainsKey(path))
                        {
                            throw new RestoreIntegrityException($"{label}: refusing an archive with a duplicate or empty entry name '{entry.Name}'");
                        }

                        var mark = marks.Count + 1;
                        using var hash = IncrementalHash.CreateHash(algorithm);
                        if (mode == "120000")
                        {
                            var target = Encoding.UTF8.GetBytes(entry.LinkName);
                            await WriteBlobHeaderAsync(stdin, hash, mark, target.Length, cancellationToken).ConfigureAwait(false);
                            hash.AppendData(target);
                            await stdin.WriteAsync(target, cancellationToken).ConfigureAwait(false);
                        }
                        else
                        {
                            var size = entry.Length;
                            await WriteBlobHeaderAsync(stdin, hash, mark, size, cancellationToken).ConfigureAwait(false);
                            if (entry.DataStream is { } data)
                            {
                                long copied = 0;
                                int read;
                                while ((read = await data.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                                {
                                    hash.AppendData(buffer, 0, read);
                                    await stdin.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                                    copied += read;
                                }

                                if (copied != size)
                                {
                                    throw new RestoreIntegrityException($"{label}: entry {path} holds {copied} bytes, its header says {size}");
                                }
                            }
                            else if (size != 0)
                            {
                                throw new RestoreIntegrityException($"{label}: entry {path} has no data");
                            }
                        }

                        await stdin.WriteAsync("\n"u8.ToArray(), cancellationToken).ConfigureAwait(false);
                        marks[path] = mark;
                        tree[path] = new GitTreeEntry(mode, Convert.ToHexStringLower(hash.GetHashAndReset()));
                    }
                }
            }

            // The rest of the stream (gzip trailer, padding) so the store's checksum is checked before a commit.
            while (await archive.ReadAsync(buffer, cancellationToken).ConfigureAwait(false) > 0)
            {
            }
        }
        catch (Exception ex) when (ex is InvalidDataException or FormatException or EndOfStreamException or ArgumentException)
        {
            throw new RestoreIntegrityException($"{label}: not a readable configuration archive: {ex.Message.Split('\n')[0].Trim()}", ex);
        }
    }

    private static async Task WriteBlobHeaderAsync(Stream stdin, IncrementalHash hash, int mark, long size, CancellationToken cancellationToken)
    {
        hash.AppendData(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"blob {size}\0")));
        await stdin.WriteAsync(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"blob\nmark :{mark}\ndata {size}\n")), cancellationToken).ConfigureAwait(false);
    }

    private static async Task WriteCommitAsync(Stream stdin, string? parent, DateTimeOffset time, string message, Dictionary<string, GitTreeEntry> tree, Dictionary<string, int> marks, CancellationToken cancellationToken)
    {
        var messageBytes = Encoding.UTF8.GetBytes(message);
        var when = string.Create(CultureInfo.InvariantCulture, $"{time.ToUnixTimeSeconds()} +0000");
        var header = new StringBuilder()
            .Append("commit ").Append(Branch).Append('\n')
            .Append("author ").Append(Identity).Append(' ').Append(when).Append('\n')
            .Append("committer ").Append(Identity).Append(' ').Append(when).Append('\n')
            .Append("data ").Append(messageBytes.Length.ToString(CultureInfo.InvariantCulture)).Append('\n');
        await stdin.WriteAsync(Encoding.UTF8.GetBytes(header.ToString()), cancellationToken).ConfigureAwait(false);
        await stdin.WriteAsync(messageBytes, cancellationToken).ConfigureAwait(false);
        var body = new StringBuilder("\n");
        if (parent is not null)
        {
            body.Append("from ").Append(parent).Append('\n');
        }

        // The whole tree each time: git works out what changed; a removed file is simply not listed again.
        body.Append("deleteall\n");
        foreach (var (path, entry) in tree.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            body.Append("M ").Append(entry.Mode).Append(" :").Append(marks[path].ToString(CultureInfo.InvariantCulture)).Append(' ').Append(QuotePath(path)).Append('\n');
        }

        body.Append('\n');
        await stdin.WriteAsync(Encoding.UTF8.GetBytes(body.ToString()), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>fast-import's path syntax: as is, or C-style quoted when it starts with a quote or holds a control character or backslash.</summary>
    internal static string QuotePath(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!path.StartsWith('"') && !path.Any(c => c < ' ' || c == '\\' || c == '\x7f'))
        {
            return path;
        }

        var quoted = new StringBuilder("\"");
        foreach (var c in path)
        {
            _ = c switch
            {
                '"' => quoted.Append("\\\""),
                '\\' => quoted.Append("\\\\"),
                '\n' => quoted.Append("\\n"),
                '\t' => quoted.Append("\\t"),
                _ when c < ' ' || c == '\x7f' => quoted.Append('\\').Append(Convert.ToString(c, 8).PadLeft(3, '0')),
                _ => quoted.Append(c),
            };
        }

        return quoted.Append('"').ToString();
    }

    private async Task<string?> TipAsync(CancellationToken cancellationToken)
    {
        var text = await RunGitAsync(["--git-dir", _repository, "for-each-ref", "--format=%(objectname)", Branch], cancellationToken).ConfigureAwait(false);
        var tip = text.Trim();
        return tip.Length == 0 ? null : tip;
    }

    private async Task<Dictionary<string, GitTreeEntry>> TreeAsync(string commit, CancellationToken cancellationToken)
    {
        var text = await RunGitAsync(["--git-dir", _repository, "ls-tree", "-r", "-z", "--full-tree", commit], cancellationToken).ConfigureAwait(false);
        var tree = new Dictionary<string, GitTreeEntry>(StringComparer.Ordinal);
        foreach (var record in text.Split('\0', StringSplitOptions.RemoveEmptyEntries))
        {
            // "<mode> SP <type> SP <object> TAB <path>"
            var tab = record.IndexOf('\t', StringComparison.Ordinal);
            var fields = tab < 0 ? [] : record[..tab].Split(' ');
            if (fields.Length != 3)
            {
                throw new BackupSourceException($"{Key}: git ls-tree printed a line it should not: {record}");
            }

            tree[record[(tab + 1)..]] = new GitTreeEntry(fields[0], fields[2]);
        }

        return tree;
    }

    private async Task<string> RunGitAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        await using var git = ChildProcess.Start(Spec(arguments), _logger);
        return await git.ReadAllTextAsync(cancellationToken).ConfigureAwait(false);
    }

    private static ChildProcessSpec Spec(IReadOnlyList<string> arguments) =>
        new("git", arguments, "git")
        {
            // Not the operator's ~/.gitconfig nor /etc/gitconfig: hooks, signing or an editor have no place here.
            Environment = new Dictionary<string, string?>
            {
                ["GIT_CONFIG_NOSYSTEM"] = "1",
                ["GIT_CONFIG_GLOBAL"] = "/dev/null",
                ["GIT_TERMINAL_PROMPT"] = "0",
            },
            InstallHint = $"install git (apt-get install git) or remove {Key}",
            MaxLoggedErrorLines = 20,
        };

    private static string SafeHost()
    {
        var host = System.Environment.MachineName;
        return host.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_') && host.Length > 0 ? host : "localhost";
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Config.GitMirrorCreated, LogLevel.Information, "config: created the git mirror {Repository} (bare, branch main)")]
        public static partial void Initialised(ILogger logger, string repository);

        [LoggerMessage(LogEvents.Config.GitMirrorCommitted, LogLevel.Information, "config: committed {Artifact} to the git mirror {Repository}: {Subject}")]
        public static partial void Committed(ILogger logger, string artifact, string repository, string subject);

        [LoggerMessage(LogEvents.Config.GitMirrorUnchanged, LogLevel.Debug, "config: {Artifact} is the same tree as the git mirror's last commit; nothing committed")]
        public static partial void Unchanged(ILogger logger, string artifact);
    }
}
