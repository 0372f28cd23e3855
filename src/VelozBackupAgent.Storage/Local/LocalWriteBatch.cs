using System.Buffers;
using System.Security.Cryptography;
using VelozBackupAgent.Storage.Checksums;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Storage.Local;

/// <summary>
/// A group commit of new artifacts into one kind of the local store: each <see cref="Stage"/> writes an artifact's
/// bytes and its sidecar to hidden temporary names (hashed while they are copied, synchronously, on the caller's
/// thread); <see cref="Commit"/> makes every staged file durable, renames each artifact into place (data first, then
/// its sidecar, never over an existing artifact) and fsyncs the directory once. Only what <see cref="Commit"/>
/// returns is stored; an artifact counts nowhere before that.
/// </summary>
/// <remarks>
/// The guarantees are those of <see cref="LocalArtifactStore.WriteAsync"/>: no file under a final name before its
/// bytes are durable, a data file only lists once its sidecar is beside it, so a crash at any instant leaves complete
/// artifacts, hidden temporary files or a data file without sidecar (the last two are debris that
/// <see cref="LocalArtifactStore.RemoveLeftovers(string?)"/> clears). What is cheaper is the syncing: every staged file has its
/// write-back started as soon as it is written, so the syncs of <see cref="Commit"/> mostly wait for I/O already under
/// way and share journal commits, and the directory is fsynced once per batch instead of once per artifact.
/// Disposing an uncommitted batch deletes its temporary files. Not thread-safe: one caller stages and commits.
/// </remarks>
public sealed class LocalWriteBatch : IDisposable
{
    private const int BufferSize = 1 << 20;

    /// <summary>Below this size an artifact is "small": its sync is the whole cost of storing it.</summary>
    internal const long SmallArtifactBytes = 1 << 20;

    /// <summary>
    /// From this many small artifacts in one commit, one <c>syncfs</c> replaces the per-file syncs (measured on the
    /// first sync of 10,000 × 16 KiB segments: 20,000 <c>fdatasync</c>s were the cost; bench/RESULTS-P1-first-sync.md).
    /// </summary>
    internal const int FilesystemSyncMinSmallArtifacts = 16;

    private readonly LocalArtifactStore _store;
    private readonly string _kind;
    private readonly string _dir;
    private readonly List<Staged> _staged = [];
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private byte[]? _buffer;
    private FilesystemSync? _filesystem;
    private bool _filesystemOpened;
    private bool _disposed;

    internal LocalWriteBatch(LocalArtifactStore store, string kind, string dir)
    {
        _store = store;
        _kind = kind;
        _dir = dir;
    }

    /// <summary>The kind the batch writes into.</summary>
    public string Kind => _kind;

    /// <summary>Artifacts staged and not yet committed.</summary>
    public int Count => _staged.Count;

    /// <summary>Bytes staged and not yet committed.</summary>
    public long Bytes { get; private set; }

    /// <summary>
    /// True when <see cref="Commit"/> will make the staged files durable by one <c>syncfs</c> (Linux, at least
    /// <see cref="FilesystemSyncMinSmallArtifacts"/> small artifacts staged) rather than one sync per file.
    /// </summary>
    public bool UsesFilesystemSync =>
        _filesystem is not null && ChoosesFilesystemSync(_staged.Count(s => s.Size < SmallArtifactBytes));

    /// <summary>The rule: enough small artifacts in one commit that their per-file syncs would dominate.</summary>
    internal static bool ChoosesFilesystemSync(int smallArtifacts) => smallArtifacts >= FilesystemSyncMinSmallArtifacts;

    /// <summary>
    /// Copies <paramref name="content"/> to the end (synchronous reads) into a temporary file, with its sidecar beside
    /// it, and returns its size and SHA-256. Nothing is stored until <see cref="Commit"/>. An exception from
    /// <paramref name="content"/> propagates as it is, after this artifact's temporary files were removed; the batch
    /// stays usable for the others.
    /// </summary>
    public ArtifactInfo Stage(string name, Stream content)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(content);
        ArtifactNames.Validate(_kind, name);
        if (_staged.Exists(s => s.Name == name))
        {
            throw new ArgumentException($"{_kind}/{name} is already staged in this batch", nameof(name));
        }

        var final = Path.Combine(_dir, name);
        var temp = Path.Combine(_dir, LocalArtifactStore.TempName(name));
        var sidecarTemp = Path.Combine(_dir, LocalArtifactStore.TempName(Sha256Sidecar.SidecarName(name)));
        _buffer ??= ArrayPool<byte>.Shared.Rent(BufferSize);
        if (!_filesystemOpened && OperatingSystem.IsLinux())
        {
            // Before the first write: syncfs reports write-back errors that happen after this descriptor was opened.
            _filesystem = FilesystemSync.TryOpen(_dir);
            _filesystemOpened = true;
        }

        var committed = false;
        try
        {
            long size = 0;
            using (var output = LocalArtifactStore.CreateNew0600(temp, asynchronous: false))
            {
                int read;
                while ((read = ReadFull(content, _buffer.AsSpan(0, BufferSize))) > 0)
                {
                    _hash.AppendData(_buffer, 0, read);
                    output.Write(_buffer, 0, read);
                    size += read;
                }

                // A large file's write-back starts now, to overlap with staging the next; small ones are left to the
                // one syncfs of the commit (starting each would be a syscall and a tiny I/O per file).
                if (size >= SmallArtifactBytes)
                {
                    FileSync.StartWriteback(output.SafeFileHandle);
                }
            }

            var sha = Convert.ToHexStringLower(_hash.GetHashAndReset());
            using (var sidecar = LocalArtifactStore.CreateNew0600(sidecarTemp, asynchronous: false))
            {
                sidecar.Write(Sha256Sidecar.FormatBytes(sha, name));
                if (size >= SmallArtifactBytes)
                {
                    FileSync.StartWriteback(sidecar.SafeFileHandle);
                }
            }

            _staged.Add(new Staged(name, temp, sidecarTemp, size, sha));
            Bytes += size;
            committed = true;
            return new ArtifactInfo(_kind, name, size, sha);
        }
        catch (DirectoryNotFoundException ex)
        {
            throw new StoreException($"local store directory vanished while writing {final}", ex);
        }
        catch (IOException ex) when (LocalArtifactStore.IsDiskFull(ex))
        {
            throw new StoreException($"local store is full: no space left on device writing {final}; nothing was stored and earlier backups are untouched", ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new StoreException($"local store is not writable: {ex.Message}", ex);
        }
        finally
        {
            if (!committed)
            {
                _hash.GetHashAndReset();
                _store.TryDelete(temp);
                _store.TryDelete(sidecarTemp);
            }
        }
    }

    /// <summary>
    /// Makes every staged artifact durable and puts it in place: syncs all staged files, renames each (data, then
    /// sidecar), fsyncs the directory once. Returns one outcome per staged artifact, in staging order; an artifact
    /// counts as stored only from here on. A name another writer stored meanwhile is not overwritten: the same bytes
    /// are <see cref="LocalBatchOutcome.AlreadyStored"/>, other bytes a <see cref="LocalBatchOutcome.Conflict"/>.
    /// When this throws (a sync, a rename or the directory fsync failed) none of the batch counts as stored; what was
    /// renamed before the failure is complete (its bytes were durable first) and is recognised by the next run.
    /// </summary>
    public IReadOnlyList<LocalBatchOutcome> Commit()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var outcomes = new List<LocalBatchOutcome>(_staged.Count);
        if (_staged.Count == 0)
        {
            return outcomes;
        }

        try
        {
            // 1. Bytes durable: every temporary file. Many small files: one syncfs of the filesystem (one journal
            //    commit for all); otherwise each file (the write-back of large ones was started at staging).
            if (OperatingSystem.IsLinux() && UsesFilesystemSync)
            {
                _filesystem!.Sync();
            }
            else
            {
                foreach (var s in _staged)
                {
                    FileSync.SyncData(s.Temp);
                    FileSync.SyncData(s.SidecarTemp);
                }
            }

            // 2. Into place, never over an existing artifact.
            foreach (var s in _staged)
            {
                outcomes.Add(Place(s));
            }

            // 3. The renames durable: one directory fsync for the whole batch.
            FileSync.FsyncDirectory(_dir);
        }
        catch (IOException ex) when (LocalArtifactStore.IsDiskFull(ex))
        {
            throw new StoreException($"local store is full: no space left on device committing {_staged.Count} artifacts in {_dir}; none of them counts as stored and earlier backups are untouched", ex);
        }
        catch (IOException ex)
        {
            throw new StoreException($"local store could not commit {_staged.Count} artifacts in {_dir}: {ex.Message}; none of them counts as stored", ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new StoreException($"local store is not writable: {ex.Message}", ex);
        }
        finally
        {
            DeleteStaged();
        }

        return outcomes;
    }

    private LocalBatchOutcome Place(Staged s)
    {
        var final = Path.Combine(_dir, s.Name);
        var existing = StatOrDamaged(s.Name, out var orphan);
        if (existing is not null)
        {
            return Judge(s, existing);
        }

        if (orphan)
        {
            LocalStoreLog.ReplacingOrphan(_store.Logger, final);
            File.Delete(final);
        }

        try
        {
            File.Move(s.Temp, final, overwrite: false);
        }
        catch (IOException) when (File.Exists(final))
        {
            // Created by another writer between the stat and the rename.
            return StatOrDamaged(s.Name, out _) is { } now
                ? Judge(s, now)
                : new LocalBatchOutcome(s.Name, null, new ArtifactInfo(_kind, s.Name, new FileInfo(final).Length, null));
        }

        File.Move(s.SidecarTemp, Path.Combine(_dir, Sha256Sidecar.SidecarName(s.Name)), overwrite: true);
        return new LocalBatchOutcome(s.Name, new ArtifactInfo(_kind, s.Name, s.Size, s.Sha256), null);
    }

    /// <summary>The stored artifact; one whose sidecar is damaged has a null checksum (never equal to ours).</summary>
    private ArtifactInfo? StatOrDamaged(string name, out bool orphan)
    {
        try
        {
            return _store.StatCore(_kind, name, out orphan);
        }
        catch (ArtifactIntegrityException)
        {
            orphan = false;
            return new ArtifactInfo(_kind, name, new FileInfo(Path.Combine(_dir, name)).Length, null);
        }
    }

    private static LocalBatchOutcome Judge(Staged s, ArtifactInfo existing) =>
        string.Equals(existing.Sha256, s.Sha256, StringComparison.Ordinal)
            ? new LocalBatchOutcome(s.Name, existing, null) { AlreadyStored = true }
            : new LocalBatchOutcome(s.Name, null, existing);

    private static int ReadFull(Stream source, Span<byte> buffer)
    {
        var filled = 0;
        while (filled < buffer.Length)
        {
            var n = source.Read(buffer[filled..]);
            if (n == 0)
            {
                break;
            }

            filled += n;
        }

        return filled;
    }

    private void DeleteStaged()
    {
        foreach (var s in _staged)
        {
            if (File.Exists(s.Temp))
            {
                _store.TryDelete(s.Temp);
            }

            if (File.Exists(s.SidecarTemp))
            {
                _store.TryDelete(s.SidecarTemp);
            }
        }

        _staged.Clear();
        Bytes = 0;
    }

    /// <summary>Deletes the temporary files of whatever was staged and not committed.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        DeleteStaged();
        if (OperatingSystem.IsLinux())
        {
            _filesystem?.Dispose();
        }

        _hash.Dispose();
        if (_buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
        }
    }

    private sealed record Staged(string Name, string Temp, string SidecarTemp, long Size, string Sha256);
}

/// <summary>What <see cref="LocalWriteBatch.Commit"/> did with one staged artifact.</summary>
/// <param name="Name">The artifact's name.</param>
/// <param name="Stored">The stored artifact (durable, listed), or null when another one was in the way.</param>
/// <param name="Conflict">The artifact another writer stored under this name with other bytes (left untouched); null otherwise.</param>
public sealed record LocalBatchOutcome(string Name, ArtifactInfo? Stored, ArtifactInfo? Conflict)
{
    /// <summary>The name already held these very bytes (stored by another writer meanwhile): nothing was written.</summary>
    public bool AlreadyStored { get; init; }
}
