using System.Text;
using VelozBackupAgent.Sources.Secrets;

namespace VelozBackupAgent.Tests.Sources.Secrets;

public sealed class EncryptedSpoolTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("veloz-spool-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Secrets_spool_gives_back_the_bytes_and_leaves_no_file_behind()
    {
        var payload = new byte[(3 * 64 * 1024) + 123];
        Random.Shared.NextBytes(payload);
        Encoding.ASCII.GetBytes("CANARY-s3cr3t").CopyTo(payload, 70_000);
        using var spool = EncryptedSpool.Create(Path.Combine(_dir, "spool"));
        await spool.FillAsync(new MemoryStream(payload), CancellationToken.None);

        Assert.Empty(Directory.GetFiles(Path.Combine(_dir, "spool")));
        Assert.Equal(payload.Length, spool.Length);
        Assert.Equal(System.Security.Cryptography.SHA256.HashData(payload), spool.Sha256);
        using var read = spool.OpenRead();
        Assert.True(read.CanSeek);
        var back = new MemoryStream();
        await read.CopyToAsync(back);
        Assert.Equal(payload, back.ToArray());
    }

    [Fact]
    public async Task Secrets_spool_of_an_empty_output_is_empty()
    {
        using var spool = EncryptedSpool.Create(Path.Combine(_dir, "spool"));
        await spool.FillAsync(new MemoryStream(), CancellationToken.None);
        using var read = spool.OpenRead();
        Assert.Equal(0, read.Length);
        Assert.Equal(-1, read.ReadByte());
    }
}
