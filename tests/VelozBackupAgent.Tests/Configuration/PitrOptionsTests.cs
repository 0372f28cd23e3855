using Microsoft.Extensions.Configuration;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Scheduling;

namespace VelozBackupAgent.Tests.Configuration;

public sealed class PitrOptionsTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-pitr-opts-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private BackupOptions Load(params (string Key, string? Value)[] settings)
    {
        var all = new Dictionary<string, string?> { ["Backup:LocalRoot"] = _root };
        foreach (var (k, v) in settings)
        {
            all[k] = v;
        }

        return BackupConfiguration.Load(new ConfigurationBuilder().AddInMemoryCollection(all).Build());
    }

    private string[] Problems(params (string Key, string? Value)[] settings)
    {
        var load = () => Load(settings);
        return load.Should().Throw<BackupConfigurationException>().Which.Problems.ToArray();
    }

    [Fact]
    public void Defaults_are_the_issues_values_and_pitr_is_off()
    {
        var p = Load().Pitr;
        p.Enabled.Should().BeFalse();
        p.Streaming.Should().BeTrue();
        p.DataDirectory.Should().Be("/var/lib/postgresql/15/main");
        p.Slot.Should().Be("veloz_backup");
        p.Schedule.Should().Be("0 0 1 * * ?");
        p.Retention.Should().Be(TimeSpan.FromDays(30));
        p.ShipPartialEvery.Should().Be(TimeSpan.FromSeconds(5));
        p.StopCommand.Should().Be("systemctl stop postgresql");
        p.StartCommand.Should().Be("systemctl start postgresql");
        p.FreshnessObjective.Should().Be(TimeSpan.FromMinutes(5));
        p.BaseFreshnessObjective.Should().Be(TimeSpan.FromHours(25));
        p.Compression.Should().Be("gzip");
    }

    [Fact]
    public void The_base_schedule_binds_from_its_own_key()
    {
        Load(("Backup:Pitr:BaseSchedule", "0 30 3 * * ?")).Pitr.Schedule.Should().Be("0 30 3 * * ?");
    }

    [Fact]
    public void Schedule_is_not_a_pitr_key_and_a_bad_base_schedule_is_named_by_its_key()
    {
        Problems(("Backup:Pitr:Schedule", "0 0 1 * * ?")).Should().Contain(p => p.StartsWith("Backup:Pitr:Schedule is not a known setting", StringComparison.Ordinal));
        Problems(("Backup:Pitr:BaseSchedule", "every day")).Should().ContainSingle().Which.Should().StartWith("Backup:Pitr:BaseSchedule is not a valid Quartz cron expression");
    }

    [Fact]
    public void Bad_values_are_each_named()
    {
        var problems = Problems(
            ("Backup:Pitr:Slot", "Veloz-Backup"),
            ("Backup:Pitr:ShipPartialEvery", "00:00:00.500"),
            ("Backup:Pitr:DataDirectory", "relative/path"),
            ("Backup:Pitr:Compression", "lz4"),
            ("Backup:Pitr:MaxRetainedWalMiB", "1"),
            ("Backup:Pitr:BaseFreshnessObjective", "00:00:00"));
        problems.Should().HaveCount(6);
        problems.Should().Contain(p => p.StartsWith("Backup:Pitr:Slot must be 1-63 lower-case letters", StringComparison.Ordinal));
        problems.Should().Contain(p => p.StartsWith("Backup:Pitr:ShipPartialEvery must be between 00:00:01 and 00:10:00", StringComparison.Ordinal));
        problems.Should().Contain("Backup:Pitr:DataDirectory must be an absolute path: 'relative/path'");
        problems.Should().Contain("Backup:Pitr:Compression must be gzip or none: 'lz4'");
        problems.Should().Contain(p => p.StartsWith("Backup:Pitr:MaxRetainedWalMiB must be at least 16", StringComparison.Ordinal));
        problems.Should().Contain(p => p.StartsWith("Backup:Pitr:BaseFreshnessObjective must be a positive duration", StringComparison.Ordinal));
    }

    [Fact]
    public void Max_run_duration_is_bounded_for_every_kind_and_named_by_its_key()
    {
        var problems = Problems(
            ("Backup:Database:MaxRunDuration", "00:00:30"),
            ("Backup:Wal:MaxRunDuration", "8.00:00:00"),
            ("Backup:Pitr:MaxRunDuration", "00:00:00"));
        problems.Should().HaveCount(3);
        problems.Should().Contain("Backup:Database:MaxRunDuration must be between 00:01:00 and 7.00:00:00: 00:00:30");
        problems.Should().Contain("Backup:Wal:MaxRunDuration must be between 00:01:00 and 7.00:00:00: 8.00:00:00");
        problems.Should().Contain("Backup:Pitr:MaxRunDuration must be between 00:01:00 and 7.00:00:00: 00:00:00");
        Load(("Backup:Config:MaxRunDuration", "02:00:00")).Config.MaxRunDuration.Should().Be(TimeSpan.FromHours(2));
    }

    [Fact]
    public void Pitr_checks_the_connection_string_even_with_the_database_kind_off()
    {
        Problems(("Backup:Database:Enabled", "false"), ("Backup:Pitr:Enabled", "true"), ("Backup:Database:ConnectionString", ""))
            .Should().Contain("Backup:Database:ConnectionString is empty");
        Load(("Backup:Database:Enabled", "false"), ("Backup:Database:ConnectionString", "")).Pitr.Enabled.Should().BeFalse();
    }

    [Fact]
    public void A_base_backup_marks_a_pitr_run_but_wal_does_not()
    {
        BackupSchedule.MarksRun(BackupKinds.Pitr, "base_20261201_010000.json", out var time).Should().BeTrue();
        time.Should().Be(new DateTimeOffset(2026, 12, 1, 1, 0, 0, TimeSpan.Zero));
        BackupSchedule.MarksRun(BackupKinds.Pitr, "base_20261201_010000.tar.gz", out _).Should().BeFalse("the archive alone is not a complete base");
        BackupSchedule.MarksRun(BackupKinds.Pitr, "000000010000000000000003", out _).Should().BeFalse();
        BackupSchedule.From(Load(("Backup:Pitr:Enabled", "true"))).Select(s => s.Kind).Should().Contain(BackupKinds.Pitr);
        BackupSchedule.From(Load()).Select(s => s.Kind).Should().NotContain(BackupKinds.Pitr);
    }
}
