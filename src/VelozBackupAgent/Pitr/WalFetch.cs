using System.Globalization;
using System.Security.Cryptography;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Checksums;

namespace VelozBackupAgent.Pitr;

/// <summary>What <c>pg-wal-get</c> did with one file PostgreSQL asked for.</summary>
public enum WalFetchResult
{
    /// <summary>Written to %p, verified: exit 0.</summary>
    Restored,

    /// <summary>Not stored: PostgreSQL's end-of-WAL signal (exit 1).</summary>
    NotStored,

    /// <summary>
    /// Stored but unusable (checksum mismatch), or the store could not be asked: exit 126, which makes PostgreSQL abort
    /// recovery instead of ending it early at a wrong point, silently.
    /// </summary>
    Failed,
}

/// <summary>
/// PostgreSQL's restore_command (<c>veloz-backup pg-wal-get %f %p</c>): finds the WAL file %f — a segment stored whole,
/// or the pieces of one (written at their offsets and padded with zeros to a full segment, as PostgreSQL expects), a
/// timeline history file — checks every byte against its checksum, and writes it to %p through a temporary name. From a
/// staged directory (<see cref="FromStagedAsync"/>, what a restore prepared and verified beforehand) or from the stores
/// (local first, then S3).
/// </summary>
public static class WalFetch
{
    private const int Buffer = 1 << 20;

    /// <summary>The exit code PostgreSQL sees for <paramref name="result"/>.</summary>
    public static int ExitCode(WalFetchResult result) => result switch
    {
        WalFetchResult.Restored => 0,
        WalFetchResult.NotStored => 1,
        _ => 126,
    };

    /// <summary>
    /// From a directory a restore staged: <c>&lt;dir&gt;/&lt;file&gt;</c> with its <c>.sha256</c> sidecar, both verified
    /// against each other. Needs no configuration and no access to the stores (it runs as the server's user).
    /// </summary>
    public static async Task<(WalFetchResult Result, string Line)> FromStagedAsync(string directory, string file, string target, CancellationToken cancellationToken)
    {
        if (!IsWalName(file))
        {
            return (WalFetchResult.NotStored, $"{file} is not a WAL file name");
        }

        var path = Path.Combine(directory, file);
        var sidecar = path + Sha256Sidecar.Suffix;
        if (!File.Exists(path))
        {
            return (WalFetchResult.NotStored, $"{file}: not in {directory}");
        }

        try
        {
            var expected = Sha256Sidecar.Parse(await File.ReadAllTextAsync(sidecar, cancellationToken), file);
            var input = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, Buffer, FileOptions.Asynchronous | FileOptions.SequentialScan);
            await using (input)
            {
                await using var verifying = new VerifyingReadStream(input, expected, input.Length, path);
                await WriteAtomicallyAsync(target, async output => await verifying.CopyToAsync(output, Buffer, cancellationToken), cancellationToken);
            }

            return (WalFetchResult.Restored, $"{file}: restored from {directory}");
        }
        catch (Exception ex) when (ex is ArtifactIntegrityException or IOException or UnauthorizedAccessException)
        {
            return (WalFetchResult.Failed, $"{file}: {ex.Message}; recovery must not go on without it");
        }
    }

    /// <summary>From the stores in order (local, then S3): the first that holds the file decides.</summary>
    public static async Task<(WalFetchResult Result, string Line)> FromStoresAsync(IReadOnlyList<IArtifactStore> stores, string file, string target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stores);
        if (!IsWalName(file))
        {
            return (WalFetchResult.NotStored, $"{file} is not a WAL file name");
        }

        var problems = new List<string>();
        foreach (var store in stores)
        {
            try
            {
                if (await TryStoreAsync(store, file, target, cancellationToken) is { } line)
                {
                    return (WalFetchResult.Restored, line);
                }
            }
            catch (ArtifactIntegrityException ex)
            {
                return (WalFetchResult.Failed, $"{file} in {store.Target}: {ex.Message}; recovery must not go on without it");
            }
            catch (StoreException ex)
            {
                // An unreachable store cannot say "not there": asking the next one, and failing if none answers.
                problems.Add($"{store.Target}: {ex.Message}");
            }
            catch (Exception ex) when (ex is not OperationCanceledException and not OutOfMemoryException)
            {
                // Whatever else a store throws (an SDK's own checksum error, say) is no answer either; never a crash.
                problems.Add($"{store.Target}: {ex.Message.Split('\n')[0].Trim()}");
            }
        }

        return problems.Count == 0
            ? (WalFetchResult.NotStored, $"{file}: not stored")
            : (WalFetchResult.Failed, $"{file}: not found where it could be asked, and {string.Join("; ", problems)}; recovery must not end early on a store that did not answer");
    }

    /// <summary>
    /// Writes <paramref name="step"/>'s segment from <paramref name="store"/> into <paramref name="target"/>: the whole
    /// segment, or its pieces at their offsets padded to <paramref name="segmentSize"/>. Every piece is verified.
    /// Returns the SHA-256 of what was written.
    /// </summary>
    public static async Task<string> WriteSegmentAsync(IArtifactStore store, WalReplayStep step, long segmentSize, string target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(step);
        string? sha = null;
        await WriteAtomicallyAsync(target, async output =>
        {
            if (step.SegmentArtifact is { } whole)
            {
                await using var input = await store.OpenReadAsync(BackupKinds.Pitr, whole, cancellationToken);
                await input.CopyToAsync(output, Buffer, cancellationToken);
            }
            else
            {
                await WritePiecesAsync(store, step.Pieces, segmentSize, output, cancellationToken);
            }

            await output.FlushAsync(cancellationToken);
            output.Position = 0;
            sha = Convert.ToHexStringLower(await SHA256.HashDataAsync(output, cancellationToken));
        }, cancellationToken);
        return sha!;
    }

    /// <summary>Pieces written at their own offsets, in order (a later piece rewrites what it overlaps), then zeros to the segment's end.</summary>
    public static async Task WritePiecesAsync(IArtifactStore store, IReadOnlyList<string> pieces, long segmentSize, Stream output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(pieces);
        ArgumentNullException.ThrowIfNull(output);
        output.SetLength(0);
        foreach (var name in pieces)
        {
            var piece = PitrArtifact.Classify(name) ?? throw new ArgumentException($"{name} is not a piece of a WAL segment", nameof(pieces));
            output.Position = piece.PartialStart;
            await using var input = await store.OpenReadAsync(BackupKinds.Pitr, name, cancellationToken);
            await input.CopyToAsync(output, Buffer, cancellationToken);
        }

        output.SetLength(segmentSize);
    }

    private static async Task<string?> TryStoreAsync(IArtifactStore store, string file, string target, CancellationToken cancellationToken)
    {
        var artifact = PitrArtifact.Classify(file)!;
        if (await store.StatAsync(BackupKinds.Pitr, file, cancellationToken) is not null)
        {
            await WriteAtomicallyAsync(target, async output =>
            {
                await using var input = await store.OpenReadAsync(BackupKinds.Pitr, file, cancellationToken);
                await input.CopyToAsync(output, Buffer, cancellationToken);
            }, cancellationToken);
            return $"{file}: restored from {store.Target}";
        }

        if (artifact.Type != PitrArtifactType.Segment)
        {
            return null;
        }

        // Not stored whole: the pieces of the segment that was being written (the last one before a failure).
        var names = new List<string>();
        await foreach (var info in store.ListPrefixAsync(BackupKinds.Pitr, file + ".", cancellationToken))
        {
            names.Add(info.Name);
        }

        var pieces = names.Select(PitrArtifact.Classify).OfType<PitrArtifact>().Where(p => p.Type == PitrArtifactType.Partial).ToList();
        if (pieces.Count == 0)
        {
            return null;
        }

        var segmentSize = await SegmentSizeOfAsync(store, pieces, cancellationToken);
        var chain = StoredWal.Chain(pieces, (uint)segmentSize);
        if (chain.Count == 0)
        {
            return null;
        }

        await WriteAtomicallyAsync(target, output => WritePiecesAsync(store, [.. chain.Select(p => p.Name)], segmentSize, output, cancellationToken), cancellationToken);
        return string.Create(CultureInfo.InvariantCulture, $"{file}: assembled from {chain.Count} pieces in {store.Target} (the segment was still being written; {chain.Max(p => p.PartialEnd)} bytes of WAL)");
    }

    /// <summary>The segment size the first piece's long page header records (the piece at offset 0 holds it).</summary>
    private static async Task<long> SegmentSizeOfAsync(IArtifactStore store, IReadOnlyList<PitrArtifact> pieces, CancellationToken cancellationToken)
    {
        const long Default = 16L * 1024 * 1024;
        var first = pieces.Where(p => p.PartialStart == 0).OrderByDescending(p => p.PartialEnd).FirstOrDefault();
        if (first is null)
        {
            return Default;
        }

        var header = new byte[64];
        await using var input = await store.OpenReadAsync(BackupKinds.Pitr, first.Name, cancellationToken);
        var read = await input.ReadAtLeastAsync(header, header.Length, throwOnEndOfStream: false, cancellationToken);
        return WalPageHeader.TryRead(header.AsSpan(0, read), out var page) && page.SegmentSize is > 0 and { } size ? size : Default;
    }

    private static bool IsWalName(string file) =>
        PitrArtifact.Classify(file) is { Type: PitrArtifactType.Segment or PitrArtifactType.History or PitrArtifactType.BackupHistory };

    private static async Task WriteAtomicallyAsync(string target, Func<FileStream, Task> write, CancellationToken cancellationToken)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(target))!;
        var temp = Path.Combine(directory, "." + Path.GetFileName(target) + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp");
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, Options = FileOptions.Asynchronous };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            var output = new FileStream(temp, options);
            await using (output)
            {
                await write(output);
                await output.FlushAsync(cancellationToken);
                output.Flush(flushToDisk: true);
            }

            File.Move(temp, target, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }
}
