using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Secrets;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Restore;

/// <summary>How an archive compares with the live directory it was taken from.</summary>
/// <param name="Files">Regular files in the archive.</param>
/// <param name="Bytes">Their bytes.</param>
/// <param name="Differ">Files whose live content differs now (changed since the backup).</param>
/// <param name="Missing">Files the live directory no longer has.</param>
public sealed record ArchiveComparison(int Files, long Bytes, IReadOnlyList<string> Differ, IReadOnlyList<string> Missing);

/// <summary>
/// Restores <c>config_*.tar.gz</c> and <c>secrets_*.tar.gz.gpg</c>: the verified artifact is decrypted (secrets:
/// <c>gpg --decrypt</c> with the agent's keyring, streamed, never a plaintext archive on disk), gunzipped and
/// extracted by <see cref="SafeTarExtractor"/> into a staging directory inside the target, then moved into place.
/// Configuration keeps the archive's modes (and owners when run as root, like <c>tar -xpf</c>); secrets become
/// 0600 files in 0700 directories, owned by <c>Backup:Restore:Owner</c> when set.
/// </summary>
public sealed partial class ArchiveRestorer
{
    private readonly BackupOptions _options;
    private readonly ILogger _logger;

    public ArchiveRestorer(BackupOptions options, ILogger logger)
    {
        _options = options;
        _logger = logger;
    }

    /// <summary>Extracts a configuration archive beside <paramref name="target"/> (default Backup:Config:Root), ready to move into place.</summary>
    public async Task<IPreparedRestore> PrepareConfigAsync(StagedArtifact archive, string? target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(archive);
        var directory = target ?? _options.Config.Root;
        var clock = Stopwatch.StartNew();
        var input = new FileStream(archive.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        await using (input.ConfigureAwait(false))
        {
            var tree = await ExtractAsync(input, directory, new TarExtractOptions { PreserveOwners = true }, archive.Source.Name, cancellationToken).ConfigureAwait(false);
            return new PreparedArchive(this, BackupKinds.Config, archive.Source.Name, directory, tree, null, clock.Elapsed);
        }
    }

    /// <summary>Decrypts and extracts a secrets archive beside <paramref name="target"/> (default Backup:Secrets:Directory), ready to move into place.</summary>
    public async Task<IPreparedRestore> PrepareSecretsAsync(StagedArtifact archive, string? target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(archive);
        var directory = target ?? _options.Secrets.Directory;
        var owner = await ResolveOwnerAsync(_options.Restore.Owner, _logger, cancellationToken).ConfigureAwait(false);
        var clock = Stopwatch.StartNew();
        var options = new TarExtractOptions
        {
            PreserveOwners = true,
            FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute,
            ImpliedDirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute,
            Owner = owner,
        };
        var tree = await DecryptAndExtractAsync(archive, directory, options, cancellationToken).ConfigureAwait(false);
        return new PreparedArchive(this, BackupKinds.Secrets, archive.Source.Name, directory, tree, owner, clock.Elapsed);
    }

    private sealed class PreparedArchive(ArchiveRestorer restorer, string kind, string artifact, string directory, StagedTree tree, (int Uid, int Gid)? owner, TimeSpan prepared) : IPreparedRestore
    {
        public string Kind => kind;

        public string Artifact => artifact;

        public Task<RestoreResult> CommitAsync(CancellationToken cancellationToken)
        {
            var clock = Stopwatch.StartNew();
            tree.Commit();
            if (kind == BackupKinds.Secrets && !OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                if (owner is { } o)
                {
                    Owners.LChown(directory, o.Uid, o.Gid);
                }
            }

            var files = tree.Entries.Count(e => e.Type == System.Formats.Tar.TarEntryType.RegularFile);
            var target = Path.GetFullPath(directory);
            Log.Restored(restorer._logger, kind, artifact, target, files, tree.FileBytes);
            return Task.FromResult(new RestoreResult(kind, artifact, target,
                string.Create(CultureInfo.InvariantCulture, $"{target}: {files} files, {tree.FileBytes} bytes"), prepared, clock.Elapsed, []));
        }

        public ValueTask DisposeAsync()
        {
            tree.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>
    /// Decrypts a secrets archive into a staging directory inside <paramref name="directory"/> without moving
    /// anything into place; the caller compares and disposes (the test restore of verify).
    /// </summary>
    public async Task<StagedTree> DecryptAndExtractAsync(StagedArtifact archive, string directory, TarExtractOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(archive);
        var gpg = new Gpg(_options.Secrets, _logger);
        await using var child = StartDecrypting(gpg, archive, cancellationToken);
        try
        {
            return await ExtractAsync(child.Output, directory, options, archive.Source.Name, cancellationToken).ConfigureAwait(false);
        }
        catch (BackupSourceException ex)
        {
            throw CannotDecrypt(gpg, archive, ex);
        }
    }

    /// <summary>Extracts a configuration archive into a staging directory inside <paramref name="directory"/>, not moved into place.</summary>
    public static async Task<StagedTree> ExtractConfigAsync(StagedArtifact archive, string directory, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(archive);
        var input = new FileStream(archive.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        await using (input.ConfigureAwait(false))
        {
            return await ExtractAsync(input, directory, new TarExtractOptions(), archive.Source.Name, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Decrypts a secrets archive and compares every file with <paramref name="liveDirectory"/> by SHA-256, in a
    /// stream: no plaintext touches the disk. Hostile entry names are refused as in a restore.
    /// </summary>
    public async Task<ArchiveComparison> CompareSecretsAsync(StagedArtifact archive, string liveDirectory, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(archive);
        var gpg = new Gpg(_options.Secrets, _logger);
        await using var child = StartDecrypting(gpg, archive, cancellationToken);
        try
        {
            var gzip = new GZipStream(child.Output, CompressionMode.Decompress, leaveOpen: true);
            await using (gzip.ConfigureAwait(false))
            {
                var reader = new System.Formats.Tar.TarReader(gzip, leaveOpen: true);
                await using (reader.ConfigureAwait(false))
                {
                    int files = 0;
                    long bytes = 0;
                    var differ = new List<string>();
                    var missing = new List<string>();
                    while (await reader.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false) is { } entry)
                    {
                        var name = SafeTarExtractor.NormalizeName(entry.Name, archive.Source.Name);
                        if (entry.EntryType is not (System.Formats.Tar.TarEntryType.RegularFile or System.Formats.Tar.TarEntryType.V7RegularFile) || entry.DataStream is null)
                        {
                            continue;
                        }

                        files++;
                        bytes += entry.Length;
                        var archived = Convert.ToHexStringLower(await System.Security.Cryptography.SHA256.HashDataAsync(entry.DataStream, cancellationToken).ConfigureAwait(false));
                        var live = Path.Combine(liveDirectory, name);
                        if (!File.Exists(live))
                        {
                            missing.Add(name);
                        }
                        else if (await RestoreSources.HashFileAsync(live, cancellationToken).ConfigureAwait(false) != archived)
                        {
                            differ.Add(name);
                        }
                    }

                    await gzip.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
                    return new ArchiveComparison(files, bytes, differ, missing);
                }
            }
        }
        catch (BackupSourceException ex)
        {
            throw CannotDecrypt(gpg, archive, ex);
        }
        catch (InvalidDataException ex)
        {
            throw new RestoreIntegrityException($"{archive.Source.Name}: not a readable archive after decryption: {ex.Message}", ex);
        }
    }

    /// <summary>Compares the files of a staged tree with <paramref name="liveDirectory"/> by SHA-256.</summary>
    public static async Task<ArchiveComparison> CompareAsync(StagedTree tree, string liveDirectory, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tree);
        var differ = new List<string>();
        var missing = new List<string>();
        var files = tree.Entries.Where(e => e.Type == System.Formats.Tar.TarEntryType.RegularFile).ToList();
        foreach (var entry in files)
        {
            var live = Path.Combine(liveDirectory, entry.Path);
            if (!File.Exists(live))
            {
                missing.Add(entry.Path);
            }
            else if (await RestoreSources.HashFileAsync(live, cancellationToken).ConfigureAwait(false)
                     != await RestoreSources.HashFileAsync(tree.StagedFile(entry.Path), cancellationToken).ConfigureAwait(false))
            {
                differ.Add(entry.Path);
            }
        }

        return new ArchiveComparison(files.Count, files.Sum(f => f.Size), differ, missing);
    }

    /// <summary>Starts <c>gpg --decrypt</c> fed from the staged artifact; its output is the plaintext (the tar.gz, or a globals script).</summary>
    internal static ChildProcess StartDecrypting(Gpg gpg, StagedArtifact archive, CancellationToken cancellationToken)
    {
        var child = gpg.StartDecryption();
        var path = archive.Path;
        child.PumpInput(async (stdin, token) =>
        {
            var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
            await using (file.ConfigureAwait(false))
            {
                await file.CopyToAsync(stdin, token).ConfigureAwait(false);
            }
        }, cancellationToken);
        return child;
    }

    private static RestoreException CannotDecrypt(Gpg gpg, StagedArtifact archive, BackupSourceException ex) =>
        new($"gpg cannot decrypt {archive.Source.Name} with {gpg.Keyring}: {ex.Message}; import the private key of one of its recipients (gpg --import) or set Backup:Secrets:GnupgHome", ex);

    private static async Task<StagedTree> ExtractAsync(Stream compressed, string directory, TarExtractOptions options, string label, CancellationToken cancellationToken)
    {
        var gzip = new GZipStream(compressed, CompressionMode.Decompress, leaveOpen: true);
        await using (gzip.ConfigureAwait(false))
        {
            try
            {
                var tree = await SafeTarExtractor.ExtractAsync(gzip, directory, options, label, cancellationToken).ConfigureAwait(false);
                // Read to the end, so a failing producer (gpg) reports and trailing garbage is noticed.
                await gzip.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
                return tree;
            }
            catch (InvalidDataException ex)
            {
                throw new RestoreIntegrityException($"{label}: not a readable gzip archive: {ex.Message}", ex);
            }
        }
    }

    /// <summary>Resolves <c>user[:group]</c> to numeric ids with <c>getent</c> (so NSS users work too); null when not set or not root.</summary>
    internal static async Task<(int Uid, int Gid)?> ResolveOwnerAsync(string? owner, ILogger logger, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(owner) || !Owners.IsRoot)
        {
            return null;
        }

        var parts = owner.Split(':', 2);
        var passwd = await GetentAsync("passwd", parts[0], logger, cancellationToken).ConfigureAwait(false)
            ?? throw new RestoreException($"Backup:Restore:Owner: no such user '{parts[0]}'");
        var fields = passwd.Split(':');
        var uid = int.Parse(fields[2], CultureInfo.InvariantCulture);
        var gid = int.Parse(fields[3], CultureInfo.InvariantCulture);
        if (parts.Length == 2)
        {
            var group = await GetentAsync("group", parts[1], logger, cancellationToken).ConfigureAwait(false)
                ?? throw new RestoreException($"Backup:Restore:Owner: no such group '{parts[1]}'");
            gid = int.Parse(group.Split(':')[2], CultureInfo.InvariantCulture);
        }

        return (uid, gid);
    }

    private static async Task<string?> GetentAsync(string database, string key, ILogger logger, CancellationToken cancellationToken)
    {
        try
        {
            await using var child = ChildProcess.Start(new ChildProcessSpec("getent", [database, key], "getent"), logger);
            var line = (await child.ReadAllTextAsync(cancellationToken).ConfigureAwait(false)).Trim();
            return line.Length == 0 ? null : line.Split('\n')[0];
        }
        catch (BackupSourceException)
        {
            return null;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Restore.ArchiveRestored, LogLevel.Information, "restored {Kind} from {Artifact} into {Target}: {Files} files, {Bytes} bytes")]
        public static partial void Restored(ILogger logger, string kind, string artifact, string target, int files, long bytes);
    }
}
