using VelozBackupAgent.Catalog;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Tests.Catalog;

public class BackupCatalogTests
{
    [Fact]
    public void Orders_newest_first_by_the_time_in_the_name_then_sequence_then_untimed()
    {
        string[] names =
        [
            "config_20260214_120000.tar.gz",
            "config_20260301_000000.tar.gz",
            "orders_0000000000000002.wal",
            "config_20260214_120000-2.tar.gz",
            "orders_0000000000000010.wal",
            "config_20251231_235959.tar.gz",
        ];
        var entries = names.Select(n => BackupCatalog.ToEntry(new ArtifactInfo("config", n, 1, null), "local")).ToList();
        entries.Sort(BackupCatalog.NewestFirst);
        entries.Select(e => e.Name).Should().Equal(
            "config_20260301_000000.tar.gz",
            "config_20260214_120000-2.tar.gz",
            "config_20260214_120000.tar.gz",
            "config_20251231_235959.tar.gz",
            "orders_0000000000000010.wal",
            "orders_0000000000000002.wal");
    }

    [Fact]
    public void Time_comes_from_the_name()
    {
        var e = BackupCatalog.ToEntry(new ArtifactInfo("database", "veloz_20260214_120000.dump", 10, "ab"), "s3");
        e.Time.Should().Be(new DateTimeOffset(2026, 2, 14, 12, 0, 0, TimeSpan.Zero));
        e.Target.Should().Be("s3");
        e.Size.Should().Be(10);
    }

    [Theory]
    [InlineData("orders_0000000000000001.wal", 1L)]
    [InlineData("orders_9999999999999999.wal", 9999999999999999L)]
    [InlineData("orders_current.wal", null)]
    [InlineData("orders_000000000000001.wal", null)]
    [InlineData("orders_00000000000000a1.wal", null)]
    public void Reads_wal_segment_numbers(string name, long? expected)
    {
        BackupCatalog.WalSegmentNumber(name).Should().Be(expected);
    }
}
