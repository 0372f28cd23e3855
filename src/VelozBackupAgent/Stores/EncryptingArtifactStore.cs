using System.Buffers;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Secrets;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Stores;

/// <summary>
/// Client-side encryption of the S3 copy. Every artifact written is streamed through <c>gpg --encrypt</c> (to the
/// keys of <c>Backup:Secrets:Recipients</c>, checked once per <see cref="RecipientsRecheck"/>) and stored as
/// <c>&lt;name&gt;.enc.gpg</c> with the ciphertext's <c>.sha256</c> sidecar, written last by the inner store; the
/// plaintext's checksum goes to <c>&lt;name&gt;.sha256</c> (with the plaintext size as metadata), written just before,
/// so both forms pass <c>sha256sum -c</c>. Callers still see the logical artifact <c>&lt;name&gt;</c>: its plaintext
/// size and checksum from <see cref="StatAsync"/>, plaintext from <see cref="OpenReadAsync"/> (gpg --decrypt as a
/// child, verified against the plaintext checksum when the reader reaches the end).
/// <para>
/// Reads decrypt whatever they find, whether or not encryption is on, and fall back to a plaintext object of the
/// plain name, so buckets written before encryption (or with it off) stay restorable. The secrets kind and names
/// already ending in <c>.gpg</c> (the cluster globals) are gpg files already: they pass through unchanged.
/// </para>
/// </summary>
public sealed partial class EncryptingArtifactStore : IArtifactStore, IDisposable
{
    /// <summary>What the encrypted copy of <c>&lt;name&gt;</c> is called. Not plain <c>.gpg</c>: names such as
    /// <c>*.sql.gpg</c> (already encrypted) are artifacts of their own and must not be mistaken for a copy.</summary>
    public const string EncryptedSuffix = ".enc.gpg";

    /// <summary>How long a successful check of the recipients' public keys is trusted before gpg is asked again.</summary>
    public static readonly TimeSpan RecipientsRecheck = TimeSpan.FromMinutes(10);

    private const string EncryptKey = "Backup:S3:Encrypt";

    private readonly IArtifactStore _inner;
    private readonly IDetachedChecksums _sidecars;
    private readonly Gpg _gpg;
    private readonly bool _encrypt;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _resolving = new(1, 1);
    private IReadOnlyList<GpgKey>? _recipients;
    private DateTimeOffset _resolvedAt;

    internal EncryptingArtifactStore(IArtifactStore inner, IDetachedChecksums sidecars, Gpg gpg, bool encrypt, TimeProvider time, ILogger logger)
    {
        _inner = inner;
        _sidecars = sidecars;
        _gpg = gpg;
        _encrypt = encrypt;
        _time = time;
        _logger = logger;
    }

    /// <summary>Wraps an S3 store: encrypting when <paramref name="encrypt"/>, always able to decrypt.</summary>
    public static EncryptingArtifactStore Over<TStore>(TStore inner, Configuration.SecretsOptions gpgOptions, bool encrypt, TimeProvider time, ILogger logger)
        where TStore : IArtifactStore, IDetachedChecksums =>
        new(inner, inner, new Gpg(gpgOptions, logger), encrypt, time, logger);

    /// <inheritdoc />
    public string Target => _inner.Target;

    /// <summary>Whether new copies are encrypted (reads decrypt either way).</summary>
    public bool Encrypts => _encrypt;

    /// <summary>Artifacts that are gpg files already and are stored as they are: the secrets kind, names ending in <c>.gpg</c>.</summary>
    public static bool IsPassThrough(string kind, string name) =>
        string.Equals(kind, BackupKinds.Secrets, StringComparison.Ordinal) || name.EndsWith(".gpg", StringComparison.Ordinal);

    /// <summary>Checks now that every recipient has a usable public key (for start-up); throws <see cref="StoreException"/> naming the key.</summary>
    public async Task EnsureRecipientsAsync(CancellationToken cancellationToken = default)
    {
        if (_encrypt)
        {
            await RecipientsAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async Task<ArtifactInfo> WriteAsync(string kind, string name, Stream content, string? expectedSha256 = null, CancellationToken cancellationToken = default)
    {
        ArtifactNames.Validate(kind, name);
        ArgumentNullException.ThrowIfNull(content);
        if (!_encrypt || IsPassThrough(kind, name))
        {
            return await _inner.WriteAsync(kind, name, content, expectedSha256, cancellationToken).ConfigureAwait(false);
        }

        expectedSha256 = expectedSha256?.ToLowerInvariant();
        var existing = await StatAsync(kind, name, cancellationToken).ConfigureAwait(false);
        if (existing is { Encrypted: true })
        {
            return await MatchExistingAsync(existing, content, expectedSha256, cancellationToken).ConfigureAwait(false);
        }

        if (existing is not null)
        {
            // A plaintext copy from before encryption: the inner store decides (same bytes: no-op; other bytes: conflict).
            return await _inner.WriteAsync(kind, name, content, expectedSha256, cancellationToken).ConfigureAwait(false);
        }

        var recipients = await RecipientsAsync(cancellationToken).ConfigureAwait(false);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long plainSize = 0;
        Exception? sourceError = null;
        ChildProcess child;
        try
        {
            child = _gpg.StartEncryption(recipients);
        }
        catch (BackupSourceException e)
        {
            throw new StoreException($"{EncryptKey}: {e.Message}", e);
        }

        await using (child.ConfigureAwait(false))
        {
            child.PumpInput(async (stdin, token) =>
            {
                var buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
                try
                {
                    while (true)
                    {
                        int read;
                        try
                        {
                            read = await content.ReadAsync(buffer, token).ConfigureAwait(false);
                        }
                        catch (Exception e)
                        {
                            // The source's own failure (a corrupt local copy, an abandoned tee) is the finding, not gpg's exit.
                            sourceError = e;
                            throw;
                        }

                        if (read == 0)
                        {
                            break;
                        }

                        sha.AppendData(buffer, 0, read);
                        plainSize += read;
                        await stdin.WriteAsync(buffer.AsMemory(0, read), token).ConfigureAwait(false);
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }, cancellationToken);

            string? plainSha = null;

            // The plaintext sidecar goes in when gpg's output ends and before the inner store completes the object
            // and writes its own sidecar: once the encrypted copy counts as an artifact, its plaintext checksum exists.
            var ciphertext = new EndGateStream(child.Output, async token =>
            {
                plainSha = Convert.ToHexStringLower(sha.GetHashAndReset());
                if (expectedSha256 is not null && !string.Equals(plainSha, expectedSha256, StringComparison.Ordinal))
                {
                    throw new ArtifactIntegrityException($"content for {kind}/{name} hashes to {plainSha}, not the expected {expectedSha256}; nothing stored");
                }

                await _sidecars.WriteDetachedChecksumAsync(kind, name, plainSha, plainSize, token).ConfigureAwait(false);
            });

            ArtifactInfo stored;
            try
            {
                stored = await _inner.WriteAsync(kind, name + EncryptedSuffix, ciphertext, null, cancellationToken).ConfigureAwait(false);
            }
            catch (BackupSourceException e)
            {
                throw sourceError switch
                {
                    StoreException or OperationCanceledException => sourceError,
                    null => new StoreException($"{EncryptKey}: gpg could not encrypt {kind}/{name}: {e.Message}", e),
                    _ => new StoreException($"reading {kind}/{name} to encrypt it failed: {sourceError.Message}", sourceError),
                };
            }

            LogEncrypted(_logger, kind, name, plainSize, stored.Size);
            return new ArtifactInfo(kind, name, plainSize, plainSha!) { Encrypted = true };
        }
    }

    /// <inheritdoc />
    public async Task<Stream> OpenReadAsync(string kind, string name, CancellationToken cancellationToken = default)
    {
        ArtifactNames.Validate(kind, name);
        if (IsPassThrough(kind, name))
        {
            return await _inner.OpenReadAsync(kind, name, cancellationToken).ConfigureAwait(false);
        }

        Stream ciphertext;
        try
        {
            ciphertext = await _inner.OpenReadAsync(kind, name + EncryptedSuffix, cancellationToken).ConfigureAwait(false);
        }
        catch (ArtifactNotFoundException)
        {
            // Not encrypted: a copy from before encryption, or with it off.
            return await _inner.OpenReadAsync(kind, name, cancellationToken).ConfigureAwait(false);
        }

        try
        {
            var plain = await PlainChecksumAsync(kind, name, cancellationToken).ConfigureAwait(false);
            ChildProcess child;
            try
            {
                child = _gpg.StartDecryption();
            }
            catch (BackupSourceException e)
            {
                throw new StoreException($"cannot decrypt {Label(kind, name)}: {e.Message}", e);
            }

            var pump = new PumpFailure();
            child.PumpInput(async (stdin, token) =>
            {
                try
                {
                    await ciphertext.CopyToAsync(stdin, 1 << 16, token).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    pump.Error = e;
                    throw;
                }
                finally
                {
                    pump.Done.TrySetResult();
                }
            }, cancellationToken);
            return new DecryptingStream(this, child, ciphertext, pump, plain, kind, name);
        }
        catch
        {
            await ciphertext.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc />
    /// <remarks>For an encrypted copy: the plaintext's size and checksum, with <see cref="ArtifactInfo.Encrypted"/> set.</remarks>
    public async Task<ArtifactInfo?> StatAsync(string kind, string name, CancellationToken cancellationToken = default)
    {
        ArtifactNames.Validate(kind, name);
        if (IsPassThrough(kind, name))
        {
            return await _inner.StatAsync(kind, name, cancellationToken).ConfigureAwait(false);
        }

        var encrypted = await _inner.StatAsync(kind, name + EncryptedSuffix, cancellationToken).ConfigureAwait(false);
        if (encrypted is null)
        {
            return await _inner.StatAsync(kind, name, cancellationToken).ConfigureAwait(false);
        }

        var plain = await PlainChecksumAsync(kind, name, cancellationToken).ConfigureAwait(false);
        return new ArtifactInfo(kind, name, plain.Size ?? encrypted.Size, plain.Sha256) { Encrypted = true };
    }

    /// <inheritdoc />
    public IAsyncEnumerable<ArtifactInfo> ListAsync(string kind, CancellationToken cancellationToken = default) =>
        Logical(kind, _inner.ListAsync(kind, cancellationToken), cancellationToken);

    /// <inheritdoc />
    public IAsyncEnumerable<ArtifactInfo> ListWithoutChecksumsAsync(string kind, CancellationToken cancellationToken = default) =>
        Logical(kind, _inner.ListWithoutChecksumsAsync(kind, cancellationToken), cancellationToken);

    /// <inheritdoc />
    public IAsyncEnumerable<ArtifactInfo> ListPrefixAsync(string kind, string namePrefix, CancellationToken cancellationToken = default) =>
        Logical(kind, _inner.ListPrefixAsync(kind, namePrefix, cancellationToken), cancellationToken);

    /// <inheritdoc />
    public async Task DeleteAsync(string kind, string name, CancellationToken cancellationToken = default)
    {
        ArtifactNames.Validate(kind, name);
        if (!IsPassThrough(kind, name))
        {
            // The encrypted copy's own sidecar goes first (inner store), so it stops counting before anything else goes.
            await _inner.DeleteAsync(kind, name + EncryptedSuffix, cancellationToken).ConfigureAwait(false);
        }

        // The plaintext sidecar, and a plaintext copy from before encryption if there is one.
        await _inner.DeleteAsync(kind, name, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Disposes the inner store.</summary>
    public void Dispose()
    {
        (_inner as IDisposable)?.Dispose();
        _resolving.Dispose();
    }

    private string Label(string kind, string name) => $"{_inner.Target} {kind}/{name}{EncryptedSuffix}";

    private async Task<DetachedChecksum> PlainChecksumAsync(string kind, string name, CancellationToken cancellationToken) =>
        await _sidecars.ReadDetachedChecksumAsync(kind, name, cancellationToken).ConfigureAwait(false)
        ?? throw new ArtifactIntegrityException(
            $"{Label(kind, name)} has no {name}.sha256 (the checksum of its plaintext): it was tampered with or half-deleted; decrypt it by hand (gpg -d) or delete it");

    private async Task<ArtifactInfo> MatchExistingAsync(ArtifactInfo existing, Stream content, string? expectedSha256, CancellationToken cancellationToken)
    {
        if (expectedSha256 is not null && string.Equals(expectedSha256, existing.Sha256, StringComparison.Ordinal))
        {
            return existing;
        }

        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
        long size = 0;
        try
        {
            int read;
            while ((read = await content.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                sha.AppendData(buffer, 0, read);
                size += read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        var hex = Convert.ToHexStringLower(sha.GetHashAndReset());
        if (expectedSha256 is not null && !string.Equals(hex, expectedSha256, StringComparison.Ordinal))
        {
            throw new ArtifactIntegrityException($"content for {existing.Kind}/{existing.Name} hashes to {hex}, not the expected {expectedSha256}; nothing stored");
        }

        if (string.Equals(hex, existing.Sha256, StringComparison.Ordinal) && size == existing.Size)
        {
            return existing;
        }

        throw new ArtifactConflictException(
            $"{_inner.Target} already holds {existing.Kind}/{existing.Name} (encrypted) with other content ({existing.Size} bytes, sha256 {existing.Sha256}); refusing to overwrite it with {size} bytes, sha256 {hex}");
    }

    private async Task<IReadOnlyList<GpgKey>> RecipientsAsync(CancellationToken cancellationToken)
    {
        await _resolving.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_recipients is null || _time.GetUtcNow() - _resolvedAt >= RecipientsRecheck)
            {
                try
                {
                    _recipients = await _gpg.ResolveRecipientsAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (BackupSourceException e)
                {
                    _recipients = null;
                    throw new StoreException($"{EncryptKey} is on but {e.Message}", e);
                }

                _resolvedAt = _time.GetUtcNow();
            }

            return _recipients;
        }
        finally
        {
            _resolving.Release();
        }
    }

    private static async IAsyncEnumerable<ArtifactInfo> Logical(string kind, IAsyncEnumerable<ArtifactInfo> stored, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var passThroughKind = string.Equals(kind, BackupKinds.Secrets, StringComparison.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var artifact in stored.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (!passThroughKind && artifact.Name.EndsWith(EncryptedSuffix, StringComparison.Ordinal))
            {
                var logical = artifact.Name[..^EncryptedSuffix.Length];
                if (seen.Add(logical))
                {
                    yield return new ArtifactInfo(kind, logical, artifact.Size, null) { Encrypted = true };
                }
            }
            else if (seen.Add(artifact.Name))
            {
                yield return artifact;
            }
        }
    }

    private Exception DecryptionFailure(string kind, string name, ChildProcess child, PumpFailure pump, BackupSourceException e)
    {
        if (pump.Error is StoreException or OperationCanceledException)
        {
            // The ciphertext itself failed its checksum (or S3 failed): that, not gpg's complaint, is the finding.
            return pump.Error;
        }

        var summary = child.ErrorSummary();
        if (summary.Contains("No secret key", StringComparison.OrdinalIgnoreCase) || e.Message.Contains("No secret key", StringComparison.OrdinalIgnoreCase))
        {
            return new StoreException(
                $"cannot decrypt {Label(kind, name)}: no secret key for it in {_gpg.Keyring}; import the private key of one of Backup:Secrets:Recipients (gpg --import) or set Backup:Secrets:GnupgHome", e);
        }

        return new ArtifactIntegrityException($"{Label(kind, name)} does not decrypt: {e.Message}", e);
    }

    [LoggerMessage(EventId = LogEvents.EncryptingStore.Encrypted, Level = LogLevel.Debug, Message = "Encrypted {Kind}/{Name} for the replica: {PlainSize} bytes, {CipherSize} encrypted")]
    private static partial void LogEncrypted(ILogger logger, string kind, string name, long plainSize, long cipherSize);

    private sealed class PumpFailure
    {
        public Exception? Error { get; set; }

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Runs a callback when the inner stream reports its end, before passing the end on (its failure fails the read).</summary>
    private sealed class EndGateStream(Stream inner, Func<CancellationToken, Task> atEnd) : ReadOnlyStream
    {
        private bool _ended;

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (read == 0 && buffer.Length > 0 && !_ended)
            {
                await atEnd(cancellationToken).ConfigureAwait(false);
                _ended = true;
            }

            return read;
        }
    }

    /// <summary>gpg's plaintext output, hashed as it is read and checked against the plaintext sidecar at the end.</summary>
    private sealed class DecryptingStream : ReadOnlyStream
    {
        private readonly EncryptingArtifactStore _owner;
        private readonly ChildProcess _child;
        private readonly Stream _ciphertext;
        private readonly PumpFailure _pump;
        private readonly DetachedChecksum _expected;
        private readonly string _kind;
        private readonly string _name;
        private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private long _read;
        private bool _verified;
        private bool _disposed;

        public DecryptingStream(EncryptingArtifactStore owner, ChildProcess child, Stream ciphertext, PumpFailure pump, DetachedChecksum expected, string kind, string name)
        {
            _owner = owner;
            _child = child;
            _ciphertext = ciphertext;
            _pump = pump;
            _expected = expected;
            _kind = kind;
            _name = name;
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int read;
            try
            {
                read = await _child.Output.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            catch (BackupSourceException e)
            {
                await ConfirmCorruptionAsync().ConfigureAwait(false);
                throw _owner.DecryptionFailure(_kind, _name, _child, _pump, e);
            }

            if (read > 0)
            {
                _sha.AppendData(buffer.Span[..read]);
                _read += read;
            }
            else if (buffer.Length > 0 && !_verified)
            {
                Verify();
                _verified = true;
            }

            return read;
        }

        /// <summary>
        /// gpg stopped before the end of the ciphertext (a damaged packet): the rest is read, so that the ciphertext's
        /// own checksum, if it fails, is what is reported ("checksum mismatch", naming the object).
        /// </summary>
        private async Task ConfirmCorruptionAsync()
        {
            if (_pump.Error is StoreException or OperationCanceledException)
            {
                return;
            }

            try
            {
                await _pump.Done.Task.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
                await _ciphertext.CopyToAsync(Stream.Null).ConfigureAwait(false);
            }
            catch (ArtifactIntegrityException integrity)
            {
                _pump.Error = integrity;
            }
            catch (Exception e) when (e is IOException or TimeoutException or StoreException or ObjectDisposedException or InvalidOperationException)
            {
                // Unknown: gpg's own error is reported.
            }
        }

        private void Verify()
        {
            var label = _owner.Label(_kind, _name);
            if (_expected.Size is { } size && size != _read)
            {
                throw new ArtifactIntegrityException($"{label}: decrypts to {_read} bytes, {size} recorded");
            }

            var actual = Convert.ToHexStringLower(_sha.GetHashAndReset());
            if (!string.Equals(actual, _expected.Sha256, StringComparison.Ordinal))
            {
                throw new ArtifactIntegrityException($"{label}: checksum mismatch after decryption (plaintext hashes to {actual}, recorded {_expected.Sha256})");
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing && !_disposed)
            {
                _disposed = true;
                _child.DisposeAsync().AsTask().GetAwaiter().GetResult();
                _ciphertext.Dispose();
                _sha.Dispose();
            }

            base.Dispose(disposing);
        }

        public override async ValueTask DisposeAsync()
        {
            if (!_disposed)
            {
                _disposed = true;
                await _child.DisposeAsync().ConfigureAwait(false);
                await _ciphertext.DisposeAsync().ConfigureAwait(false);
                _sha.Dispose();
            }

            await base.DisposeAsync().ConfigureAwait(false);
        }
    }
}
