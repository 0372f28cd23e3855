using System.Globalization;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.IntegrationTests.Systemd;

namespace VelozBackupAgent.IntegrationTests.Install;

/// <summary>
/// deploy/install.sh into a scratch root (no systemd runs as PID 1 here): twice, to prove it idempotent and
/// that an edited configuration survives, then --uninstall, which keeps every backup and the configuration.
/// </summary>
[Collection(ReleaseBuildCollection.Name)]
public sealed class InstallScriptTests : IDisposable
{
    private const UnixFileMode Dir0700 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private readonly string _root = Directory.CreateTempSubdirectory("veloz-install-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string At(string path) => Path.Combine(_root, path.TrimStart('/'));

    [RootFact]
    public async Task Installs_twice_into_a_scratch_root_keeping_an_edited_config_then_uninstalls_keeping_the_data()
    {
        // A root with account files, as a chroot or image would have, so the user is made inside it.
        Directory.CreateDirectory(At("/etc"));
        await File.WriteAllTextAsync(At("/etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n");
        await File.WriteAllTextAsync(At("/etc/group"), "root:x:0:\n");
        await File.WriteAllTextAsync(At("/etc/shadow"), "root:*:19000:0:99999:7:::\n");
        await File.WriteAllTextAsync(At("/etc/gshadow"), "root:*::\n");

        var first = await InstallAsync();
        first.ExitCode.Should().Be(0, first.StdOut + first.StdErr);
        first.StdOut.Should().Contain("created system user veloz-backup");

        var passwd = (await File.ReadAllLinesAsync(At("/etc/passwd"))).Where(l => l.StartsWith("veloz-backup:", StringComparison.Ordinal)).ToList();
        passwd.Should().ContainSingle();
        var fields = passwd[0].Split(':');
        fields[5].Should().Be("/var/lib/veloz-backup");
        fields[6].Should().Be("/usr/sbin/nologin");
        var uid = fields[2];
        var gid = (await File.ReadAllLinesAsync(At("/etc/group"))).Single(l => l.StartsWith("veloz-backup:", StringComparison.Ordinal)).Split(':')[2];

        foreach (var dir in new[] { "/backup", "/backup/wal", "/backup/config", "/backup/database", "/backup/secrets", "/var/lib/veloz-backup", "/var/lib/veloz-backup/gnupg" })
        {
            File.GetUnixFileMode(At(dir)).Should().Be(Dir0700, dir);
            (await OwnerAsync(dir)).Should().Be($"{uid}:{gid}", dir);
        }

        (await OwnerAsync("/var/log/veloz")).Should().Be($"{uid}:{gid}");
        (await ModeAsync("/var/log/veloz")).Should().Be("750");
        (await ModeAsync("/etc/veloz-backup/appsettings.json")).Should().Be("640");
        (await OwnerAsync("/etc/veloz-backup/appsettings.json")).Should().Be($"0:{gid}", "root owns the configuration; the agent's group reads it");
        (await File.ReadAllTextAsync(At("/etc/veloz-backup/appsettings.json"))).Should().Be(await File.ReadAllTextAsync(Path.Combine(RepoPaths.Root, "appsettings.json")));
        (await ModeAsync("/opt/veloz-backup/veloz-backup")).Should().Be("755");
        (await OwnerAsync("/opt/veloz-backup/veloz-backup.dll")).Should().Be("0:0");
        new FileInfo(At("/usr/local/bin/veloz-backup")).LinkTarget.Should().Be("/opt/veloz-backup/veloz-backup");
        (await File.ReadAllTextAsync(At("/etc/systemd/system/veloz-backup.service"))).Should().Be(await File.ReadAllTextAsync(RepoPaths.Unit));

        // The published agent runs, and the installed unit verifies against the installed binary.
        var help = await ChildProcess.RunAsync(At("/opt/veloz-backup/veloz-backup"), ["--help"]);
        help.ExitCode.Should().Be(0, help.StdErr);
        help.StdOut.Should().Contain("VelozBackupAgent");
        var version = await ChildProcess.RunAsync(At("/opt/veloz-backup/veloz-backup"), ["--version"]);
        version.ExitCode.Should().Be(0, version.StdErr);
        version.StdOut.Trim().Should().NotBeEmpty().And.NotContain("\n", "--version prints one line");
        SystemdUnitTests.CopySystemUnits(_root);
        var verify = await ChildProcess.RunAsync(RepoPaths.SystemdAnalyze, ["verify", "--man=false", $"--root={_root}", At("/etc/systemd/system/veloz-backup.service")]);
        verify.ExitCode.Should().Be(0, verify.StdErr);
        (verify.StdOut + verify.StdErr).Trim().Should().BeEmpty();

        // An operator edits the configuration and keeps a backup; a second install changes neither.
        var edited = (await File.ReadAllTextAsync(At("/etc/veloz-backup/appsettings.json"))).Replace("\"veloz-1\"", "\"veloz-7\"", StringComparison.Ordinal);
        await File.WriteAllTextAsync(At("/etc/veloz-backup/appsettings.json"), edited);
        await File.WriteAllTextAsync(At("/backup/database/veloz_20260214_020000.dump"), "a dump");

        var second = await InstallAsync();
        second.ExitCode.Should().Be(0, second.StdOut + second.StdErr);
        second.StdOut.Should().NotContain("created").And.Contain("appsettings.json.dist");
        (await File.ReadAllTextAsync(At("/etc/veloz-backup/appsettings.json"))).Should().Be(edited);
        (await File.ReadAllTextAsync(At("/etc/veloz-backup/appsettings.json.dist"))).Should().Be(await File.ReadAllTextAsync(Path.Combine(RepoPaths.Root, "appsettings.json")));
        (await ModeAsync("/etc/veloz-backup/appsettings.json.dist")).Should().Be("640");
        (await File.ReadAllLinesAsync(At("/etc/passwd"))).Count(l => l.StartsWith("veloz-backup:", StringComparison.Ordinal)).Should().Be(1);
        (await File.ReadAllLinesAsync(At("/etc/group"))).Count(l => l.StartsWith("veloz-backup:", StringComparison.Ordinal)).Should().Be(1);
        File.Exists(At("/backup/database/veloz_20260214_020000.dump")).Should().BeTrue();
        File.Exists(At("/opt/veloz-backup/veloz-backup.dll")).Should().BeTrue();

        var uninstall = await ChildProcess.RunAsync("bash", [Script, "--destdir", _root, "--uninstall"]);
        uninstall.ExitCode.Should().Be(0, uninstall.StdOut + uninstall.StdErr);
        Directory.Exists(At("/opt/veloz-backup")).Should().BeFalse();
        File.Exists(At("/etc/systemd/system/veloz-backup.service")).Should().BeFalse();
        File.Exists(At("/usr/local/bin/veloz-backup")).Should().BeFalse();
        File.Exists(At("/backup/database/veloz_20260214_020000.dump")).Should().BeTrue("uninstalling never removes backups");
        (await File.ReadAllTextAsync(At("/etc/veloz-backup/appsettings.json"))).Should().Be(edited, "nor the configuration");
        Directory.Exists(At("/var/lib/veloz-backup/gnupg")).Should().BeTrue("nor the agent's gpg keys");
    }

    [Fact]
    public async Task A_prefix_moves_the_binaries_and_the_units_ExecStart_and_a_root_without_accounts_is_said_so()
    {
        var published = await PublishedBuildAsync();

        var r = await ChildProcess.RunAsync("bash", [Script, "--destdir", _root, "--prefix", "/srv/veloz-backup", "--from", published], timeout: TimeSpan.FromMinutes(5));

        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        File.Exists(At("/srv/veloz-backup/veloz-backup.dll")).Should().BeTrue();
        var unit = await File.ReadAllTextAsync(At("/etc/systemd/system/veloz-backup.service"));
        unit.Should().Contain("ExecStart=/srv/veloz-backup/veloz-backup run --config /etc/veloz-backup/appsettings.json").And.NotContain("/opt/veloz-backup");
        r.StdOut.Should().Contain("etc/passwd does not exist: the user veloz-backup was not created");
        File.GetUnixFileMode(At("/backup/wal")).Should().Be(Dir0700);
    }

    private static string Script => Path.Combine(RepoPaths.Root, "deploy", "install.sh");

    private Task<ProcessResult> InstallAsync() =>
        ChildProcess.RunAsync("bash", [Script, "--destdir", _root], timeout: TimeSpan.FromMinutes(10));

    /// <summary>A published build for --from (inside the scratch root, so it goes with it).</summary>
    private async Task<string> PublishedBuildAsync()
    {
        var output = At("/build");
        var r = await ChildProcess.RunAsync("dotnet",
            ["publish", Path.Combine(RepoPaths.Root, "src", "VelozBackupAgent.Host", "VelozBackupAgent.Host.csproj"), "-c", "Release", "-o", output, "--nologo", "-v", "quiet", "--disable-build-servers"],
            timeout: TimeSpan.FromMinutes(10));
        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        return Path.GetFullPath(output);
    }

    private async Task<string> OwnerAsync(string path) => (await StatAsync("%u:%g", path)).Trim();

    private async Task<string> ModeAsync(string path) => (await StatAsync("%a", path)).Trim();

    private async Task<string> StatAsync(string format, string path)
    {
        var r = await ChildProcess.RunAsync("stat", ["-c", format, At(path)]);
        r.ExitCode.Should().Be(0, r.StdErr);
        return r.StdOut.ToString(CultureInfo.InvariantCulture);
    }
}
