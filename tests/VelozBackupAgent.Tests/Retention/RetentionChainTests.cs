using VelozBackupAgent.Catalog;
using VelozBackupAgent.Retention;

namespace VelozBackupAgent.Tests.Retention;

/// <summary>Retention with WAL delta manifests: a kept delta keeps its chain, and a delta lists what its chain resolves to.</summary>
public sealed class RetentionChainTests
{
    private static readonly DateTimeOffset Epoch = new(2026, 10, 1, 0, 0, 0, TimeSpan.Zero);

    private static CatalogEntry Entry(string name) => BackupCatalog.ToEntry(new VelozBackupAgent.Storage.ArtifactInfo("wal", name, 1, null), "local");

    private static string Manifest(double days) => ArtifactName.Format("wal-manifest", Epoch.AddDays(days), ".json");

    private static string Seg(int n) => $"orders_{n:D16}.wal";

    [Fact]
    public void A_kept_delta_keeps_its_parents_back_to_the_full_manifest_however_old()
    {
        // full (day 0) <- delta (day 1) <- delta (day 9, inside the window); an unrelated full at day 2 with its own delta.
        var links = new Dictionary<string, WalManifestLinks>
        {
            [Manifest(0)] = WalManifestLinks.Full([Seg(1), Seg(2)]),
            [Manifest(1)] = new([Seg(3)], [], Manifest(0)),
            [Manifest(2)] = WalManifestLinks.Full([Seg(1), Seg(2), Seg(3)]),
            [Manifest(3)] = new([], [Seg(1)], Manifest(2)),
            [Manifest(9)] = new([Seg(4)], [Seg(2)], Manifest(1)),
        };
        var entries = links.Keys.Select(Entry).Concat(Enumerable.Range(1, 4).Select(n => Entry(Seg(n)))).ToList();

        var decision = RetentionPolicy.Decide(entries, TimeSpan.FromDays(7), Epoch.AddDays(10.5), manifestLinks: m => links[m.Name]);

        decision.Refused.Should().BeNull();
        decision.Delete.Select(e => e.Name).Should().BeEquivalentTo([Manifest(2), Manifest(3)],
            "day 0 and day 1 are the chain of the kept day-9 delta; days 2 and 3 are no kept manifest's parents, and every segment is in a kept manifest's resolved list");
    }

    [Fact]
    public void A_segment_a_delta_removed_goes_with_the_last_manifest_whose_resolved_list_holds_it()
    {
        var links = new Dictionary<string, WalManifestLinks>
        {
            [Manifest(0)] = WalManifestLinks.Full([Seg(1), Seg(2)]),
            [Manifest(1)] = new([], [Seg(1)], Manifest(0)),
            [Manifest(2)] = WalManifestLinks.Full([Seg(2), Seg(3)]),
            [Manifest(9)] = new([], [], Manifest(2)),
        };
        var entries = links.Keys.Select(Entry).Concat(Enumerable.Range(1, 3).Select(n => Entry(Seg(n)))).ToList();

        var decision = RetentionPolicy.Decide(entries, TimeSpan.FromDays(7), Epoch.AddDays(10), manifestLinks: m => links[m.Name]);

        decision.Delete.Select(e => e.Name).Should().Equal([Seg(1), Manifest(1), Manifest(0)], "the segment first, then the delta before its parent");
    }

    [Fact]
    public void A_delta_whose_parent_is_gone_keeps_every_segment()
    {
        var links = new Dictionary<string, WalManifestLinks>
        {
            [Manifest(0)] = WalManifestLinks.Full([Seg(1)]),
            [Manifest(9)] = new([Seg(2)], [Seg(1)], Manifest(5)),
        };
        var entries = links.Keys.Select(Entry).Concat([Entry(Seg(1)), Entry(Seg(2))]).ToList();

        var decision = RetentionPolicy.Decide(entries, TimeSpan.FromDays(7), Epoch.AddDays(10), manifestLinks: m => links[m.Name]);

        decision.Delete.Select(e => e.Name).Should().Equal(Manifest(0));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    public void Random_chains_never_lose_a_parent_or_a_segment_a_kept_manifest_needs(int seed)
    {
        var random = new Random(seed);
        var links = new Dictionary<string, WalManifestLinks>();
        var resolved = new Dictionary<string, HashSet<string>>();
        var present = new HashSet<string> { Seg(1), Seg(2) };
        var next = 3;
        string? previous = null;
        for (var i = 0; i < 120; i++)
        {
            var name = ArtifactName.Format("wal-manifest", Epoch.AddHours(i * 3), ".json");
            var added = new List<string>();
            var removed = new List<string>();
            if (random.Next(2) == 0)
            {
                added.Add(Seg(next));
                present.Add(Seg(next++));
            }

            if (random.Next(3) == 0 && present.Count > 1)
            {
                var gone = present.Order(StringComparer.Ordinal).First();
                present.Remove(gone);
                removed.Add(gone);
            }

            links[name] = previous is null || random.Next(8) == 0 ? WalManifestLinks.Full([.. present]) : new(added, removed, previous);
            resolved[name] = [.. present];
            previous = name;
        }

        var entries = links.Keys.Select(Entry).Concat(Enumerable.Range(1, next - 1).Select(n => Entry(Seg(n)))).ToList();
        var decision = RetentionPolicy.Decide(entries, TimeSpan.FromDays(random.Next(2, 10)), Epoch.AddDays(16), manifestLinks: m => links[m.Name]);

        var deleted = decision.Delete.Select(e => e.Name).ToHashSet();
        var kept = links.Keys.Where(n => !deleted.Contains(n)).ToList();
        foreach (var name in kept)
        {
            links[name].Parent.Should().Match(p => p == null || !deleted.Contains(p), $"{name} is kept, so its parent stays");
            resolved[name].Where(deleted.Contains).Should().BeEmpty($"{name} is kept, so every segment its sync held stays");
        }

        // A prune stopped after any of its deletions leaves no delta whose parent is already gone.
        var deletedSoFar = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in decision.Delete)
        {
            deletedSoFar.Add(entry.Name);
            links.Where(l => !deletedSoFar.Contains(l.Key) && l.Value.Parent is { } p && deletedSoFar.Contains(p)).Select(l => l.Key)
                .Should().BeEmpty($"a prune interrupted right after deleting {entry.Name} must not orphan a delta");
        }
    }
}
