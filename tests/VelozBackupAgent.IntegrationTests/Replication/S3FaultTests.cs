using System.Diagnostics;
using System.Text.Json;
using VelozBackupAgent.IntegrationTests.Restore;
using VelozBackupAgent.IntegrationTests.Telemetry;

namespace VelozBackupAgent.IntegrationTests.Replication;

/// <summary>
/// Faults injected into a real s3rver under the real binary (issue 15): bytes flipped in the files s3rver keeps its
/// objects in, S3 stopped during a backup. Each ends in one line and the contract's exit code, never a stack trace.
/// </summary>
public sealed class S3FaultTests
{
    private static readonly string[] Kinds = ["wal", "config", "database", "secrets"];

    [Fact]
    public async Task Objects_damaged_in_S3_fail_verify_and_every_restore_from_S3_in_one_line_naming_the_artifact()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: true);
        var backup = await bed.RunAsync("backup", "all");
        backup.ExitCode.Should().Be(0, backup.StdOut + backup.StdErr);
        (await BacklogAsync(bed)).Should().Be(0, "everything reached S3 before it is damaged");

        var config = Newest(bed, "config", "config_*");
        var dump = Newest(bed, "database", "*.dump");
        var secrets = Newest(bed, "secrets", "secrets_*");
        var segment = Newest(bed, "wal", "orders_0*");
        foreach (var (kind, name) in new[] { ("config", config), ("database", dump), ("secrets", secrets), ("wal", segment) })
        {
            FlipByte(S3ObjectFile(bed, kind, name));
        }

        var verify = await bed.RunAsync("verify", "--read-data");
        verify.ExitCode.Should().Be(3, verify.StdOut + verify.StdErr);
        verify.StdErr.Should().NotContain("Unhandled exception").And.NotContain("Expected hash");
        var checksums = verify.StdOut.Split('\n').Single(l => l.Contains("Checksums valid", StringComparison.Ordinal));
        checksums.Should().StartWith("FAIL").And.Contain("checksum mismatch").And.Contain(config).And.Contain(dump);

        var restores = new[]
        {
            (config, new[] { "restore", "config", "--from", "s3", "--target", Path.Combine(bed.Root, "r-config") }),
            (secrets, new[] { "restore", "secrets", "--from", "s3", "--no-service", "--target", Path.Combine(bed.Root, "r-secrets") }),
            (segment, new[] { "restore", "wal", "--from", "s3", "--no-service", "--target", Path.Combine(bed.Root, "r-wal") }),
            (dump, new[] { "restore", "database", "--from", "s3", "--into", "veloz_from_damaged", "--no-service" }),
        };
        foreach (var (artifact, args) in restores)
        {
            var r = await bed.RunAsync(args);
            r.ExitCode.Should().Be(1, $"{string.Join(' ', args)}: {r.StdOut}{r.StdErr}");
            r.ErrorLines.Should().ContainSingle($"{string.Join(' ', args)}: {r.StdErr}").Which.Should()
                .Contain("checksum mismatch").And.Contain(artifact).And.Contain($"s3://{bed.Bucket}/");
        }

        // A damaged sidecar object: the same words, not the SDK's.
        var otherConfig = Path.Combine(bed.Root, "r-config-2");
        FlipByte(S3ObjectFile(bed, "config", config + ".sha256"));
        var sidecar = await bed.RunAsync("restore", "config", "--from", "s3", "--target", otherConfig);
        sidecar.ExitCode.Should().Be(1, sidecar.StdOut + sidecar.StdErr);
        sidecar.ErrorLines.Should().ContainSingle().Which.Should().Contain("checksum mismatch").And.Contain(config + ".sha256").And.NotContain("Expected hash");
    }

    [Fact]
    public async Task Backup_all_with_S3_down_stores_everything_locally_queues_it_warns_once_and_exits_0()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: true);
        bed.S3!.Stop();
        var log = Path.Combine(bed.Root, "backup.log");

        var clock = Stopwatch.StartNew();
        var backup = await bed.RunAsync("backup", "all", $"--Backup:Log:File={log}", "--Backup:S3:MaxRetries=2");
        clock.Stop();

        backup.ExitCode.Should().Be(0, "every kind succeeded locally; S3 is a warning: " + backup.StdOut + backup.StdErr);
        var outcomes = backup.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Where(l => !l.StartsWith("S3", StringComparison.Ordinal))
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        outcomes.Should().HaveCount(4).And.OnlyContain(o => o == "succeeded");
        backup.ErrorLines.Should().ContainSingle(backup.StdErr).Which.Should().StartWith("veloz-backup: warning: S3 copy not made").And.Contain("unreachable");
        var stored = LocalArtifacts(bed).Count;
        stored.Should().BeGreaterThanOrEqualTo(5, "wal (segments and manifest), config, database (dump and globals) and secrets");
        (await BacklogAsync(bed)).Should().Be(stored, "every artifact waits in the queue");

        // One unreachable verdict for the whole command: one series of retries, every later call failing at once.
        var retries = File.ReadLines(LogFileOf(log)).Count(l => l.Contains("S3 request failed, retry", StringComparison.Ordinal));
        retries.Should().Be(2, $"MaxRetries 2, paid once (the command took {clock.Elapsed.TotalSeconds:0.0} s)");
    }

    [Fact]
    public async Task Backup_database_with_no_upload_sends_nothing_to_S3_and_queues_the_dump()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: true);

        var backup = await bed.RunAsync("backup", "database", "--no-upload");

        backup.ExitCode.Should().Be(0, backup.StdOut + backup.StdErr);
        Directory.GetFiles(bed.S3!.DataDirectory, "*._S3rver_object", SearchOption.AllDirectories).Should().BeEmpty("--no-upload: not even the copy made while the dump is written");
        var stored = LocalArtifacts(bed);
        stored.Should().Contain(n => n.EndsWith(".dump", StringComparison.Ordinal));
        (await BacklogAsync(bed)).Should().Be(stored.Count, "the dump (and its globals) wait in the upload queue");

        var replicate = await bed.RunAsync("replicate");
        replicate.ExitCode.Should().Be(0, replicate.StdErr);
        (await BacklogAsync(bed)).Should().Be(0);
    }

    [Fact]
    public async Task The_daemon_start_up_line_counts_what_waits_in_the_upload_queue()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: true);
        bed.S3!.Stop();
        (await bed.RunAsync("backup", "config", "--no-upload")).ExitCode.Should().Be(0);
        (await bed.RunAsync("backup", "secrets", "--no-upload")).ExitCode.Should().Be(0);
        var queued = await BacklogAsync(bed);
        queued.Should().Be(2);

        await using var daemon = RunningDaemon.Start(
            ["--config", bed.ConfigPath, "--Backup:Wal:Enabled=false", "--Backup:Database:Enabled=false", "--Backup:Config:Enabled=false", "--Backup:Secrets:Enabled=false",
             "--Backup:Verify:DrillEnabled=false", "--Backup:Replication:InitialBackoff=00:01:00"],
            RunningDaemon.FreePort());
        await daemon.WaitForAsync(() => Task.FromResult<string?>(daemon.Console), c => c.Contains("is unavailable", StringComparison.Ordinal), "the replicator finding S3 down");

        daemon.Console.Should().Contain($"; {queued} artifacts (").And.Contain("wait in the S3 upload queue");
        daemon.Console.Should().Contain($"s3 is unavailable, {queued} artifacts");
        (await daemon.StopAsync()).Should().Be(0, daemon.Console);
    }

    private static async Task<int> BacklogAsync(RestoreTestBed bed)
    {
        var status = await bed.RunAsync("status", "--json");
        using var json = JsonDocument.Parse(status.StdOut);
        return json.RootElement.GetProperty("uploadBacklog").GetProperty("artifacts").GetInt32();
    }

    private static List<string> LocalArtifacts(RestoreTestBed bed) =>
        [.. Kinds
            .Where(k => Directory.Exists(Path.Combine(bed.LocalRoot, k)))
            .SelectMany(k => Directory.GetFiles(Path.Combine(bed.LocalRoot, k)))
            .Where(f => File.Exists(f + ".sha256"))
            .Select(f => Path.GetFileName(f))];

    private static string Newest(RestoreTestBed bed, string kind, string pattern) =>
        Directory.GetFiles(Path.Combine(bed.LocalRoot, kind), pattern)
            .Select(Path.GetFileName).OfType<string>()
            .Where(n => !n.EndsWith(".sha256", StringComparison.Ordinal))
            .OrderBy(n => n, StringComparer.Ordinal).Last();

    /// <summary>Where s3rver keeps the bytes of an object: <c>&lt;directory&gt;/&lt;bucket&gt;/&lt;key&gt;._S3rver_object</c>.</summary>
    private static string S3ObjectFile(RestoreTestBed bed, string kind, string name)
    {
        // With Backup:S3:Encrypt (the default) the bytes are those of <name>.enc.gpg; secrets and sidecars are as named.
        var encrypted = Path.Combine(bed.S3!.DataDirectory, bed.Bucket, RestoreTestBed.NodeName, kind, name + ".enc.gpg._S3rver_object");
        var path = File.Exists(encrypted) ? encrypted : Path.Combine(bed.S3!.DataDirectory, bed.Bucket, RestoreTestBed.NodeName, kind, name + "._S3rver_object");
        File.Exists(path).Should().BeTrue($"s3rver keeps {kind}/{name} in {path}");
        return path;
    }

    private static void FlipByte(string path)
    {
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x01;
        File.WriteAllBytes(path, bytes);
    }

    /// <summary>Serilog's daily file: <c>backup.log</c> becomes <c>backup20261202.log</c>.</summary>
    private static string LogFileOf(string log) =>
        Directory.GetFiles(Path.GetDirectoryName(log)!, Path.GetFileNameWithoutExtension(log) + "*" + Path.GetExtension(log)).Single();
}
