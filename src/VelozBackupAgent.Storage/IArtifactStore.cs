namespace VelozBackupAgent.Storage;

/// <summary>
/// Keeps backup artifacts: immutable byte streams addressed by a <c>kind</c> (a folder such as
/// <c>wal</c> or <c>database</c>) and a file <c>name</c>. Every artifact carries the SHA-256 of its
/// bytes, computed while it was written and stored beside it as a <c>sha256sum</c>-format sidecar.
/// An artifact either exists completely, with its checksum, or does not exist at all: a write that
/// fails or is interrupted leaves nothing that <see cref="ListAsync"/> or <see cref="StatAsync"/>
/// reports. Implementations let exceptions propagate; <see cref="StoreException"/> and its subclasses
/// carry a message a user can act on.
/// </summary>
public interface IArtifactStore
{
    /// <summary>The target label used in logs and metrics: <c>local</c> or <c>s3</c>.</summary>
    string Target { get; }

    /// <summary>
    /// Streams <paramref name="content"/> into the artifact <paramref name="kind"/>/<paramref name="name"/>.
    /// Writing the same bytes again is a no-op that returns the stored artifact; different bytes under an
    /// existing name throw <see cref="ArtifactConflictException"/> and leave the stored artifact untouched.
    /// When <paramref name="expectedSha256"/> is given, bytes that hash differently are refused
    /// (<see cref="ArtifactIntegrityException"/>) and nothing is stored.
    /// </summary>
    Task<ArtifactInfo> WriteAsync(string kind, string name, Stream content, string? expectedSha256 = null, CancellationToken cancellationToken = default);

    /// <summary>Opens the artifact's bytes for reading. Throws <see cref="ArtifactNotFoundException"/>.</summary>
    Task<Stream> OpenReadAsync(string kind, string name, CancellationToken cancellationToken = default);

    /// <summary>The artifact's size and recorded checksum, or <c>null</c> when it does not exist.</summary>
    Task<ArtifactInfo?> StatAsync(string kind, string name, CancellationToken cancellationToken = default);

    /// <summary>
    /// Every complete artifact of <paramref name="kind"/>, in no particular order. Sidecars, temporary
    /// files and interrupted writes are never listed. <see cref="ArtifactInfo.Sha256"/> may be null
    /// where the store's listing does not carry it cheaply (S3); <see cref="StatAsync"/> always fills it.
    /// </summary>
    IAsyncEnumerable<ArtifactInfo> ListAsync(string kind, CancellationToken cancellationToken = default);

    /// <summary>
    /// The same artifacts as <see cref="ListAsync"/>, with <see cref="ArtifactInfo.Sha256"/> left null wherever
    /// filling it costs a read per artifact (the local store's sidecars): for counts, sizes and names, such as the
    /// metrics' periodic inventory of a WAL folder of many thousand segments.
    /// </summary>
    IAsyncEnumerable<ArtifactInfo> ListWithoutChecksumsAsync(string kind, CancellationToken cancellationToken = default) => ListAsync(kind, cancellationToken);

    /// <summary>
    /// The artifacts of <paramref name="kind"/> whose names start with <paramref name="namePrefix"/>, as
    /// <see cref="ListWithoutChecksumsAsync"/> lists them: for finding one segment's pieces among many thousand files.
    /// </summary>
    async IAsyncEnumerable<ArtifactInfo> ListPrefixAsync(string kind, string namePrefix, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var artifact in ListWithoutChecksumsAsync(kind, cancellationToken).ConfigureAwait(false))
        {
            if (artifact.Name.StartsWith(namePrefix, StringComparison.Ordinal))
            {
                yield return artifact;
            }
        }
    }

    /// <summary>Deletes the artifact and its sidecar. Deleting what does not exist is not an error.</summary>
    Task DeleteAsync(string kind, string name, CancellationToken cancellationToken = default);

    /// <summary>
    /// Until when the store itself keeps the artifact from being deleted (S3 Object Lock), so retention leaves it
    /// alone before then; null when the store locks nothing (the default) or the artifact does not exist. A wrapper
    /// around a store must pass this on.
    /// </summary>
    Task<DateTimeOffset?> LockedUntilAsync(string kind, string name, CancellationToken cancellationToken = default) => Task.FromResult<DateTimeOffset?>(null);
}

/// <summary>What a store knows about one stored artifact.</summary>
/// <param name="Kind">The folder, e.g. <c>database</c>.</param>
/// <param name="Name">The file name, e.g. <c>veloz_20260214_120000.dump</c>.</param>
/// <param name="Size">Size of the artifact's bytes.</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the bytes, when known (see <see cref="IArtifactStore.ListAsync"/>).</param>
public sealed record ArtifactInfo(string Kind, string Name, long Size, string? Sha256)
{
    /// <summary>
    /// The store keeps these bytes encrypted (the S3 copy with <c>Backup:S3:Encrypt</c>). <see cref="Size"/> and
    /// <see cref="Sha256"/> from <see cref="IArtifactStore.StatAsync"/> are still the plaintext's; from a listing,
    /// <see cref="Size"/> is the ciphertext's, so it cannot be compared with another store's.
    /// </summary>
    public bool Encrypted { get; init; }
}
