using System.Buffers;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using VelozBackupAgent.Storage.Checksums;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Storage.Local;

/// <summary>
/// The primary store: <c>&lt;root&gt;/&lt;kind&gt;/&lt;name&gt;</c> with a <c>&lt;name&gt;.sha256</c> sidecar,
/// laid out exactly like the seeds' <c>/backup/</c> so that <c>sha256sum -c</c> works by hand.
/// </summary>
/// <remarks>
/// A write goes to a hidden temporary file (<c>.&lt;name&gt;.&lt;pid&gt;.&lt;random&gt;.tmp</c>), is hashed while
/// it streams, fsynced, renamed into place without replacing anything, and only then gets its sidecar
/// (itself written to a temporary name and renamed); finally the directory is fsynced. A crash at any
/// instant therefore leaves a hidden temporary file, a data file without sidecar, or a complete
/// artifact: only the last is listed. <see cref="RemoveInterruptedWrites"/> clears the other two.
/// Files are created 0600 and directories 0700.
/// </remarks>
public sealed class LocalArtifactStore : IArtifactStore
{
    private const int BufferSize = 1 << 20;
    private const string TempSuffix = ".tmp";

    /// <summary>An artifact without a sidecar younger than this may be a write in progress, not debris.</summary>
    private static readonly TimeSpan OrphanGrace = TimeSpan.FromMinutes(10);

    private const UnixFileMode FileMode0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode DirMode0700 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private readonly string _root;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    /// <param name="root">The backup root (<c>Backup:LocalRoot</c>); it must exist.</param>
    /// <param name="timeProvider">Clock used to judge how old debris is; defaults to the system clock.</param>
    /// <param name="logger">Where cleanup and integrity warnings go.</param>
    public LocalArtifactStore(string root, TimeProvider? timeProvider = null, ILogger<LocalArtifactStore>? logger = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        _root = Path.GetFullPath(root);
        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <inheritdoc />
    public string Target => "local";

    internal ILogger Logger => _logger;

    /// <summary>
    /// Starts a group commit of new artifacts of <paramref name="kind"/> (see <see cref="LocalWriteBatch"/>): many
    /// artifacts made durable by one round of syncs and one directory fsync instead of three fsyncs each.
    /// </summary>
    public LocalWriteBatch BeginBatch(string kind)
    {
        ArtifactNames.ValidateKind(kind);
        return new LocalWriteBatch(this, kind, EnsureKindDirectory(kind));
    }

    /// <summary>The absolute backup root.</summary>
    public string Root => _root;

    /// <summary>The path an artifact has (or would have) on disk.</summary>
    public string PathOf(string kind, string name)
    {
        ArtifactNames.Validate(kind, name);
        return Path.Combine(_root, kind, name);
    }

    /// <inheritdoc />
    public async Task<ArtifactInfo> WriteAsync(string kind, string name, Stream content, string? expectedSha256 = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(content);
        ArtifactNames.Validate(kind, name);
        var dir = EnsureKindDirectory(kind);
        var final = Path.Combine(dir, name);
        var temp = Path.Combine(dir, TempName(name));
        var sidecarTemp = Path.Combine(dir, TempName(Sha256Sidecar.SidecarName(name)));

        try
        {
            var (size, sha) = await CopyHashedAsync(content, temp, final, cancellationToken);

            if (expectedSha256 is not null && !string.Equals(sha, expectedSha256, StringComparison.OrdinalIgnoreCase))
            {
                throw new ArtifactIntegrityException($"{kind}/{name}: the bytes read hash to {sha}, expected {expectedSha256}; nothing was stored");
            }

            var existing = StatCore(kind, name, out var orphan);
            if (existing is not null)
            {
                if (string.Equals(existing.Sha256, sha, StringComparison.Ordinal))
                {
                    return existing;
                }

                throw new ArtifactConflictException(
                    $"{final} already exists with different content (stored {existing.Sha256}, new {sha}); it was not overwritten");
            }

            if (orphan)
            {
                // A data file without a sidecar is the debris of a crash between the two renames: it is not a
                // backup, and the new complete write replaces it.
                LocalStoreLog.ReplacingOrphan(_logger, final);
                File.Delete(final);
            }

            await WriteDurablyAsync(sidecarTemp, Sha256Sidecar.FormatBytes(sha, name), cancellationToken);

            try
            {
                // overwrite: false never replaces an artifact another process stored in the meantime.
                File.Move(temp, final, overwrite: false);
            }
            catch (IOException) when (File.Exists(final))
            {
                throw new ArtifactConflictException($"{final} was created by another writer while this one was storing it; it was not overwritten");
            }

            File.Move(sidecarTemp, Path.Combine(dir, Sha256Sidecar.SidecarName(name)), overwrite: true);
            FileSync.FsyncDirectory(dir);
            return new ArtifactInfo(kind, name, size, sha);
        }
        catch (IOException ex) when (IsDiskFull(ex))
        {
            throw new StoreException($"local store is full: no space left on device writing {final}; nothing was stored and earlier backups are untouched", ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new StoreException($"local store is not writable: {ex.Message}", ex);
        }
        finally
        {
            TryDelete(temp);
            TryDelete(sidecarTemp);
        }
    }

    /// <inheritdoc />
    public Task<Stream> OpenReadAsync(string kind, string name, CancellationToken cancellationToken = default)
    {
        ArtifactNames.Validate(kind, name);
        var info = StatCore(kind, name, out _) ?? throw new ArtifactNotFoundException($"no artifact {kind}/{name} in the local store at {_root}");
        var stream = new FileStream(Path.Combine(_root, kind, name), FileMode.Open, FileAccess.Read, FileShare.Read, BufferSize, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return Task.FromResult<Stream>(new VerifyingReadStream(stream, info.Sha256!, stream.Length, $"local {kind}/{name}"));
    }

    /// <inheritdoc />
    public Task<ArtifactInfo?> StatAsync(string kind, string name, CancellationToken cancellationToken = default)
    {
        ArtifactNames.Validate(kind, name);
        return Task.FromResult(StatCore(kind, name, out _));
    }

    /// <inheritdoc />
    public IAsyncEnumerable<ArtifactInfo> ListAsync(string kind, CancellationToken cancellationToken = default) =>
        ListCoreAsync(kind, readChecksums: true, cancellationToken);

    /// <inheritdoc />
    /// <remarks>One directory listing and one stat per file; no sidecar is opened.</remarks>
    public IAsyncEnumerable<ArtifactInfo> ListWithoutChecksumsAsync(string kind, CancellationToken cancellationToken = default) =>
        ListCoreAsync(kind, readChecksums: false, cancellationToken);

    /// <inheritdoc />
    /// <remarks>One directory listing filtered by the prefix, one stat per match; no sidecar is opened.</remarks>
    public IAsyncEnumerable<ArtifactInfo> ListPrefixAsync(string kind, string namePrefix, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(namePrefix);
        if (namePrefix.IndexOfAny(['/', '\\', '*', '?', '[']) >= 0)
        {
            throw new ArgumentException($"invalid name prefix '{namePrefix}'", nameof(namePrefix));
        }

        return ListCoreAsync(kind, readChecksums: false, cancellationToken, namePrefix);
    }

    private async IAsyncEnumerable<ArtifactInfo> ListCoreAsync(string kind, bool readChecksums, [EnumeratorCancellation] CancellationToken cancellationToken, string namePrefix = "")
    {
        ArtifactNames.ValidateKind(kind);
        var dir = Path.Combine(_root, kind);
        if (!Directory.Exists(dir))
        {
            yield break;
        }

        var files = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var file in new DirectoryInfo(dir).EnumerateFiles(namePrefix + "*"))
        {
            files[file.Name] = file.Length;
        }

        foreach (var (fileName, size) in files)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (fileName.StartsWith('.') || fileName.EndsWith(Sha256Sidecar.Suffix, StringComparison.Ordinal)
                || !files.ContainsKey(Sha256Sidecar.SidecarName(fileName)))
            {
                continue;
            }

            if (!readChecksums)
            {
                yield return new ArtifactInfo(kind, fileName, size, null);
                continue;
            }

            string? sha;
            try
            {
                var text = await File.ReadAllTextAsync(Path.Combine(dir, Sha256Sidecar.SidecarName(fileName)), cancellationToken);
                sha = Sha256Sidecar.Parse(text, fileName);
            }
            catch (ArtifactIntegrityException ex)
            {
                // Listed with an unknown checksum so that verify finds and reports it, rather than hiding it.
                LocalStoreLog.BadSidecar(_logger, ex.Message);
                sha = null;
            }

            yield return new ArtifactInfo(kind, fileName, size, sha);
        }
    }

    /// <inheritdoc />
    public Task DeleteAsync(string kind, string name, CancellationToken cancellationToken = default)
    {
        ArtifactNames.Validate(kind, name);
        var dir = Path.Combine(_root, kind);
        if (!Directory.Exists(dir))
        {
            return Task.CompletedTask;
        }

        // The sidecar goes first: from that instant the artifact no longer counts, so a crash in between
        // leaves debris, never a listed artifact without its bytes.
        File.Delete(Path.Combine(dir, Sha256Sidecar.SidecarName(name)));
        File.Delete(Path.Combine(dir, name));
        FileSync.FsyncDirectory(dir);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Removes what interrupted writes left behind (<see cref="FindLeftovers"/>), in every kind or only in
    /// <paramref name="kind"/>. Returns the count.
    /// </summary>
    public int RemoveInterruptedWrites(string? kind = null) => RemoveLeftovers(kind).Count;

    /// <summary>Removes <see cref="FindLeftovers"/> of every kind or of <paramref name="kind"/>; returns what it removed.</summary>
    public IReadOnlyList<Leftover> RemoveLeftovers(string? kind = null)
    {
        var removed = new List<Leftover>();
        foreach (var leftover in FindLeftovers(kind))
        {
            LocalStoreLog.RemovingDebris(_logger, leftover.Path);
            if (TryDelete(leftover.Path))
            {
                removed.Add(leftover);
            }
        }

        return removed;
    }

    /// <summary>
    /// What interrupted writes left behind, in every kind or only in <paramref name="kind"/>: hidden temporary files
    /// whose writer is gone (its pid no longer runs, or now belongs to a process started after the file was last
    /// written), or older than a day; data files without a sidecar older than a grace period; sidecars without data.
    /// A temporary file of a live writer (another process's backup in progress) is never one.
    /// </summary>
    public IReadOnlyList<Leftover> FindLeftovers(string? kind = null)
    {
        var found = new List<Leftover>();
        if (!Directory.Exists(_root))
        {
            return found;
        }

        var now = _time.GetUtcNow();
        IEnumerable<DirectoryInfo> directories = kind is null
            ? new DirectoryInfo(_root).EnumerateDirectories().Where(d => !d.Name.StartsWith('.'))
            : [new DirectoryInfo(Path.Combine(_root, kind))];
        foreach (var kindDir in directories)
        {
            // Names first, from the listing alone; only a name that may be debris is looked at (one stat), so a kind
            // of 20,000 complete files costs one directory read, not 20,000 stat calls, at every run.
            HashSet<string> names;
            try
            {
                names = DirectoryNames.Files(kindDir.FullName);
            }
            catch (DirectoryNotFoundException)
            {
                continue;
            }

            FindLeftoversIn(kindDir.Name, kindDir.FullName, names, now, found);
        }

        return found;
    }

    /// <summary>
    /// Removes the leftovers of <paramref name="kind"/> among <paramref name="names"/>, a listing of its directory the
    /// caller has just made (<see cref="DirectoryNames.Files"/>), and takes what it removed out of the set: a caller that
    /// lists the directory anyway (the WAL source's full sync) needs no second listing.
    /// </summary>
    internal IReadOnlyList<Leftover> RemoveLeftovers(string kind, HashSet<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        var found = new List<Leftover>();
        FindLeftoversIn(kind, Path.Combine(_root, kind), names, _time.GetUtcNow(), found);
        var removed = new List<Leftover>();
        foreach (var leftover in found)
        {
            LocalStoreLog.RemovingDebris(_logger, leftover.Path);
            if (TryDelete(leftover.Path))
            {
                names.Remove(leftover.Name);
                removed.Add(leftover);
            }
        }

        return removed;
    }

    private static void FindLeftoversIn(string kind, string directory, HashSet<string> names, DateTimeOffset now, List<Leftover> found)
    {
        foreach (var fileName in names)
        {
            var temp = fileName.StartsWith('.') && fileName.EndsWith(TempSuffix, StringComparison.Ordinal);
            var sidecar = !temp && fileName.EndsWith(Sha256Sidecar.Suffix, StringComparison.Ordinal);
            var orphanData = !temp && !sidecar && !fileName.StartsWith('.') && !DirectoryNames.HasSidecar(names, fileName);
            var orphanSidecar = sidecar && !DirectoryNames.HasArtifact(names, fileName);
            if (!temp && !orphanData && !orphanSidecar)
            {
                continue;
            }

            var file = new FileInfo(Path.Combine(directory, fileName));
            if (!file.Exists)
            {
                // Renamed or removed since the listing (a write completing, a prune): not debris.
                continue;
            }

            var written = new DateTimeOffset(file.LastWriteTimeUtc, TimeSpan.Zero);
            bool debris;
            if (temp)
            {
                debris = TempOwner(fileName) is not { } pid || !Processes.IsWriterAlive(pid, written) || now - written > TimeSpan.FromDays(1);
            }
            else if (orphanData)
            {
                debris = now - written > OrphanGrace;
            }
            else
            {
                // A sidecar whose artifact is gone: a delete interrupted between its two unlinks.
                debris = true;
            }

            if (debris)
            {
                found.Add(new Leftover(kind, fileName, file.FullName, file.Length));
            }
        }
    }

    internal ArtifactInfo? StatCore(string kind, string name, out bool orphan)
    {
        orphan = false;
        var data = new FileInfo(Path.Combine(_root, kind, name));
        if (!data.Exists)
        {
            return null;
        }

        var sidecar = Path.Combine(_root, kind, Sha256Sidecar.SidecarName(name));
        if (!File.Exists(sidecar))
        {
            orphan = true;
            return null;
        }

        var sha = Sha256Sidecar.Parse(File.ReadAllText(sidecar, Encoding.UTF8), name);
        return new ArtifactInfo(kind, name, data.Length, sha);
    }

    private static async Task<(long Size, string Sha256)> CopyHashedAsync(Stream content, string temp, string final, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        long size = 0;
        try
        {
            await using var output = CreateNew0600(temp);
            int read;
            while ((read = await ReadFullAsync(content, buffer.AsMemory(0, BufferSize), cancellationToken)) > 0)
            {
                hash.AppendData(buffer, 0, read);
                await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                size += read;
            }

            output.Flush(flushToDisk: true);
        }
        catch (DirectoryNotFoundException ex)
        {
            throw new StoreException($"local store directory vanished while writing {final}", ex);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return (size, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    /// <summary>Fills the buffer as far as the source allows, so writes stay large even from a pipe.</summary>
    private static async Task<int> ReadFullAsync(Stream source, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var filled = 0;
        while (filled < buffer.Length)
        {
            var n = await source.ReadAsync(buffer[filled..], cancellationToken);
            if (n == 0)
            {
                break;
            }

            filled += n;
        }

        return filled;
    }

    private static async Task WriteDurablyAsync(string path, byte[] bytes, CancellationToken cancellationToken)
    {
        await using var stream = CreateNew0600(path);
        await stream.WriteAsync(bytes, cancellationToken);
        stream.Flush(flushToDisk: true);
    }

    internal static FileStream CreateNew0600(string path, bool asynchronous = true)
    {
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            Share = FileShare.None,
            BufferSize = 0,
            Options = asynchronous ? FileOptions.Asynchronous : FileOptions.None,
        };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = FileMode0600;
        }

        return new FileStream(path, options);
    }

    internal string EnsureKindDirectory(string kind)
    {
        if (!Directory.Exists(_root))
        {
            throw new StoreException($"local backup root does not exist: {_root}");
        }

        var dir = Path.Combine(_root, kind);
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(dir);
            return dir;
        }

        if (!Directory.Exists(dir))
        {
            Directory.CreateDirectory(dir, DirMode0700);
            FileSync.FsyncDirectory(_root);
        }
        else if ((File.GetUnixFileMode(dir) & ~DirMode0700) != 0)
        {
            LocalStoreLog.TighteningMode(_logger, dir);
            File.SetUnixFileMode(dir, DirMode0700);
        }

        return dir;
    }

    internal static string TempName(string name) =>
        string.Create(CultureInfo.InvariantCulture, $".{name}.{Environment.ProcessId}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}{TempSuffix}");

    private static int? TempOwner(string tempName)
    {
        // .<name>.<pid>.<random>.tmp
        var parts = tempName.Split('.');
        return parts.Length >= 4 && int.TryParse(parts[^3], NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null;
    }

    internal static bool IsDiskFull(IOException ex)
    {
        const int ENOSPC = 28;
        const int EDQUOT = 122;
        var code = ex.HResult & 0xFFFF;
        return code is ENOSPC or EDQUOT
               || ex.Message.Contains("No space left on device", StringComparison.OrdinalIgnoreCase)
               || ex.Message.Contains("quota", StringComparison.OrdinalIgnoreCase);
    }

    internal bool TryDelete(string path)
    {
        try
        {
            File.Delete(path);
            return true;
        }
        catch (IOException ex)
        {
            LocalStoreLog.CouldNotRemove(_logger, ex, path);
        }
        catch (UnauthorizedAccessException ex)
        {
            LocalStoreLog.CouldNotRemove(_logger, ex, path);
        }

        return false;
    }
}

/// <summary>A file an interrupted write left in the local store (<see cref="LocalArtifactStore.FindLeftovers"/>).</summary>
/// <param name="Kind">The kind's directory it is in.</param>
/// <param name="Name">Its file name (hidden temporary names start with '.').</param>
/// <param name="Path">Its full path.</param>
/// <param name="Size">Its size in bytes.</param>
public sealed record Leftover(string Kind, string Name, string Path, long Size);
