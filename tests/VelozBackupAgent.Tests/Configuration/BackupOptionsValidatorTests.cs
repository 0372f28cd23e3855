using Microsoft.Extensions.Configuration;
using VelozBackupAgent.Configuration;

namespace VelozBackupAgent.Tests.Configuration;

public sealed class BackupOptionsValidatorTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-opts-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private BackupOptions Load(params (string Key, string? Value)[] settings)
    {
        // A recipient, so that tests enabling S3 meet Backup:S3:Encrypt's requirement; a null value removes a default.
        var all = new Dictionary<string, string?> { ["Backup:LocalRoot"] = _root, ["Backup:Secrets:Recipients:0"] = "backup@example.com" };
        foreach (var (k, v) in settings)
        {
            all[k] = v;
        }

        foreach (var unset in all.Where(e => e.Value is null).Select(e => e.Key).ToList())
        {
            all.Remove(unset);
        }

        return BackupConfiguration.Load(new ConfigurationBuilder().AddInMemoryCollection(all).Build());
    }

    private string[] Problems(params (string Key, string? Value)[] settings)
    {
        var load = () => Load(settings);
        return load.Should().Throw<BackupConfigurationException>().Which.Problems.ToArray();
    }

    [Fact]
    public void Defaults_are_the_seeds_values()
    {
        var o = Load();
        o.Wal.Directory.Should().Be("/var/lib/veloz/wal");
        o.Wal.Schedule.Should().Be("0 0/5 * * * ?");
        o.Wal.Retention.Should().Be(TimeSpan.FromDays(7));
        o.Database.Retention.Should().Be(TimeSpan.FromDays(30));
        o.S3.Enabled.Should().BeFalse();
        o.Http.Url.Should().Be(new Uri("http://127.0.0.1:9464"));
    }

    [Fact]
    public void The_shipped_appsettings_is_valid_and_matches_the_contract()
    {
        var shipped = Path.Combine(AppContext.BaseDirectory, "appsettings.json");
        var config = new ConfigurationBuilder().AddJsonFile(shipped)
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Backup:LocalRoot"] = _root }).Build();
        var o = BackupConfiguration.Load(config);
        o.Config.Include.Should().Equal("config.yaml", "strategies/*.yaml", "risk_limits.yaml", ".env");
        o.Secrets.Recipients.Should().Equal("veloz-backup@example.com");
    }

    [Fact]
    public void A_misspelt_key_is_named_with_a_suggestion()
    {
        Problems(("Backup:Wal:Directry", "/x")).Should().ContainSingle()
            .Which.Should().Be("Backup:Wal:Directry is not a known setting (did you mean Backup:Wal:Directory?)");
    }

    [Fact]
    public void A_misspelt_key_inside_a_list_item_is_named_with_a_suggestion()
    {
        Problems(
                ("Backup:Secrets:Commands:0:Name", "vault-veloz"), ("Backup:Secrets:Commands:0:Command", "/usr/bin/vault"),
                ("Backup:Secrets:Commands:1:Name", "other"), ("Backup:Secrets:Commands:1:Comand", "/usr/bin/true"))
            .Should().Contain("Backup:Secrets:Commands:1:Comand is not a known setting (did you mean Backup:Secrets:Commands:1:Command?)");
        Problems(("Backup:Config:Include:0", "config.yaml"), ("Backup:Config:Include:1:Path", "x"), ("Backup:Wal:Directry", "/x"))
            .Should().ContainSingle(p => p.Contains("not a known setting", StringComparison.Ordinal));
    }

    [Fact]
    public void An_unknown_section_is_named()
    {
        Problems(("Backup:Vault:Token", "x")).Should().ContainSingle().Which.Should().StartWith("Backup:Vault is not a known setting");
    }

    [Fact]
    public void A_value_that_does_not_convert_names_its_key()
    {
        Problems(("Backup:Wal:Retention", "7 days")).Should().ContainSingle().Which.Should().Contain("Backup:Wal:Retention");
    }

    [Fact]
    public void An_invalid_cron_expression_is_named()
    {
        Problems(("Backup:Database:Schedule", "*/5 * * * *")).Should().ContainSingle()
            .Which.Should().StartWith("Backup:Database:Schedule is not a valid Quartz cron expression '*/5 * * * *'");
    }

    [Fact]
    public void A_missing_local_root_is_named()
    {
        Problems(("Backup:LocalRoot", "/nonexistent/veloz-backup")).Should().ContainSingle()
            .Which.Should().StartWith("Backup:LocalRoot does not exist: /nonexistent/veloz-backup");
    }

    [Fact]
    public void A_config_git_repository_must_be_absolute_and_outside_the_root_the_store_and_the_secrets()
    {
        Problems(("Backup:Config:GitRepository", "config.git")).Should().ContainSingle()
            .Which.Should().Be("Backup:Config:GitRepository must be an absolute path: 'config.git'");
        Problems(("Backup:Config:Root", "/etc/veloz"), ("Backup:Config:GitRepository", "/etc/veloz/history.git")).Should().ContainSingle()
            .Which.Should().Be("Backup:Config:GitRepository must not be inside Backup:Config:Root (/etc/veloz): '/etc/veloz/history.git'");
        Problems(("Backup:Config:GitRepository", _root + "/")).Should().ContainSingle()
            .Which.Should().Be($"Backup:Config:GitRepository must not be inside Backup:LocalRoot ({_root}): '{_root}/'");
        Problems(("Backup:Secrets:Directory", "/etc/veloz-secrets"), ("Backup:Config:GitRepository", "/etc/veloz-secrets/git")).Should().ContainSingle()
            .Which.Should().Contain("must not be inside Backup:Secrets:Directory");
        Load(("Backup:Config:Root", "/etc/veloz"), ("Backup:Config:GitRepository", "/etc/veloz.git")).Config.GitRepository.Should().Be("/etc/veloz.git");
        Load().Config.GitRepository.Should().BeNull();
    }

    [Theory]
    [InlineData("0")]
    [InlineData("1001")]
    [InlineData("-5")]
    public void A_full_manifest_interval_outside_1_to_1000_is_named(string value)
    {
        Problems(("Backup:Wal:FullManifestInterval", value)).Should().ContainSingle()
            .Which.Should().Be($"Backup:Wal:FullManifestInterval must be between 1 and 1000: {value}");
    }

    [Fact]
    public void The_full_manifest_interval_defaults_to_96_syncs_and_takes_1_and_1000()
    {
        Load().Wal.FullManifestInterval.Should().Be(96);
        Load(("Backup:Wal:FullManifestInterval", "1")).Wal.FullManifestInterval.Should().Be(1);
        Load(("Backup:Wal:FullManifestInterval", "1000")).Wal.FullManifestInterval.Should().Be(1000);
    }

    [Fact]
    public void Clustering_is_off_by_default_with_its_documented_defaults()
    {
        var c = Load().Cluster;
        c.Enabled.Should().BeFalse();
        c.Schema.Should().Be("veloz_quartz");
        c.CheckinInterval.Should().Be(TimeSpan.FromSeconds(5));
        c.CheckinMisfireThreshold.Should().Be(TimeSpan.FromSeconds(20));
        c.MaxClockSkew.Should().Be(TimeSpan.FromSeconds(1));
        c.SharedPrefix.Should().Be("cluster");
        Load(("Backup:Cluster:Enabled", "true"), ("Backup:Cluster:Schema", "agents_q")).Cluster.Enabled.Should().BeTrue();
        Load(("Backup:Cluster:SharedPrefix", "veloz/db")).Cluster.SharedPrefix.Should().Be("veloz/db");
    }

    [Theory]
    [InlineData("Backup:Cluster:Schema", "Veloz", "Backup:Cluster:Schema must be a lower-case PostgreSQL name")]
    [InlineData("Backup:Cluster:Schema", "pg_quartz", "Backup:Cluster:Schema must be a lower-case PostgreSQL name")]
    [InlineData("Backup:Cluster:CheckinInterval", "00:00:00.500", "Backup:Cluster:CheckinInterval must be between 00:00:01 and 00:05:00")]
    [InlineData("Backup:Cluster:CheckinMisfireThreshold", "00:00:09", "Backup:Cluster:CheckinMisfireThreshold must be at least twice CheckinInterval (00:00:10)")]
    [InlineData("Backup:Cluster:MaxClockSkew", "00:00:00", "Backup:Cluster:MaxClockSkew must be positive")]
    [InlineData("Backup:Cluster:Nodes", "3", "Backup:Cluster:Nodes")]
    [InlineData("Backup:Cluster:SharedPrefix", "/cluster", "Backup:Cluster:SharedPrefix must be a non-empty S3 key prefix")]
    [InlineData("Backup:Cluster:SharedPrefix", "a b", "Backup:Cluster:SharedPrefix must be a non-empty S3 key prefix")]
    public void A_bad_cluster_setting_is_named(string key, string value, string problem)
    {
        Problems((key, value)).Should().ContainSingle().Which.Should().StartWith(problem);
    }

    [Fact]
    public void A_shared_prefix_that_is_the_nodes_own_name_is_named()
    {
        Problems(("Backup:Cluster:Enabled", "true"), ("Backup:NodeName", "cluster"))
            .Should().ContainSingle().Which.Should().StartWith("Backup:Cluster:SharedPrefix 'cluster' is this node's Backup:NodeName");
    }

    [Fact]
    public void A_cluster_without_the_database_is_named()
    {
        Problems(("Backup:Cluster:Enabled", "true"), ("Backup:Database:Enabled", "false"), ("Backup:Pitr:Enabled", "false"))
            .Should().ContainSingle().Which.Should().StartWith("Backup:Cluster:Enabled needs the database");
    }

    [Fact]
    public void A_relative_local_root_is_named()
    {
        Problems(("Backup:LocalRoot", "backup")).Should().ContainSingle().Which.Should().StartWith("Backup:LocalRoot must be an absolute path");
    }

    [Fact]
    public void An_unwritable_local_root_is_named()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        // /proc refuses new files even to root, which is what the agent often runs as in tests.
        Problems(("Backup:LocalRoot", "/proc")).Should().ContainSingle().Which.Should().StartWith("Backup:LocalRoot is not writable: /proc");
    }

    [Fact]
    public void Every_problem_is_reported_at_once()
    {
        var problems = Problems(
            ("Backup:Wal:Retention", "-1.00:00:00"),
            ("Backup:S3:Enabled", "true"),
            ("Backup:S3:Bucket", "Not_A_Bucket"),
            ("Backup:S3:PartSizeMiB", "1"),
            ("Backup:Secrets:Recipients:0", "backup@example.com"),
            ("Backup:Config:Include:0", "../etc/passwd"),
            ("Backup:NodeName", "node/1"));
        problems.Should().HaveCount(5);
        problems.Should().Contain(p => p.StartsWith("Backup:Wal:Retention", StringComparison.Ordinal));
        problems.Should().Contain(p => p.StartsWith("Backup:S3:Bucket", StringComparison.Ordinal));
        problems.Should().Contain(p => p.StartsWith("Backup:S3:PartSizeMiB", StringComparison.Ordinal));
        problems.Should().Contain(p => p.StartsWith("Backup:Config:Include:0", StringComparison.Ordinal));
        problems.Should().Contain(p => p.StartsWith("Backup:NodeName", StringComparison.Ordinal));
    }

    [Fact]
    public void S3_encryption_storage_class_and_lock_are_read_and_an_unknown_value_names_its_key()
    {
        var o = Load(("Backup:S3:Enabled", "true"), ("Backup:S3:ServerSideEncryption", "aws:kms"), ("Backup:S3:KmsKeyId", "alias/veloz"),
            ("Backup:S3:StorageClass", "STANDARD_IA"), ("Backup:S3:ObjectLockMode", "GOVERNANCE"), ("Backup:S3:ObjectLockDays", "7"));
        (o.S3.ServerSideEncryption, o.S3.KmsKeyId, o.S3.StorageClass, o.S3.ObjectLockMode, o.S3.ObjectLockDays).Should().Be(("aws:kms", "alias/veloz", "STANDARD_IA", "GOVERNANCE", 7));
        var store = Stores.StoreComposition.S3StoreOptionsFrom(o);
        (store.ServerSideEncryption, store.KmsKeyId, store.StorageClass, store.ObjectLockMode, store.ObjectLockDays).Should().Be(("aws:kms", "alias/veloz", "STANDARD_IA", "GOVERNANCE", 7));

        Problems(("Backup:S3:Enabled", "true"), ("Backup:S3:ServerSideEncryption", "SSE-C")).Should().ContainSingle()
            .Which.Should().Be("Backup:S3:ServerSideEncryption must be one of none, AES256, aws:kms: 'SSE-C'");
        Problems(("Backup:S3:Enabled", "true"), ("Backup:S3:KmsKeyId", "1234abcd")).Should().ContainSingle()
            .Which.Should().Be("Backup:S3:KmsKeyId is set but Backup:S3:ServerSideEncryption is 'none': a KMS key is used only with aws:kms");
        Problems(("Backup:S3:Enabled", "true"), ("Backup:S3:ObjectLockDays", "30")).Should().ContainSingle()
            .Which.Should().StartWith("Backup:S3:ObjectLockDays is 30 but Backup:S3:ObjectLockMode is not set");
        Problems(("Backup:S3:Enabled", "true"), ("Backup:S3:ObjectLockMde", "GOVERNANCE")).Should().ContainSingle()
            .Which.Should().Be("Backup:S3:ObjectLockMde is not a known setting (did you mean Backup:S3:ObjectLockMode?)");
    }

    [Fact]
    public void No_kind_may_be_kept_shorter_than_s3_locks_its_copies()
    {
        var problems = Problems(("Backup:S3:Enabled", "true"), ("Backup:S3:ObjectLockMode", "COMPLIANCE"), ("Backup:S3:ObjectLockDays", "14"));

        // WAL keeps 7 days by default, everything else 30.
        problems.Should().ContainSingle().Which.Should().Be(
            "Backup:Wal:Retention 7.00:00:00 is shorter than Backup:S3:ObjectLockDays 14: S3 would keep every copy locked past it; raise the retention to at least 14.00:00:00 or lower the lock");
        Load(("Backup:S3:Enabled", "true"), ("Backup:S3:ObjectLockMode", "COMPLIANCE"), ("Backup:S3:ObjectLockDays", "14"), ("Backup:Wal:Retention", "14.00:00:00"))
            .S3.ObjectLockDays.Should().Be(14);
    }

    [Fact]
    public void S3_settings_are_only_checked_when_S3_is_enabled()
    {
        var o = Load(("Backup:S3:Bucket", "Not_A_Bucket"));
        o.S3.Bucket.Should().Be("Not_A_Bucket");
    }

    [Fact]
    public void S3_encryption_is_on_by_default_and_needs_a_recipient()
    {
        Problems(("Backup:S3:Enabled", "true"), ("Backup:Secrets:Recipients:0", null)).Should().ContainSingle().Which.Should().Be(
            "Backup:S3:Encrypt is on (the default) but Backup:Secrets:Recipients is empty: name the gpg key(s) the S3 copies are encrypted to, "
            + "or set Backup:S3:Encrypt to false to upload them unencrypted");
        Load(("Backup:S3:Enabled", "true"), ("Backup:Secrets:Recipients:0", "backup@example.com")).S3.Encrypt.Should().BeTrue();
        Load(("Backup:S3:Enabled", "true"), ("Backup:S3:Encrypt", "false"), ("Backup:Secrets:Recipients:0", null)).S3.Encrypt.Should().BeFalse();
        Load().S3.Encrypt.Should().BeTrue("S3 off: nothing to check");
    }

    [Fact]
    public void Keys_are_case_insensitive_like_the_rest_of_dotnet_configuration()
    {
        Load(("backup:wal:directory", "/srv/wal")).Wal.Directory.Should().Be("/srv/wal");
    }
}
