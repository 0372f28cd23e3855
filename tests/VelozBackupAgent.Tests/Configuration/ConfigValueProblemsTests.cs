using Microsoft.Extensions.Configuration;
using VelozBackupAgent.Configuration;

namespace VelozBackupAgent.Tests.Configuration;

/// <summary>A typed value that does not convert is named with its key, its value and the format that is accepted.</summary>
public sealed class ConfigValueProblemsTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-values-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string[] Problems(params (string Key, string? Value)[] settings)
    {
        var all = new Dictionary<string, string?> { ["Backup:LocalRoot"] = _root };
        foreach (var (k, v) in settings)
        {
            all[k] = v;
        }

        var load = () => BackupConfiguration.Load(new ConfigurationBuilder().AddInMemoryCollection(all).Build());
        return load.Should().Throw<BackupConfigurationException>().Which.Problems.ToArray();
    }

    [Fact]
    public void Values_that_do_not_convert_no_longer_hide_the_other_problems_of_the_same_start()
    {
        var problems = Problems(
            ("Backup:Wal:Retention", "7 days"), ("Backup:Wal:Enabled", "yes"), ("Backup:S3:PartSizeMiB", "64MiB"),
            ("Backup:StopGrace", "00:00:00"), ("Backup:Wal:SettleTime", "00:20:00"));

        problems.Should().HaveCount(5, string.Join(" | ", problems));
        problems.Should().Contain(p => p.StartsWith("Backup:Wal:Retention is not a duration: '7 days' (write hh:mm:ss", StringComparison.Ordinal));
        problems.Should().Contain("Backup:Wal:Enabled must be true or false: 'yes'");
        problems.Should().Contain(p => p.StartsWith("Backup:S3:PartSizeMiB must be a whole number", StringComparison.Ordinal));
        problems.Should().Contain(p => p.StartsWith("Backup:StopGrace", StringComparison.Ordinal));
        problems.Should().Contain(p => p.StartsWith("Backup:Wal:SettleTime must be between 00:00:00 and 00:10:00", StringComparison.Ordinal));
    }

    [Fact]
    public void A_duration_that_does_not_parse_names_the_key_the_value_and_the_format()
    {
        var problem = Problems(("Backup:StopGrace", "abc")).Should().ContainSingle().Subject;
        problem.Should().Be("Backup:StopGrace is not a duration: 'abc' (write hh:mm:ss or d.hh:mm:ss, e.g. 00:00:20 for 20 seconds or 7.00:00:00 for 7 days)");
        problem.Should().NotContain("System.TimeSpan");
    }

    [Fact]
    public void Booleans_integers_and_urls_say_what_they_accept()
    {
        Problems(("Backup:S3:Enabled", "maybe")).Should().ContainSingle().Which.Should().Be("Backup:S3:Enabled must be true or false: 'maybe'");
        Problems(("Backup:S3:PartSizeMiB", "64MiB")).Should().ContainSingle().Which.Should()
            .Be("Backup:S3:PartSizeMiB must be a whole number (from -2147483648 to 2147483647): '64MiB'");
        Problems(("Backup:Restore:Jobs", "99999999999")).Should().ContainSingle().Which.Should().StartWith("Backup:Restore:Jobs must be a whole number");
    }

    [Fact]
    public void Every_value_that_does_not_convert_is_reported_at_once_with_unknown_keys()
    {
        var problems = Problems(("Backup:StopGrace", "abc"), ("Backup:Wal:Retention", "7 days"), ("Backup:Pitr:Enabled", "yes please"), ("Backup:Wal:Shedule", "x"));
        problems.Should().HaveCount(4);
        problems.Should().Contain(p => p.StartsWith("Backup:Wal:Shedule is not a known setting", StringComparison.Ordinal));
        problems.Should().Contain(p => p.StartsWith("Backup:Wal:Retention is not a duration: '7 days'", StringComparison.Ordinal));
        problems.Should().Contain("Backup:Pitr:Enabled must be true or false: 'yes please'");
        problems.Should().NotContain(p => p.Contains("System.", StringComparison.Ordinal));
    }

    [Fact]
    public void Values_the_binder_accepts_are_not_problems()
    {
        var o = BackupConfiguration.Load(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Backup:LocalRoot"] = _root,
            ["Backup:StopGrace"] = "00:01:30",
            ["Backup:Wal:Retention"] = "7.00:00:00",
            ["Backup:S3:Enabled"] = "False",
            ["Backup:Restore:Jobs"] = "4",
        }).Build());
        o.StopGrace.Should().Be(TimeSpan.FromSeconds(90));
        o.Wal.Retention.Should().Be(TimeSpan.FromDays(7));
        o.Restore.Jobs.Should().Be(4);
    }

    [Fact]
    public void A_section_given_a_plain_value_is_named()
    {
        Problems(("Backup:Wal", "on")).Should().ContainSingle().Which.Should().StartWith("Backup:Wal is a group of settings, not a value: 'on'");
    }

    [Fact]
    public void Enums_list_their_names()
    {
        ConfigValueProblems.Describe("Backup:X", "sometimes", typeof(DayOfWeek)).Should()
            .Be("Backup:X must be one of Sunday, Monday, Tuesday, Wednesday, Thursday, Friday, Saturday: 'sometimes'");
    }

    [Fact]
    public void A_local_root_that_is_a_file_is_not_called_missing()
    {
        var file = Path.Combine(_root, "not-a-dir");
        File.WriteAllText(file, "x");
        Problems(("Backup:LocalRoot", file)).Should().ContainSingle().Which.Should()
            .Be($"Backup:LocalRoot is not a directory: {file} is a file (point it at the backup directory, mode 0700, owned by the agent's user)");
    }
}
