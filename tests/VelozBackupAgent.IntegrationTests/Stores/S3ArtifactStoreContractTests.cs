using Amazon.S3;
using Amazon.S3.Model;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Checksums;
using VelozBackupAgent.Storage.S3;

namespace VelozBackupAgent.IntegrationTests.Stores;

/// <summary>The same contract suite as the local store's, on S3 served by a real s3rver process.</summary>
public sealed class S3ArtifactStoreContractTests(S3rverFixture fixture) : ArtifactStoreContractTests, IClassFixture<S3rverFixture>
{
    private readonly string _bucket = "c-" + Guid.NewGuid().ToString("N")[..12];
    private AmazonS3Client? _client;

    private AmazonS3Client Client => _client ?? throw new InvalidOperationException("not initialised");

    protected override async Task<IArtifactStore> CreateStoreAsync()
    {
        _client = fixture.Server.CreateClient();
        await _client.PutBucketAsync(_bucket);
        return new S3ArtifactStore(fixture.Server.Options(_bucket), _client);
    }

    private static string Key(string kind, string name) => $"veloz-1/{kind}/{name}";

    protected override async Task TamperDataAsync(string kind, string name)
    {
        // Rewrite the object behind the store's back: same size, same metadata, one byte flipped.
        var head = await Client.GetObjectMetadataAsync(_bucket, Key(kind, name));
        using var get = await Client.GetObjectAsync(_bucket, Key(kind, name));
        using var copy = new MemoryStream();
        await get.ResponseStream.CopyToAsync(copy);
        var bytes = copy.ToArray();
        bytes[bytes.Length / 2] ^= 0x01;
        var put = new PutObjectRequest { BucketName = _bucket, Key = Key(kind, name), InputStream = new MemoryStream(bytes), UseChunkEncoding = false };
        foreach (var k in head.Metadata.Keys)
        {
            put.Metadata.Add(k, head.Metadata[k]);
        }

        await Client.PutObjectAsync(put);
    }

    protected override async Task TamperSidecarAsync(string kind, string name)
    {
        var other = new string('a', 64);
        await Client.PutObjectAsync(new PutObjectRequest
        {
            BucketName = _bucket, Key = Key(kind, name) + Sha256Sidecar.Suffix, ContentBody = Sha256Sidecar.Format(other, name), UseChunkEncoding = false,
        });
    }

    public override Task DisposeAsync()
    {
        _client?.Dispose();
        return Task.CompletedTask;
    }
}
