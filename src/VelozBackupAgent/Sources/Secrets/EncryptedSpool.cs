using System.Buffers.Binary;
using System.Security.Cryptography;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Sources.Secrets;

/// <summary>
/// Holds one secrets command's output between the command and the tar entry that needs its size up front,
/// without keeping it in memory and without plaintext on disk: the bytes go to an unlinked temporary file
/// (0600, in a 0700 directory of the state directory) as AES-256-GCM chunks of 64 KiB under a random key that
/// exists only in this process's memory (zeroed on dispose). A crash leaves nothing readable behind: the file
/// has no name once created, and its key died with the process. Reading it back checks every chunk's tag, so
/// a byte changed on disk fails the run instead of reaching the archive. The SHA-256 of the plaintext is
/// computed on the way in (for change detection, see <see cref="SecretsState"/>) and kept only in memory.
/// </summary>
internal sealed class EncryptedSpool : IDisposable
{
    private const int ChunkSize = 64 * 1024;
    private const int TagSize = 16;

    private readonly byte[] _key = RandomNumberGenerator.GetBytes(32);
    private readonly AesGcm _aes;
    private readonly FileStream _file;
    private bool _disposed;

    private EncryptedSpool(FileStream file)
    {
        _file = file;
        _aes = new AesGcm(_key, TagSize);
    }

    /// <summary>The agent's user and group (the spool file's owner), for the archive entry.</summary>
    public (int Uid, int Gid) Owner
    {
        get
        {
            var status = FileStatus.Of(_file.SafeFileHandle);
            return (status.Uid, status.Gid);
        }
    }

    /// <summary>Plaintext bytes spooled.</summary>
    public long Length { get; private set; }

    /// <summary>SHA-256 of the plaintext (only once <see cref="FillAsync"/> returned).</summary>
    public byte[] Sha256 { get; private set; } = [];

    /// <summary>Creates the (already unlinked) spool file in <paramref name="directory"/>.</summary>
    public static EncryptedSpool Create(string directory)
    {
        PrivateFiles.CreateDirectory(directory);
        var path = Path.Combine(directory, $"spool-{Guid.NewGuid():N}.tmp");
        var file = PrivateFiles.Open(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None,
            OperatingSystem.IsWindows() ? FileOptions.DeleteOnClose : FileOptions.None, bufferSize: 0);
        if (!OperatingSystem.IsWindows())
        {
            // Nameless from here on: nothing else can open it, and nothing is left if the agent dies.
            File.Delete(path);
        }

        return new EncryptedSpool(file);
    }

    /// <summary>Encrypts <paramref name="source"/> to its end into the spool, hashing the plaintext.</summary>
    public async Task FillAsync(Stream source, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        var plain = new byte[ChunkSize];
        var cipher = new byte[ChunkSize + TagSize];
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long chunk = 0;
        try
        {
            while (true)
            {
                var n = await source.ReadAtLeastAsync(plain, ChunkSize, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }

                hash.AppendData(plain, 0, n);
                _aes.Encrypt(Nonce(chunk), plain.AsSpan(0, n), cipher.AsSpan(0, n), cipher.AsSpan(n, TagSize));
                await RandomAccess.WriteAsync(_file.SafeFileHandle, cipher.AsMemory(0, n + TagSize), chunk * (ChunkSize + TagSize), cancellationToken).ConfigureAwait(false);
                Length += n;
                chunk++;
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }

        Sha256 = hash.GetHashAndReset();
    }

    /// <summary>A fresh seekable stream over the plaintext (tar wants the length up front, which a seekable stream gives).</summary>
    public Stream OpenRead()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new Reader(this);
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _aes.Dispose();
        CryptographicOperations.ZeroMemory(_key);
        _file.Dispose();
    }

    private static byte[] Nonce(long chunk)
    {
        var nonce = new byte[12];
        BinaryPrimitives.WriteInt64BigEndian(nonce.AsSpan(4), chunk);
        return nonce;
    }

    private int ChunkLength(long chunk) => (int)Math.Min(ChunkSize, Length - (chunk * ChunkSize));

    private void Decrypt(long chunk, byte[] cipher, byte[] plain)
    {
        var n = ChunkLength(chunk);
        var read = 0;
        while (read < n + TagSize)
        {
            var r = RandomAccess.Read(_file.SafeFileHandle, cipher.AsSpan(read, n + TagSize - read), (chunk * (ChunkSize + TagSize)) + read);
            if (r == 0)
            {
                throw new BackupSourceException("a secrets command's spooled output is shorter than written (its temporary file was truncated)");
            }

            read += r;
        }

        try
        {
            _aes.Decrypt(Nonce(chunk), cipher.AsSpan(0, n), cipher.AsSpan(n, TagSize), plain.AsSpan(0, n));
        }
        catch (AuthenticationTagMismatchException ex)
        {
            throw new BackupSourceException("a secrets command's spooled output was altered on disk; not archived", ex);
        }
    }

    private sealed class Reader(EncryptedSpool spool) : Stream
    {
        private readonly byte[] _cipher = new byte[ChunkSize + TagSize];
        private readonly byte[] _plain = new byte[ChunkSize];
        private long _loaded = -1;
        private long _position;

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => spool.Length;

        public override long Position
        {
            get => _position;
            set => _position = value is >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value));
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_position >= spool.Length || buffer.Length == 0)
            {
                return 0;
            }

            var chunk = _position / ChunkSize;
            if (_loaded != chunk)
            {
                spool.Decrypt(chunk, _cipher, _plain);
                _loaded = chunk;
            }

            var offset = (int)(_position - (chunk * ChunkSize));
            var n = Math.Min(buffer.Length, spool.ChunkLength(chunk) - offset);
            _plain.AsSpan(offset, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            cancellationToken.ThrowIfCancellationRequested();
            return ValueTask.FromResult(Read(buffer.Span));
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override long Seek(long offset, SeekOrigin origin)
        {
            Position = origin switch
            {
                SeekOrigin.Begin => offset,
                SeekOrigin.Current => _position + offset,
                _ => spool.Length + offset,
            };
            return _position;
        }

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            CryptographicOperations.ZeroMemory(_plain);
            base.Dispose(disposing);
        }
    }
}
