using VelozBackupAgent.Catalog;
using VelozBackupAgent.Retention;

namespace VelozBackupAgent.Tests.Retention;

/// <summary>A dump's globals_….sql.gpg goes exactly when its dump goes: property tests on random database catalogs, and the edge cases.</summary>
public sealed class DumpCompanionsTests
{
    private static readonly DateTimeOffset Epoch = new(2026, 10, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Retention = TimeSpan.FromDays(30);

    public static TheoryData<int> Seeds()
    {
        var data = new TheoryData<int>();
        for (var seed = 1; seed <= 300; seed++)
        {
            data.Add(seed);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Random_catalogs_never_keep_a_globals_file_whose_dump_goes_nor_drop_one_whose_dump_stays(int seed)
    {
        var random = new Random(seed);
        var entries = new List<CatalogEntry>();
        for (var i = random.Next(0, 40); i > 0; i--)
        {
            var time = Epoch.AddHours(random.Next(0, 24 * 90));
            var sequence = random.Next(1, 3);
            var hasDump = random.Next(5) > 0;
            var hasGlobals = random.Next(4) > 0;
            if (hasDump)
            {
                entries.Add(Entry(ArtifactName.Format(random.Next(4) == 0 ? "globals" : "veloz", time, ".dump", sequence)));
            }

            if (hasGlobals)
            {
                entries.Add(Entry(ArtifactName.Format("globals", time, ".sql.gpg", sequence)));
            }
        }

        entries = entries.DistinctBy(e => e.Name).ToList();
        var now = Epoch.AddDays(random.Next(91, 150));

        var decision = RetentionPolicy.Decide(entries, Retention, now);

        decision.Refused.Should().BeNull();
        var deleted = decision.Delete.ToHashSet();
        foreach (var globals in entries.Where(e => e.Name.EndsWith(".sql.gpg", StringComparison.Ordinal)))
        {
            var dumps = entries.Where(e => e.Name.EndsWith(".dump", StringComparison.Ordinal) && e.Time == globals.Time && e.Sequence == globals.Sequence).ToList();
            if (dumps.Count > 0)
            {
                deleted.Contains(globals).Should().Be(dumps.All(deleted.Contains), $"{globals.Name} goes exactly when its dump {dumps[0].Name} goes");
            }
            else
            {
                deleted.Contains(globals).Should().Be(globals.Time < now - Retention, $"{globals.Name} has no dump and goes by its own age");
            }
        }

        foreach (var series in entries.Where(e => e.Name.EndsWith(".dump", StringComparison.Ordinal)).GroupBy(e => e.Name.Split('_')[0]))
        {
            deleted.Should().NotContain(series.OrderBy(e => e, Comparer<CatalogEntry>.Create(BackupCatalog.NewestFirst)).First(), "the newest dump of a series is always kept");
        }

        decision.Delete.Select(e => e.Time).Should().BeInAscendingOrder();
    }

    [Fact]
    public void The_newest_globals_file_goes_with_its_old_dump_when_later_dumps_have_none()
    {
        var entries = new[]
        {
            Entry("veloz_20261001_020000.dump"), Entry("globals_20261001_020000.sql.gpg"),
            Entry("veloz_20261201_020000.dump"),
        };

        var decision = RetentionPolicy.Decide(entries, Retention, new DateTimeOffset(2026, 12, 1, 3, 0, 0, TimeSpan.Zero));

        decision.Delete.Select(e => e.Name).Should().Equal("veloz_20261001_020000.dump", "globals_20261001_020000.sql.gpg");
    }

    [Fact]
    public void The_newest_dump_keeps_its_globals_however_old()
    {
        var entries = new[] { Entry("veloz_20250101_020000.dump"), Entry("globals_20250101_020000.sql.gpg"), Entry("globals_20241201_020000.sql.gpg") };

        var decision = RetentionPolicy.Decide(entries, Retention, new DateTimeOffset(2026, 12, 1, 3, 0, 0, TimeSpan.Zero));

        decision.Delete.Select(e => e.Name).Should().Equal(["globals_20241201_020000.sql.gpg"], "only the globals without a dump goes");
    }

    private static CatalogEntry Entry(string name) => BackupCatalog.ToEntry(new VelozBackupAgent.Storage.ArtifactInfo("database", name, 1, null), "local");
}
