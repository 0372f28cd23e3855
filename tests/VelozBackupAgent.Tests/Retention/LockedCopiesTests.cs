using Microsoft.Extensions.Time.Testing;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Pitr;
using VelozBackupAgent.Retention;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Tests.Retention;

/// <summary>Retention never deletes a copy the store still locks, nor what that copy needs.</summary>
public sealed class LockedCopiesTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-locks-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static CatalogEntry Entry(string kind, string name) => BackupCatalog.ToEntry(new ArtifactInfo(kind, name, 1, null), "s3");

    private static Func<CatalogEntry, Task<DateTimeOffset?>> Locks(Dictionary<string, DateTimeOffset> until) =>
        e => Task.FromResult<DateTimeOffset?>(until.TryGetValue(e.Name, out var u) ? u : null);

    [Fact]
    public void A_lock_holds_until_its_date_plus_the_clock_tolerance()
    {
        LockedCopies.IsLocked(Now.AddSeconds(1), Now).Should().BeTrue();
        LockedCopies.IsLocked(Now.AddMinutes(-4), Now).Should().BeTrue("the store's clock may be behind ours");
        LockedCopies.IsLocked(Now.AddMinutes(-6), Now).Should().BeFalse();
    }

    [Fact]
    public async Task A_locked_dump_stays_and_keeps_its_globals_while_unlocked_old_dumps_go()
    {
        List<CatalogEntry> entries =
        [
            Entry("database", "veloz_20261001_020000.dump"), Entry("database", "globals_20261001_020000.sql.gpg"),
            Entry("database", "veloz_20261002_020000.dump"), Entry("database", "globals_20261002_020000.sql.gpg"),
            Entry("database", "veloz_20261201_020000.dump"),
        ];
        RetentionDecision Decide(Func<CatalogEntry, bool>? keep) => RetentionPolicy.Decide(entries, TimeSpan.FromDays(30), Now, keep: keep);

        var (decision, locked) = await LockedCopies.RespectAsync(Decide(null), Decide,
            Locks(new Dictionary<string, DateTimeOffset> { ["veloz_20261002_020000.dump"] = Now.AddDays(3) }), Now);

        decision.Delete.Select(e => e.Name).Should().Equal("veloz_20261001_020000.dump", "globals_20261001_020000.sql.gpg");
        locked.Should().ContainSingle().Which.Should().Be(new KeyValuePair<CatalogEntry, DateTimeOffset>(entries[2], Now.AddDays(3)));
    }

    [Fact]
    public async Task A_locked_wal_manifest_keeps_the_segments_it_lists()
    {
        List<CatalogEntry> entries =
        [
            Entry("wal", "orders_0000000000000001.wal"), Entry("wal", "orders_0000000000000002.wal"),
            Entry("wal", "wal-manifest_20261001_000000.json"), Entry("wal", "wal-manifest_20261020_000000.json"), Entry("wal", "wal-manifest_20261201_000000.json"),
        ];
        var lists = new Dictionary<string, IReadOnlyCollection<string>>
        {
            ["wal-manifest_20261001_000000.json"] = ["orders_0000000000000001.wal"],
            ["wal-manifest_20261020_000000.json"] = ["orders_0000000000000002.wal"],
            ["wal-manifest_20261201_000000.json"] = [],
        };
        RetentionDecision Decide(Func<CatalogEntry, bool>? keep) => RetentionPolicy.Decide(entries, TimeSpan.FromDays(7), Now, null, m => lists[m.Name], keep);
        Decide(null).Delete.Should().HaveCount(4, "without locks both old manifests and their segments go");

        var (decision, locked) = await LockedCopies.RespectAsync(Decide(null), Decide,
            Locks(new Dictionary<string, DateTimeOffset> { ["wal-manifest_20261020_000000.json"] = Now.AddDays(1) }), Now);

        decision.Delete.Select(e => e.Name).Should().Equal("orders_0000000000000001.wal", "wal-manifest_20261001_000000.json");
        locked.Keys.Select(e => e.Name).Should().Equal("wal-manifest_20261020_000000.json");
    }

    [Fact]
    public async Task Every_copy_finally_deleted_was_asked_and_one_whose_lock_ended_goes()
    {
        List<CatalogEntry> entries = [Entry("config", "config_20261001_000000.tar.gz"), Entry("config", "config_20261101_000000.tar.gz"), Entry("config", "config_20261201_000000.tar.gz")];
        RetentionDecision Decide(Func<CatalogEntry, bool>? keep) => RetentionPolicy.Decide(entries, TimeSpan.FromDays(30), Now, keep: keep);
        var asked = new List<string>();

        var (decision, locked) = await LockedCopies.RespectAsync(Decide(null), Decide, e =>
        {
            asked.Add(e.Name);
            return Task.FromResult<DateTimeOffset?>(e.Name.Contains("1001", StringComparison.Ordinal) ? Now.AddMinutes(-10) : Now.AddDays(20));
        }, Now);

        decision.Delete.Select(e => e.Name).Should().Equal("config_20261001_000000.tar.gz");
        locked.Keys.Select(e => e.Name).Should().Equal("config_20261101_000000.tar.gz");
        asked.Should().BeEquivalentTo("config_20261001_000000.tar.gz", "config_20261101_000000.tar.gz");
    }

    [Fact]
    public async Task A_locked_base_backup_is_kept_whole_with_the_wal_it_needs()
    {
        const long Seg = 16 * 1024 * 1024;
        var infos = new Dictionary<string, BaseBackupInfo?>();
        var entries = new List<CatalogEntry>();
        string AddBase(DateTimeOffset time, ulong startSegno)
        {
            var stem = PitrArtifact.BaseStemFor(time, 1);
            var archive = PitrArtifact.BaseArchiveName(stem, ".tar.gz");
            var json = PitrArtifact.BaseInfoName(stem);
            entries.Add(Entry("pitr", archive));
            entries.Add(Entry("pitr", json));
            var start = new Lsn((startSegno * (ulong)Seg) + 0x28);
            infos[json] = Pitr.BaseBackupInfoTests.Sample() with
            {
                Archive = archive, Compression = "gzip", Timeline = 1, StopTimeline = 1, StartLsn = start.ToString(), StopLsn = (start + 0x100).ToString(),
                StartWalFile = WalFileName.Containing(1, start, Seg).ToString(), WalSegmentSize = Seg,
            };
            return stem;
        }

        var old = AddBase(Now.AddDays(-60), 3);
        AddBase(Now.AddDays(-1), 8);
        entries.AddRange(Enumerable.Range(2, 8).Select(s => Entry("pitr", WalFileName.FromSegment(1, (ulong)s, Seg).ToString())));
        RetentionDecision Decide(Func<CatalogEntry, bool>? keep) => PitrRetention.Decide(entries, TimeSpan.FromDays(30), Now, null, e => infos[e.Name], Seg, keep);
        Decide(null).Delete.Should().Contain(e => e.Name.StartsWith(old, StringComparison.Ordinal));

        // Only the archive is locked (its JSON, written later, is not): the base stays whole and so does WAL from segment 3.
        var (decision, _) = await LockedCopies.RespectAsync(Decide(null), Decide,
            Locks(new Dictionary<string, DateTimeOffset> { [old + ".tar.gz"] = Now.AddDays(2) }), Now);

        decision.Delete.Select(e => e.Name).Should().Equal(WalFileName.FromSegment(1, 2, Seg).ToString());
    }

    [Fact]
    public async Task The_pruner_keeps_reports_and_later_deletes_a_locked_copy_as_its_clock_moves()
    {
        var clock = new FakeTimeProvider(Now);
        var store = new LockingFolder(new LocalArtifactStore(Directory.CreateDirectory(Path.Combine(_root, "s3")).FullName), clock);
        foreach (var name in new[] { "veloz_20261001_020000.dump", "veloz_20261002_020000.dump", "veloz_20261201_020000.dump" })
        {
            await store.WriteAsync("database", name, new MemoryStream([1]));
        }

        store.Locks["veloz_20261002_020000.dump"] = Now.AddDays(2);
        var pruner = new Pruner(new BackupOptions { LocalRoot = _root }, [store], (_, _, _) => Task.FromResult<WalManifestLinks?>(null), clock);

        var dry = await pruner.PruneAsync(dryRun: true);
        dry.Deleted.Select(d => d.Name).Should().Equal("veloz_20261001_020000.dump");
        dry.Locked.Should().Equal(new LockedCopy("database", "s3", "veloz_20261002_020000.dump", Now.AddDays(2)));

        (await pruner.PruneAsync(dryRun: false)).Deleted.Select(d => d.Name).Should().Equal("veloz_20261001_020000.dump");
        (await store.StatAsync("database", "veloz_20261002_020000.dump")).Should().NotBeNull();

        clock.Advance(TimeSpan.FromDays(2) + TimeSpan.FromMinutes(6));
        var later = await pruner.PruneAsync(dryRun: false);
        later.Locked.Should().BeEmpty();
        later.Deleted.Select(d => d.Name).Should().Equal("veloz_20261002_020000.dump");
    }

    /// <summary>A folder that says which of its artifacts are locked, as S3 with Object Lock does.</summary>
    private sealed class LockingFolder(LocalArtifactStore inner, TimeProvider clock) : IArtifactStore
    {
        public Dictionary<string, DateTimeOffset> Locks { get; } = [];

        public string Target => "s3";

        public Task<ArtifactInfo> WriteAsync(string kind, string name, Stream content, string? expectedSha256 = null, CancellationToken cancellationToken = default) =>
            inner.WriteAsync(kind, name, content, expectedSha256, cancellationToken);

        public Task<Stream> OpenReadAsync(string kind, string name, CancellationToken cancellationToken = default) => inner.OpenReadAsync(kind, name, cancellationToken);

        public Task<ArtifactInfo?> StatAsync(string kind, string name, CancellationToken cancellationToken = default) => inner.StatAsync(kind, name, cancellationToken);

        public IAsyncEnumerable<ArtifactInfo> ListAsync(string kind, CancellationToken cancellationToken = default) => inner.ListAsync(kind, cancellationToken);

        // Like S3, it will not really delete a locked copy; unlike S3, it says so loudly.
        public Task DeleteAsync(string kind, string name, CancellationToken cancellationToken = default) =>
            Locks.TryGetValue(name, out var until) && until > clock.GetUtcNow()
                ? throw new InvalidOperationException($"deleted {name} while it is locked")
                : inner.DeleteAsync(kind, name, cancellationToken);

        public Task<DateTimeOffset?> LockedUntilAsync(string kind, string name, CancellationToken cancellationToken = default) =>
            Task.FromResult<DateTimeOffset?>(Locks.TryGetValue(name, out var until) ? until : null);
    }
}
