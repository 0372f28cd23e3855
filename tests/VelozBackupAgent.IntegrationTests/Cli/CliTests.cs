using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Cli;

/// <summary>The real veloz-backup binary as a user runs it: help, exit codes, one clear line per failure.</summary>
public sealed class CliTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-cli-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task Help_lists_the_verbs_and_exits_0()
    {
        var r = await VelozBackupBinary.RunAsync(["--help"]);
        r.ExitCode.Should().Be(0);
        r.StdOut.Should().Contain("Usage:").And.Contain("list").And.Contain("status").And.Contain("replicate").And.Contain("--config");
    }

    [Fact]
    public async Task Version_prints_the_informational_version_with_its_commit_and_exits_0()
    {
        // `--version` alone is answered before the command tree is built (start-up cost); the line is the one
        // System.CommandLine prints: the entry assembly's informational version.
        var r = await VelozBackupBinary.RunAsync(["--version"]);
        r.ExitCode.Should().Be(0);
        r.StdErr.Should().BeEmpty();
        r.StdOut.Trim().Should().MatchRegex(@"^\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?(\+[0-9a-f]{7,40})?$");
    }

    [Fact]
    public async Task An_unknown_verb_is_bad_usage()
    {
        var r = await VelozBackupBinary.RunAsync(["frobnicate"]);
        r.ExitCode.Should().Be(2);
    }

    [Fact]
    public async Task A_missing_local_root_is_one_line_naming_the_key_and_exit_2()
    {
        var r = await VelozBackupBinary.RunAsync(["status", "--Backup:LocalRoot=/nonexistent/backup"]);
        r.ExitCode.Should().Be(2);
        r.ErrorLines.Should().ContainSingle().Which.Should().Be(
            "veloz-backup: configuration error: Backup:LocalRoot does not exist: /nonexistent/backup (create it, mode 0700, owned by the agent's user)");
    }

    [Theory]
    [InlineData("--Backup:S3:ServerSideEncryption=AES128", "Backup:S3:ServerSideEncryption must be one of none, AES256, aws:kms: 'AES128'")]
    [InlineData("--Backup:S3:KmsKeyId=1234abcd", "Backup:S3:KmsKeyId is set but Backup:S3:ServerSideEncryption is 'none': a KMS key is used only with aws:kms")]
    [InlineData("--Backup:S3:ObjectLockMode=FOREVER", "Backup:S3:ObjectLockMode must be GOVERNANCE, COMPLIANCE or none: 'FOREVER'")]
    public async Task A_bad_s3_protection_setting_is_one_line_naming_the_key_and_exit_2(string setting, string message)
    {
        var r = await VelozBackupBinary.RunAsync(["status", $"--Backup:LocalRoot={_root}", "--Backup:S3:Enabled=true", setting]);
        r.ExitCode.Should().Be(2);
        r.ErrorLines.Should().ContainSingle().Which.Should().Be("veloz-backup: configuration error: " + message);
    }

    [Fact]
    public async Task A_misspelt_key_in_the_config_file_names_the_key()
    {
        var config = Path.Combine(_root, "appsettings.json");
        await File.WriteAllTextAsync(config, $$"""{ "Backup": { "LocalRoot": "{{_root}}", "Databse": { "Enabled": false } } }""");
        var r = await VelozBackupBinary.RunAsync(["status", "--config", config]);
        r.ExitCode.Should().Be(2);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("Backup:Databse is not a known setting (did you mean Backup:Database?)");
    }

    [Fact]
    public async Task A_missing_config_file_is_named()
    {
        var r = await VelozBackupBinary.RunAsync(["status", "--config", "/nonexistent/appsettings.json"]);
        r.ExitCode.Should().Be(2);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("configuration file not found: /nonexistent/appsettings.json");
    }

    [Fact]
    public async Task Environment_overrides_work_the_dotnet_way()
    {
        var r = await VelozBackupBinary.RunAsync(["status", "--json"], new Dictionary<string, string?> { ["Backup__LocalRoot"] = _root, ["Backup__NodeName"] = "veloz-7" });
        r.ExitCode.Should().Be(0, r.StdErr);
        r.StdOut.Should().Contain("\"node\": \"veloz-7\"").And.Contain($"\"localRoot\": \"{_root}\"");
    }

    [Fact]
    public async Task Import_stores_a_checksummed_artifact_that_list_shows()
    {
        var file = Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N"), "config_20260214_120000.tar.gz");
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        await TestArchives.WriteTarGzAsync(file);
        try
        {
            var r = await VelozBackupBinary.RunAsync(["import", "config", file, $"--Backup:LocalRoot={_root}"]);
            r.ExitCode.Should().Be(0, r.StdErr);

            var list = await VelozBackupBinary.RunAsync(["list", "config", "--json", $"--Backup:LocalRoot={_root}"]);
            list.ExitCode.Should().Be(0, list.StdErr);
            list.StdOut.Should().Contain("\"name\": \"config_20260214_120000.tar.gz\"").And.Contain("\"time\": \"2026-02-14T12:00:00Z\"");
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(file)!, recursive: true);
        }
    }

    [RootFact]
    public async Task Import_into_a_full_disk_is_one_line_exit_1_and_keeps_earlier_artifacts()
    {
        var mount = Directory.CreateTempSubdirectory("veloz-tiny-").FullName;
        (await ChildProcess.RunAsync("mount", ["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", mount])).ExitCode.Should().Be(0);
        // Real archives (import checks what it stores), the big one incompressible and larger than the disk.
        var small = Path.Combine(_root, "config_20260213_120000.tar.gz");
        var big = Path.Combine(_root, "config_20260214_120000.tar.gz");
        await TestArchives.WriteTarGzAsync(small, 100_000);
        await TestArchives.WriteTarGzAsync(big, 5_000_000, seed: 2);

        try
        {
            (await VelozBackupBinary.RunAsync(["import", "config", small, $"--Backup:LocalRoot={mount}"])).ExitCode.Should().Be(0);

            var r = await VelozBackupBinary.RunAsync(["import", "config", big, $"--Backup:LocalRoot={mount}"]);

            r.ExitCode.Should().Be(1);
            r.ErrorLines.Should().ContainSingle().Which.Should().StartWith("veloz-backup: local store is full: no space left on device");
            var check = await ChildProcess.RunAsync("sha256sum", ["-c", "config_20260213_120000.tar.gz.sha256"], workingDirectory: Path.Combine(mount, "config"));
            check.ExitCode.Should().Be(0);
            Directory.GetFiles(Path.Combine(mount, "config")).Select(Path.GetFileName).Should().BeEquivalentTo("config_20260213_120000.tar.gz", "config_20260213_120000.tar.gz.sha256");
        }
        finally
        {
            await ChildProcess.RunAsync("umount", [mount]);
            Directory.Delete(mount, recursive: true);
        }
    }
}

/// <summary>The CLI's S3 failures: one line each, exit 1, nothing local harmed.</summary>
public sealed class CliS3Tests(Stores.S3rverFixture fixture) : IClassFixture<Stores.S3rverFixture>, IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-cli-s3-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private Dictionary<string, string?> Env(string bucket, string? serviceUrl = null, string key = "S3RVER") => new()
    {
        ["Backup__LocalRoot"] = _root,
        ["Backup__S3__Enabled"] = "true",
        ["Backup__S3__Bucket"] = bucket,
        ["Backup__S3__ServiceUrl"] = serviceUrl ?? fixture.Server.ServiceUrl,
        ["Backup__S3__ForcePathStyle"] = "true",
        ["Backup__S3__ChunkedUpload"] = "false",
        ["Backup__S3__MaxRetries"] = "1",
        ["Backup__Secrets__Recipients__0"] = TestEnvironment.GpgRecipient,
        ["Backup__Secrets__GnupgHome"] = TestEnvironment.GnupgHome,
        ["AWS_ACCESS_KEY_ID"] = key,
        ["AWS_SECRET_ACCESS_KEY"] = "S3RVER",
        ["AWS_REGION"] = "us-east-1",
        ["AWS_EC2_METADATA_DISABLED"] = "true",
    };

    private async Task<string> ImportAsync(Dictionary<string, string?> env)
    {
        var file = Path.Combine(_root, "config_20260214_020000.tar.gz");
        await TestArchives.WriteTarGzAsync(file);
        var r = await VelozBackupBinary.RunAsync(["import", "config", file], env);
        r.ExitCode.Should().Be(0, "a local backup never depends on S3: " + r.StdErr);
        File.Delete(file);
        return Path.Combine(_root, "config", "config_20260214_020000.tar.gz");
    }

    [Fact]
    public async Task Replicate_copies_the_queue_and_list_shows_both_targets()
    {
        var bucket = "cli-" + Guid.NewGuid().ToString("N")[..10];
        await fixture.Server.CreateBucketAsync(bucket);
        var env = Env(bucket);
        await ImportAsync(env);

        var r = await VelozBackupBinary.RunAsync(["replicate"], env);
        r.ExitCode.Should().Be(0, r.StdErr);
        r.StdOut.Should().StartWith("replicated 1,");

        var list = await VelozBackupBinary.RunAsync(["list", "config"], env);
        list.StdOut.Should().Contain("local").And.Contain("s3");
    }

    [Fact]
    public async Task A_missing_bucket_is_one_line_and_exit_1_and_the_local_artifact_stays_queued()
    {
        var env = Env("no-such-bucket-" + Guid.NewGuid().ToString("N")[..8]);
        var artifact = await ImportAsync(env);

        var r = await VelozBackupBinary.RunAsync(["replicate"], env);

        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("does not exist");
        File.Exists(artifact).Should().BeTrue();
        (await VelozBackupBinary.RunAsync(["status", "--json"], env)).StdOut.Should().Contain("\"artifacts\": 1");
    }

    [Fact]
    public async Task Unreachable_S3_is_one_line_and_exit_1()
    {
        var env = Env("veloz-backups", "http://127.0.0.1:1");
        await ImportAsync(env);

        var r = await VelozBackupBinary.RunAsync(["replicate"], env);

        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("unreachable");
    }

    [Fact]
    public async Task Missing_credentials_are_one_line_that_says_where_the_agent_looks_and_exit_1()
    {
        var bucket = "nocred-" + Guid.NewGuid().ToString("N")[..10];
        await fixture.Server.CreateBucketAsync(bucket);
        var env = Env(bucket);
        await ImportAsync(env);
        foreach (var name in new[] { "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI" })
        {
            env[name] = null;
        }

        // No profile either: an empty home, and credential and config files that do not exist.
        env["HOME"] = _root;
        env["AWS_SHARED_CREDENTIALS_FILE"] = Path.Combine(_root, "no-credentials");
        env["AWS_CONFIG_FILE"] = Path.Combine(_root, "no-config");

        var r = await VelozBackupBinary.RunAsync(["replicate"], env);

        r.ExitCode.Should().Be(1, r.StdErr);
        r.ErrorLines.Should().ContainSingle(r.StdErr).Which.Should().StartWith($"veloz-backup: no S3 credentials found for bucket '{bucket}'")
            .And.Contain("AWS_ACCESS_KEY_ID").And.Contain("AWS_SECRET_ACCESS_KEY").And.Contain("profile").And.Contain("instance role")
            .And.NotContain("Exception 1 of");
    }

    [Fact]
    public async Task Wrong_credentials_are_one_line_and_exit_1()
    {
        var bucket = "cred-" + Guid.NewGuid().ToString("N")[..10];
        await fixture.Server.CreateBucketAsync(bucket);
        var env = Env(bucket, key: "WRONGKEY");
        await ImportAsync(env);

        var r = await VelozBackupBinary.RunAsync(["replicate", "--reconcile"], env);

        r.ExitCode.Should().Be(1);
        r.ErrorLines.Should().ContainSingle().Which.Should().MatchRegex("(?i)credentials|access");
    }
}
