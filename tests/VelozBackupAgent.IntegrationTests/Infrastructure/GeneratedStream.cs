using System.Buffers.Binary;
using System.Security.Cryptography;

namespace VelozBackupAgent.IntegrationTests.Infrastructure;

/// <summary>
/// A non-seekable stream of <c>length</c> deterministic pseudo-random bytes (same seed, same bytes), made as it
/// is read, so tests can stream any size without holding it. Optionally throws after <c>failAfter</c> bytes.
/// </summary>
public sealed class GeneratedStream : Stream
{
    private readonly long _length;
    private readonly ulong _seed;
    private readonly long _failAfter;
    private long _position;

    public GeneratedStream(long length, int seed = 1, long failAfter = -1)
    {
        _length = length;
        _seed = (ulong)seed;
        _failAfter = failAfter;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => _position;
        set => throw new NotSupportedException();
    }

    /// <summary>The SHA-256 of what a stream with these arguments yields.</summary>
    public static string Sha256Of(long length, int seed = 1)
    {
        using var stream = new GeneratedStream(length, seed);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (_failAfter >= 0 && _position >= _failAfter)
        {
            throw new IOException($"generated failure after {_failAfter} bytes");
        }

        var limit = _failAfter >= 0 ? Math.Min(_length, _failAfter) : _length;
        var n = (int)Math.Min(buffer.Length, limit - _position);

        Span<byte> word = stackalloc byte[8];
        for (var i = 0; i < n; i++)
        {
            var p = _position + i;
            if (i == 0 || p % 8 == 0)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(word, Mix((ulong)(p / 8) + (_seed << 40)));
            }

            buffer[i] = word[(int)(p % 8)];
        }

        _position += n;
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        Task.FromResult(Read(buffer.AsSpan(offset, count)));

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(Read(buffer.Span));

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    private static ulong Mix(ulong x)
    {
        // splitmix64
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }
}

/// <summary>A stream that fails the test if anything reads it.</summary>
public sealed class UnreadableStream : Stream
{
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => 0; set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => throw new InvalidOperationException("the store read a stream it did not need");
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
