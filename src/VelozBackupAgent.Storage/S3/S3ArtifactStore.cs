using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Amazon;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using VelozBackupAgent.Storage.Checksums;

namespace VelozBackupAgent.Storage.S3;

/// <summary>
/// Keeps artifacts in an S3 bucket (or an S3-compatible store) under <c>&lt;Prefix&gt;/&lt;kind&gt;/&lt;name&gt;</c> (the
/// kind's own prefix where <see cref="S3StoreOptions.KindPrefixes"/> names one),
/// each with its SHA-256 as object metadata (<c>x-amz-meta-sha256</c>) and as a <c>&lt;key&gt;.sha256</c>
/// sidecar object in <c>sha256sum</c> format, written last: an object without its sidecar is not an artifact.
/// Uploads stream in parts of <see cref="S3StoreOptions.PartSizeBytes"/> (at most two parts in memory) and are
/// verified after they are stored (per-part ETag against MD5, then size and checksum metadata by HEAD); an
/// upload that S3 stored differently is deleted and refused with <see cref="ArtifactIntegrityException"/>.
/// Reads verify size and SHA-256 as the reader reaches the end. Every object written (artifact, sidecar; put,
/// multipart initiate, metadata copy) carries the server-side encryption, storage class and Object Lock retention of
/// the options (<see cref="S3ObjectProtection"/>); the HEAD after an upload checks what S3 reports of them.
/// </summary>
[SuppressMessage("Security", "CA5351:Do Not Use Broken Cryptographic Algorithms", Justification = "MD5 is what S3 ETags are made of; it checks transfer, not security. SHA-256 is the artifact checksum.")]
public sealed partial class S3ArtifactStore : IArtifactStore, IDisposable
{
    private const string ShaMetadataName = "sha256";
    private const string ShaMetadataHeader = "x-amz-meta-sha256";
    private const string ContentType = "application/octet-stream";
    private const int MaxParts = 10_000;
    private const long MaxSidecarBytes = 4096;

    private readonly S3StoreOptions _options;
    private readonly IAmazonS3 _client;
    private readonly bool _ownsClient;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly S3Calls _calls;
    private readonly string? _encryption;
    private readonly string? _storageClass;
    private readonly bool _verifyEtag;
    private readonly ConcurrentDictionary<string, bool> _unreported = new(StringComparer.Ordinal);

    /// <summary>
    /// A store with its own <see cref="AmazonS3Client"/> built by <see cref="CreateClient"/> from
    /// <paramref name="options"/>, with credentials from the AWS default chain.
    /// </summary>
    public S3ArtifactStore(S3StoreOptions options, ILogger<S3ArtifactStore>? logger = null, TimeProvider? timeProvider = null)
        : this(options, CreateClient(options), logger, timeProvider)
    {
        _ownsClient = true;
    }

    /// <summary>
    /// A store over <paramref name="client"/> (not disposed by the store). This store retries transient
    /// failures itself (<see cref="S3StoreOptions.MaxRetries"/>): give it a client with
    /// <c>MaxErrorRetry = 0</c>, as <see cref="CreateClient"/> builds, or retries multiply.
    /// </summary>
    public S3ArtifactStore(S3StoreOptions options, IAmazonS3 client, ILogger<S3ArtifactStore>? logger = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(client);
        options.Validate();
        _options = options;
        _client = client;
        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _calls = new S3Calls(options, _time, _logger);
        _encryption = S3ObjectProtection.Canonical(options.ServerSideEncryption, S3ObjectProtection.Encryptions) is { } sse and not S3ObjectProtection.NoEncryption ? sse : null;
        _storageClass = S3ObjectProtection.Canonical(options.StorageClass, S3ObjectProtection.StorageClasses);

        // SSE-KMS ETags are not MD5s of the content; size and SHA-256 are still checked.
        _verifyEtag = options.VerifyEtag && _encryption != S3ObjectProtection.Kms;
    }

    /// <inheritdoc />
    public string Target => "s3";

    /// <summary>
    /// Builds a client for <paramref name="options"/>: the endpoint, region and addressing style from the options,
    /// SDK retries off (the store retries), credentials from <paramref name="credentials"/> or else the AWS default
    /// chain (environment <c>AWS_ACCESS_KEY_ID</c>/<c>AWS_SECRET_ACCESS_KEY</c>, profile, instance role).
    /// </summary>
    public static AmazonS3Client CreateClient(S3StoreOptions options, AWSCredentials? credentials = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var config = new AmazonS3Config
        {
            ForcePathStyle = options.ForcePathStyle,
            MaxErrorRetry = 0,
        };
        if (options.ServiceUrl is null)
        {
            config.RegionEndpoint = RegionEndpoint.GetBySystemName(options.Region);
        }
        else
        {
            config.ServiceURL = options.ServiceUrl;
            config.AuthenticationRegion = options.Region;
        }

        var client = credentials is null ? new AmazonS3Client(config) : new AmazonS3Client(credentials, config);
        client.BeforeRequestEvent += UnescapeCopySource;
        return client;
    }

    /// <summary>
    /// The SDK sends <c>x-amz-copy-source</c> as <c>bucket%2Fkey</c>; AWS decodes that, but s3rver (and other
    /// stores that only URI-decode it) look for a bucket named <c>bucket%2Fkey</c>. Keys here never contain
    /// '%' (see <see cref="ArtifactNames"/> and <see cref="S3StoreOptions.Validate"/>), so turning every
    /// <c>%2F</c> back into '/' is exact, and what AWS documents as the header's form.
    /// </summary>
    private static void UnescapeCopySource(object sender, RequestEventArgs e)
    {
        if (e is WebServiceRequestEventArgs { Headers: { } headers }
            && headers.TryGetValue("x-amz-copy-source", out var source)
            && source.Contains("%2F", StringComparison.OrdinalIgnoreCase))
        {
            headers["x-amz-copy-source"] = source.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);
        }
    }

    /// <inheritdoc />
    public async Task<ArtifactInfo> WriteAsync(string kind, string name, Stream content, string? expectedSha256 = null, CancellationToken cancellationToken = default)
    {
        ArtifactNames.Validate(kind, name);
        ArgumentNullException.ThrowIfNull(content);
        if (expectedSha256 is not null)
        {
            expectedSha256 = expectedSha256.ToLowerInvariant();
            if (!Sha256Sidecar.IsSha256Hex(expectedSha256))
            {
                throw new ArgumentException($"not a SHA-256 hex digest: '{expectedSha256}'", nameof(expectedSha256));
            }
        }

        var key = Key(kind, name);
        var head = await HeadAsync(key, cancellationToken);
        if (head is not null)
        {
            var sidecar = await ReadSidecarAsync(key, name, cancellationToken);
            if (sidecar is not null)
            {
                return await WriteOverExistingAsync(kind, name, key, head, sidecar, content, expectedSha256, cancellationToken);
            }

            // An object without its sidecar is the leftover of an interrupted write: it never counted as an
            // artifact and was never verified, so it is replaced rather than trusted.
            LogReplacingOrphan(_logger, _options.Bucket, key);
        }

        return await UploadAsync(kind, name, key, content, expectedSha256, cancellationToken);
    }

    /// <inheritdoc />
    public async Task<Stream> OpenReadAsync(string kind, string name, CancellationToken cancellationToken = default)
    {
        ArtifactNames.Validate(kind, name);
        var key = Key(kind, name);
        var sidecar = await ReadSidecarAsync(key, name, cancellationToken)
            ?? throw new ArtifactNotFoundException($"no artifact {kind}/{name} in S3 bucket '{_options.Bucket}' ({key}{Sha256Sidecar.Suffix} is missing)");

        var response = await _calls.RunAsync<GetObjectResponse?>("GetObject", key, async token =>
        {
            try
            {
                return await _client.GetObjectAsync(new GetObjectRequest { BucketName = _options.Bucket, Key = key }, token);
            }
            catch (AmazonS3Exception e) when (S3Calls.IsMissingKey(e))
            {
                return null;
            }
        }, cancellationToken) ?? throw new ArtifactNotFoundException($"no artifact {kind}/{name} in S3 bucket '{_options.Bucket}' ({key} is missing)");

        try
        {
            CrossCheck(key, MetadataSha(response.Metadata), sidecar);
        }
        catch
        {
            response.Dispose();
            throw;
        }

        // The SDK checks the body against the object's ETag/CRC as it ends; BodyStream turns its bare exception into ours.
        return new VerifyingReadStream(_calls.WrapBody(response.ResponseStream, key), sidecar, response.ContentLength, $"s3://{_options.Bucket}/{key}");
    }

    /// <inheritdoc />
    /// <remarks>
    /// Costs a HEAD and a GET of the sidecar. Returns <c>null</c> when the object or its sidecar is missing;
    /// throws <see cref="ArtifactIntegrityException"/> when the checksum metadata and the sidecar disagree.
    /// </remarks>
    public async Task<ArtifactInfo?> StatAsync(string kind, string name, CancellationToken cancellationToken = default)
    {
        ArtifactNames.Validate(kind, name);
        var key = Key(kind, name);
        var head = await HeadAsync(key, cancellationToken);
        if (head is null)
        {
            return null;
        }

        var sidecar = await ReadSidecarAsync(key, name, cancellationToken);
        if (sidecar is null)
        {
            return null;
        }

        CrossCheck(key, MetadataSha(head.Metadata), sidecar);
        return new ArtifactInfo(kind, name, head.ContentLength, sidecar);
    }

    /// <inheritdoc />
    public IAsyncEnumerable<ArtifactInfo> ListAsync(string kind, CancellationToken cancellationToken = default) => ListCoreAsync(kind, "", cancellationToken);

    /// <inheritdoc />
    /// <remarks>One listing of the keys under the name prefix, not of the whole kind.</remarks>
    public IAsyncEnumerable<ArtifactInfo> ListPrefixAsync(string kind, string namePrefix, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(namePrefix);
        if (namePrefix.Contains('/', StringComparison.Ordinal))
        {
            throw new ArgumentException($"invalid name prefix '{namePrefix}'", nameof(namePrefix));
        }

        return ListCoreAsync(kind, namePrefix, cancellationToken);
    }

    private async IAsyncEnumerable<ArtifactInfo> ListCoreAsync(string kind, string namePrefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArtifactNames.ValidateKind(kind);
        var kindPrefix = $"{_options.PrefixOf(kind)}/{kind}/";
        var prefix = kindPrefix + namePrefix;

        // Keys come sorted, so "x" arrives just before "x.sha256" and these hold only what is still
        // unmatched; both directions are kept so a store that lists in another order is still right.
        var objects = new Dictionary<string, long>(StringComparer.Ordinal);
        var sidecars = new HashSet<string>(StringComparer.Ordinal);
        string? continuation = null;
        do
        {
            var token = continuation;
            var page = await _calls.RunAsync("ListObjectsV2", prefix, t => _client.ListObjectsV2Async(
                new ListObjectsV2Request { BucketName = _options.Bucket, Prefix = prefix, ContinuationToken = token }, t), cancellationToken);
            foreach (var item in page.S3Objects ?? [])
            {
                var rest = item.Key[kindPrefix.Length..];
                if (rest.EndsWith(Sha256Sidecar.Suffix, StringComparison.Ordinal))
                {
                    var artifact = rest[..^Sha256Sidecar.Suffix.Length];
                    if (objects.Remove(artifact, out var size))
                    {
                        yield return new ArtifactInfo(kind, artifact, size, null);
                    }
                    else
                    {
                        sidecars.Add(artifact);
                    }
                }
                else if (IsArtifactName(rest))
                {
                    if (sidecars.Remove(rest))
                    {
                        yield return new ArtifactInfo(kind, rest, item.Size ?? 0, null);
                    }
                    else
                    {
                        objects[rest] = item.Size ?? 0;
                    }
                }
            }

            continuation = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (continuation is not null);
    }

    /// <inheritdoc />
    /// <remarks>
    /// In a bucket with Object Lock (hence versioning) this adds delete markers: a locked version stays until its
    /// date whatever is asked, so retention asks <see cref="LockedUntilAsync"/> first and leaves locked copies alone.
    /// </remarks>
    public async Task DeleteAsync(string kind, string name, CancellationToken cancellationToken = default)
    {
        ArtifactNames.Validate(kind, name);
        var key = Key(kind, name);

        // Sidecar first: from this moment the artifact no longer counts, even if deleting the object fails.
        await DeleteObjectAsync(key + Sha256Sidecar.Suffix, cancellationToken);
        await DeleteObjectAsync(key, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Only with <see cref="S3StoreOptions.ObjectLockMode"/> set (otherwise null, and no request): a HEAD of the object
    /// and of its sidecar; for each the retain-until date S3 reports, or where it reports none its last modification
    /// plus <see cref="S3StoreOptions.ObjectLockDays"/>. The later of the two.
    /// </remarks>
    public async Task<DateTimeOffset?> LockedUntilAsync(string kind, string name, CancellationToken cancellationToken = default)
    {
        ArtifactNames.Validate(kind, name);
        if (_options.LockMode is null)
        {
            return null;
        }

        var key = Key(kind, name);
        DateTimeOffset? latest = null;
        foreach (var k in new[] { key, key + Sha256Sidecar.Suffix })
        {
            if (await HeadAsync(k, cancellationToken) is { } head)
            {
                var until = S3ObjectProtection.LockedUntil(
                    head.ObjectLockRetainUntilDate is { } reported ? AsUtc(reported) : null,
                    head.LastModified is { } modified ? AsUtc(modified) : _time.GetUtcNow(),
                    _options.ObjectLockDays);
                latest = latest is null || until > latest ? until : latest;
            }
        }

        return latest;
    }

    /// <summary>
    /// Aborts incomplete multipart uploads under the prefix that started more than <paramref name="olderThan"/>
    /// ago (left by a crash; S3 keeps and bills their parts). Best effort: a store that cannot list multipart
    /// uploads is logged and skipped. Returns how many were aborted.
    /// </summary>
    public async Task<int> AbortStaleUploadsAsync(TimeSpan olderThan, CancellationToken cancellationToken = default)
    {
        var cutoff = _time.GetUtcNow() - olderThan;
        var aborted = 0;
        try
        {
            // The node's prefix and every kind's own (a cluster's shared one): uploads anywhere this store writes.
            foreach (var prefix in _options.KindPrefixes.Values.Prepend(_options.Prefix).Distinct(StringComparer.Ordinal).Select(p => p + "/"))
            {
                aborted += await AbortStaleUploadsUnderAsync(prefix, cutoff, cancellationToken);
            }
        }
        catch (StoreException e)
        {
            LogStaleUploadsSkipped(_logger, _options.Bucket, e.Message);
        }

        return aborted;
    }

    private async Task<int> AbortStaleUploadsUnderAsync(string prefix, DateTimeOffset cutoff, CancellationToken cancellationToken)
    {
        var aborted = 0;
        string? keyMarker = null;
        string? uploadIdMarker = null;
        bool more;
        do
        {
            var (km, um) = (keyMarker, uploadIdMarker);
            var page = await _calls.RunAsync("ListMultipartUploads", prefix, t => _client.ListMultipartUploadsAsync(
                new ListMultipartUploadsRequest { BucketName = _options.Bucket, Prefix = prefix, KeyMarker = km, UploadIdMarker = um }, t), cancellationToken);
            foreach (var upload in page.MultipartUploads ?? [])
            {
                if (upload.Initiated is { } initiated && AsUtc(initiated) <= cutoff)
                {
                    await _calls.RunAsync("AbortMultipartUpload", upload.Key, t => _client.AbortMultipartUploadAsync(
                        new AbortMultipartUploadRequest { BucketName = _options.Bucket, Key = upload.Key, UploadId = upload.UploadId }, t), cancellationToken);
                    LogAbortedStale(_logger, _options.Bucket, upload.Key, initiated);
                    aborted++;
                }
            }

            more = page.IsTruncated == true;
            keyMarker = page.NextKeyMarker;
            uploadIdMarker = page.NextUploadIdMarker;
        }
        while (more);
        return aborted;
    }

    /// <summary>Disposes the client when the store built it.</summary>
    public void Dispose()
    {
        if (_ownsClient)
        {
            _client.Dispose();
        }
    }

    private string Key(string kind, string name) => $"{_options.PrefixOf(kind)}/{kind}/{name}";

    private string ChunkHint => _options.ChunkedUpload
        ? "; if this is s3rver or another S3-compatible store over http, set Backup:S3:ChunkedUpload to false"
        : "";

    private async Task<ArtifactInfo> WriteOverExistingAsync(
        string kind, string name, string key, GetObjectMetadataResponse head, string sidecarSha, Stream content, string? expectedSha256, CancellationToken cancellationToken)
    {
        CrossCheck(key, MetadataSha(head.Metadata), sidecarSha);
        var existing = new ArtifactInfo(kind, name, head.ContentLength, sidecarSha);
        if (expectedSha256 is not null && string.Equals(expectedSha256, sidecarSha, StringComparison.Ordinal))
        {
            return existing;
        }

        // The incoming bytes must be known before deciding: hash them without uploading anything.
        var (sha, size) = await DrainAsync(content, cancellationToken);
        if (expectedSha256 is not null && !string.Equals(sha, expectedSha256, StringComparison.Ordinal))
        {
            throw new ArtifactIntegrityException($"content for {key} hashes to {sha}, not the expected {expectedSha256}; nothing stored");
        }

        if (string.Equals(sha, sidecarSha, StringComparison.Ordinal) && size == existing.Size)
        {
            return existing;
        }

        throw new ArtifactConflictException(
            $"S3 bucket '{_options.Bucket}' already holds {key} with other content ({existing.Size} bytes, sha256 {sidecarSha}); refusing to overwrite it with {size} bytes, sha256 {sha}");
    }

    /// <summary>
    /// Writes the <c>.sha256</c> sidecar of <paramref name="key"/>, protected like every object and checked after the put.
    /// <paramref name="plainSize"/>: for a detached (plaintext) checksum, the plaintext's size, kept in its metadata.
    /// </summary>
    private async Task WriteSidecarAsync(string key, string name, string shaHex, CancellationToken cancellationToken, long? plainSize = null)
    {
        var sidecarKey = key + Sha256Sidecar.Suffix;
        var bytes = Sha256Sidecar.FormatBytes(shaHex, name);
        var md5 = MD5.HashData(bytes);
        var response = await _calls.RunAsync("PutObject", sidecarKey, async token =>
        {
            using var body = new MemoryStream(bytes, writable: false);
            var request = new PutObjectRequest
            {
                BucketName = _options.Bucket,
                Key = sidecarKey,
                InputStream = body,
                AutoCloseStream = false,
                ContentType = "text/plain",
                UseChunkEncoding = _options.ChunkedUpload,
            };
            if (plainSize is { } size)
            {
                request.Metadata.Add(PlainSizeMetadataName, size.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            // The same server-side encryption, storage class and Object Lock as every other object written.
            Protect(request, md5);
            return await _client.PutObjectAsync(request, token);
        }, cancellationToken);

        // A sidecar stored wrongly would make a good artifact look corrupt: check it like the object.
        await VerifyOrDeleteAsync(sidecarKey, () =>
        {
            CheckEtag(response.ETag, md5, sidecarKey, "");
            return Task.CompletedTask;
        });
    }

    private async Task<string?> ReadSidecarAsync(string key, string name, CancellationToken cancellationToken)
    {
        var sidecarKey = key + Sha256Sidecar.Suffix;
        var text = await _calls.RunAsync<string?>("GetObject", sidecarKey, async token =>
        {
            try
            {
                using var response = await _client.GetObjectAsync(new GetObjectRequest { BucketName = _options.Bucket, Key = sidecarKey }, token);
                if (response.ContentLength > MaxSidecarBytes)
                {
                    throw new ArtifactIntegrityException($"checksum sidecar {sidecarKey} is {response.ContentLength} bytes, not a sha256sum line");
                }

                using var reader = new StreamReader(response.ResponseStream, Encoding.UTF8);
                return await reader.ReadToEndAsync(token);
            }
            catch (AmazonS3Exception e) when (S3Calls.IsMissingKey(e))
            {
                return null;
            }
        }, cancellationToken);
        return text is null ? null : Sha256Sidecar.Parse(text, name);
    }

    private Task<GetObjectMetadataResponse?> HeadAsync(string key, CancellationToken cancellationToken) =>
        _calls.RunAsync<GetObjectMetadataResponse?>("HeadObject", key, async token =>
        {
            try
            {
                return await _client.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = _options.Bucket, Key = key }, token);
            }
            catch (AmazonS3Exception e) when (S3Calls.IsMissingKey(e))
            {
                return null;
            }
        }, cancellationToken);

    private async Task DeleteObjectAsync(string key, CancellationToken cancellationToken) =>
        await _calls.RunAsync("DeleteObject", key, token => _client.DeleteObjectAsync(
            new DeleteObjectRequest { BucketName = _options.Bucket, Key = key }, token), cancellationToken);

    private void CrossCheck(string key, string? metadataSha, string sidecarSha)
    {
        // An object put by hand (aws s3 cp + sha256sum) has no metadata: the sidecar alone then counts.
        if (metadataSha is not null && !string.Equals(metadataSha, sidecarSha, StringComparison.Ordinal))
        {
            throw new ArtifactIntegrityException(
                $"S3 object {key} in bucket '{_options.Bucket}' has sha256 metadata {metadataSha} but its sidecar says {sidecarSha}: one of them was altered");
        }
    }

    private static string? MetadataSha(MetadataCollection metadata)
    {
        var value = metadata[ShaMetadataHeader];
        return string.IsNullOrEmpty(value) ? null : value.Trim().ToLowerInvariant();
    }

    private static async Task<(string Sha, long Size)> DrainAsync(Stream content, CancellationToken cancellationToken)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            long size = 0;
            int read;
            while ((read = await content.ReadAsync(buffer, cancellationToken)) > 0)
            {
                sha.AppendData(buffer, 0, read);
                size += read;
            }

            return (Convert.ToHexStringLower(sha.GetHashAndReset()), size);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static bool IsArtifactName(string name)
    {
        try
        {
            ArtifactNames.ValidateName(name);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static DateTimeOffset AsUtc(DateTime value) => value.Kind switch
    {
        DateTimeKind.Unspecified => new DateTimeOffset(value, TimeSpan.Zero),
        _ => new DateTimeOffset(value.ToUniversalTime(), TimeSpan.Zero),
    };

    [LoggerMessage(EventId = LogEvents.S3Store.Stored, Level = LogLevel.Information, Message = "Stored s3://{Bucket}/{Key} ({Size} bytes, sha256 {Sha256}), verified")]
    private static partial void LogStored(ILogger logger, string bucket, string key, long size, string sha256);

    [LoggerMessage(EventId = LogEvents.S3Store.ReplacingOrphan, Level = LogLevel.Warning, Message = "s3://{Bucket}/{Key} exists without its checksum sidecar (an interrupted write); replacing it")]
    private static partial void LogReplacingOrphan(ILogger logger, string bucket, string key);

    [LoggerMessage(EventId = LogEvents.S3Store.UploadRefused, Level = LogLevel.Error, Message = "Upload of s3://{Bucket}/{Key} refused and removed: {Reason}")]
    private static partial void LogUploadRefused(ILogger logger, string bucket, string key, string reason);

    [LoggerMessage(EventId = LogEvents.S3Store.Aborted, Level = LogLevel.Warning, Message = "Aborted the multipart upload of s3://{Bucket}/{Key}: {Reason}")]
    private static partial void LogAborted(ILogger logger, string bucket, string key, string reason);

    [LoggerMessage(EventId = LogEvents.S3Store.CleanupFailed, Level = LogLevel.Warning, Message = "Could not {What} s3://{Bucket}/{Key}: {Error}")]
    private static partial void LogCleanupFailed(ILogger logger, string what, string bucket, string key, string error);

    [LoggerMessage(EventId = LogEvents.S3Store.AbortedStale, Level = LogLevel.Information, Message = "Aborted stale multipart upload of s3://{Bucket}/{Key} started {Initiated:o}")]
    private static partial void LogAbortedStale(ILogger logger, string bucket, string key, DateTime initiated);

    [LoggerMessage(EventId = LogEvents.S3Store.NotReported, Level = LogLevel.Warning, Message = "S3 at {Endpoint} does not report {Setting} of stored objects in bucket '{Bucket}': it is sent with every write but cannot be checked here (said once)")]
    private static partial void LogNotReported(ILogger logger, string endpoint, string setting, string bucket);

    [LoggerMessage(EventId = LogEvents.S3Store.StaleUploadsSkipped, Level = LogLevel.Warning, Message = "Skipped aborting stale multipart uploads in bucket '{Bucket}': {Reason}")]
    private static partial void LogStaleUploadsSkipped(ILogger logger, string bucket, string reason);
}
