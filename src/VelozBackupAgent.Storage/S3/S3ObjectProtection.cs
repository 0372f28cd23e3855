using System.Globalization;

namespace VelozBackupAgent.Storage.S3;

/// <summary>
/// What the S3 store asks S3 to do with every object it writes (artifacts, sidecars, PITR files; single put,
/// multipart initiate and the metadata copy alike): server-side encryption, storage class and an Object Lock
/// retention. Pure logic: the values accepted, their validation (messages name the <c>Backup:S3</c> key), the
/// retain-until date, and the comparison of what was asked with what a HEAD reports.
/// </summary>
public static class S3ObjectProtection
{
    /// <summary>No server-side encryption header is sent: the bucket's default encryption applies.</summary>
    public const string NoEncryption = "none";

    /// <summary>SSE-S3: S3-managed keys.</summary>
    public const string Aes256 = "AES256";

    /// <summary>SSE-KMS: a KMS key (<c>KmsKeyId</c>, or the account's <c>aws/s3</c> key).</summary>
    public const string Kms = "aws:kms";

    private const string Key = "Backup:S3";

    /// <summary>Accepted values of <c>ServerSideEncryption</c>.</summary>
    public static readonly IReadOnlyList<string> Encryptions = [NoEncryption, Aes256, Kms];

    /// <summary>
    /// Accepted storage classes: those whose objects can be read at once. GLACIER and DEEP_ARCHIVE are not, so
    /// verify, restore and every sidecar read would fail on them; move old copies there with a lifecycle rule instead.
    /// </summary>
    public static readonly IReadOnlyList<string> StorageClasses =
        ["STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "REDUCED_REDUNDANCY"];

    /// <summary>Accepted Object Lock modes.</summary>
    public static readonly IReadOnlyList<string> LockModes = ["GOVERNANCE", "COMPLIANCE"];

    /// <summary>The longest lock accepted: 100 years, as S3.</summary>
    public const int MaxLockDays = 36500;

    /// <summary>The accepted spelling of <paramref name="value"/> in <paramref name="accepted"/> (case-insensitive), or null.</summary>
    public static string? Canonical(string? value, IReadOnlyList<string> accepted)
    {
        ArgumentNullException.ThrowIfNull(accepted);
        return accepted.FirstOrDefault(a => string.Equals(a, value?.Trim(), StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>Every problem with these settings, one sentence each naming its key; empty when they are usable.</summary>
    public static IReadOnlyList<string> Problems(string? encryption, string? kmsKeyId, string? storageClass, string? lockMode, int lockDays)
    {
        var p = new List<string>();
        var sse = string.IsNullOrWhiteSpace(encryption) ? NoEncryption : Canonical(encryption, Encryptions);
        if (sse is null)
        {
            p.Add($"{Key}:ServerSideEncryption must be one of {string.Join(", ", Encryptions)}: '{encryption}'");
        }

        if (!string.IsNullOrWhiteSpace(kmsKeyId) && sse is not null && sse != Kms)
        {
            p.Add($"{Key}:KmsKeyId is set but {Key}:ServerSideEncryption is '{sse}': a KMS key is used only with aws:kms");
        }

        if (!string.IsNullOrWhiteSpace(storageClass) && Canonical(storageClass, StorageClasses) is null)
        {
            p.Add(storageClass.Trim().ToUpperInvariant() is "GLACIER" or "DEEP_ARCHIVE"
                ? $"{Key}:StorageClass '{storageClass}' cannot be read without a restore request (verify, restore and checksum reads would fail): use one of {string.Join(", ", StorageClasses)}, and a lifecycle rule for archiving"
                : $"{Key}:StorageClass must be one of {string.Join(", ", StorageClasses)}: '{storageClass}'");
        }

        var locking = !string.IsNullOrWhiteSpace(lockMode) && !string.Equals(lockMode.Trim(), "none", StringComparison.OrdinalIgnoreCase);
        if (locking && Canonical(lockMode, LockModes) is null)
        {
            p.Add($"{Key}:ObjectLockMode must be GOVERNANCE, COMPLIANCE or none: '{lockMode}'");
        }
        else if (locking && lockDays is < 1 or > MaxLockDays)
        {
            p.Add($"{Key}:ObjectLockDays must be between 1 and {MaxLockDays} with {Key}:ObjectLockMode {lockMode}: {lockDays}");
        }
        else if (!locking && lockDays != 0)
        {
            p.Add($"{Key}:ObjectLockDays is {lockDays} but {Key}:ObjectLockMode is not set: set GOVERNANCE or COMPLIANCE, or leave the days at 0");
        }

        return p;
    }

    /// <summary>The lock date sent with a write made at <paramref name="now"/>: now plus the days, rounded up to the second.</summary>
    public static DateTimeOffset RetainUntil(DateTimeOffset now, int lockDays)
    {
        var until = now.ToUniversalTime().AddDays(lockDays);
        var rest = until.Ticks % TimeSpan.TicksPerSecond;
        return rest == 0 ? until : until.AddTicks(TimeSpan.TicksPerSecond - rest);
    }

    /// <summary>
    /// Until when a stored object is locked: the date S3 reports when it does (a HEAD shows it to callers allowed
    /// <c>s3:GetObjectRetention</c>), else the object's last modification plus the lock days. A write's lock date is
    /// taken when its request is made, before S3 records the modification, so the estimate is never early.
    /// </summary>
    public static DateTimeOffset LockedUntil(DateTimeOffset? reportedRetainUntil, DateTimeOffset lastModified, int lockDays) =>
        reportedRetainUntil ?? lastModified.ToUniversalTime().AddDays(lockDays);

    /// <summary>
    /// Compares what was asked for an object with what S3 reported for it. <c>Mismatches</c> are settings S3 reports
    /// differently (the write must not count); <c>NotReported</c> names settings S3 said nothing about (AWS omits the
    /// storage class of STANDARD objects; S3-compatible stores may ignore encryption or Object Lock entirely).
    /// </summary>
    public static (IReadOnlyList<string> Mismatches, IReadOnlyList<string> NotReported) Compare(S3StoreOptions asked, StoredProtection reported, DateTimeOffset? retainUntilSent)
    {
        ArgumentNullException.ThrowIfNull(asked);
        ArgumentNullException.ThrowIfNull(reported);
        var mismatches = new List<string>();
        var notReported = new List<string>();

        var sse = Canonical(asked.ServerSideEncryption, Encryptions) ?? NoEncryption;
        if (sse != NoEncryption)
        {
            if (string.IsNullOrEmpty(reported.Encryption))
            {
                notReported.Add("ServerSideEncryption");
            }
            else if (!string.Equals(reported.Encryption, sse, StringComparison.Ordinal))
            {
                mismatches.Add($"server-side encryption {reported.Encryption}, not {sse} ({Key}:ServerSideEncryption)");
            }
            else if (sse == Kms && !string.IsNullOrWhiteSpace(asked.KmsKeyId))
            {
                var key = asked.KmsKeyId.Trim();
                if (key.StartsWith("alias/", StringComparison.Ordinal) || key.Contains(":alias/", StringComparison.Ordinal))
                {
                    notReported.Add("KmsKeyId (an alias: S3 reports the key's ARN)");
                }
                else if (string.IsNullOrEmpty(reported.KmsKeyId))
                {
                    notReported.Add("KmsKeyId");
                }
                else if (!string.Equals(reported.KmsKeyId, key, StringComparison.Ordinal) && !reported.KmsKeyId.EndsWith("/" + key, StringComparison.Ordinal))
                {
                    mismatches.Add($"KMS key {reported.KmsKeyId}, not {key} ({Key}:KmsKeyId)");
                }
            }
        }

        if (Canonical(asked.StorageClass, StorageClasses) is { } storageClass)
        {
            if (string.IsNullOrEmpty(reported.StorageClass))
            {
                if (storageClass != "STANDARD")
                {
                    notReported.Add("StorageClass");
                }
            }
            else if (!string.Equals(reported.StorageClass, storageClass, StringComparison.Ordinal))
            {
                mismatches.Add($"storage class {reported.StorageClass}, not {storageClass} ({Key}:StorageClass)");
            }
        }

        if (Canonical(asked.ObjectLockMode, LockModes) is { } mode)
        {
            if (string.IsNullOrEmpty(reported.LockMode) && reported.RetainUntil is null)
            {
                notReported.Add("ObjectLockMode");
            }
            else
            {
                if (!string.IsNullOrEmpty(reported.LockMode) && !string.Equals(reported.LockMode, mode, StringComparison.OrdinalIgnoreCase))
                {
                    mismatches.Add($"Object Lock mode {reported.LockMode}, not {mode} ({Key}:ObjectLockMode)");
                }

                // S3 keeps the date to the second (or millisecond); a date earlier than sent is a shorter lock.
                if (reported.RetainUntil is { } until && retainUntilSent is { } sent && until < sent - TimeSpan.FromSeconds(1))
                {
                    mismatches.Add(string.Create(CultureInfo.InvariantCulture,
                        $"Object Lock until {until.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z, not {sent.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z ({Key}:ObjectLockDays)"));
                }
            }
        }

        return (mismatches, notReported);
    }
}

/// <summary>What a HEAD reported of an object's protection; null where it said nothing.</summary>
/// <param name="Encryption"><c>x-amz-server-side-encryption</c>: AES256, aws:kms, …</param>
/// <param name="KmsKeyId"><c>x-amz-server-side-encryption-aws-kms-key-id</c>, normally the key's ARN.</param>
/// <param name="StorageClass"><c>x-amz-storage-class</c> (AWS omits it for STANDARD).</param>
/// <param name="LockMode"><c>x-amz-object-lock-mode</c>.</param>
/// <param name="RetainUntil"><c>x-amz-object-lock-retain-until-date</c>.</param>
public sealed record StoredProtection(string? Encryption, string? KmsKeyId, string? StorageClass, string? LockMode, DateTimeOffset? RetainUntil);
