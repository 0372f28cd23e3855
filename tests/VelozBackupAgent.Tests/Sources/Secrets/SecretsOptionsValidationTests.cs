using Microsoft.Extensions.Configuration;
using VelozBackupAgent.Configuration;

namespace VelozBackupAgent.Tests.Sources.Secrets;

public sealed class SecretsOptionsValidationTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-opts-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private IEnumerable<string> Problems(params (string Key, string? Value)[] settings)
    {
        var all = new Dictionary<string, string?> { ["Backup:LocalRoot"] = _root };
        foreach (var (k, v) in settings)
        {
            all[k] = v;
        }

        try
        {
            BackupConfiguration.Load(new ConfigurationBuilder().AddInMemoryCollection(all).Build());
            return [];
        }
        catch (BackupConfigurationException ex)
        {
            return ex.Problems;
        }
    }

    [Fact]
    public void The_new_keys_bind_and_have_defaults()
    {
        var o = BackupConfiguration.Load(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Backup:LocalRoot"] = _root,
            ["Backup:Secrets:GnupgHome"] = "/var/lib/veloz-backup/gnupg",
        }).Build());
        o.Secrets.GpgPath.Should().Be("gpg");
        o.Secrets.GnupgHome.Should().Be("/var/lib/veloz-backup/gnupg");
    }

    [Fact]
    public void An_empty_recipient_list_does_not_stop_the_agent_the_secrets_job_refuses_instead() =>
        Problems().Should().BeEmpty();

    [Fact]
    public void A_blank_recipient_is_named() =>
        Problems(("Backup:Secrets:Recipients:0", "ops@example.com"), ("Backup:Secrets:Recipients:1", " "))
            .Should().Equal("Backup:Secrets:Recipients:1 is blank: name a key by fingerprint, key id or e-mail address");

    [Fact]
    public void A_relative_gnupg_home_is_named() =>
        Problems(("Backup:Secrets:GnupgHome", "gnupg")).Should().Equal("Backup:Secrets:GnupgHome must be an absolute path: 'gnupg'");

    [Theory]
    [InlineData("bin/gpg")]
    [InlineData(" ")]
    public void A_gpg_path_must_be_a_name_or_absolute(string path) =>
        Problems(("Backup:Secrets:GpgPath", path)).Should().ContainSingle().Which.Should().StartWith("Backup:Secrets:GpgPath must be a program name");

    [Fact]
    public void A_misspelt_secrets_key_is_named() =>
        Problems(("Backup:Secrets:GpgHome", "/x")).Should().ContainSingle().Which.Should().StartWith("Backup:Secrets:GpgHome is not a known setting");
}
