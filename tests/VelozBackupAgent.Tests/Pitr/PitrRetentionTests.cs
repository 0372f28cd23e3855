using VelozBackupAgent.Catalog;
using VelozBackupAgent.Pitr;
using VelozBackupAgent.Retention;

namespace VelozBackupAgent.Tests.Pitr;

public sealed class PitrRetentionTests
{
    private const long Seg16 = 16 * 1024 * 1024;
    private static readonly DateTimeOffset Epoch = new(2026, 10, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Week = TimeSpan.FromDays(7);

    private static CatalogEntry Entry(string name) => BackupCatalog.ToEntry(new VelozBackupAgent.Storage.ArtifactInfo("pitr", name, 1, null), "local");

    private static string Seg(uint timeline, ulong segno, long segSize = Seg16) => WalFileName.FromSegment(timeline, segno, segSize).ToString();

    /// <summary>A catalog being built: its entries and what each base JSON reads as (null: unreadable).</summary>
    private sealed class Store
    {
        public List<CatalogEntry> Entries { get; } = [];

        public Dictionary<string, BaseBackupInfo?> Infos { get; } = [];

        public string Base(DateTimeOffset time, ulong startSegno, uint timeline = 1, bool json = true, bool readable = true, bool archive = true, long segSize = Seg16, int sequence = 1)
        {
            var stem = PitrArtifact.BaseStemFor(time, sequence);
            var archiveName = PitrArtifact.BaseArchiveName(stem, ".tar.gz");
            if (archive)
            {
                Entries.Add(Entry(archiveName));
            }

            if (json)
            {
                var name = PitrArtifact.BaseInfoName(stem);
                Entries.Add(Entry(name));
                var start = new Lsn((startSegno * (ulong)segSize) + 0x28);
                Infos[name] = readable
                    ? BaseBackupInfoTests.Sample() with
                    {
                        Archive = archiveName,
                        Compression = "gzip",
                        Timeline = timeline,
                        StopTimeline = timeline,
                        StartLsn = start.ToString(),
                        StopLsn = (start + 0x100).ToString(),
                        StartWalFile = WalFileName.Containing(timeline, start, segSize).ToString(),
                        WalSegmentSize = segSize,
                    }
                    : null;
            }

            return stem;
        }

        public void Add(params string[] names) => Entries.AddRange(names.Select(Entry));

        public RetentionDecision Decide(DateTimeOffset now, TimeSpan? retention = null, DateTimeOffset? lastPruneAt = null, long segSize = Seg16) =>
            PitrRetention.Decide(Entries, retention ?? Week, now, lastPruneAt, e => Infos[e.Name], segSize);
    }

    [Fact]
    public void Old_bases_go_json_first_and_their_wal_below_the_oldest_kept_start()
    {
        var store = new Store();
        var old = store.Base(Epoch, 3);
        var mid = store.Base(Epoch.AddDays(5), 8);
        store.Base(Epoch.AddDays(20), 12);
        store.Add([.. Enumerable.Range(3, 15).Select(s => Seg(1, (ulong)s))]);
        store.Add("000000010000000000000003.00000028.backup", "000000010000000000000008.00000028.backup");

        var decision = store.Decide(Epoch.AddDays(21));

        decision.Refused.Should().BeNull();
        decision.Delete.Select(e => e.Name).Should().Equal(
            Seg(1, 3), "000000010000000000000003.00000028.backup", Seg(1, 4), Seg(1, 5), Seg(1, 6), Seg(1, 7), Seg(1, 8), "000000010000000000000008.00000028.backup",
            Seg(1, 9), Seg(1, 10), Seg(1, 11),
            old + ".json", mid + ".json", old + ".tar.gz", mid + ".tar.gz");
    }

    [Fact]
    public void The_newest_complete_base_stays_however_old_and_its_wal_with_it()
    {
        var store = new Store();
        var only = store.Base(Epoch, 3);
        store.Add(Seg(1, 2), Seg(1, 3), Seg(1, 4));

        var decision = store.Decide(Epoch.AddDays(100));

        decision.Delete.Select(e => e.Name).Should().Equal(Seg(1, 2));
        only.Should().NotBeNull();
    }

    [Fact]
    public void A_newer_base_without_json_does_not_replace_the_newest_complete_one()
    {
        var store = new Store();
        var complete = store.Base(Epoch, 3);
        var interrupted = store.Base(Epoch.AddDays(10), 6, json: false);
        var noArchive = store.Base(Epoch.AddDays(11), 7, archive: false);

        var decision = store.Decide(Epoch.AddDays(30));

        decision.Delete.Select(e => e.Name).Should().Equal(noArchive + ".json", interrupted + ".tar.gz");
        decision.Delete.Should().NotContain(e => e.Name.StartsWith(complete, StringComparison.Ordinal));
    }

    [Fact]
    public void An_archive_without_json_goes_after_a_day_and_stays_before()
    {
        var store = new Store();
        store.Base(Epoch, 3);
        var older = store.Base(Epoch.AddDays(2), 6, json: false);
        var younger = store.Base(Epoch.AddDays(3).AddHours(1), 7, json: false);

        var decision = store.Decide(Epoch.AddDays(4));

        decision.Delete.Select(e => e.Name).Should().Equal(older + ".tar.gz");
        younger.Should().NotBeNull();
    }

    [Fact]
    public void While_a_base_is_being_finished_no_wal_goes_but_superseded_pieces()
    {
        var store = new Store();
        store.Base(Epoch, 3);
        store.Base(Epoch.AddDays(1), 8);
        store.Base(Epoch.AddDays(9).AddHours(20), 2, timeline: 2, json: false);
        var piece = PitrArtifact.PieceName(WalFileName.Parse(Seg(1, 4)), 0, 0x1000);
        store.Add(Seg(1, 3), Seg(1, 4), piece, Seg(2, 2));

        var decision = store.Decide(Epoch.AddDays(10));

        decision.Delete.Select(e => e.Name).Should().Equal(piece, "base_20261001_000000.json", "base_20261001_000000.tar.gz");
    }

    [Fact]
    public void After_a_restore_back_in_time_the_lowest_start_of_the_kept_bases_is_what_counts()
    {
        var store = new Store();
        store.Base(Epoch, 0x40);
        store.Base(Epoch.AddDays(8), 0x50);
        store.Base(Epoch.AddDays(9), 0x21, timeline: 2);
        store.Add(Seg(1, 0x20), Seg(1, 0x30), Seg(1, 0x45), Seg(1, 0x50), Seg(2, 0x20), Seg(2, 0x21), Seg(2, 0x30), "00000002.history");

        var decision = store.Decide(Epoch.AddDays(10));

        decision.Delete.Select(e => e.Name).Should().Equal(Seg(1, 0x20), Seg(2, 0x20), "base_20261001_000000.json", "base_20261001_000000.tar.gz");
    }

    [Fact]
    public void An_unreadable_json_is_kept_with_its_archive_and_keeps_every_wal_file()
    {
        var store = new Store();
        var unreadable = store.Base(Epoch, 3, readable: false);
        var old = store.Base(Epoch.AddDays(1), 4);
        store.Base(Epoch.AddDays(20), 6);
        var piece = PitrArtifact.PieceName(WalFileName.Parse(Seg(1, 4)), 0, 0x1000);
        store.Add(Seg(1, 3), Seg(1, 4), piece);

        var decision = store.Decide(Epoch.AddDays(30));

        decision.Delete.Select(e => e.Name).Should().Equal(old + ".json", old + ".tar.gz");
        unreadable.Should().NotBeNull();
    }

    [Fact]
    public void A_json_for_another_segment_size_counts_as_unreadable()
    {
        var store = new Store();
        store.Base(Epoch, 3, segSize: 1024 * 1024);
        store.Base(Epoch.AddDays(20), 6);
        store.Add(Seg(1, 3), Seg(1, 4));

        store.Decide(Epoch.AddDays(30)).Delete.Should().BeEmpty();
    }

    [Fact]
    public void Without_a_complete_base_no_wal_goes()
    {
        var store = new Store();
        store.Base(Epoch, 3, json: false);
        store.Add(Seg(1, 1), Seg(1, 2), PitrArtifact.PieceName(WalFileName.Parse(Seg(1, 2)), 0, 0x1000));

        store.Decide(Epoch.AddDays(30)).Delete.Select(e => e.Name).Should().Equal("base_20261001_000000.tar.gz");
    }

    [Fact]
    public void Superseded_pieces_go_whatever_their_age_on_their_own_timeline_only()
    {
        var store = new Store();
        store.Base(Epoch.AddDays(29), 3);
        var superseded = PitrArtifact.PieceName(WalFileName.Parse(Seg(1, 9)), 0x1000, 0x2000);
        var partial = PitrArtifact.PartialName(WalFileName.Parse(Seg(1, 9)));
        var otherTimeline = PitrArtifact.PieceName(WalFileName.Parse(Seg(2, 9)), 0, 0x1000);
        var growing = PitrArtifact.PieceName(WalFileName.Parse(Seg(1, 10)), 0, 0x1000);
        store.Add(Seg(1, 9), superseded, partial, otherTimeline, growing);

        store.Decide(Epoch.AddDays(30)).Delete.Select(e => e.Name).Should().Equal(superseded, partial);
    }

    [Fact]
    public void History_files_and_foreign_names_are_never_deleted()
    {
        var store = new Store();
        store.Base(Epoch.AddDays(29), 30);
        store.Add("00000002.history", "notes.txt", "base_x.tar.gz", "000000010000000000000001.tmp", "00000001000000000000000a", Seg(1, 1));

        store.Decide(Epoch.AddDays(30)).Delete.Select(e => e.Name).Should().Equal(Seg(1, 1));
    }

    [Fact]
    public void Segment_numbers_follow_the_segment_size()
    {
        const long OneMib = 1024 * 1024;
        var store = new Store();
        store.Base(Epoch, 0x1000, segSize: OneMib);
        store.Add(Seg(1, 0xFFF, OneMib), Seg(1, 0x1000, OneMib), "000000010000000000000100");

        var decision = store.Decide(Epoch.AddDays(1), segSize: OneMib);

        decision.Delete.Select(e => e.Name).Should().Equal("000000010000000000000100", Seg(1, 0xFFF, OneMib));
    }

    [Fact]
    public void A_clock_earlier_than_the_last_prune_deletes_nothing()
    {
        var store = new Store();
        store.Base(Epoch, 3);
        store.Base(Epoch.AddDays(20), 6);

        var decision = store.Decide(Epoch.AddDays(30), lastPruneAt: Epoch.AddDays(31));

        decision.Delete.Should().BeEmpty();
        decision.Refused.Should().StartWith("the clock went backwards");
    }

    [Fact]
    public void A_base_from_the_future_deletes_nothing()
    {
        var store = new Store();
        store.Base(Epoch, 3);
        store.Base(Epoch.AddDays(40), 6);

        var decision = store.Decide(Epoch.AddDays(30));

        decision.Delete.Should().BeEmpty();
        decision.Refused.Should().Contain("base_20261110_000000").And.Contain("is from the future");
    }

    [Fact]
    public void A_retention_that_is_not_positive_deletes_nothing()
    {
        var store = new Store();
        store.Base(Epoch, 3);

        store.Decide(Epoch.AddDays(30), retention: TimeSpan.Zero).Refused.Should().StartWith("retention must be positive");
    }

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
    public void Random_catalogs_keep_what_any_kept_base_needs(int seed)
    {
        var random = new Random(seed);
        var segSize = random.Next(3) == 0 ? 1L << 20 : Seg16;
        var store = new Store();
        var stems = new HashSet<string>();
        var now = Epoch.AddMinutes(random.Next(60 * 24 * 60, 60 * 24 * 90));
        for (var i = random.Next(0, 9); i > 0; i--)
        {
            // Mostly spread over two months, sometimes in the last two days (an archive whose JSON may still come).
            var time = random.Next(5) == 0 ? now.AddMinutes(-random.Next(0, 60 * 48)) : Epoch.AddMinutes(random.Next(0, 60 * 24 * 60));
            time = new DateTimeOffset(time.Ticks - (time.Ticks % TimeSpan.TicksPerSecond), TimeSpan.Zero);
            if (!stems.Add(PitrArtifact.BaseStemFor(time)))
            {
                continue;
            }

            store.Base(time, (ulong)random.Next(0, 200), (uint)random.Next(1, 3),
                json: random.NextDouble() < 0.8, readable: random.NextDouble() < 0.93, archive: random.NextDouble() < 0.95, segSize: segSize);
        }

        for (var i = random.Next(0, 120); i > 0; i--)
        {
            var file = WalFileName.FromSegment((uint)random.Next(1, 3), (ulong)random.Next(0, 220), segSize);
            store.Add(random.Next(6) switch
            {
                0 => PitrArtifact.PieceName(file, 0, (uint)random.Next(1, 1 << 20)),
                1 => PitrArtifact.BackupHistoryName(file, 0x28),
                2 => PitrArtifact.PartialName(file),
                _ => file.ToString(),
            });
        }

        store.Add("00000002.history", "00000003.history", "notes.txt", "base_20261001_00000.json");
        var entries = store.Entries.DistinctBy(e => e.Name).ToList();
        var retention = TimeSpan.FromDays(random.Next(1, 40));

        var decision = PitrRetention.Decide(entries, retention, now, null, e => store.Infos[e.Name], segSize);

        decision.Refused.Should().BeNull();
        var deleted = decision.Delete.Select(e => e.Name).ToList();
        deleted.Should().OnlyHaveUniqueItems();
        deleted.Should().NotContain(n => PitrArtifact.Classify(n) == null || PitrArtifact.Classify(n)!.Type == PitrArtifactType.History);

        // Bases.
        var jsons = store.Infos.Where(kv => entries.Any(e => e.Name == kv.Key)).ToDictionary(kv => kv.Key[..^5], kv => kv.Value);
        var archives = entries.Where(e => PitrArtifact.Classify(e.Name)?.Type == PitrArtifactType.BaseArchive).ToDictionary(e => e.Name[..^7], e => e);
        var complete = jsons.Where(j => j.Value is not null && archives.ContainsKey(j.Key)).Select(j => j.Key).ToList();
        var newest = complete.Count == 0 ? null : complete.Max(StringComparer.Ordinal);
        var cutoff = now - retention;
        DateTimeOffset TimeOf(string stem) => ArtifactName.TryParse(stem + ".json", out _, out var t, out _, out _) ? t : throw new InvalidOperationException();
        foreach (var stem in jsons.Keys.Union(archives.Keys))
        {
            var goes = jsons.TryGetValue(stem, out var info)
                ? info is not null && stem != newest && TimeOf(stem) < cutoff
                : TimeOf(stem) < now - PitrRetention.InterruptedArchiveAge;
            deleted.Contains(stem + ".json").Should().Be(goes && jsons.ContainsKey(stem), stem);
            deleted.Contains(stem + ".tar.gz").Should().Be(goes && archives.ContainsKey(stem), stem);
            if (goes && jsons.ContainsKey(stem) && archives.ContainsKey(stem))
            {
                deleted.IndexOf(stem + ".json").Should().BeLessThan(deleted.IndexOf(stem + ".tar.gz"), "the JSON goes before its archive");
            }
        }

        // WAL.
        var walDeleted = deleted.Where(n => PitrArtifact.Classify(n)!.File is not null).ToList();
        var keptBases = jsons.Where(j => !deleted.Contains(j.Key + ".json")).ToList();
        var failSafe = newest is null || jsons.Values.Any(v => v is null);
        var beingFinished = archives.Keys.Any(stem => !jsons.ContainsKey(stem) && !deleted.Contains(stem + ".tar.gz"));
        if (failSafe)
        {
            walDeleted.Should().BeEmpty("without knowing every kept base's start no WAL is known to be unneeded");
        }
        else
        {
            var keepFrom = beingFinished ? 0 : keptBases.Min(b => b.Value!.Start.Value / (ulong)segSize);
            var fullSegments = entries.Where(e => PitrArtifact.Classify(e.Name)?.Type == PitrArtifactType.Segment).Select(e => e.Name).ToHashSet();
            var expected = entries
                .Select(e => PitrArtifact.Classify(e.Name))
                .Where(a => a?.File is { } f && f.IsValidFor(segSize))
                .Where(a => a!.File!.Value.SegmentNumber(segSize) < keepFrom
                    || (a.Type == PitrArtifactType.Partial && fullSegments.Contains(a.File!.Value.ToString())))
                .Select(a => a!.Name);
            walDeleted.Should().BeEquivalentTo(expected);
            foreach (var b in keptBases)
            {
                var start = b.Value!.Start.Value / (ulong)segSize;
                walDeleted.Select(n => PitrArtifact.Classify(n)!)
                    .Where(a => a.Type != PitrArtifactType.Partial && a.File!.Value.SegmentNumber(segSize) >= start)
                    .Should().BeEmpty("a kept base's WAL stays");
            }
        }

        // Order: WAL by segment number, then JSONs, then archives, each oldest first.
        var kinds = deleted.Select(n => PitrArtifact.Classify(n)!.Type switch
        {
            PitrArtifactType.BaseInfo => 1,
            PitrArtifactType.BaseArchive => 2,
            _ => 0,
        }).ToList();
        kinds.Should().BeInAscendingOrder();
        walDeleted.Select(n => PitrArtifact.Classify(n)!.File!.Value.SegmentNumber(segSize)).Should().BeInAscendingOrder();
        deleted.Where(n => n.EndsWith(".json", StringComparison.Ordinal)).Should().BeInAscendingOrder(StringComparer.Ordinal);
        deleted.Where(n => n.EndsWith(".tar.gz", StringComparison.Ordinal)).Should().BeInAscendingOrder(StringComparer.Ordinal);
    }
}
