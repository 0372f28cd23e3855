using System.Text;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Retention;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.IntegrationTests.Retention;

/// <summary>The pruner on a real local store and a real s3rver, with a manual clock.</summary>
public sealed class PrunerTests : IAsyncLifetime
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-prune-").FullName;
    private readonly ManualClock _clock = new(new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero));
    private S3rverServer? _s3;
    private Amazon.S3.AmazonS3Client? _client;

    public async Task InitializeAsync() => _s3 = await S3rverServer.StartNewAsync();

    public async Task DisposeAsync()
    {
        _client?.Dispose();
        if (_s3 is not null)
        {
            await _s3.DisposeAsync();
        }

        Directory.Delete(_root, recursive: true);
    }

    private BackupOptions Options() => new() { LocalRoot = _root };

    [Fact]
    public async Task Old_artifacts_go_from_both_stores_with_their_sidecars_the_newest_and_recent_stay()
    {
        var local = new LocalArtifactStore(_root);
        var s3 = await S3Async();
        foreach (var store in new IArtifactStore[] { local, s3 })
        {
            await PutAsync(store, "database", "veloz_20261001_020000.dump");
            await PutAsync(store, "database", "veloz_20261101_020000.dump");
            await PutAsync(store, "database", "veloz_20261122_020000.dump");
            await PutAsync(store, "config", "config_20260101_000000.tar.gz"); // the only config: stays
        }

        var pruner = new Pruner(Options(), [local, s3], WalManifests.ReadSegmentNamesAsync, _clock);
        var dry = await pruner.PruneAsync(dryRun: true);
        dry.Deleted.Select(d => (d.Target, d.Name)).Should().BeEquivalentTo(new[]
        {
            ("local", "veloz_20261001_020000.dump"), ("s3", "veloz_20261001_020000.dump"),
        });
        File.Exists(Path.Combine(_root, "database", "veloz_20261001_020000.dump")).Should().BeTrue("a dry run deletes nothing");

        var report = await pruner.PruneAsync(dryRun: false);

        report.Deleted.Should().HaveCount(2);
        report.Errors.Should().BeEmpty();
        Directory.GetFiles(Path.Combine(_root, "database")).Select(Path.GetFileName).Should().BeEquivalentTo(
            "veloz_20261101_020000.dump", "veloz_20261101_020000.dump.sha256", "veloz_20261122_020000.dump", "veloz_20261122_020000.dump.sha256");
        (await s3.ListAsync("database").Select(a => a.Name).ToListAsync()).Should().BeEquivalentTo("veloz_20261101_020000.dump", "veloz_20261122_020000.dump");
        (await s3.StatAsync("config", "config_20260101_000000.tar.gz")).Should().NotBeNull();
    }

    [Fact]
    public async Task Wal_segments_go_only_with_the_last_manifest_that_lists_them()
    {
        var local = new LocalArtifactStore(_root);
        await PutAsync(local, "wal", "orders_0000000000000001.wal");
        await PutAsync(local, "wal", "orders_0000000000000002.wal");
        await PutAsync(local, "wal", "orders_0000000000000003.wal"); // shipped after the last manifest: no manifest lists it
        await PutAsync(local, "wal", "wal-manifest_20261101_000000.json", Manifest("orders_0000000000000001.wal", "orders_0000000000000002.wal"));
        await PutAsync(local, "wal", "wal-manifest_20261120_000000.json", Manifest("orders_0000000000000002.wal"));

        var report = await new Pruner(Options(), [local], WalManifests.ReadSegmentNamesAsync, _clock).PruneAsync(dryRun: false);

        report.Deleted.Select(d => d.Name).Should().Equal("orders_0000000000000001.wal", "wal-manifest_20261101_000000.json");
        (await local.ListAsync("wal").Select(a => a.Name).ToListAsync()).Should().BeEquivalentTo(
            "orders_0000000000000002.wal", "orders_0000000000000003.wal", "wal-manifest_20261120_000000.json");
    }

    [Fact]
    public async Task A_kind_being_backed_up_is_skipped_and_says_so()
    {
        var local = new LocalArtifactStore(_root);
        await PutAsync(local, "database", "veloz_20261001_020000.dump");
        await PutAsync(local, "database", "veloz_20261122_020000.dump");
        var options = Options();

        using (KindLock.TryAcquire(options.StateDirectory, "database", out _))
        {
            var report = await new Pruner(options, [local], WalManifests.ReadSegmentNamesAsync, _clock).PruneAsync(dryRun: false);
            report.Deleted.Should().BeEmpty();
            report.Refusals.Should().ContainSingle(r => r.StartsWith("database: skipped, a backup or restore of database is running", StringComparison.Ordinal));
        }

        File.Exists(Path.Combine(_root, "database", "veloz_20261001_020000.dump")).Should().BeTrue();
    }

    [Fact]
    public async Task A_clock_that_went_backwards_since_the_last_prune_deletes_nothing()
    {
        var local = new LocalArtifactStore(_root);
        await PutAsync(local, "database", "veloz_20261101_020000.dump");
        await PutAsync(local, "database", "veloz_20261122_020000.dump");
        var later = new ManualClock(_clock.GetUtcNow().AddDays(40));
        await new Pruner(Options(), [local], WalManifests.ReadSegmentNamesAsync, later).PruneAsync(dryRun: false);
        var backwards = new ManualClock(_clock.GetUtcNow().AddDays(20));

        var report = await new Pruner(Options(), [local], WalManifests.ReadSegmentNamesAsync, backwards).PruneAsync(dryRun: false);

        report.Deleted.Should().BeEmpty();
        report.Refusals.Should().Contain(r => r.Contains("the clock went backwards", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Copies_s3_still_locks_are_kept_reported_and_logged_until_their_lock_ends_and_the_globals_stay_with_their_dump()
    {
        // s3rver reports no retention: the store takes the object's Last-Modified (the real clock) plus the lock days.
        await _s3!.CreateBucketAsync("locked");
        _client = _s3.CreateClient();
        var options = _s3.Options("locked", "veloz-1");
        options.ObjectLockMode = "COMPLIANCE";
        options.ObjectLockDays = 30;
        var s3 = new VelozBackupAgent.Storage.S3.S3ArtifactStore(options, _client);
        var local = new LocalArtifactStore(_root);
        var written = TimeProvider.System.GetUtcNow();
        foreach (var store in new IArtifactStore[] { local, s3 })
        {
            await PutAsync(store, "database", "veloz_20261001_020000.dump");
            await PutAsync(store, "database", "globals_20261001_020000.sql.gpg");
            await PutAsync(store, "database", "veloz_20261122_020000.dump");
        }

        var clock = new ManualClock(written.AddDays(1)); // both old dumps are past their 30 days by name, the S3 copies locked for 29 more
        var log = new ListLogger<Pruner>();
        var pruner = new Pruner(Options(), [local, s3], WalManifests.ReadSegmentNamesAsync, clock, log);

        var dry = await pruner.PruneAsync(dryRun: true);
        dry.Deleted.Select(d => (d.Target, d.Name)).Should().BeEquivalentTo(new[]
        {
            ("local", "veloz_20261001_020000.dump"), ("local", "globals_20261001_020000.sql.gpg"),
        });
        dry.Locked.Select(l => (l.Target, l.Name)).Should().BeEquivalentTo(new[]
        {
            ("s3", "veloz_20261001_020000.dump"), ("s3", "globals_20261001_020000.sql.gpg"),
        });
        dry.Locked.Should().OnlyContain(l => l.Until >= written.AddDays(30).AddSeconds(-2) && l.Until <= TimeProvider.System.GetUtcNow().AddDays(30).AddSeconds(2));
        log.Lines.Should().Contain(l => l.Contains("retention kept database/veloz_20261001_020000.dump in s3: it is under S3 Object Lock until", StringComparison.Ordinal));

        var report = await pruner.PruneAsync(dryRun: false);
        report.Errors.Should().BeEmpty();
        report.Deleted.Should().OnlyContain(d => d.Target == "local").And.HaveCount(2);
        (await s3.ListAsync("database").Select(a => a.Name).ToListAsync()).Should().BeEquivalentTo(
            "veloz_20261001_020000.dump", "globals_20261001_020000.sql.gpg", "veloz_20261122_020000.dump");

        clock.Advance(TimeSpan.FromDays(30)); // past the lock and the clock tolerance
        var later = await pruner.PruneAsync(dryRun: false);
        later.Locked.Should().BeEmpty();
        later.Deleted.Select(d => (d.Target, d.Name)).Should().BeEquivalentTo(new[]
        {
            ("s3", "veloz_20261001_020000.dump"), ("s3", "globals_20261001_020000.sql.gpg"),
        });
    }

    private sealed class ListLogger<T> : Microsoft.Extensions.Logging.ILogger<T>
    {
        private readonly List<string> _lines = [];

        public IReadOnlyList<string> Lines
        {
            get
            {
                lock (_lines)
                {
                    return [.. _lines];
                }
            }
        }

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_lines)
            {
                _lines.Add(formatter(state, exception));
            }
        }
    }

    private async Task<IArtifactStore> S3Async()
    {
        await _s3!.CreateBucketAsync("prune");
        _client = _s3.CreateClient();
        return new VelozBackupAgent.Storage.S3.S3ArtifactStore(_s3.Options("prune", "veloz-1"), _client);
    }

    private static string Manifest(params string[] segments) =>
        "{\"segments\":[" + string.Join(',', segments.Select(s => $"{{\"name\":\"{s}\",\"size\":1,\"sha256\":\"x\"}}")) + "]}";

    private static async Task PutAsync(IArtifactStore store, string kind, string name, string content = "x")
    {
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(content));
        await store.WriteAsync(kind, name, stream);
    }
}
