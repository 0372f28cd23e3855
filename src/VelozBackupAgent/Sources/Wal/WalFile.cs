using System.Buffers;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Sources.Wal;

/// <summary>The size and modification time of a file in the WAL directory: what "unchanged" means here.</summary>
/// <param name="Size">Length in bytes.</param>
/// <param name="MtimeTicks">Last write time, UTC ticks (100 ns, as precise as the file system gives it).</param>
internal readonly record struct WalFileState(long Size, long MtimeTicks)
{
    public DateTimeOffset Mtime => new(MtimeTicks, TimeSpan.Zero);

    public static WalFileState Of(FileInfo file) => new(file.Length, file.LastWriteTimeUtc.Ticks);

    /// <summary>From a stat: the mtime in the 100 ns ticks <see cref="FileSystemInfo.LastWriteTimeUtc"/> gives for the same file.</summary>
    public static WalFileState Of(FileStatus status) =>
        new(status.Size, DateTimeOffset.UnixEpoch.Ticks + Math.DivRem(status.MtimeNs, 100L, out var rest) - (rest < 0 ? 1 : 0));

    public static WalFileState Of(SafeFileHandle handle) => new(RandomAccess.GetLength(handle), File.GetLastWriteTimeUtc(handle).Ticks);
}

/// <summary>A WAL file grew, shrank or was replaced while it was being read; it is read again once it has settled.</summary>
internal sealed class WalFileChangedException : Exception
{
    public WalFileChangedException() { }
    public WalFileChangedException(string message) : base(message) { }
    public WalFileChangedException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>
/// A WAL file could not be opened or read (permissions, a dangling link, an I/O error). Kept apart from the
/// store's own exceptions so a failing source file is never mistaken for a failing backup disk, or the reverse.
/// </summary>
internal sealed class WalFileReadException : Exception
{
    public WalFileReadException() { }
    public WalFileReadException(string message) : base(message) { }
    public WalFileReadException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>True when the file was simply gone (deleted or renamed away between listing and opening).</summary>
    public bool Vanished { get; init; }
}

/// <summary>Counts what the WAL source read from the WAL directory, to prove that unchanged files are never re-read.</summary>
internal sealed class WalReadCounter
{
    private long _bytes;
    private long _opens;

    public long Bytes => Interlocked.Read(ref _bytes);

    public long Opens => Interlocked.Read(ref _opens);

    public void Opened() => Interlocked.Increment(ref _opens);

    public void Read(long bytes) => Interlocked.Add(ref _bytes, bytes);
}

/// <summary>Opening and reading files of the live WAL directory without getting in VeloZ's way.</summary>
internal static class WalFile
{
    private const int HashBufferSize = 1 << 20;

    /// <summary>
    /// Opens <paramref name="path"/> for reading. On Linux this is a plain <c>open(O_RDONLY)</c>: .NET's own
    /// FileStream/OpenHandle takes a shared <c>flock</c> on every file it reads, which would make a VeloZ that
    /// locks its WAL files (<c>flock LOCK_EX|LOCK_NB</c>) fail while a backup happens to be reading. A backup
    /// must never block the engine, so no advisory lock is taken. O_NONBLOCK keeps a FIFO from hanging us.
    /// </summary>
    public static SafeFileHandle OpenRead(string path, WalReadCounter counter)
    {
        ArgumentNullException.ThrowIfNull(counter);
        SafeFileHandle handle;
        if (OperatingSystem.IsLinux())
        {
            handle = UnlockedOpen.OpenRead(path, out var errno) ?? throw OpenFailed(path, errno);
        }
        else
        {
            try
            {
                handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new WalFileReadException($"{path}: {ex.Message}", ex) { Vanished = ex is FileNotFoundException && !Path.Exists(path) };
            }
        }

        counter.Opened();
        return handle;
    }

    /// <summary>
    /// Opens a sealed segment for copying, expecting it to be exactly as listed (<paramref name="expected"/>).
    /// The stream ends after that many bytes and then checks that the file still has that size and mtime, so
    /// a segment still being written is refused (<see cref="WalFileChangedException"/>) instead of stored short.
    /// </summary>
    public static WalReadStream OpenSegment(string path, WalFileState expected, WalReadCounter counter)
    {
        var handle = OpenRead(path, counter);
        try
        {
            var now = StateOf(handle, path);
            if (now != expected)
            {
                throw new WalFileChangedException($"{path} changed since it was listed ({expected.Size} → {now.Size} bytes)");
            }

            return new WalReadStream(handle, path, expected.Size, counter, ownsHandle: true, atEnd: h =>
            {
                var after = StateOf(h, path);
                if (after != expected)
                {
                    throw new WalFileChangedException($"{path} changed while it was being read ({expected.Size} → {after.Size} bytes)");
                }
            });
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>The size and mtime of an open file; a read error is a <see cref="WalFileReadException"/>.</summary>
    public static WalFileState StateOf(SafeFileHandle handle, string path)
    {
        try
        {
            return WalFileState.Of(handle);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new WalFileReadException($"{path}: {ex.Message}", ex);
        }
    }

    /// <summary>The lower-case hex SHA-256 of what <paramref name="content"/> yields.</summary>
    public static async Task<string> Sha256Async(Stream content, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(content);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(HashBufferSize);
        try
        {
            int read;
            while ((read = await content.ReadAsync(buffer.AsMemory(0, HashBufferSize), cancellationToken).ConfigureAwait(false)) > 0)
            {
                hash.AppendData(buffer, 0, read);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static WalFileReadException OpenFailed(string path, int errno)
    {
        const int EPERM = 1;
        const int ENOENT = 2;
        const int EACCES = 13;
        var reason = Marshal.GetPInvokeErrorMessage(errno);
        Exception inner = errno switch
        {
            ENOENT => new FileNotFoundException(reason, path),
            EACCES or EPERM => new UnauthorizedAccessException(reason),
            _ => new IOException(reason, errno),
        };

        // A dangling symlink is ENOENT too, but its directory entry is still there: that is unreadable, not gone.
        return new WalFileReadException($"{path}: {reason}", inner) { Vanished = errno == ENOENT && !Path.Exists(path) };
    }
}

/// <summary>
/// Exactly the first <c>length</c> bytes of a file, read at explicit offsets through its handle (so the file
/// can keep growing, or be renamed, while it is read: the bytes are those of the inode that was opened). A
/// file that turns out shorter fails with <see cref="WalFileChangedException"/>; read errors fail with
/// <see cref="WalFileReadException"/>. Either way a store writing from this stream keeps nothing.
/// </summary>
internal sealed class WalReadStream : Stream
{
    private readonly SafeFileHandle _handle;
    private readonly string _path;
    private readonly long _length;
    private readonly WalReadCounter _counter;
    private readonly bool _ownsHandle;
    private readonly Action<SafeFileHandle>? _atEnd;
    private long _position;
    private bool _ended;

    public WalReadStream(SafeFileHandle handle, string path, long length, WalReadCounter counter, bool ownsHandle, Action<SafeFileHandle>? atEnd = null)
    {
        _handle = handle;
        _path = path;
        _length = length;
        _counter = counter;
        _ownsHandle = ownsHandle;
        _atEnd = atEnd;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => _length;

    public override long Position
    {
        get => _position;
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var want = Want(buffer.Length);
        if (want == 0)
        {
            End();
            return 0;
        }

        int n;
        try
        {
            n = RandomAccess.Read(_handle, buffer[..want], _position);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw new WalFileReadException($"{_path}: {ex.Message}", ex);
        }

        return Advance(n);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var want = Want(buffer.Length);
        if (want == 0)
        {
            End();
            return 0;
        }

        int n;
        try
        {
            n = await RandomAccess.ReadAsync(_handle, buffer[..want], _position, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw new WalFileReadException($"{_path}: {ex.Message}", ex);
        }

        return Advance(n);
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && _ownsHandle)
        {
            _handle.Dispose();
        }

        base.Dispose(disposing);
    }

    private int Want(int room) => (int)Math.Min(room, _length - _position);

    private int Advance(int n)
    {
        if (n == 0)
        {
            throw new WalFileChangedException($"{_path} shrank to {_position} bytes while being read (expected {_length})");
        }

        _position += n;
        _counter.Read(n);
        return n;
    }

    private void End()
    {
        if (!_ended)
        {
            _ended = true;
            _atEnd?.Invoke(_handle);
        }
    }
}
