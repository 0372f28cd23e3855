using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Tests.Support;

/// <summary>A local folder that reports itself as the S3 target: for logic that tells the two stores apart by target only.</summary>
internal sealed class S3Folder(LocalArtifactStore inner) : IArtifactStore
{
    public string Target => "s3";

    public Task<ArtifactInfo> WriteAsync(string kind, string name, Stream content, string? expectedSha256 = null, CancellationToken cancellationToken = default) =>
        inner.WriteAsync(kind, name, content, expectedSha256, cancellationToken);

    public Task<Stream> OpenReadAsync(string kind, string name, CancellationToken cancellationToken = default) => inner.OpenReadAsync(kind, name, cancellationToken);

    public Task<ArtifactInfo?> StatAsync(string kind, string name, CancellationToken cancellationToken = default) => inner.StatAsync(kind, name, cancellationToken);

    public IAsyncEnumerable<ArtifactInfo> ListAsync(string kind, CancellationToken cancellationToken = default) => inner.ListAsync(kind, cancellationToken);

    public Task DeleteAsync(string kind, string name, CancellationToken cancellationToken = default) => inner.DeleteAsync(kind, name, cancellationToken);
}
