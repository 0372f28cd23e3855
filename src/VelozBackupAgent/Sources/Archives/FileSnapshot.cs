using Microsoft.Win32.SafeHandles;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Sources.Archives;

/// <summary>
/// A file changed while it was being archived (replaced, truncated, appended to or rewritten in place).
/// Nothing partial is kept; the source retries the run from a fresh listing.
/// </summary>
internal sealed class SourceChangedException : Exception
{
    public SourceChangedException(string message)
        : base(message)
    {
    }

    public SourceChangedException()
    {
    }

    public SourceChangedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// One regular file opened for an archive: the opened inode must be the one that was listed (so a file
/// swapped for a symbolic link in between is never read through it), its metadata comes from that very
/// inode, and <see cref="Content"/> yields exactly the size the tar header announces. A file that shrinks,
/// grows or is rewritten while being read throws <see cref="SourceChangedException"/> rather than
/// producing an archive whose header and data disagree.
/// </summary>
internal sealed class FileSnapshot : IDisposable
{
    private readonly SafeFileHandle _handle;

    private FileSnapshot(SafeFileHandle handle, string path, FileStatus status)
    {
        _handle = handle;
        Path = path;
        Status = status;
        Content = new ExactLengthStream(this);
    }

    public string Path { get; }

    /// <summary>fstat of the opened file.</summary>
    public FileStatus Status { get; }

    /// <summary>The file's bytes: seekable in name only (length and position), so tar can write its header first.</summary>
    public Stream Content { get; }

    /// <exception cref="BackupSourceException">The file cannot be opened; the message names it.</exception>
    /// <exception cref="SourceChangedException">The path now holds another file than was listed.</exception>
    public static FileSnapshot Open(SourceEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(entry.FullPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, FileOptions.SequentialScan);
        }
        catch (FileNotFoundException ex)
        {
            throw new SourceChangedException($"{entry.FullPath} was removed while it was being backed up", ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new BackupSourceException($"cannot read {entry.FullPath}: {SourceTree.Reason(ex)}", ex);
        }

        try
        {
            var status = FileStatus.Of(handle);
            if (status.Kind != FileKind.Regular || !status.SameInode(entry.Status))
            {
                throw new SourceChangedException($"{entry.FullPath} was replaced while it was being backed up");
            }

            return new FileSnapshot(handle, entry.FullPath, status);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        Content.Dispose();
        _handle.Dispose();
    }

    private sealed class ExactLengthStream(FileSnapshot owner) : Stream
    {
        private long _position;

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => owner.Status.Size;

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var want = (int)Math.Min(buffer.Length, Length - _position);
            if (want == 0)
            {
                CheckUnchangedAtEnd(buffer.Length);
                return 0;
            }

            return Advance(ReadAt(buffer[..want], _position));
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var want = (int)Math.Min(buffer.Length, Length - _position);
            if (want == 0)
            {
                CheckUnchangedAtEnd(buffer.Length);
                return 0;
            }

            int n;
            try
            {
                n = await RandomAccess.ReadAsync(owner._handle, buffer[..want], _position, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new BackupSourceException($"cannot read {owner.Path}: {SourceTree.Reason(ex)}", ex);
            }

            return Advance(n);
        }

        private int Advance(int n)
        {
            if (n == 0)
            {
                throw new SourceChangedException($"{owner.Path} shrank while it was being backed up");
            }

            _position += n;
            return n;
        }

        /// <summary>At the announced end: no byte may follow, and the inode must not have been written meanwhile.</summary>
        private void CheckUnchangedAtEnd(int requested)
        {
            if (requested == 0)
            {
                return;
            }

            Span<byte> probe = stackalloc byte[1];
            if (ReadAt(probe, _position) > 0)
            {
                throw new SourceChangedException($"{owner.Path} grew while it was being backed up");
            }

            var after = FileStatus.Of(owner._handle);
            if (after.Size != owner.Status.Size || after.MtimeNs != owner.Status.MtimeNs || after.CtimeNs != owner.Status.CtimeNs)
            {
                throw new SourceChangedException($"{owner.Path} was written while it was being backed up");
            }
        }

        private int ReadAt(Span<byte> buffer, long offset)
        {
            try
            {
                return RandomAccess.Read(owner._handle, buffer, offset);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new BackupSourceException($"cannot read {owner.Path}: {SourceTree.Reason(ex)}", ex);
            }
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
