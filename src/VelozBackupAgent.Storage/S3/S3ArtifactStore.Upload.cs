using System.Buffers;
using System.Security.Cryptography;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;

namespace VelozBackupAgent.Storage.S3;

/// <summary>The upload of one artifact and its verification, one unit: a single put or a streamed multipart upload (two part buffers), the per-part and whole-object ETag checks, the checksum metadata copy, the HEAD of what S3 stored, and the delete of an upload that does not verify.</summary>
public sealed partial class S3ArtifactStore
{
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
}
