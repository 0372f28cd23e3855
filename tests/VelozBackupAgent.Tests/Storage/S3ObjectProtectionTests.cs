using VelozBackupAgent.Storage.S3;

namespace VelozBackupAgent.Tests.Storage;

public sealed class S3ObjectProtectionTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 4, 0, 0, TimeSpan.Zero);

    private static IReadOnlyList<string> Problems(string? sse = null, string? kms = null, string? storageClass = null, string? mode = null, int days = 0) =>
        S3ObjectProtection.Problems(sse, kms, storageClass, mode, days);

    [Theory]
    [InlineData(null, null, null, null, 0)]
    [InlineData("none", null, "", "none", 0)]
    [InlineData("AES256", null, "STANDARD_IA", "GOVERNANCE", 30)]
    [InlineData("aws:kms", null, "INTELLIGENT_TIERING", "COMPLIANCE", 1)]
    [InlineData("AWS:KMS", "alias/veloz", "glacier_ir", "compliance", 36500)]
    public void Usable_settings_have_no_problems(string? sse, string? kms, string? storageClass, string? mode, int days) =>
        Problems(sse, kms, storageClass, mode, days).Should().BeEmpty();

    [Fact]
    public void An_unknown_encryption_names_the_key_and_the_values() =>
        Problems(sse: "AES128").Should().ContainSingle().Which.Should().Be("Backup:S3:ServerSideEncryption must be one of none, AES256, aws:kms: 'AES128'");

    [Theory]
    [InlineData(null)]
    [InlineData("AES256")]
    public void A_kms_key_without_aws_kms_is_a_problem(string? sse) =>
        Problems(sse: sse, kms: "1234abcd").Should().ContainSingle().Which.Should().StartWith("Backup:S3:KmsKeyId is set but Backup:S3:ServerSideEncryption is");

    [Fact]
    public void An_unknown_storage_class_names_the_key() =>
        Problems(storageClass: "CHEAP").Should().ContainSingle().Which.Should().StartWith("Backup:S3:StorageClass must be one of STANDARD, ");

    [Theory]
    [InlineData("GLACIER")]
    [InlineData("deep_archive")]
    public void Archive_classes_are_refused_because_nothing_in_them_can_be_read_at_once(string storageClass) =>
        Problems(storageClass: storageClass).Should().ContainSingle().Which.Should().Contain("cannot be read without a restore request");

    [Fact]
    public void Lock_mode_and_days_go_together()
    {
        Problems(mode: "LEGAL").Should().ContainSingle().Which.Should().Be("Backup:S3:ObjectLockMode must be GOVERNANCE, COMPLIANCE or none: 'LEGAL'");
        Problems(mode: "GOVERNANCE").Should().ContainSingle().Which.Should().Be("Backup:S3:ObjectLockDays must be between 1 and 36500 with Backup:S3:ObjectLockMode GOVERNANCE: 0");
        Problems(mode: "COMPLIANCE", days: 36501).Should().ContainSingle().Which.Should().StartWith("Backup:S3:ObjectLockDays must be between 1 and 36500");
        Problems(days: 7).Should().ContainSingle().Which.Should().StartWith("Backup:S3:ObjectLockDays is 7 but Backup:S3:ObjectLockMode is not set");
    }

    [Fact]
    public void Every_problem_is_reported_at_once() =>
        Problems("x", "k", "y", "z", 3).Should().HaveCount(3, "encryption, storage class and lock mode (the key is only wrong with a known encryption)");

    [Fact]
    public void The_store_options_refuse_the_same_settings()
    {
        var options = new S3StoreOptions { Bucket = "b", Prefix = "veloz-1", ObjectLockMode = "GOVERNANCE" };
        var validate = options.Validate;
        validate.Should().Throw<ArgumentException>().WithMessage("Backup:S3:ObjectLockDays must be between 1 and 36500*");
    }

    [Fact]
    public void The_lock_date_is_now_plus_the_days_rounded_up_to_the_second()
    {
        S3ObjectProtection.RetainUntil(Now, 30).Should().Be(Now.AddDays(30));
        S3ObjectProtection.RetainUntil(Now.AddMilliseconds(1), 1).Should().Be(Now.AddDays(1).AddSeconds(1));
        S3ObjectProtection.RetainUntil(new DateTimeOffset(2026, 12, 2, 6, 0, 0, TimeSpan.FromHours(2)), 1).Offset.Should().Be(TimeSpan.Zero);
    }

    [Fact]
    public void The_lock_end_is_what_s3_reports_or_else_the_object_time_plus_the_days()
    {
        S3ObjectProtection.LockedUntil(Now.AddDays(3), Now, 30).Should().Be(Now.AddDays(3), "S3's own date wins");
        S3ObjectProtection.LockedUntil(null, Now, 30).Should().Be(Now.AddDays(30));
    }

    private static S3StoreOptions Asked(string? sse = null, string? kms = null, string? storageClass = null, string? mode = null, int days = 0) =>
        new() { Bucket = "b", Prefix = "p", ServerSideEncryption = sse, KmsKeyId = kms, StorageClass = storageClass, ObjectLockMode = mode, ObjectLockDays = days };

    [Fact]
    public void What_s3_reports_as_asked_passes()
    {
        var (mismatches, notReported) = S3ObjectProtection.Compare(
            Asked("aws:kms", "1234abcd", "STANDARD_IA", "GOVERNANCE", 30),
            new StoredProtection("aws:kms", "arn:aws:kms:us-east-1:111122223333:key/1234abcd", "STANDARD_IA", "GOVERNANCE", Now.AddDays(30)),
            Now.AddDays(30));
        mismatches.Should().BeEmpty();
        notReported.Should().BeEmpty();
    }

    [Fact]
    public void What_s3_reports_differently_is_a_mismatch_naming_the_key()
    {
        var (mismatches, _) = S3ObjectProtection.Compare(
            Asked("aws:kms", "1234abcd", "STANDARD_IA", "COMPLIANCE", 30),
            new StoredProtection("aws:kms", "arn:aws:kms:us-east-1:111122223333:key/9999", "STANDARD", "GOVERNANCE", Now.AddDays(1)),
            Now.AddDays(30));
        mismatches.Should().Equal(
            "KMS key arn:aws:kms:us-east-1:111122223333:key/9999, not 1234abcd (Backup:S3:KmsKeyId)",
            "storage class STANDARD, not STANDARD_IA (Backup:S3:StorageClass)",
            "Object Lock mode GOVERNANCE, not COMPLIANCE (Backup:S3:ObjectLockMode)",
            "Object Lock until 2026-12-03 04:00:00Z, not 2027-01-01 04:00:00Z (Backup:S3:ObjectLockDays)");

        S3ObjectProtection.Compare(Asked("AES256"), new StoredProtection("aws:kms", null, null, null, null), null).Mismatches
            .Should().Equal("server-side encryption aws:kms, not AES256 (Backup:S3:ServerSideEncryption)");
    }

    [Fact]
    public void What_s3_does_not_report_is_named_not_failed()
    {
        var (mismatches, notReported) = S3ObjectProtection.Compare(
            Asked("aws:kms", "alias/veloz", "ONEZONE_IA", "GOVERNANCE", 30), new StoredProtection(null, null, null, null, null), Now.AddDays(30));
        mismatches.Should().BeEmpty();
        notReported.Should().Equal("ServerSideEncryption", "StorageClass", "ObjectLockMode");

        S3ObjectProtection.Compare(Asked("aws:kms", "alias/veloz"), new StoredProtection("aws:kms", "arn:aws:kms:r:1:key/x", null, null, null), null)
            .NotReported.Should().Equal("KmsKeyId (an alias: S3 reports the key's ARN)");
    }

    [Fact]
    public void Standard_is_what_aws_means_by_reporting_no_class_and_nothing_asked_is_nothing_checked()
    {
        var standard = S3ObjectProtection.Compare(Asked(storageClass: "STANDARD"), new StoredProtection(null, null, null, null, null), null);
        standard.Mismatches.Should().BeEmpty();
        standard.NotReported.Should().BeEmpty();
        var (mismatches, notReported) = S3ObjectProtection.Compare(Asked(), new StoredProtection("AES256", null, "GLACIER", "COMPLIANCE", Now), null);
        mismatches.Should().BeEmpty();
        notReported.Should().BeEmpty();
    }
}
