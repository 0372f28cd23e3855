using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Pitr;

/// <summary>A WAL file the archive stored (or already held with the same bytes).</summary>
/// <param name="Artifact">The stored artifact.</param>
/// <param name="Type">Segment, piece, history or backup history.</param>
/// <param name="File">The segment it belongs to (null for a history file).</param>
/// <param name="End">The WAL position its content reaches (segment or piece end); Invalid for history files.</param>
public sealed record ArchivedWal(ArtifactInfo Artifact, PitrArtifactType Type, WalFileName? File, Lsn End);

/// <summary>A WAL file that cannot be stored, with the reason as a metric label.</summary>
public sealed class WalArchiveException : Exception
{
    public WalArchiveException()
    {
    }

    public WalArchiveException(string message)
        : base(message)
    {
    }

    public WalArchiveException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public WalArchiveException(PitrFailure failure, string message, Exception? innerException = null)
        : base(message, innerException) => Failure = failure;

    public PitrFailure Failure { get; } = PitrFailure.Other;
}

/// <summary>
/// The server's WAL in the store (kind <c>pitr</c>): complete segments and timeline history files under their own
/// names, the segment still being written as pieces (<c>&lt;segment&gt;.&lt;start&gt;-&lt;end&gt;.partial</c>), all
/// through the <see cref="BackupRepository"/> (checksummed, durable before they count, queued for S3). Shared by the
/// receiver and <c>pg-wal-push</c>. A segment is checked before it is stored (page headers: its own position, the
/// cluster's system identifier), so WAL of another cluster never mixes in; a name already stored with other bytes
/// is refused, never overwritten.
/// </summary>
public sealed partial class WalArchive
{
    private const int PageSize = 8192;
    private readonly BackupRepository _repository;
    private readonly string _stateDirectory;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private ulong? _identity;

    public WalArchive(BackupOptions options, BackupRepository repository, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _repository = repository;
        _stateDirectory = Path.Combine(options.StateDirectory, "pitr");
        _logger = logger;
    }

    /// <summary>The local store.</summary>
    public LocalArtifactStore Local => _repository.Local;

    /// <summary>The directory of the kind in the local store.</summary>
    public string Directory => System.IO.Path.Combine(Local.Root, BackupKinds.Pitr);

    /// <summary>Where the receiver's spool and state live: <c>&lt;LocalRoot&gt;/.state/pitr</c>.</summary>
    public string StateDirectory => _stateDirectory;

    /// <summary>Raised for every WAL file stored (not for ones already held), for the metrics' inventory.</summary>
    public event EventHandler<ArchivedWal>? Stored;

    /// <summary>Raised with the name of every piece removed because its complete segment is stored.</summary>
    public event EventHandler<string>? Removed;

    /// <summary>
    /// The system identifier of the cluster whose WAL and base backups this store holds; null while it holds none.
    /// Remembered in <c>.state/pitr/system-identifier</c>, else read from the newest base backup's metadata or the
    /// first page of a stored segment.
    /// </summary>
    public async Task<ulong?> IdentityAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_identity is not null)
            {
                return _identity;
            }
        }

        var file = System.IO.Path.Combine(_stateDirectory, "system-identifier");
        ulong? found = null;
        if (File.Exists(file) && ulong.TryParse((await File.ReadAllTextAsync(file, cancellationToken)).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var remembered))
        {
            found = remembered;
        }
        else if (System.IO.Directory.Exists(Directory))
        {
            found = await FromBaseInfoAsync(cancellationToken) ?? FromSegment();
            if (found is { } id)
            {
                RememberIdentity(id);
            }
        }

        lock (_gate)
        {
            _identity ??= found;
            return _identity;
        }
    }

    /// <summary>Records the cluster this store archives (the first WAL or base backup stored decides it).</summary>
    public void RememberIdentity(ulong systemIdentifier)
    {
        PrivateDirectory.Create(_stateDirectory);
        PrivateFiles.ReplaceAtomically(System.IO.Path.Combine(_stateDirectory, "system-identifier"), systemIdentifier.ToString(CultureInfo.InvariantCulture) + "\n");
        lock (_gate)
        {
            _identity = systemIdentifier;
        }
    }

    /// <summary>
    /// Null when <paramref name="serverIdentifier"/> is the cluster this store archives (or the store is empty);
    /// otherwise the one line that says what to do.
    /// </summary>
    public async Task<string?> CheckIdentityAsync(ulong serverIdentifier, string where, CancellationToken cancellationToken)
    {
        var stored = await IdentityAsync(cancellationToken);
        if (stored is null || stored == serverIdentifier)
        {
            return null;
        }

        return string.Create(CultureInfo.InvariantCulture,
            $"{where} is PostgreSQL cluster {serverIdentifier}, but {Directory} holds WAL and base backups of cluster {stored} (a new initdb, a restored dump, or another server): " +
            $"its WAL can never replay onto those base backups, so nothing was stored. Move {Directory} (and {System.IO.Path.Combine(_stateDirectory, "system-identifier")}) aside to start a new archive for this cluster, or point Backup:Database:ConnectionString at the right server");
    }

    /// <summary>
    /// Stores a complete WAL file: a segment, a timeline history file, a backup history file, or PostgreSQL's own
    /// <c>X.partial</c> (archived at promotion; stored as a piece covering the whole segment). Returns the stored
    /// artifact, also when the same bytes were already stored; throws <see cref="WalArchiveException"/> for a file
    /// that is not what its name says, belongs to another cluster, or differs from what is stored under its name.
    /// </summary>
    public async Task<ArchivedWal> StoreFileAsync(string path, long segmentSize, CancellationToken cancellationToken)
    {
        var fileName = System.IO.Path.GetFileName(path);
        var (artifactName, type, file) = Normalise(fileName, segmentSize);
        try
        {
            var input = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 20, FileOptions.Asynchronous | FileOptions.SequentialScan);
            await using (input)
            {
                var end = Lsn.Invalid;
                switch (type)
                {
                    case PitrArtifactType.Segment:
                        await CheckSegmentAsync(input, file!.Value, segmentSize, fileName, cancellationToken);
                        end = file.Value.StartLsn(segmentSize) + segmentSize;
                        break;
                    case PitrArtifactType.Partial:
                        end = file!.Value.StartLsn(segmentSize) + Math.Min(input.Length, segmentSize);
                        break;
                    case PitrArtifactType.History:
                        CheckHistory(input, fileName);
                        break;
                    default:
                        break;
                }

                input.Position = 0;
                var stored = await StoreAsync(artifactName, input, cancellationToken);
                var result = new ArchivedWal(stored.Info, type, file, end);
                if (stored.New)
                {
                    Stored?.Invoke(this, result);
                }

                return result;
            }
        }
        catch (FileNotFoundException ex)
        {
            throw new WalArchiveException(PitrFailure.Other, $"{path} does not exist", ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new WalArchiveException(PitrFailure.Other, $"{path} cannot be read: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// Stores bytes [<paramref name="start"/>, <paramref name="end"/>) of the segment being written (the spool's
    /// <c>.partial</c> file) as a piece. Every page header that begins in the range is checked first, so zeros or
    /// another segment's bytes are never stored as WAL.
    /// </summary>
    public async Task<ArchivedWal> StorePieceAsync(string path, WalFileName file, uint start, uint end, long segmentSize, CancellationToken cancellationToken)
    {
        if (end <= start || end > segmentSize)
        {
            throw new ArgumentOutOfRangeException(nameof(end), $"piece [{start}, {end}) is not inside a segment of {segmentSize} bytes");
        }

        var name = PitrArtifact.PieceName(file, start, end);
        var input = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16, FileOptions.Asynchronous);
        await using (input)
        {
            await CheckPieceHeadersAsync(input, file, start, end, segmentSize, cancellationToken);
            input.Position = start;
            await using var range = new RangeStream(input, end - start);
            var stored = await StoreAsync(name, range, cancellationToken);
            var result = new ArchivedWal(stored.Info, PitrArtifactType.Partial, file, file.StartLsn(segmentSize) + end);
            if (stored.New)
            {
                Stored?.Invoke(this, result);
            }

            return result;
        }
    }

    /// <summary>
    /// How far the stored pieces of <paramref name="file"/> reach contiguously from its start (0: none), by the rule a
    /// restore assembles them with (<see cref="StoredWal.Chain"/>: pieces may overlap, a later one rewriting the bytes it
    /// covers again).
    /// </summary>
    public uint StoredPieceEnd(WalFileName file, long segmentSize)
    {
        var chain = StoredWal.Chain(LocalPieces(file), (uint)segmentSize);
        return chain.Count == 0 ? 0 : chain[^1].IsWholeSegment ? (uint)segmentSize : chain[^1].PartialEnd;
    }

    /// <summary>Deletes the local pieces of a segment whose complete copy is now stored (they hold nothing more).</summary>
    public async Task<int> DeleteSupersededPiecesAsync(WalFileName file, CancellationToken cancellationToken)
    {
        var deleted = 0;
        foreach (var piece in LocalPieces(file))
        {
            await Local.DeleteAsync(BackupKinds.Pitr, piece.Name, cancellationToken);
            Removed?.Invoke(this, piece.Name);
            deleted++;
        }

        return deleted;
    }

    private List<PitrArtifact> LocalPieces(WalFileName file)
    {
        if (!System.IO.Directory.Exists(Directory))
        {
            return [];
        }

        return System.IO.Directory.EnumerateFiles(Directory, file + ".*.partial")
            .Select(p => PitrArtifact.Classify(System.IO.Path.GetFileName(p)))
            .Where(a => a is { Type: PitrArtifactType.Partial } && a.File == file && File.Exists(System.IO.Path.Combine(Directory, a.Name + ".sha256")))
            .Select(a => a!)
            .ToList();
    }

    private async Task<(ArtifactInfo Info, bool New)> StoreAsync(string name, Stream content, CancellationToken cancellationToken)
    {
        var before = await Local.StatAsync(BackupKinds.Pitr, name, cancellationToken);
        try
        {
            var info = await _repository.StoreAsync(BackupKinds.Pitr, name, content, cancellationToken: cancellationToken);
            return (info, before is null);
        }
        catch (ArtifactConflictException ex)
        {
            Log.Conflict(_logger, name, ex.Message);
            throw new WalArchiveException(PitrFailure.Conflict,
                $"{name} is already stored with other bytes ({ex.Message}); the stored copy was kept and the new one NOT stored: find out why (two clusters archiving into one store?) before archiving goes on", ex);
        }
        catch (StoreException ex) when (ex.Message.Contains("no space left", StringComparison.OrdinalIgnoreCase))
        {
            throw new WalArchiveException(PitrFailure.DiskFull, ex.Message, ex);
        }
    }

    private async Task CheckSegmentAsync(FileStream input, WalFileName file, long segmentSize, string fileName, CancellationToken cancellationToken)
    {
        if (input.Length != segmentSize)
        {
            throw new WalArchiveException(PitrFailure.Other,
                string.Create(CultureInfo.InvariantCulture, $"{fileName} has {input.Length} bytes, not a WAL segment of {segmentSize} bytes: not stored"));
        }

        var page = ArrayPool<byte>.Shared.Rent(PageSize);
        try
        {
            var read = await input.ReadAtLeastAsync(page.AsMemory(0, PageSize), PageSize, throwOnEndOfStream: false, cancellationToken);
            var expected = await IdentityAsync(cancellationToken);
            if (WalPageHeader.CheckSegment(page.AsSpan(0, read), file, segmentSize, expected) is { } problem)
            {
                throw new WalArchiveException(problem.Contains("system identifier", StringComparison.Ordinal) ? PitrFailure.OtherCluster : PitrFailure.Other, problem + "; not stored");
            }

            if (expected is null && WalPageHeader.TryRead(page.AsSpan(0, read), out var header) && header.SystemIdentifier is { } id)
            {
                RememberIdentity(id);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(page);
        }
    }

    private static async Task CheckPieceHeadersAsync(FileStream input, WalFileName file, uint start, uint end, long segmentSize, CancellationToken cancellationToken)
    {
        // Only the page headers that begin in the range matter; read those 24-byte headers, not the whole range.
        var header = new byte[PageSize];
        var first = (start + PageSize - 1) / PageSize * PageSize;
        for (long offset = first; offset < end; offset += PageSize)
        {
            input.Position = offset;
            var want = (int)Math.Min(PageSize, end - offset);
            var read = await input.ReadAtLeastAsync(header.AsMemory(0, want), want, throwOnEndOfStream: false, cancellationToken);
            if (WalPageHeader.CheckPieceData(header.AsSpan(0, read), (uint)offset, file, segmentSize) is { } problem)
            {
                throw new WalArchiveException(PitrFailure.Other, problem + "; the piece was not stored");
            }
        }
    }

    private static void CheckHistory(FileStream input, string fileName)
    {
        if (input.Length > 1 << 20)
        {
            throw new WalArchiveException(PitrFailure.Other, $"{fileName} is {input.Length} bytes: not a timeline history file; not stored");
        }

        using var reader = new StreamReader(input, leaveOpen: true);
        var content = reader.ReadToEnd();
        var classified = PitrArtifact.Classify(fileName)!;
        try
        {
            _ = TimelineHistory.Parse(classified.Timeline, content);
        }
        catch (FormatException ex)
        {
            throw new WalArchiveException(PitrFailure.Other, $"{fileName} is not a valid timeline history file ({ex.Message}); not stored", ex);
        }
    }

    private static (string Name, PitrArtifactType Type, WalFileName? File) Normalise(string fileName, long segmentSize)
    {
        var artifact = PitrArtifact.Classify(fileName);
        if (artifact is { Type: PitrArtifactType.Segment or PitrArtifactType.History or PitrArtifactType.BackupHistory })
        {
            return (fileName, artifact.Type, artifact.File);
        }

        // PostgreSQL's own X.partial (the old timeline's last segment, archived at promotion).
        if (fileName.EndsWith(".partial", StringComparison.Ordinal) && WalFileName.TryParse(fileName[..^".partial".Length], out var partial))
        {
            return (PitrArtifact.PieceName(partial, 0, (uint)segmentSize), PitrArtifactType.Partial, partial);
        }

        throw new WalArchiveException(PitrFailure.Other,
            $"{fileName} is not a WAL file name (a 24-digit segment, NNNNNNNN.history, a .backup or a .partial file): not stored");
    }

    private async Task<ulong?> FromBaseInfoAsync(CancellationToken cancellationToken)
    {
        var newest = System.IO.Directory.EnumerateFiles(Directory, "base_*.json")
            .Select(System.IO.Path.GetFileName)
            .Where(n => n is not null && File.Exists(System.IO.Path.Combine(Directory, n + ".sha256")))
            .OrderByDescending(n => n, StringComparer.Ordinal)
            .FirstOrDefault();
        if (newest is null)
        {
            return null;
        }

        try
        {
            await using var stream = await Local.OpenReadAsync(BackupKinds.Pitr, newest, cancellationToken);
            var info = await BaseBackupInfo.ReadAsync(stream, cancellationToken);
            return ulong.Parse(info.SystemIdentifier, NumberStyles.None, CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is FormatException or StoreException or IOException or JsonException or OverflowException)
        {
            Log.UnreadableIdentity(_logger, newest, ex.Message);
            return null;
        }
    }

    private ulong? FromSegment()
    {
        var page = new byte[64];
        foreach (var path in System.IO.Directory.EnumerateFiles(Directory))
        {
            var name = System.IO.Path.GetFileName(path);
            if (!WalFileName.TryParse(name, out _) || !File.Exists(path + ".sha256"))
            {
                continue;
            }

            using var input = File.OpenRead(path);
            if (input.ReadAtLeast(page, page.Length, throwOnEndOfStream: false) == page.Length && WalPageHeader.TryRead(page, out var header) && header.SystemIdentifier is { } id)
            {
                return id;
            }
        }

        return null;
    }

    /// <summary>Reads at most <c>length</c> bytes from the current position of the inner stream (left open).</summary>
    private sealed class RangeStream(Stream inner, long length) : ReadOnlyStream
    {
        private long _left = length;

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_left <= 0)
            {
                return 0;
            }

            var read = inner.Read(buffer[..(int)Math.Min(buffer.Length, _left)]);
            Consumed(read);
            return read;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_left <= 0)
            {
                return 0;
            }

            var read = await inner.ReadAsync(buffer[..(int)Math.Min(buffer.Length, _left)], cancellationToken);
            Consumed(read);
            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        private void Consumed(int read)
        {
            if (read == 0 && _left > 0)
            {
                throw new IOException($"the file ended {_left} bytes before the end of the piece");
            }

            _left -= read;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Pitr.ArchiveConflict, LogLevel.Error, "pitr: {Name} differs from the stored copy; the stored copy is kept: {Reason}")]
        public static partial void Conflict(ILogger logger, string name, string reason);

        [LoggerMessage(LogEvents.Pitr.UnreadableIdentity, LogLevel.Warning, "pitr: cannot read the cluster's system identifier from {Name}: {Reason}")]
        public static partial void UnreadableIdentity(ILogger logger, string name, string reason);
    }
}

/// <summary>Directories only the agent's user may enter (0700), whatever the umask.</summary>
internal static class PrivateDirectory
{
    /// <summary>The directory and every missing parent 0700 (<see cref="PrivateFiles.CreateDirectory"/>).</summary>
    public static void Create(string path) => PrivateFiles.CreateDirectory(path);
}
