using VelozBackupAgent.Catalog;
using VelozBackupAgent.Retention;

namespace VelozBackupAgent.Tests.Retention;

/// <summary>Property tests: random catalogs and clocks (seeded, so a failure reproduces), the safety rules checked on each.</summary>
public sealed class RetentionPolicyTests
{
    private static readonly DateTimeOffset Epoch = new(2026, 10, 1, 0, 0, 0, TimeSpan.Zero);

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
    public void Random_timestamped_catalogs_keep_the_newest_and_everything_inside_the_window(int seed)
    {
        var random = new Random(seed);
        var entries = new List<CatalogEntry>();
        var count = random.Next(0, 40);
        for (var i = 0; i < count; i++)
        {
            var prefix = random.Next(3) switch { 0 => "veloz", 1 => "config", _ => "secrets" };
            var time = Epoch.AddMinutes(random.Next(0, 60 * 24 * 60));
            entries.Add(Entry("database", ArtifactName.Format(prefix, time, ".x", random.Next(1, 3))));
        }

        entries.Add(Entry("database", "notes.txt"));
        var retention = TimeSpan.FromDays(random.Next(1, 40));
        var now = Epoch.AddMinutes(random.Next(60 * 24 * 60, 60 * 24 * 90));

        var decision = RetentionPolicy.Decide(entries.DistinctBy(e => e.Name).ToList(), retention, now);

        decision.Refused.Should().BeNull();
        var deleted = decision.Delete.ToHashSet();
        deleted.Where(e => e.Time is null || e.Time >= now - retention).Should().BeEmpty("only what is older than the retention goes");
        foreach (var series in entries.Where(e => e.Time != null).GroupBy(e => e.Name.Split('_')[0]))
        {
            var newest = series.OrderBy(e => e, Comparer<CatalogEntry>.Create(BackupCatalog.NewestFirst)).First();
            deleted.Should().NotContain(newest, "the newest of a series is always kept");
            series.Where(e => e != newest && e.Time < now - retention && !deleted.Contains(e)).Should().BeEmpty("what is old and not the newest does go");
        }

        deleted.Should().NotContain(e => e.Name == "notes.txt");
        decision.Delete.Select(e => e.Time).Should().BeInAscendingOrder("the oldest goes first");
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Random_wal_catalogs_never_delete_a_segment_a_surviving_manifest_lists(int seed)
    {
        var random = new Random(seed);
        var segments = Enumerable.Range(1, random.Next(1, 60)).Select(n => $"orders_{n:D16}.wal").ToList();
        var entries = segments.Select(s => Entry("wal", s)).ToList();
        var listed = new Dictionary<string, IReadOnlyCollection<string>>();
        var manifests = random.Next(0, 30);
        for (var i = 0; i < manifests; i++)
        {
            var name = ArtifactName.Format("wal-manifest", Epoch.AddHours(random.Next(0, 24 * 30)), ".json", 1);
            if (listed.ContainsKey(name))
            {
                continue;
            }

            // A manifest lists a contiguous window of segments, as a directory VeloZ cleans up from the old end would show.
            var from = random.Next(0, segments.Count);
            listed[name] = segments.Skip(from).Take(random.Next(0, 20)).ToList();
            entries.Add(Entry("wal", name));
        }

        entries.Add(Entry("wal", ArtifactName.Format("orders_current", Epoch.AddDays(2), ".wal", 1)));
        entries.Add(Entry("wal", ArtifactName.Format("orders_current", Epoch.AddDays(29), ".wal", 1)));
        var now = Epoch.AddDays(random.Next(20, 45));
        var retention = TimeSpan.FromDays(7);

        var decision = RetentionPolicy.Decide(entries, retention, now, manifestSegments: m => listed[m.Name]);

        var deleted = decision.Delete.ToHashSet();
        var surviving = entries.Where(e => listed.ContainsKey(e.Name) && !deleted.Contains(e)).ToList();
        var keptBySurvivors = surviving.SelectMany(m => listed[m.Name]).ToHashSet();
        var listedByDeleted = deleted.Where(e => listed.ContainsKey(e.Name)).SelectMany(m => listed[m.Name]).ToHashSet();
        foreach (var segment in deleted.Where(e => e.Time is null))
        {
            keptBySurvivors.Should().NotContain(segment.Name, "a manifest inside the window still lists it");
            listedByDeleted.Should().Contain(segment.Name, "only segments that a deleted manifest explains may go");
        }

        if (listed.Count > 0)
        {
            surviving.Should().NotBeEmpty("the newest manifest is always kept");
        }

        var firstManifest = decision.Delete.Select((e, i) => (e, i)).FirstOrDefault(x => x.e.Time is not null).i;
        decision.Delete.Skip(firstManifest).Where(e => e.Time is null).Should().BeEmpty("segments are deleted before manifests");
    }

    [Fact]
    public void Unreadable_manifests_keep_every_segment()
    {
        var entries = new List<CatalogEntry>
        {
            Entry("wal", "orders_0000000000000001.wal"),
            Entry("wal", ArtifactName.Format("wal-manifest", Epoch, ".json", 1)),
            Entry("wal", ArtifactName.Format("wal-manifest", Epoch.AddDays(20), ".json", 1)),
        };

        var decision = RetentionPolicy.Decide(entries, TimeSpan.FromDays(7), Epoch.AddDays(21), manifestSegments: _ => null);

        decision.Delete.Select(e => e.Name).Should().Equal("wal-manifest_20261001_000000.json");
    }

    [Fact]
    public void A_clock_earlier_than_the_last_prune_deletes_nothing()
    {
        var entries = new[] { Entry("config", "config_20261001_000000.tar.gz"), Entry("config", "config_20261120_000000.tar.gz") };

        var decision = RetentionPolicy.Decide(entries, TimeSpan.FromDays(30), now: Epoch.AddDays(60), lastPruneAt: Epoch.AddDays(61));

        decision.Delete.Should().BeEmpty();
        decision.Refused.Should().StartWith("the clock went backwards");
    }

    [Fact]
    public void A_clock_earlier_than_an_artifact_deletes_nothing()
    {
        var entries = new[] { Entry("config", "config_20261001_000000.tar.gz"), Entry("config", "config_20261120_000000.tar.gz") };

        var decision = RetentionPolicy.Decide(entries, TimeSpan.FromDays(1), now: new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero));

        decision.Delete.Should().BeEmpty();
        decision.Refused.Should().Contain("config_20261120_000000.tar.gz is from the future");
    }

    [Fact]
    public void The_only_artifact_of_a_kind_stays_however_old()
    {
        var decision = RetentionPolicy.Decide([Entry("database", "veloz_20200101_020000.dump")], TimeSpan.FromDays(30), Epoch);
        decision.Delete.Should().BeEmpty();
        decision.Refused.Should().BeNull();
    }

    private static CatalogEntry Entry(string kind, string name) => BackupCatalog.ToEntry(new VelozBackupAgent.Storage.ArtifactInfo(kind, name, 1, null), "local");
}
