using System.Text;
using System.Text.Json;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.IntegrationTests.Sources.Archives;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Secrets;

namespace VelozBackupAgent.IntegrationTests.Sources.Secrets;

/// <summary>
/// <c>Backup:Secrets:Commands</c> end to end: the real binary runs real commands (a shell standing in for
/// <c>vault kv get</c>), encrypts with the real gpg, and <c>restore secrets</c> gives the bytes back.
/// </summary>
public sealed class SecretCommandsTests : IDisposable
{
    private const UnixFileMode Mode0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode Mode0700 = Mode0600 | UnixFileMode.UserExecute;
    private const string CanaryVariable = "VELOZ_TEST_VAULT_TOKEN";
    private static readonly string[] ExitThree = ["-c", "echo 'permission denied' >&2; exit 3"];
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    private readonly string _root = Directory.CreateTempSubdirectory("veloz-seccmd-").FullName;
    private readonly DateTime _testStart = TimeProvider.System.GetUtcNow().UtcDateTime.AddSeconds(-2);

    public SecretCommandsTests()
    {
        Directory.CreateDirectory(LocalRoot, Mode0700);
        Directory.CreateDirectory(SecretsDirectory, Mode0700);
        File.WriteAllText(Path.Combine(SecretsDirectory, "exchange_api.key"), "api-key-plain\n");
        File.SetUnixFileMode(Path.Combine(SecretsDirectory, "exchange_api.key"), Mode0600);
    }

    private string LocalRoot => Path.Combine(_root, "backup");
    private string SecretsDirectory => Path.Combine(_root, "secrets");
    private string ConfigPath => Path.Combine(_root, "appsettings.json");
    private string LogDirectory => Path.Combine(_root, "log");
    private string LogFile => Path.Combine(LogDirectory, "backup.log");
    private string StoredSecrets => Path.Combine(LocalRoot, "secrets");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private async Task WriteConfigAsync(params object[] commands)
    {
        var backup = new Dictionary<string, object?>
        {
            ["NodeName"] = "veloz-vault",
            ["LocalRoot"] = LocalRoot,
            ["S3"] = new { Enabled = false },
            ["Secrets"] = new { Directory = SecretsDirectory, Recipients = new[] { TestEnvironment.GpgRecipient }, GnupgHome = TestEnvironment.GnupgHome, Commands = commands },
        };
        await File.WriteAllTextAsync(ConfigPath, JsonSerializer.Serialize(new { Backup = backup }, Indented));
    }

    private Task<ProcessResult> RunAsync(string? canary, params string[] args) =>
        VelozBackupBinary.RunAsync([.. args, "--config", ConfigPath], new Dictionary<string, string?>
        {
            ["Backup__Log__File"] = LogFile,
            [CanaryVariable] = canary,
        }, timeout: TimeSpan.FromMinutes(3));

    private string[] Artifacts() => Directory.Exists(StoredSecrets)
        ? [.. Directory.GetFiles(StoredSecrets, "*.gpg").Select(f => Path.GetFileName(f))]
        : [];

    [Fact]
    public async Task A_commands_output_is_archived_encrypted_and_restored_byte_for_byte_and_its_plaintext_is_nowhere_else()
    {
        var canary = "CANARY-" + Guid.NewGuid().ToString("N");
        var expected = Encoding.UTF8.GetBytes($"{{\"data\":{{\"data\":{{\"token\":\"{canary}\"}}}}}}");

        // The canary is in the command's environment only: not in the configuration, not on its command line.
        await WriteConfigAsync(new
        {
            Name = "vault-veloz",
            Command = "/bin/sh",
            Arguments = new[] { "-c", $"printf '{{\"data\":{{\"data\":{{\"token\":\"%s\"}}}}}}' \"${CanaryVariable}\"" },
            Environment = new[] { CanaryVariable },
            Timeout = "00:00:30",
        });

        var backup = await RunAsync(canary, "backup", "secrets");
        backup.ExitCode.Should().Be(0, backup.StdOut + backup.StdErr);
        var artifact = Artifacts().Should().ContainSingle().Subject;
        artifact.Should().StartWith("secrets_").And.EndWith(".tar.gz.gpg");

        var target = Path.Combine(_root, "restored");
        var restore = await RunAsync(null, "restore", "secrets", "--target", target, "--no-service");
        restore.ExitCode.Should().Be(0, restore.StdOut + restore.StdErr);
        var output = Path.Combine(target, "commands", "vault-veloz.out");
        (await File.ReadAllBytesAsync(output)).Should().Equal(expected);
        File.GetUnixFileMode(output).Should().Be(Mode0600);
        (await File.ReadAllTextAsync(Path.Combine(target, "exchange_api.key"))).Should().Be("api-key-plain\n", "the directory is archived beside the command");

        var needle = Encoding.UTF8.GetBytes(canary);
        var leaks = new List<string>();
        leaks.AddRange(SecretsSourceTests.FilesContaining(LocalRoot, needle, newerThan: null, exclude: null));
        leaks.AddRange(SecretsSourceTests.FilesContaining(Path.GetTempPath(), needle, newerThan: _testStart, exclude: target));
        leaks.Should().BeEmpty("a command's output is on disk only inside the gpg archive");
        // The file sink rolls daily (backup<date>.log beside the configured name).
        var logs = Directory.Exists(LogDirectory) ? Directory.GetFiles(LogDirectory) : [];
        logs.Should().NotBeEmpty("the agent logged to its file");
        logs.Where(l => File.ReadAllBytes(l).AsSpan().IndexOf(needle) >= 0).Should().BeEmpty("the log file holds no output");
        foreach (var text in new[] { backup.StdOut, backup.StdErr, restore.StdOut, restore.StdErr })
        {
            text.Should().NotContain(canary);
        }

        // The search finds plaintext where it is: not a check that cannot fail.
        SecretsSourceTests.FilesContaining(_root, needle, newerThan: null, exclude: null).Should().Equal(output);
        Directory.Exists(Path.Combine(LocalRoot, ".state", "secrets", "spool")).Should().BeTrue();
        Directory.GetFileSystemEntries(Path.Combine(LocalRoot, ".state", "secrets", "spool")).Should().BeEmpty("the spool files have no name");
    }

    [Fact]
    public async Task A_failing_command_fails_the_run_naming_it_and_stores_nothing()
    {
        await WriteConfigAsync(new { Name = "vault-broken", Command = "/bin/sh", Arguments = ExitThree });

        var backup = await RunAsync(null, "backup", "secrets");

        backup.ExitCode.Should().NotBe(0);
        (backup.StdOut + backup.StdErr).Should().Contain("secrets command vault-broken failed (exit code 3)");
        backup.StdErr.Should().NotContain("   at ", "no stack trace");
        Artifacts().Should().BeEmpty("the directory is not stored without the command's output");
    }

    [Fact]
    public async Task A_hanging_command_is_killed_with_its_children_after_its_timeout()
    {
        var pidFile = Path.Combine(_root, "sleep.pid");
        await WriteConfigAsync(new
        {
            Name = "vault-hangs",
            Command = "/bin/sh",
            Arguments = new[] { "-c", "sleep 600 & echo $! > \"$1\"; wait", "sh", pidFile },
            Timeout = "00:00:02",
        });

        var backup = await RunAsync(null, "backup", "secrets");

        backup.ExitCode.Should().NotBe(0);
        (backup.StdOut + backup.StdErr).Should().Contain("vault-hangs").And.Contain("did not finish within");
        Artifacts().Should().BeEmpty();
        var pid = int.Parse((await File.ReadAllTextAsync(pidFile)).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        IsSleeping(pid).Should().BeFalse("the command's child (sleep 600) was killed with it");
    }

    /// <summary>A live (not zombie) process that is still the sleep.</summary>
    private static bool IsSleeping(int pid)
    {
        try
        {
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            return cmdline.StartsWith("sleep", StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    [Fact]
    public async Task A_change_triggered_run_stores_only_when_the_output_changed()
    {
        using var ws = new SourceWorkspace("veloz-seccmd-change-");
        var clock = new ManualClock(new DateTimeOffset(2026, 11, 23, 2, 30, 0, TimeSpan.Zero));
        var value = ws.Write("value.txt", "token-1", Mode0600);
        ws.Options.Secrets.Directory = "";
        ws.Options.Secrets.GnupgHome = TestEnvironment.GnupgHome;
        ws.Options.Secrets.Recipients.Add(TestEnvironment.GpgRecipient);
        var command = new SecretCommandOptions { Name = "vault-veloz", Command = "/bin/cat" };
        command.Arguments.Add(value);
        ws.Options.Secrets.Commands.Add(command);
        var source = new SecretsSource(ws.Options, ws.Repository, clock, ws.Logs.Factory());

        (await source.RunAsync(BackupTrigger.Change, CancellationToken.None)).Artifacts.Should().ContainSingle();
        clock.Advance(TimeSpan.FromMinutes(1));
        var same = await source.RunAsync(BackupTrigger.Change, CancellationToken.None);
        same.Artifacts.Should().BeEmpty();
        same.Detail.Should().StartWith("unchanged since");

        ws.Write("value.txt", "token-2", Mode0600);
        clock.Advance(TimeSpan.FromMinutes(1));
        (await source.RunAsync(BackupTrigger.Change, CancellationToken.None)).Artifacts.Should().ContainSingle();
        ws.StoredFiles("secrets").Count(f => f.EndsWith(".gpg", StringComparison.Ordinal)).Should().Be(2);
    }
}
