using System.Security.Cryptography;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Checksums;

namespace VelozBackupAgent.Tests.Checksums;

public class VerifyingReadStreamTests
{
    private static readonly byte[] Data = RandomNumberGenerator.GetBytes(100_000);
    private static readonly string DataHash = Convert.ToHexStringLower(SHA256.HashData(Data));

    [Fact]
    public async Task Passes_intact_bytes_through()
    {
        await using var s = new VerifyingReadStream(new MemoryStream(Data), DataHash, Data.Length, "t");
        using var copy = new MemoryStream();
        await s.CopyToAsync(copy);
        copy.ToArray().Should().Equal(Data);
    }

    [Fact]
    public async Task Throws_at_the_end_when_a_byte_differs()
    {
        var tampered = (byte[])Data.Clone();
        tampered[50_000] ^= 1;
        await using var s = new VerifyingReadStream(new MemoryStream(tampered), DataHash, Data.Length, "t");
        var copy = () => s.CopyToAsync(Stream.Null);
        await copy.Should().ThrowAsync<ArtifactIntegrityException>().WithMessage("*checksum mismatch*");
    }

    [Fact]
    public async Task Throws_when_bytes_are_missing_or_extra()
    {
        await using (var shorter = new VerifyingReadStream(new MemoryStream(Data, 0, Data.Length - 1), DataHash, Data.Length, "t"))
        {
            var copy = () => shorter.CopyToAsync(Stream.Null);
            await copy.Should().ThrowAsync<ArtifactIntegrityException>();
        }

        await using var longer = new VerifyingReadStream(new MemoryStream([.. Data, 0]), DataHash, Data.Length, "t");
        var copyLonger = () => longer.CopyToAsync(Stream.Null);
        await copyLonger.Should().ThrowAsync<ArtifactIntegrityException>();
    }
}
