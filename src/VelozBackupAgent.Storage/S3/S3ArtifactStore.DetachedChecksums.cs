using System.Globalization;
using System.Text;
using Amazon.S3;
using Amazon.S3.Model;
using VelozBackupAgent.Storage.Checksums;

namespace VelozBackupAgent.Storage.S3;

/// <summary>The plaintext sidecar of an artifact kept encrypted under another key (see <see cref="IDetachedChecksums"/>).</summary>
public sealed partial class S3ArtifactStore : IDetachedChecksums
{
    private const string PlainSizeMetadataName = "plaintext-size";
    private const string PlainSizeMetadataHeader = "x-amz-meta-plaintext-size";

    /// <inheritdoc />
    public Task WriteDetachedChecksumAsync(string kind, string name, string sha256, long size, CancellationToken cancellationToken = default)
    {
        ArtifactNames.Validate(kind, name);
        return WriteSidecarAsync(Key(kind, name), name, sha256, cancellationToken, size);
    }

    /// <inheritdoc />
    public async Task<DetachedChecksum?> ReadDetachedChecksumAsync(string kind, string name, CancellationToken cancellationToken = default)
    {
        ArtifactNames.Validate(kind, name);
        var sidecarKey = Key(kind, name) + Sha256Sidecar.Suffix;
        var read = await _calls.RunAsync<(string Text, string? Size)?>("GetObject", sidecarKey, async token =>
        {
            try
            {
                using var response = await _client.GetObjectAsync(new GetObjectRequest { BucketName = _options.Bucket, Key = sidecarKey }, token);
                if (response.ContentLength > MaxSidecarBytes)
                {
                    throw new ArtifactIntegrityException($"checksum sidecar {sidecarKey} is {response.ContentLength} bytes, not a sha256sum line");
                }

                using var reader = new StreamReader(response.ResponseStream, Encoding.UTF8);
                return (await reader.ReadToEndAsync(token), response.Metadata[PlainSizeMetadataHeader]);
            }
            catch (AmazonS3Exception e) when (S3Calls.IsMissingKey(e))
            {
                return null;
            }
        }, cancellationToken);
        if (read is not { } found)
        {
            return null;
        }

        long? size = long.TryParse(found.Size, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) ? parsed : null;
        return new DetachedChecksum(Sha256Sidecar.Parse(found.Text, name), size);
    }
}
