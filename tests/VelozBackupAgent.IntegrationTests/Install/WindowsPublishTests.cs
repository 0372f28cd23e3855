using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.IntegrationTests.Systemd;

namespace VelozBackupAgent.IntegrationTests.Install;

/// <summary>
/// The host publishes for Windows (win-x64, framework-dependent, ReadyToRun) from Linux: every package it uses,
/// the Windows service hosting among them, resolves for that runtime and the platform-compatibility analyzer
/// (CA1416, an error here) passes for it. It is not run: no Windows machine is here (the README says so).
/// </summary>
[Collection(ReleaseBuildCollection.Name)]
public sealed class WindowsPublishTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-winpub-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task The_host_publishes_for_win_x64_with_a_windows_executable_and_the_service_hosting()
    {
        var output = Path.Combine(_root, "publish");
        var r = await ChildProcess.RunAsync("dotnet",
            ["publish", Path.Combine(RepoPaths.Root, "src", "VelozBackupAgent.Host", "VelozBackupAgent.Host.csproj"), "-c", "Release", "-r", "win-x64", "--self-contained", "false",
                "-o", output, "--nologo", "-v", "quiet", "--disable-build-servers"],
            timeout: TimeSpan.FromMinutes(10));
        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);

        var exe = Path.Combine(output, "veloz-backup.exe");
        File.Exists(exe).Should().BeTrue();
        var header = new byte[2];
        await using (var stream = File.OpenRead(exe))
        {
            await stream.ReadExactlyAsync(header);
        }

        header.Should().Equal((byte)'M', (byte)'Z');
        File.Exists(Path.Combine(output, "veloz-backup.dll")).Should().BeTrue();
        File.Exists(Path.Combine(output, "Microsoft.Extensions.Hosting.WindowsServices.dll")).Should().BeTrue();
        File.Exists(Path.Combine(output, "appsettings.json")).Should().BeTrue();
        File.ReadAllText(Path.Combine(output, "veloz-backup.runtimeconfig.json")).Should().Contain("Microsoft.NETCore.App");
    }
}
