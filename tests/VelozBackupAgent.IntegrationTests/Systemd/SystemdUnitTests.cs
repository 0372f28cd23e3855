using System.Globalization;
using System.Text.RegularExpressions;
using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Systemd;

/// <summary>The unit file as systemd itself judges it: <c>systemd-analyze security</c> and <c>verify</c>.</summary>
public sealed partial class SystemdUnitTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-unit-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task The_hardening_scores_an_exposure_of_2_0_or_lower()
    {
        var r = await ChildProcess.RunAsync(RepoPaths.SystemdAnalyze, ["security", "--offline=true", "--no-pager", RepoPaths.Unit]);

        var match = ExposureLine().Match(r.StdOut + r.StdErr);
        match.Success.Should().BeTrue($"systemd-analyze prints the overall exposure: {r.StdOut}{r.StdErr}");
        var exposure = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        exposure.Should().BeLessThanOrEqualTo(2.0, r.StdOut);
    }

    [Fact]
    public async Task Verify_is_clean_with_the_binary_in_place()
    {
        // verify also checks that ExecStart's binary exists: judge the unit inside a scratch root that has
        // the binary where the unit expects it and systemd's own units (for the targets it names).
        var units = Directory.CreateDirectory(Path.Combine(_root, "etc", "systemd", "system")).FullName;
        File.Copy(RepoPaths.Unit, Path.Combine(units, "veloz-backup.service"));
        var binary = Path.Combine(Directory.CreateDirectory(Path.Combine(_root, "opt", "veloz-backup")).FullName, "veloz-backup");
        await File.WriteAllTextAsync(binary, "#!/bin/sh\n");
        File.SetUnixFileMode(binary, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        CopySystemUnits(_root);

        var r = await ChildProcess.RunAsync(RepoPaths.SystemdAnalyze, ["verify", "--man=false", $"--root={_root}", Path.Combine(units, "veloz-backup.service")]);

        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        (r.StdOut + r.StdErr).Trim().Should().BeEmpty("verify prints nothing for a clean unit");

        // And it is a real check: without the binary it fails.
        File.Delete(binary);
        var missing = await ChildProcess.RunAsync(RepoPaths.SystemdAnalyze, ["verify", "--man=false", $"--root={_root}", Path.Combine(units, "veloz-backup.service")]);
        missing.ExitCode.Should().NotBe(0);
        missing.StdErr.Should().Contain("/opt/veloz-backup/veloz-backup");
    }

    [Fact]
    public async Task The_unit_is_a_notify_service_with_a_watchdog_that_can_still_do_its_job()
    {
        var unit = await File.ReadAllLinesAsync(RepoPaths.Unit);
        string[] Values(string key) => [.. unit.Where(l => l.StartsWith(key + "=", StringComparison.Ordinal)).Select(l => l[(key.Length + 1)..])];

        Values("Type").Should().Equal("notify");
        Values("NotifyAccess").Should().Equal("main");
        Values("WatchdogSec").Should().ContainSingle().Which.Should().NotBe("0");
        Values("Restart").Should().Equal("on-failure");
        Values("User").Should().Equal("veloz-backup");
        Values("MemoryDenyWriteExecute").Should().NotContain("yes", "the .NET JIT writes code and then runs it");
        Values("RestrictAddressFamilies").Should().ContainSingle().Which.Split(' ').Should().BeEquivalentTo("AF_INET", "AF_INET6", "AF_UNIX");
        Values("ReadWritePaths").SelectMany(v => v.Split(' ')).Should().Contain(["/backup", "/var/log/veloz"]);
        Values("PrivateNetwork").Should().NotContain("yes", "S3 and PostgreSQL are reached over the network");
        Values("StateDirectory").Should().Equal("veloz-backup");
        Values("Environment").Should().Contain("GNUPGHOME=/var/lib/veloz-backup/gnupg", "gpg needs a writable home of the agent's own");
        var stopGrace = TimeSpan.FromSeconds(20) + TimeSpan.FromSeconds(15);
        var timeoutStop = TimeSpan.FromSeconds(int.Parse(Values("TimeoutStopSec").Single().TrimEnd('s'), CultureInfo.InvariantCulture));
        timeoutStop.Should().BeGreaterThan(stopGrace, "systemd must not kill a backup inside Backup:StopGrace plus the host's margin");
    }

    /// <summary>Copies the host's systemd units (targets the unit orders against) into the scratch root.</summary>
    internal static void CopySystemUnits(string root)
    {
        var source = "/usr/lib/systemd/system";
        Directory.Exists(source).Should().BeTrue("the systemd package is installed (scripts/test.sh installs it)");
        var target = Directory.CreateDirectory(Path.Combine(root, "usr", "lib", "systemd", "system")).FullName;
        foreach (var file in Directory.EnumerateFiles(source))
        {
            var info = new FileInfo(file);
            var destination = Path.Combine(target, info.Name);
            if (info.LinkTarget is { } link)
            {
                File.CreateSymbolicLink(destination, link);
            }
            else
            {
                File.Copy(file, destination);
            }
        }
    }

    [GeneratedRegex(@"Overall exposure level for [^:]+: (\d+(?:\.\d+)?)")]
    private static partial Regex ExposureLine();
}
