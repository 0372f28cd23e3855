using System.Runtime.CompilerServices;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Stores;

/// <summary>
/// What a restore reads on one node of a cluster (<c>Backup:Cluster</c>): the union of the node's local store and S3
/// (the shared prefix), each artifact read from the local store when it holds it, else from S3. The WAL receiver moves
/// between nodes, so each node's local store holds only the segments it archived while it held the slot; S3 holds
/// every node's. Both stores verify what they return against the checksum recorded with it (the local sidecar; the S3
/// metadata, sidecar and, for an encrypted copy, the plaintext's checksum), so mixing them never mixes unverified bytes.
/// Read-only: writes and deletes go to the stores themselves.
/// </summary>
public sealed class LocalFirstArtifactStore : IArtifactStore
{
    private readonly LocalArtifactStore _local;
    private readonly IArtifactStore _remote;
    private int _remoteReads;

    public LocalFirstArtifactStore(LocalArtifactStore local, IArtifactStore remote)
    {
        ArgumentNullException.ThrowIfNull(local);
        ArgumentNullException.ThrowIfNull(remote);
        _local = local;
        _remote = remote;
    }

    /// <summary>The local store.</summary>
    public LocalArtifactStore Local => _local;

    /// <summary>S3.</summary>
    public IArtifactStore Remote => _remote;

    /// <inheritdoc />
    public string Target => $"{_local.Target}+{_remote.Target}";

    /// <summary>How many artifacts were opened from S3 because the local store lacks them.</summary>
    public int RemoteReads => Volatile.Read(ref _remoteReads);

    /// <summary>The store an artifact is read from: the local one when it holds it, else S3.</summary>
    public async Task<IArtifactStore> HolderAsync(string kind, string name, CancellationToken cancellationToken = default) =>
        await _local.StatAsync(kind, name, cancellationToken).ConfigureAwait(false) is not null ? _local : _remote;

    /// <inheritdoc />
    public Task<ArtifactInfo> WriteAsync(string kind, string name, Stream content, string? expectedSha256 = null, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("the local-first view of a cluster's stores is read-only: write to the local store");

    /// <inheritdoc />
    public async Task<Stream> OpenReadAsync(string kind, string name, CancellationToken cancellationToken = default)
    {
        var holder = await HolderAsync(kind, name, cancellationToken).ConfigureAwait(false);
        if (!ReferenceEquals(holder, _local))
        {
            Interlocked.Increment(ref _remoteReads);
        }

        return await holder.OpenReadAsync(kind, name, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<ArtifactInfo?> StatAsync(string kind, string name, CancellationToken cancellationToken = default) =>
        await _local.StatAsync(kind, name, cancellationToken).ConfigureAwait(false)
        ?? await _remote.StatAsync(kind, name, cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public IAsyncEnumerable<ArtifactInfo> ListAsync(string kind, CancellationToken cancellationToken = default) =>
        UnionAsync(_local.ListAsync(kind, cancellationToken), _remote.ListAsync(kind, cancellationToken), cancellationToken);

    /// <inheritdoc />
    public IAsyncEnumerable<ArtifactInfo> ListWithoutChecksumsAsync(string kind, CancellationToken cancellationToken = default) =>
        UnionAsync(_local.ListWithoutChecksumsAsync(kind, cancellationToken), _remote.ListWithoutChecksumsAsync(kind, cancellationToken), cancellationToken);

    /// <inheritdoc />
    public IAsyncEnumerable<ArtifactInfo> ListPrefixAsync(string kind, string namePrefix, CancellationToken cancellationToken = default) =>
        UnionAsync(_local.ListPrefixAsync(kind, namePrefix, cancellationToken), _remote.ListPrefixAsync(kind, namePrefix, cancellationToken), cancellationToken);

    /// <inheritdoc />
    public Task DeleteAsync(string kind, string name, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("the local-first view of a cluster's stores is read-only: delete from the store itself");

    /// <summary>Every local artifact, then each of S3's the local store does not hold (by name).</summary>
    private static async IAsyncEnumerable<ArtifactInfo> UnionAsync(IAsyncEnumerable<ArtifactInfo> local, IAsyncEnumerable<ArtifactInfo> remote,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var artifact in local.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            seen.Add(artifact.Name);
            yield return artifact;
        }

        await foreach (var artifact in remote.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (seen.Add(artifact.Name))
            {
                yield return artifact;
            }
        }
    }
}
