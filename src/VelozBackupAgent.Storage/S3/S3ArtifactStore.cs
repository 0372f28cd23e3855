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
/// Keeps artifacts in an S3 bucket (or an S3-compatible store) under <c>&lt;Prefix&gt;/&lt;kind&gt;/&lt;name&gt;</c>,
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
        var kindPrefix = $"{_options.Prefix}/{kind}/";
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
        var prefix = _options.Prefix + "/";
        var aborted = 0;
        try
        {
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
        }
        catch (StoreException e)
        {
            LogStaleUploadsSkipped(_logger, _options.Bucket, e.Message);
        }

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

    private string Key(string kind, string name) => $"{_options.Prefix}/{kind}/{name}";

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

    private async Task<ArtifactInfo> UploadAsync(string kind, string name, string key, Stream content, string? expectedSha256, CancellationToken cancellationToken)
    {
        var partSize = _options.PartSizeBytes;
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var wholeMd5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
        var first = ArrayPool<byte>.Shared.Rent(partSize);
        byte[]? second = null;
        try
        {
            var firstCount = await FillAsync(content, first, partSize, sha, wholeMd5, cancellationToken);
            long size;
            string shaHex;
            if (firstCount < partSize)
            {
                shaHex = Finish(sha, key, expectedSha256);
                await PutSingleAsync(key, first, firstCount, shaHex, cancellationToken);
                size = firstCount;
            }
            else
            {
                second = ArrayPool<byte>.Shared.Rent(partSize);
                var secondCount = await FillAsync(content, second, partSize, sha, wholeMd5, cancellationToken);
                if (secondCount == 0)
                {
                    shaHex = Finish(sha, key, expectedSha256);
                    await PutSingleAsync(key, first, firstCount, shaHex, cancellationToken);
                    size = firstCount;
                }
                else
                {
                    (size, shaHex) = await PutMultipartAsync(
                        key, content, (first, firstCount), (second, secondCount), sha, wholeMd5, expectedSha256, cancellationToken);
                }
            }

            await WriteSidecarAsync(key, name, shaHex, cancellationToken);
            LogStored(_logger, _options.Bucket, key, size, shaHex);
            return new ArtifactInfo(kind, name, size, shaHex);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(first);
            if (second is not null)
            {
                ArrayPool<byte>.Shared.Return(second);
            }
        }
    }

    private async Task PutSingleAsync(string key, byte[] buffer, int count, string shaHex, CancellationToken cancellationToken)
    {
        var md5 = MD5.HashData(buffer.AsSpan(0, count));
        DateTimeOffset? lockedUntil = null;
        var response = await _calls.RunAsync("PutObject", key, async token =>
        {
            using var body = new MemoryStream(buffer, 0, count, writable: false);
            var request = new PutObjectRequest
            {
                BucketName = _options.Bucket,
                Key = key,
                InputStream = body,
                AutoCloseStream = false,
                ContentType = ContentType,
                UseChunkEncoding = _options.ChunkedUpload,
            };
            request.Metadata.Add(ShaMetadataName, shaHex);
            lockedUntil = Protect(request, md5);
            return await _client.PutObjectAsync(request, token);
        }, cancellationToken);

        await VerifyOrDeleteAsync(key, async () =>
        {
            // Size first: it says most plainly what went wrong (e.g. chunk framing stored as data).
            await VerifyStoredAsync(key, count, shaHex, lockedUntil, cancellationToken);
            CheckEtag(response.ETag, md5, key, "");
        });
    }

    private async Task<(long Size, string Sha)> PutMultipartAsync(
        string key, Stream content, (byte[] Buffer, int Count) first, (byte[] Buffer, int Count) second,
        IncrementalHash sha, IncrementalHash wholeMd5, string? expectedSha256, CancellationToken cancellationToken)
    {
        var partSize = _options.PartSizeBytes;

        // Metadata is fixed when the upload starts, before the bytes are hashed: it goes on here only when
        // the caller told us the checksum; otherwise a server-side copy sets it after completion.
        DateTimeOffset? lockedUntil = null;
        var initiated = await _calls.RunAsync("InitiateMultipartUpload", key, token =>
        {
            var request = new InitiateMultipartUploadRequest { BucketName = _options.Bucket, Key = key, ContentType = ContentType };
            if (expectedSha256 is not null)
            {
                request.Metadata.Add(ShaMetadataName, expectedSha256);
            }

            lockedUntil = Protect(request);
            return _client.InitiateMultipartUploadAsync(request, token);
        }, cancellationToken);
        var uploadId = initiated.UploadId;

        var parts = new List<PartETag>();
        var partMd5s = new List<byte[]>();
        long size = 0;
        string shaHex;
        string? completedEtag;
        try
        {
            var (current, currentCount) = first;
            var (next, nextCount) = second;
            var nextFilled = true;
            var endOfStream = second.Count < partSize;
            while (currentCount > 0)
            {
                if (parts.Count == MaxParts)
                {
                    throw new StoreException(
                        $"{key} needs more than {MaxParts} parts of {partSize} bytes; raise Backup:S3:PartSizeBytes");
                }

                // Upload this part while the next one is read from the source: two buffers, never more.
                var partNumber = parts.Count + 1;
                var fillBuffer = next;
                var fill = nextFilled ? Task.FromResult(nextCount)
                    : endOfStream ? Task.FromResult(0)
                    : Task.Run(() => FillAsync(content, fillBuffer, partSize, sha, wholeMd5, cancellationToken), cancellationToken);
                var upload = UploadPartAsync(key, uploadId, partNumber, current, currentCount, cancellationToken);

                // WhenAll waits for both, so neither buffer is still in use when it throws.
                await Task.WhenAll(upload, fill);
                var (etag, md5) = await upload;
                parts.Add(etag);
                partMd5s.Add(md5);
                size += currentCount;

                var filled = await fill;
                if (!nextFilled && filled < partSize)
                {
                    endOfStream = true;
                }

                nextFilled = false;
                (current, next) = (next, current);
                currentCount = filled;
            }

            shaHex = Finish(sha, key, expectedSha256);
            var completed = await _calls.RunAsync("CompleteMultipartUpload", key, token => _client.CompleteMultipartUploadAsync(
                new CompleteMultipartUploadRequest { BucketName = _options.Bucket, Key = key, UploadId = uploadId, PartETags = parts }, token), cancellationToken);
            completedEtag = completed.ETag;
        }
        catch (Exception e)
        {
            await AbortQuietlyAsync(key, uploadId, e);
            throw;
        }

        var wholeMd5Hash = wholeMd5.GetHashAndReset();
        await VerifyOrDeleteAsync(key, async () =>
        {
            CheckMultipartEtag(completedEtag, partMd5s, wholeMd5Hash, key);
            if (expectedSha256 is null)
            {
                lockedUntil = await SetShaMetadataAsync(key, size, shaHex, wholeMd5Hash, cancellationToken);
            }

            await VerifyStoredAsync(key, size, shaHex, lockedUntil, cancellationToken);
        });
        return (size, shaHex);
    }

    private async Task<(PartETag Etag, byte[] Md5)> UploadPartAsync(string key, string uploadId, int partNumber, byte[] buffer, int count, CancellationToken cancellationToken)
    {
        var md5 = MD5.HashData(buffer.AsSpan(0, count));
        var response = await _calls.RunAsync($"UploadPart {partNumber}", key, async token =>
        {
            using var body = new MemoryStream(buffer, 0, count, writable: false);
            return await _client.UploadPartAsync(new UploadPartRequest
            {
                BucketName = _options.Bucket,
                Key = key,
                UploadId = uploadId,
                PartNumber = partNumber,
                PartSize = count,
                InputStream = body,
                UseChunkEncoding = _options.ChunkedUpload,

                // Object Lock wants Content-MD5 (or a checksum) on every part; it is computed anyway.
                MD5Digest = _options.LockMode is null ? null : Convert.ToBase64String(md5),
            }, token);
        }, cancellationToken);
        CheckEtag(response.ETag, md5, key, $"part {partNumber} of ");
        return (new PartETag(partNumber, response.ETag), md5);
    }

    /// <summary>
    /// Puts the checksum metadata on a completed multipart object by copying it onto itself (with the protection
    /// settings again: a copy gets only what it asks for). Returns the lock date the copy sent.
    /// </summary>
    private async Task<DateTimeOffset?> SetShaMetadataAsync(string key, long size, string shaHex, byte[] wholeMd5, CancellationToken cancellationToken)
    {
        DateTimeOffset? lockedUntil = null;
        if (size <= _options.MaxSingleCopyBytes)
        {
            var copied = await _calls.RunAsync("CopyObject", key, token =>
            {
                var request = new CopyObjectRequest
                {
                    SourceBucket = _options.Bucket,
                    SourceKey = key,
                    DestinationBucket = _options.Bucket,
                    DestinationKey = key,
                    MetadataDirective = S3MetadataDirective.REPLACE,
                    ContentType = ContentType,
                };
                request.Metadata.Add(ShaMetadataName, shaHex);
                lockedUntil = Protect(request);
                return _client.CopyObjectAsync(request, token);
            }, cancellationToken);

            // A one-request copy's ETag is the MD5 of the whole object: one more check of what is stored.
            CheckEtag(copied.ETag, wholeMd5, key, "the copy of ");
            return lockedUntil;
        }

        // CopyObject stops at 5 GiB: copy larger objects onto themselves part by part, server-side.
        var partSize = Math.Max(Math.Max(_options.PartSizeBytes, Math.Min(_options.MaxSingleCopyBytes, 1L << 30)), (size + MaxParts - 1) / MaxParts);
        var initiated = await _calls.RunAsync("InitiateMultipartUpload (copy)", key, token =>
        {
            var request = new InitiateMultipartUploadRequest { BucketName = _options.Bucket, Key = key, ContentType = ContentType };
            request.Metadata.Add(ShaMetadataName, shaHex);
            lockedUntil = Protect(request);
            return _client.InitiateMultipartUploadAsync(request, token);
        }, cancellationToken);
        try
        {
            var parts = new List<PartETag>();
            for (long offset = 0; offset < size; offset += partSize)
            {
                var partNumber = parts.Count + 1;
                var first = offset;
                var last = Math.Min(size, offset + partSize) - 1;
                var copied = await _calls.RunAsync($"UploadPartCopy {partNumber}", key, token => _client.CopyPartAsync(new CopyPartRequest
                {
                    SourceBucket = _options.Bucket,
                    SourceKey = key,
                    DestinationBucket = _options.Bucket,
                    DestinationKey = key,
                    UploadId = initiated.UploadId,
                    PartNumber = partNumber,
                    FirstByte = first,
                    LastByte = last,
                }, token), cancellationToken);
                parts.Add(new PartETag(partNumber, copied.ETag));
            }

            await _calls.RunAsync("CompleteMultipartUpload (copy)", key, token => _client.CompleteMultipartUploadAsync(
                new CompleteMultipartUploadRequest { BucketName = _options.Bucket, Key = key, UploadId = initiated.UploadId, PartETags = parts }, token), cancellationToken);
        }
        catch (Exception e)
        {
            await AbortQuietlyAsync(key, initiated.UploadId, e);
            throw;
        }

        return lockedUntil;
    }

    /// <summary>
    /// HEAD the stored object: its size must be what was sent, its metadata the checksum computed, and the protection
    /// S3 reports (encryption, storage class, Object Lock) what was asked; what S3 does not report is logged once.
    /// </summary>
    private async Task VerifyStoredAsync(string key, long size, string shaHex, DateTimeOffset? lockedUntil, CancellationToken cancellationToken)
    {
        var head = await HeadAsync(key, cancellationToken)
            ?? throw new ArtifactIntegrityException($"S3 does not show {key} in bucket '{_options.Bucket}' right after it was uploaded");
        if (head.ContentLength != size)
        {
            throw new ArtifactIntegrityException($"S3 stored {head.ContentLength} bytes for {key} but {size} were sent{ChunkHint}");
        }

        var stored = MetadataSha(head.Metadata);
        if (!string.Equals(stored, shaHex, StringComparison.Ordinal))
        {
            throw new ArtifactIntegrityException($"S3 object {key} carries sha256 metadata '{stored ?? "(none)"}' but the bytes sent hash to {shaHex}");
        }

        var reported = new StoredProtection(
            head.ServerSideEncryptionMethod?.Value, head.ServerSideEncryptionKeyManagementServiceKeyId, head.StorageClass?.Value,
            head.ObjectLockMode?.Value, head.ObjectLockRetainUntilDate is { } until ? AsUtc(until) : null);
        var (mismatches, notReported) = S3ObjectProtection.Compare(_options, reported, lockedUntil);
        foreach (var setting in notReported)
        {
            if (_unreported.TryAdd(setting, true))
            {
                LogNotReported(_logger, _calls.Endpoint, setting, _options.Bucket);
            }
        }

        if (mismatches.Count > 0)
        {
            throw new ArtifactIntegrityException($"S3 stored {key} in bucket '{_options.Bucket}' with {string.Join("; ", mismatches)}: the copy does not count");
        }
    }

    /// <summary>
    /// The protection headers every write carries (<see cref="S3ObjectProtection"/>); with Object Lock also the
    /// Content-MD5 S3 requires for a locked put. Returns the lock date sent, null without Object Lock.
    /// </summary>
    private DateTimeOffset? Protect(PutObjectRequest request, byte[] md5)
    {
        if (_encryption is not null)
        {
            request.ServerSideEncryptionMethod = ServerSideEncryptionMethod.FindValue(_encryption);
            request.ServerSideEncryptionKeyManagementServiceKeyId = KmsKey;
        }

        request.StorageClass = _storageClass is null ? null : S3StorageClass.FindValue(_storageClass);
        if (LockUntil() is not { } until)
        {
            return null;
        }

        request.ObjectLockMode = ObjectLockMode.FindValue(_options.LockMode);
        request.ObjectLockRetainUntilDate = until.UtcDateTime;
        request.MD5Digest = Convert.ToBase64String(md5);
        return until;
    }

    private DateTimeOffset? Protect(InitiateMultipartUploadRequest request)
    {
        if (_encryption is not null)
        {
            request.ServerSideEncryptionMethod = ServerSideEncryptionMethod.FindValue(_encryption);
            request.ServerSideEncryptionKeyManagementServiceKeyId = KmsKey;
        }

        request.StorageClass = _storageClass is null ? null : S3StorageClass.FindValue(_storageClass);
        if (LockUntil() is not { } until)
        {
            return null;
        }

        request.ObjectLockMode = ObjectLockMode.FindValue(_options.LockMode);
        request.ObjectLockRetainUntilDate = until.UtcDateTime;
        return until;
    }

    private DateTimeOffset? Protect(CopyObjectRequest request)
    {
        if (_encryption is not null)
        {
            request.ServerSideEncryptionMethod = ServerSideEncryptionMethod.FindValue(_encryption);
            request.ServerSideEncryptionKeyManagementServiceKeyId = KmsKey;
        }

        request.StorageClass = _storageClass is null ? null : S3StorageClass.FindValue(_storageClass);
        if (LockUntil() is not { } until)
        {
            return null;
        }

        request.ObjectLockMode = ObjectLockMode.FindValue(_options.LockMode);
        request.ObjectLockRetainUntilDate = until.UtcDateTime;
        return until;
    }

    private string? KmsKey => _encryption == S3ObjectProtection.Kms && !string.IsNullOrWhiteSpace(_options.KmsKeyId) ? _options.KmsKeyId.Trim() : null;

    /// <summary>The lock date for a request made now (taken per attempt, so a retry locks from its own time).</summary>
    private DateTimeOffset? LockUntil() =>
        _options.LockMode is null ? null : S3ObjectProtection.RetainUntil(_time.GetUtcNow(), _options.ObjectLockDays);

    /// <summary>Runs <paramref name="verify"/>; if it fails (or is cancelled) the just-stored object is deleted.</summary>
    private async Task VerifyOrDeleteAsync(string key, Func<Task> verify)
    {
        try
        {
            await verify();
        }
        catch (Exception e)
        {
            try
            {
                await _client.DeleteObjectAsync(new DeleteObjectRequest { BucketName = _options.Bucket, Key = key }, CancellationToken.None);
            }
            catch (Exception deleteError) when (deleteError is AmazonClientException or AmazonServiceException or HttpRequestException or IOException or OperationCanceledException)
            {
                LogCleanupFailed(_logger, "delete the unverified object", _options.Bucket, key, S3Calls.OneLine(deleteError));
            }

            LogUploadRefused(_logger, _options.Bucket, key, S3Calls.OneLine(e));
            throw;
        }
    }

    private void CheckEtag(string? etag, byte[] md5, string key, string what)
    {
        if (!_verifyEtag)
        {
            return;
        }

        var expected = Convert.ToHexStringLower(md5);
        var actual = etag?.Trim('"').ToLowerInvariant();
        if (actual is null || actual.Length != 32 || !actual.All(char.IsAsciiHexDigitLower))
        {
            throw new ArtifactIntegrityException(
                $"S3 returned ETag '{etag}' for {what}{key}, which is not an MD5 of the content; for SSE-KMS or SSE-C buckets set Backup:S3:VerifyEtag to false");
        }

        if (!string.Equals(actual, expected, StringComparison.Ordinal))
        {
            throw new ArtifactIntegrityException(
                $"S3 stored other bytes than were sent for {what}{key} (ETag {actual}, MD5 of the bytes sent {expected}){ChunkHint}");
        }
    }

    /// <summary>
    /// A completed multipart object's ETag is, on AWS, the MD5 of its parts' MD5s, "-" and the part count;
    /// some S3-compatible stores (s3rver) give the MD5 of the whole object instead. Either must match.
    /// </summary>
    private void CheckMultipartEtag(string? etag, List<byte[]> partMd5s, byte[] wholeMd5, string key)
    {
        if (!_verifyEtag)
        {
            return;
        }

        var composite = $"{Convert.ToHexStringLower(MD5.HashData(partMd5s.SelectMany(m => m).ToArray()))}-{partMd5s.Count}";
        var whole = Convert.ToHexStringLower(wholeMd5);
        var actual = etag?.Trim('"').ToLowerInvariant();
        if (!string.Equals(actual, composite, StringComparison.Ordinal) && !string.Equals(actual, whole, StringComparison.Ordinal))
        {
            throw new ArtifactIntegrityException(
                $"S3 completed {key} with ETag '{actual}', neither {composite} (from its parts) nor {whole} (MD5 of the bytes sent); for SSE-KMS or SSE-C buckets set Backup:S3:VerifyEtag to false");
        }
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

    private async Task AbortQuietlyAsync(string key, string uploadId, Exception cause)
    {
        try
        {
            await _client.AbortMultipartUploadAsync(
                new AbortMultipartUploadRequest { BucketName = _options.Bucket, Key = key, UploadId = uploadId }, CancellationToken.None);
            LogAborted(_logger, _options.Bucket, key, S3Calls.OneLine(cause));
        }
        catch (Exception e) when (e is AmazonClientException or AmazonServiceException or HttpRequestException or IOException or OperationCanceledException)
        {
            // AbortStaleUploadsAsync sweeps what is left.
            LogCleanupFailed(_logger, "abort the multipart upload", _options.Bucket, key, S3Calls.OneLine(e));
        }
    }

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

    private static string Finish(IncrementalHash sha, string key, string? expectedSha256)
    {
        var hex = Convert.ToHexStringLower(sha.GetHashAndReset());
        if (expectedSha256 is not null && !string.Equals(hex, expectedSha256, StringComparison.Ordinal))
        {
            throw new ArtifactIntegrityException($"content for {key} hashes to {hex}, not the expected {expectedSha256}; nothing stored");
        }

        return hex;
    }

    /// <summary>Reads until <paramref name="buffer"/> holds <paramref name="count"/> bytes or the stream ends; hashes what it read.</summary>
    private static async Task<int> FillAsync(Stream content, byte[] buffer, int count, IncrementalHash sha, IncrementalHash md5, CancellationToken cancellationToken)
    {
        var filled = 0;
        while (filled < count)
        {
            var read = await content.ReadAsync(buffer.AsMemory(filled, count - filled), cancellationToken);
            if (read == 0)
            {
                break;
            }

            filled += read;
        }

        sha.AppendData(buffer, 0, filled);
        md5.AppendData(buffer, 0, filled);
        return filled;
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
