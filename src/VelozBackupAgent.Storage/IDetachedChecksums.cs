namespace VelozBackupAgent.Storage;

/// <summary>
/// A store that can keep an artifact's <c>&lt;name&gt;.sha256</c> sidecar while the artifact's bytes are stored in
/// another form under another name (the S3 copy encrypted to <c>&lt;name&gt;.enc.gpg</c>): the sidecar is then the
/// checksum of the plaintext, so <c>sha256sum -c</c> still checks what a break-glass decryption produced.
/// </summary>
public interface IDetachedChecksums
{
    /// <summary>Writes the sidecar of <paramref name="name"/> (<paramref name="sha256"/>, and the plaintext size as metadata), replacing any.</summary>
    Task WriteDetachedChecksumAsync(string kind, string name, string sha256, long size, CancellationToken cancellationToken = default);

    /// <summary>The sidecar of <paramref name="name"/>: its digest and the recorded size (null when not recorded), or null when there is none.</summary>
    Task<DetachedChecksum?> ReadDetachedChecksumAsync(string kind, string name, CancellationToken cancellationToken = default);
}

/// <summary>A sidecar read by <see cref="IDetachedChecksums.ReadDetachedChecksumAsync"/>.</summary>
/// <param name="Sha256">Lower-case hex SHA-256 of the plaintext.</param>
/// <param name="Size">Size of the plaintext, when the writer recorded it.</param>
public sealed record DetachedChecksum(string Sha256, long? Size);
