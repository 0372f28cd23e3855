using VelozBackupAgent.Configuration;
using VelozBackupAgent.Scheduling;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Tests.Scheduling;

public sealed class BackupScheduleTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 23, 10, 7, 0, TimeSpan.Zero);

    [Theory]
    [InlineData("0 0 2 * * ?", "2026-11-23T02:00:00Z", false)] // today's 02:00 ran; next is tomorrow
    [InlineData("0 0 2 * * ?", "2026-11-22T02:00:00Z", true)]  // today's 02:00 was missed
    [InlineData("0 0 2 * * ?", "2026-11-22T23:59:59Z", true)]
    [InlineData("0 0/5 * * * ?", "2026-11-23T10:05:00Z", false)] // next fire 10:10 is still ahead
    [InlineData("0 0/5 * * * ?", "2026-11-23T10:04:59Z", true)]  // 10:05 was missed
    [InlineData("0 0 0/6 * * ?", "2026-11-23T06:00:00Z", false)]
    [InlineData("0 0 0/6 * * ?", "2026-11-23T05:59:00Z", true)]
    public void A_fire_between_the_last_run_and_now_is_missed(string cron, string lastRun, bool missed)
    {
        var schedule = new BackupSchedule("database", cron, TimeZoneInfo.Utc);
        schedule.Missed(DateTimeOffset.Parse(lastRun, System.Globalization.CultureInfo.InvariantCulture), Now).Should().Be(missed);
    }

    [Fact]
    public void A_kind_that_never_ran_has_missed_its_schedule()
    {
        new BackupSchedule("config", "0 0 0/6 * * ?", TimeZoneInfo.Utc).Missed(null, Now).Should().BeTrue();
    }

    [Fact]
    public void The_schedule_reads_cron_fields_in_its_time_zone()
    {
        var plusTwo = TimeZoneInfo.CreateCustomTimeZone("UTC+2", TimeSpan.FromHours(2), "UTC+2", "UTC+2");
        var schedule = new BackupSchedule("database", "0 0 2 * * ?", plusTwo);
        schedule.NextAfter(Now).Should().Be(new DateTimeOffset(2026, 11, 24, 0, 0, 0, TimeSpan.Zero));
    }

    [Fact]
    public void Only_enabled_kinds_get_a_schedule_in_restore_order()
    {
        var options = new BackupOptions();
        options.Secrets.Enabled = false;
        BackupSchedule.From(options).Select(s => s.Kind).Should().Equal("config", "database", "wal");
    }

    [Fact]
    public async Task The_last_run_comes_from_artifact_names_and_for_the_wal_only_from_manifests()
    {
        var root = Directory.CreateTempSubdirectory("veloz-schedule-").FullName;
        try
        {
            var store = new LocalArtifactStore(root);
            await WriteAsync(store, "wal", "orders_0000000000000007.wal");
            await WriteAsync(store, "wal", "wal-manifest_20261123_100000.json");
            await WriteAsync(store, "wal", "orders_current_20261123_100600.wal");
            await WriteAsync(store, "database", "veloz_20261122_020000.dump");
            await WriteAsync(store, "database", "veloz_20261123_020000.dump");
            await WriteAsync(store, "database", "notes.txt");

            (await new BackupSchedule("wal", "0 0/5 * * * ?").LastRunAsync(store)).Should().Be(new DateTimeOffset(2026, 11, 23, 10, 0, 0, TimeSpan.Zero));
            (await new BackupSchedule("database", "0 0 2 * * ?").LastRunAsync(store)).Should().Be(new DateTimeOffset(2026, 11, 23, 2, 0, 0, TimeSpan.Zero));
            (await new BackupSchedule("config", "0 0 0/6 * * ?").LastRunAsync(store)).Should().BeNull();
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static async Task WriteAsync(LocalArtifactStore store, string kind, string name)
    {
        using var content = new MemoryStream("x"u8.ToArray());
        await store.WriteAsync(kind, name, content);
    }
}
