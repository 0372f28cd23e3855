using System.Security.Cryptography;

namespace VelozBackupAgent.Storage.Checksums;

/// <summary>
/// A read-only stream that hashes what passes through it and, when the inner stream ends, throws
/// <see cref="ArtifactIntegrityException"/> if the bytes do not have the expected size and SHA-256.
/// A reader that consumes to the end therefore cannot silently receive corrupt data.
/// </summary>
public sealed class VerifyingReadStream : Stream
{
    private readonly Stream _inner;
    private readonly string _expectedSha256;
    private readonly long _expectedSize;
    private readonly string _label;
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _read;
    private bool _verified;

    public VerifyingReadStream(Stream inner, string expectedSha256, long expectedSize, string label)
    {
        _inner = inner;
        _expectedSha256 = expectedSha256;
        _expectedSize = expectedSize;
        _label = label;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => _expectedSize;

    public override long Position
    {
        get => _read;
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var n = _inner.Read(buffer);
        return Account(buffer[..n]);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var n = await _inner.ReadAsync(buffer, cancellationToken);
        return Account(buffer.Span[..n]);
    }

    private int Account(ReadOnlySpan<byte> data)
    {
        if (data.Length > 0)
        {
            _hash.AppendData(data);
            _read += data.Length;
            if (_read > _expectedSize)
            {
                throw new ArtifactIntegrityException($"{_label}: more bytes stored than the recorded size {_expectedSize}");
            }

            return data.Length;
        }

        if (!_verified)
        {
            Verify();
            _verified = true;
        }

        return 0;
    }

    private void Verify()
    {
        if (_read != _expectedSize)
        {
            throw new ArtifactIntegrityException($"{_label}: {_read} bytes stored, {_expectedSize} recorded");
        }

        var actual = Convert.ToHexStringLower(_hash.GetHashAndReset());
        if (!string.Equals(actual, _expectedSha256, StringComparison.Ordinal))
        {
            throw new ArtifactIntegrityException($"{_label}: checksum mismatch (stored bytes hash to {actual}, recorded {_expectedSha256})");
        }
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
            _hash.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await _inner.DisposeAsync();
        _hash.Dispose();
        await base.DisposeAsync();
    }
}
