using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Cli;

/// <summary>
/// A configuration file that cannot be used (malformed, empty, a directory, unreadable) is one line naming it and
/// exit 2 for every verb and for the daemon: never the configuration provider's stack trace (exit 134).
/// </summary>
public sealed class ConfigFileTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-cfgfile-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>Every verb, with arguments that parse, so that only the configuration can fail.</summary>
    private string[][] EveryVerb()
    {
        var file = Path.Combine(_root, "veloz_20260214_120000.dump");
        File.WriteAllText(file, "x");
        return
        [
            ["run"], ["backup", "all"], ["prune"], ["list"], ["status"], ["replicate"], ["verify"],
            ["restore", "config", "--target", Path.Combine(_root, "restored")], ["import", "database", file], ["pg-wal-push", file],
        ];
    }

    private string Write(string name, string text)
    {
        var path = Path.Combine(_root, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public async Task Malformed_json_is_one_line_with_the_file_and_position_and_exit_2_for_every_verb()
    {
        var config = Write("appsettings.json", "{\n  \"Backup\": {\n    \"LocalRoot\" \"/backup\"\n  }\n}\n");
        foreach (var verb in EveryVerb())
        {
            var r = await VelozBackupBinary.RunAsync([.. verb, "--config", config]);
            r.ExitCode.Should().Be(2, $"{verb[0]}: {r.StdErr}");
            r.ErrorLines.Should().ContainSingle($"{verb[0]} prints one line").Which.Should()
                .StartWith($"veloz-backup: configuration error: configuration file {config} is not valid JSON at line 3, byte 17: '\"' is invalid after a property name. Expected a ':'");
            r.StdErr.Should().NotContain("Exception").And.NotContain("   at ");
        }
    }

    [Fact]
    public async Task An_empty_file_is_one_line_and_exit_2_for_every_verb()
    {
        var config = Write("empty.json", "");
        foreach (var verb in EveryVerb())
        {
            var r = await VelozBackupBinary.RunAsync([.. verb, "--config", config]);
            r.ExitCode.Should().Be(2, $"{verb[0]}: {r.StdErr}");
            r.ErrorLines.Should().ContainSingle().Which.Should().Be($"veloz-backup: configuration error: configuration file {config} is empty: it must hold a JSON object such as {{ \"Backup\": {{ \"LocalRoot\": \"/backup\" }} }}");
        }
    }

    [Fact]
    public async Task A_malformed_file_named_by_VELOZ_BACKUP_CONFIG_is_named_too()
    {
        var config = Write("env.json", "{ \"Backup\": ");
        var r = await VelozBackupBinary.RunAsync(["status"], new Dictionary<string, string?> { ["VELOZ_BACKUP_CONFIG"] = config });
        r.ExitCode.Should().Be(2);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain($"configuration file {config} is not valid JSON at line 1");
    }

    [Fact]
    public async Task Pg_wal_get_keeps_its_own_exit_code_for_a_bad_configuration()
    {
        // PostgreSQL's restore_command: 126 aborts the recovery; 1 or 2 would end it early at a wrong point.
        var config = Write("appsettings.json", "{ oops }");
        var r = await VelozBackupBinary.RunAsync(["pg-wal-get", "000000010000000000000001", Path.Combine(_root, "out"), "--config", config]);
        r.ExitCode.Should().Be(126);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain($"configuration file {config} is not valid JSON at line 1, byte 3");
    }

    [Fact]
    public async Task A_directory_given_as_config_is_one_line_and_exit_2()
    {
        var r = await VelozBackupBinary.RunAsync(["status", "--config", _root]);
        r.ExitCode.Should().Be(2);
        r.ErrorLines.Should().ContainSingle().Which.Should()
            .Be($"veloz-backup: configuration error: configuration file {_root} is a directory, not a file: name the appsettings.json inside it");
    }

    [RootFact]
    public async Task An_unreadable_config_is_one_line_and_exit_2()
    {
        // Root reads every file: drop to nobody to meet a real EACCES.
        File.SetUnixFileMode(_root, (UnixFileMode)0x1ED); // 0755, so nobody can reach the file
        var config = Write("secret.json", "{}");
        File.SetUnixFileMode(config, UnixFileMode.None);
        var r = await ChildProcess.RunAsync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", VelozBackupBinary.Command.File, .. VelozBackupBinary.Command.Prefix, "status", "--config", config],
            new Dictionary<string, string?> { ["HOME"] = "/tmp", ["DOTNET_CLI_HOME"] = "/tmp", ["Backup__Log__File"] = "", ["VELOZ_BACKUP_CONFIG"] = null });
        r.ExitCode.Should().Be(2, r.StdErr);
        r.ErrorLines.Should().ContainSingle().Which.Should()
            .Be($"veloz-backup: configuration error: configuration file {config} cannot be read: permission denied (the agent's user needs read access)");
    }

    [Fact]
    public async Task Typed_values_that_do_not_convert_say_the_key_the_value_and_the_format()
    {
        var r = await VelozBackupBinary.RunAsync(["status", $"--Backup:LocalRoot={_root}", "--Backup:StopGrace=abc", "--Backup:S3:Enabled=maybe"]);
        r.ExitCode.Should().Be(2);
        var line = r.ErrorLines.Should().ContainSingle().Subject;
        line.Should().Contain("Backup:StopGrace is not a duration: 'abc' (write hh:mm:ss or d.hh:mm:ss")
            .And.Contain("Backup:S3:Enabled must be true or false: 'maybe'")
            .And.NotContain("System.TimeSpan");
    }

    [Fact]
    public async Task Three_values_that_do_not_convert_and_two_out_of_range_are_all_in_the_one_line()
    {
        var r = await VelozBackupBinary.RunAsync(["status", $"--Backup:LocalRoot={_root}", "--Backup:Wal:Retention=7 days", "--Backup:Wal:Enabled=yes",
            "--Backup:S3:PartSizeMiB=64MiB", "--Backup:StopGrace=00:00:00", "--Backup:Wal:SettleTime=00:20:00"]);
        r.ExitCode.Should().Be(2, r.StdErr);
        var line = r.ErrorLines.Should().ContainSingle().Subject;
        line.Should().Contain("Backup:Wal:Retention is not a duration: '7 days' (write hh:mm:ss")
            .And.Contain("Backup:Wal:Enabled must be true or false: 'yes'")
            .And.Contain("Backup:S3:PartSizeMiB must be a whole number")
            .And.Contain("Backup:StopGrace")
            .And.Contain("Backup:Wal:SettleTime must be between 00:00:00 and 00:10:00");
        line.Split("; ").Should().HaveCount(5, line);
    }

    [Fact]
    public async Task A_local_root_that_is_a_file_says_so()
    {
        var file = Write("not-a-directory", "x");
        var r = await VelozBackupBinary.RunAsync(["status", $"--Backup:LocalRoot={file}"]);
        r.ExitCode.Should().Be(2);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain($"Backup:LocalRoot is not a directory: {file} is a file");
    }
}
