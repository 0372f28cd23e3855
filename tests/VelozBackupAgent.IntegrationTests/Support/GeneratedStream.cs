using System.Security.Cryptography;

namespace VelozBackupAgent.IntegrationTests.Support;

/// <summary>
/// A non-seekable stream of <c>length</c> deterministic pseudo-random bytes, generated as it is read, so
/// tests can stream hundreds of MiB without holding them. Optionally fails after <c>failAfter</c> bytes,
/// the way a dying source (pg_dump crashing, a pipe closing) would.
/// </summary>
public sealed class GeneratedStream(long length, ulong seed = 1, long failAfter = -1) : Stream
{
    private ulong _state = seed == 0 ? 0x9E3779B97F4A7C15UL : seed;
    private long _position;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => _position;
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (failAfter >= 0 && _position >= failAfter)
        {
            throw new IOException("the source died mid-stream (simulated)");
        }

        var n = (int)Math.Min(buffer.Length, length - _position);
        if (failAfter >= 0)
        {
            n = (int)Math.Min(n, failAfter - _position);
        }

        for (var i = 0; i < n; i++)
        {
            // xorshift64*: fast, deterministic, incompressible enough for transfer tests.
            _state ^= _state >> 12;
            _state ^= _state << 25;
            _state ^= _state >> 27;
            buffer[i] = (byte)((_state * 0x2545F4914F6CDD1DUL) >> 56);
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

    /// <summary>The SHA-256 the full stream of these parameters has.</summary>
    public static string Sha256Of(long length, ulong seed = 1)
    {
        using var s = new GeneratedStream(length, seed);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }
}
