using VelozBackupAgent.Catalog;
using VelozBackupAgent.Telemetry;

namespace VelozBackupAgent.Tests.Telemetry;

public sealed class StoreInventoryTests
{
    private static CatalogEntry Entry(string kind, string name, long size) =>
        BackupCatalog.ToEntry(new VelozBackupAgent.Storage.ArtifactInfo(kind, name, size, null), "s3");

    [Fact]
    public void Events_during_a_listing_are_applied_again_over_its_result()
    {
        var inventory = new StoreInventory("s3");
        inventory.BeginListing("config");

        // The listing saw the old one (deleted meanwhile) but not the new one (uploaded meanwhile).
        inventory.Added("config", "config_20261123_120000.tar.gz", 30);
        inventory.Removed("config", "config_20261001_000000.tar.gz");
        inventory.CompleteListing("config", [Entry("config", "config_20261001_000000.tar.gz", 10), Entry("config", "config_20261122_000000.tar.gz", 20)]);

        var totals = inventory.Totals("config");
        totals.Artifacts.Should().Be(2);
        totals.Bytes.Should().Be(50);
        totals.NewestRun.Should().Be(new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero));
    }

    [Fact]
    public void Adding_twice_counts_once_and_an_abandoned_listing_keeps_what_was_known()
    {
        var inventory = new StoreInventory("local");
        inventory.Added("database", "veloz_20261123_020000.dump", 1000);
        inventory.Added("database", "veloz_20261123_020000.dump", 1000);
        inventory.BeginListing("database");
        inventory.AbandonListing("database");

        inventory.Totals("database").Should().Be(new KindTotals(1, 1000, new DateTimeOffset(2026, 11, 23, 2, 0, 0, TimeSpan.Zero)));
        inventory.Complete.Should().BeFalse();
    }

    [Fact]
    public void Removing_the_newest_run_finds_the_next_newest_and_WAL_segments_never_mark_a_run()
    {
        var inventory = new StoreInventory("local");
        inventory.CompleteListing("wal", [
            Entry("wal", "wal-manifest_20261123_100000.json", 5),
            Entry("wal", "wal-manifest_20261123_100500.json", 5),
            Entry("wal", "orders_current_20261123_101000.wal", 5),
            Entry("wal", "orders_0000000000000009.wal", 5),
        ]);

        inventory.Totals("wal").NewestRun.Should().Be(new DateTimeOffset(2026, 11, 23, 10, 5, 0, TimeSpan.Zero));
        inventory.Removed("wal", "wal-manifest_20261123_100500.json");
        inventory.Totals("wal").Should().Be(new KindTotals(3, 15, new DateTimeOffset(2026, 11, 23, 10, 0, 0, TimeSpan.Zero)));
    }
}
