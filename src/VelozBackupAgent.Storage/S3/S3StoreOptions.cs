namespace VelozBackupAgent.Storage.S3;

/// <summary>
/// Where and how <see cref="S3ArtifactStore"/> keeps artifacts (configuration section <c>Backup:S3</c>).
/// Credentials are deliberately not here: they come from the AWS default chain (environment
/// <c>AWS_ACCESS_KEY_ID</c>/<c>AWS_SECRET_ACCESS_KEY</c>, profile, instance role).
/// </summary>
public sealed class S3StoreOptions
{
    /// <summary>The smallest part S3 accepts in a multipart upload (except the last part): 5 MiB.</summary>
    public const int MinPartSizeBytes = 5 * 1024 * 1024;

    /// <summary>The largest part S3 accepts: 5 GiB (and a part is held in memory, so keep it far below).</summary>
    public const long MaxPartSizeBytes = 5L * 1024 * 1024 * 1024;

    /// <summary>The bucket. Required.</summary>
    public string Bucket { get; set; } = "";

    /// <summary>
    /// Key prefix, normally the node name: artifacts are stored as <c>&lt;Prefix&gt;/&lt;kind&gt;/&lt;name&gt;</c>.
    /// Required; no leading or trailing '/'.
    /// </summary>
    public string Prefix { get; set; } = "";

    /// <summary>
    /// Kinds kept under another prefix than <see cref="Prefix"/> (kind → prefix): with <c>Backup:Cluster</c> the
    /// database-wide kinds go under the cluster's shared prefix, the node-local ones stay under the node's. Empty by
    /// default (every kind under <see cref="Prefix"/>). Each prefix follows the rules of <see cref="Prefix"/>.
    /// </summary>
    public IReadOnlyDictionary<string, string> KindPrefixes { get; set; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>The key prefix of <paramref name="kind"/>: its entry in <see cref="KindPrefixes"/>, else <see cref="Prefix"/>.</summary>
    public string PrefixOf(string kind) => KindPrefixes.TryGetValue(kind, out var prefix) ? prefix : Prefix;

    /// <summary>Endpoint of an S3-compatible store (e.g. <c>http://127.0.0.1:4569</c>); <c>null</c> (default) means AWS.</summary>
    public string? ServiceUrl { get; set; }

    /// <summary>AWS region, also used to sign requests to an S3-compatible store. Default <c>us-east-1</c>.</summary>
    public string Region { get; set; } = "us-east-1";

    /// <summary>Path-style addressing (<c>http://host/bucket/key</c>); most S3-compatible stores need it. Default <c>false</c>.</summary>
    public bool ForcePathStyle { get; set; }

    /// <summary>
    /// Send uploads with <c>aws-chunked</c> signed payloads (the AWS SDK's default). Default <c>true</c>, right for AWS.
    /// Must be <c>false</c> for s3rver and other S3-compatible stores over http that store the chunk framing as
    /// object data; the store detects that after upload and refuses, so a wrong setting cannot go unnoticed.
    /// </summary>
    public bool ChunkedUpload { get; set; } = true;

    /// <summary>
    /// Size of each multipart part, and the threshold below which one PutObject is used. Default 16 MiB,
    /// minimum 5 MiB. At most two parts are held in memory at a time.
    /// </summary>
    public int PartSizeBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>Retries of a transient failure (network, 5xx, throttling) per request, with exponential backoff and jitter. Default 5.</summary>
    public int MaxRetries { get; set; } = 5;

    /// <summary>
    /// Compare the ETag S3 returns for each part / single put with the MD5 of the bytes sent. Default <c>true</c>.
    /// Turn off for buckets whose ETag is not an MD5 of the content (SSE-KMS or SSE-C encryption);
    /// size and SHA-256 are verified regardless.
    /// </summary>
    public bool VerifyEtag { get; set; } = true;

    /// <summary>
    /// How long a verdict "S3 is unreachable" (after <see cref="MaxRetries"/>) stands: within it every further call fails
    /// at once with that verdict instead of retrying again. <see cref="TimeSpan.Zero"/> (the default) turns this off;
    /// <see cref="Timeout.InfiniteTimeSpan"/> keeps the verdict for the store's life, which is what a one-shot command
    /// wants (one verdict per command). Not a configuration key: the agent sets it per process.
    /// </summary>
    public TimeSpan UnreachableHold { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// Server-side encryption asked for every object written: <c>none</c> (default: no header, the bucket's default
    /// encryption applies), <c>AES256</c> (SSE-S3) or <c>aws:kms</c> (SSE-KMS, with <see cref="KmsKeyId"/>). With
    /// <c>aws:kms</c> ETags are not MD5s, so the ETag comparison (<see cref="VerifyEtag"/>) is skipped.
    /// </summary>
    public string? ServerSideEncryption { get; set; }

    /// <summary>The KMS key (id, ARN or alias) for <c>aws:kms</c>; null uses the account's <c>aws/s3</c> key. Only with <c>aws:kms</c>.</summary>
    public string? KmsKeyId { get; set; }

    /// <summary>Storage class of every object written (<see cref="S3ObjectProtection.StorageClasses"/>); null (default) sends none: STANDARD.</summary>
    public string? StorageClass { get; set; }

    /// <summary>
    /// Object Lock retention of every object written: <c>GOVERNANCE</c> or <c>COMPLIANCE</c>, until the write's time plus
    /// <see cref="ObjectLockDays"/>; null or <c>none</c> (default) sends none. The bucket must have Object Lock enabled.
    /// </summary>
    public string? ObjectLockMode { get; set; }

    /// <summary>Days each written object stays locked (1 to 36500) with <see cref="ObjectLockMode"/>; otherwise 0 (default).</summary>
    public int ObjectLockDays { get; set; }

    /// <summary>The lock mode when Object Lock is asked for, else null.</summary>
    internal string? LockMode => S3ObjectProtection.Canonical(ObjectLockMode, S3ObjectProtection.LockModes);

    /// <summary>First retry delay (doubles per attempt, with jitter). Internal so tests can make it small.</summary>
    internal TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest delay between retries.</summary>
    internal TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Objects up to this size get their checksum metadata by one server-side CopyObject; larger ones by a
    /// multipart copy (S3 limits CopyObject to 5 GiB). Internal so tests can exercise the multipart copy.
    /// </summary>
    internal long MaxSingleCopyBytes { get; set; } = MaxPartSizeBytes;

    /// <summary>Throws <see cref="ArgumentException"/> with a message naming the bad setting.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Bucket))
        {
            throw new ArgumentException("Backup:S3:Bucket is required", nameof(Bucket));
        }

        foreach (var prefix in KindPrefixes.Values.Prepend(Prefix))
        {
            if (!IsValidPrefix(prefix))
            {
                throw new ArgumentException(
                    $"Backup:S3 prefix '{prefix}' must be a non-empty key prefix of letters, digits, '.', '-', '_' and inner '/'", nameof(Prefix));
            }
        }

        if (ServiceUrl is not null && !Uri.TryCreate(ServiceUrl, UriKind.Absolute, out _))
        {
            throw new ArgumentException($"Backup:S3:ServiceUrl '{ServiceUrl}' is not an absolute URL", nameof(ServiceUrl));
        }

        if (string.IsNullOrWhiteSpace(Region))
        {
            throw new ArgumentException("Backup:S3:Region is required", nameof(Region));
        }

        if (PartSizeBytes < MinPartSizeBytes)
        {
            throw new ArgumentException($"Backup:S3:PartSizeBytes {PartSizeBytes} is below the S3 minimum of {MinPartSizeBytes} (5 MiB)", nameof(PartSizeBytes));
        }

        if (S3ObjectProtection.Problems(ServerSideEncryption, KmsKeyId, StorageClass, ObjectLockMode, ObjectLockDays) is [var problem, ..])
        {
            throw new ArgumentException(problem);
        }

        if (MaxRetries < 0)
        {
            throw new ArgumentException($"Backup:S3:MaxRetries {MaxRetries} must not be negative", nameof(MaxRetries));
        }
    }

    /// <summary>Whether <paramref name="prefix"/> is a usable key prefix: letters, digits, '.', '-', '_' and inner single '/'.</summary>
    public static bool IsValidPrefix(string? prefix) =>
        !string.IsNullOrWhiteSpace(prefix) && !prefix.StartsWith('/') && !prefix.EndsWith('/') && !prefix.Contains("//", StringComparison.Ordinal)
        && prefix.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' or '/');
}
