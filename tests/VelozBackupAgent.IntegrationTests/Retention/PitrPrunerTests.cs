using System.Security.Cryptography;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Pitr;
using VelozBackupAgent.Retention;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.IntegrationTests.Retention;

/// <summary>Retention of the pitr kind on a real local store and a real s3rver: what a kept base needs stays.</summary>
public sealed class PitrPrunerTests : IAsyncLifetime
{
    private const long Segment = 16L * 1024 * 1024;
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-prune-pitr-").FullName;
    private readonly ManualClock _clock = new(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
    private S3rverServer? _s3;

    public async Task InitializeAsync() => _s3 = await S3rverServer.StartNewAsync();

    public async Task DisposeAsync()
    {
        if (_s3 is not null)
        {
            await _s3.DisposeAsync();
        }

        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public async Task Bases_go_by_age_and_WAL_goes_only_below_what_a_kept_base_needs()
    {
        var local = new LocalArtifactStore(_root);
        var bucket = "prune-pitr-" + Guid.NewGuid().ToString("N")[..8];
        await _s3!.CreateBucketAsync(bucket);
        using var s3 = new VelozBackupAgent.Storage.S3.S3ArtifactStore(_s3.Options(bucket), Microsoft.Extensions.Logging.Abstractions.NullLogger<VelozBackupAgent.Storage.S3.S3ArtifactStore>.Instance);
        foreach (var store in new IArtifactStore[] { local, s3 })
        {
            // Three bases: one 30 days old (to go), two recent ones starting in segments 9 and C.
            await BaseAsync(store, "base_20261101_010000", "0/2000028");
            await BaseAsync(store, "base_20261125_010000", "0/9000028");
            await BaseAsync(store, "base_20261130_010000", "0/C000028");
            for (var seg = 1; seg <= 0xC; seg++)
            {
                await PutAsync(store, $"0000000100000000000000{seg:X2}", 64);
            }

            await PutAsync(store, "000000010000000000000005.00000000-00001000.partial", 16); // superseded by segment 5
            await PutAsync(store, "00000001000000000000000D.00000000-00002000.partial", 16); // the segment being written
            await PutAsync(store, "000000010000000000000002.00000028.backup", 16);
            await PutAsync(store, "00000002.history", 16);
        }

        var options = new BackupOptions { LocalRoot = _root };
        options.Pitr.Retention = TimeSpan.FromDays(10);
        var pruner = new Pruner(options, [local, s3], WalManifests.ReadSegmentNamesAsync, _clock);
        var report = await pruner.PruneAsync(dryRun: false);
        report.Errors.Should().BeEmpty();
        report.Refusals.Should().BeEmpty();

        foreach (var store in new IArtifactStore[] { local, s3 })
        {
            var left = new List<string>();
            await foreach (var a in store.ListAsync(BackupKinds.Pitr))
            {
                left.Add(a.Name);
            }

            left.Should().NotContain(["base_20261101_010000.json", "base_20261101_010000.tar.gz"], $"{store.Target}: the old base goes");
            left.Should().Contain(["base_20261125_010000.json", "base_20261125_010000.tar.gz", "base_20261130_010000.json", "base_20261130_010000.tar.gz"]);
            left.Where(n => WalFileName.TryParse(n, out _)).Should().BeEquivalentTo(
                Enumerable.Range(9, 4).Select(s => $"0000000100000000000000{s:X2}"), $"{store.Target}: WAL from the oldest kept base's start segment on");
            left.Should().Contain("00000001000000000000000D.00000000-00002000.partial", "pieces of the segment being written stay");
            left.Should().NotContain("000000010000000000000005.00000000-00001000.partial");
            left.Should().NotContain("000000010000000000000002.00000028.backup");
            left.Should().Contain("00000002.history", "history files always stay");
        }
    }

    private static async Task BaseAsync(IArtifactStore store, string stem, string start)
    {
        var archive = RandomNumberGenerator.GetBytes(128);
        var info = await store.WriteAsync(BackupKinds.Pitr, stem + ".tar.gz", new MemoryStream(archive));
        var time = Catalog.ArtifactName.TryParse(stem + ".json", out _, out var t, out _, out _) ? t : throw new InvalidOperationException(stem);
        var startLsn = Lsn.Parse(start);
        var meta = new BaseBackupInfo
        {
            Format = 1,
            Archive = stem + ".tar.gz",
            ArchiveSha256 = info.Sha256!,
            ArchiveBytes = archive.Length,
            TarBytes = archive.Length,
            Compression = "gzip",
            SystemIdentifier = "7714460833538198058",
            ServerVersion = "15.18",
            ServerVersionNum = 150018,
            Timeline = 1,
            StartLsn = startLsn.ToString(),
            StartWalFile = WalFileName.Containing(1, startLsn, Segment).ToString(),
            StopLsn = (startLsn + 0xD8).ToString(),
            StopTimeline = 1,
            StartTime = time,
            StopTime = time.AddMinutes(1),
            WalSegmentSize = Segment,
            PgBasebackupVersion = "15.18",
        };
        await store.WriteAsync(BackupKinds.Pitr, stem + ".json", new MemoryStream(meta.ToUtf8Bytes()));
    }

    private static Task<ArtifactInfo> PutAsync(IArtifactStore store, string name, int bytes) =>
        store.WriteAsync(BackupKinds.Pitr, name, new MemoryStream(RandomNumberGenerator.GetBytes(bytes)));
}
