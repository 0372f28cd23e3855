using Microsoft.Extensions.Configuration;
using VelozBackupAgent.Configuration;

namespace VelozBackupAgent.Tests.Telemetry;

public sealed class HttpUrlValidationTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-http-opts-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private Action Load(string url) => () => BackupConfiguration.Load(new ConfigurationBuilder().AddInMemoryCollection(
        new Dictionary<string, string?> { ["Backup:LocalRoot"] = _root, ["Backup:Http:Url"] = url }).Build());

    [Theory]
    [InlineData("http://127.0.0.1:9464")]
    [InlineData("http://localhost:9464")]
    [InlineData("http://[::1]:9464/")]
    [InlineData("http://0.0.0.0:9464")]
    public void Loopback_addresses_localhost_and_every_interface_are_accepted(string url) => Load(url).Should().NotThrow();

    [Theory]
    [InlineData("http://backup-1.example.com:9464", "must name an IP address or localhost")]
    [InlineData("http://127.0.0.1:9464/veloz", "must not have a path")]
    [InlineData("https://127.0.0.1:9464", "must be an absolute http URL")]
    public void Anything_else_is_named_with_its_key(string url, string problem) =>
        Load(url).Should().Throw<BackupConfigurationException>().Which.Problems.Should().ContainSingle()
            .Which.Should().StartWith("Backup:Http:Url ").And.Contain(problem);
}
