using VelozBackupAgent.IntegrationTests.Support;

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
        var file = Path.Combine(Path.GetTempPath(), "veloz_20260214_120000.dump");
        await File.WriteAllTextAsync(file, "a manual dump");
        try
        {
            var r = await VelozBackupBinary.RunAsync(["import", "database", file, $"--Backup:LocalRoot={_root}"]);
            r.ExitCode.Should().Be(0, r.StdErr);

            var list = await VelozBackupBinary.RunAsync(["list", "database", "--json", $"--Backup:LocalRoot={_root}"]);
            list.ExitCode.Should().Be(0, list.StdErr);
            list.StdOut.Should().Contain("\"name\": \"veloz_20260214_120000.dump\"").And.Contain("\"time\": \"2026-02-14T12:00:00Z\"");
        }
        finally
        {
            File.Delete(file);
        }
    }

    [RootFact]
    public async Task Import_into_a_full_disk_is_one_line_exit_1_and_keeps_earlier_artifacts()
    {
        var mount = Directory.CreateTempSubdirectory("veloz-tiny-").FullName;
        (await ChildProcess.RunAsync("mount", ["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", mount])).ExitCode.Should().Be(0);
        var small = Path.Combine(_root, "veloz_20260213_120000.dump");
        var big = Path.Combine(_root, "veloz_20260214_120000.dump");
        await File.WriteAllBytesAsync(small, new byte[100_000]);
        await using (var f = File.Create(big))
        {
            await new GeneratedStream(5_000_000).CopyToAsync(f);
        }

        try
        {
            (await VelozBackupBinary.RunAsync(["import", "database", small, $"--Backup:LocalRoot={mount}"])).ExitCode.Should().Be(0);

            var r = await VelozBackupBinary.RunAsync(["import", "database", big, $"--Backup:LocalRoot={mount}"]);

            r.ExitCode.Should().Be(1);
            r.ErrorLines.Should().ContainSingle().Which.Should().StartWith("veloz-backup: local store is full: no space left on device");
            var check = await ChildProcess.RunAsync("sha256sum", ["-c", "veloz_20260213_120000.dump.sha256"], workingDirectory: Path.Combine(mount, "database"));
            check.ExitCode.Should().Be(0);
            Directory.GetFiles(Path.Combine(mount, "database")).Select(Path.GetFileName).Should().BeEquivalentTo("veloz_20260213_120000.dump", "veloz_20260213_120000.dump.sha256");
        }
        finally
        {
            await ChildProcess.RunAsync("umount", [mount]);
            Directory.Delete(mount, recursive: true);
        }
    }
}
