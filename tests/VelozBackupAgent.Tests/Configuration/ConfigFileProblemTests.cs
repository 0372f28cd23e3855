using Microsoft.Extensions.Configuration;
using VelozBackupAgent.Configuration;

namespace VelozBackupAgent.Tests.Configuration;

/// <summary>A configuration file that cannot be used is one line naming the file and, for bad JSON, where.</summary>
public sealed class ConfigFileProblemTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("veloz-cfgfile-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Describe(string text)
    {
        var path = Path.Combine(_dir, "appsettings.json");
        File.WriteAllText(path, text);
        var build = () => new ConfigurationBuilder().AddJsonFile(path).Build();
        var failure = build.Should().Throw<InvalidDataException>().Which;
        return ConfigFileProblem.Describe(path, failure);
    }

    [Fact]
    public void Malformed_json_names_the_file_and_the_one_based_line_and_byte()
    {
        var line = Describe("{\n  \"Backup\": {\n    \"LocalRoot\" \"/backup\"\n  }\n}\n");
        line.Should().StartWith($"configuration file {_dir}/appsettings.json is not valid JSON at line 3, byte 17: ");
        line.Should().NotContain("\n").And.NotContain("LineNumber").And.NotContain("Exception");
    }

    [Fact]
    public void A_truncated_file_says_an_object_is_still_open()
    {
        Describe("{ \"Backup\": { \"LocalRoot\": \"/backup\"").Should().Contain("is not valid JSON at line 1").And.Contain("open JSON object");
    }

    [Fact]
    public void An_empty_file_says_it_is_empty()
    {
        Describe("").Should().Be($"configuration file {_dir}/appsettings.json is empty: it must hold a JSON object such as {{ \"Backup\": {{ \"LocalRoot\": \"/backup\" }} }}");
        Describe("  \n").Should().Contain("is empty");
    }

    [Fact]
    public void Json_that_is_not_an_object_says_why()
    {
        Describe("[1, 2]").Should().Be($"configuration file {_dir}/appsettings.json cannot be used: Top-level JSON element must be an object. Instead, 'Array' was found");
    }

    [Fact]
    public void A_directory_a_missing_file_and_a_good_file()
    {
        var asDir = () => ConfigFileProblem.CheckReadable(_dir, "");
        asDir.Should().Throw<BackupConfigurationException>().WithMessage($"configuration file {_dir} is a directory, not a file*");

        var missing = () => ConfigFileProblem.CheckReadable(Path.Combine(_dir, "nope.json"), " (from VELOZ_BACKUP_CONFIG)");
        missing.Should().Throw<BackupConfigurationException>().WithMessage($"configuration file not found: {_dir}/nope.json (from VELOZ_BACKUP_CONFIG)");

        var good = Path.Combine(_dir, "ok.json");
        File.WriteAllText(good, "{}");
        ConfigFileProblem.CheckReadable(good, "").Should().Be(good);
    }
}
