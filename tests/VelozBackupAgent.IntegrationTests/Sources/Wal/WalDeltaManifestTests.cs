using System.Runtime.Versioning;
using System.Security.Cryptography;
using Amazon.S3;
using Microsoft.Extensions.Logging.Abstractions;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Restore;
using VelozBackupAgent.Retention;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Wal;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.S3;

namespace VelozBackupAgent.IntegrationTests.Sources.Wal;

/// <summary>
/// Delta manifests with real files, the real WAL source and restorer, a real local store and a real s3rver: every sync
/// restores exactly, from either store; a broken chain is a clear error; retention keeps the parents kept manifests need.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class WalDeltaManifestTests : IAsyncLifetime, IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);
    private readonly ManualClock _clock = new(Start);
    private readonly string _bucket = "wal-" + Guid.NewGuid().ToString("N")[..12];
    private S3rverServer? _server;
    private AmazonS3Client? _client;
    private WalTestBed _bed = null!;

    public Task InitializeAsync()
    {
        _bed = new WalTestBed(settle: TimeSpan.Zero, time: _clock);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _client?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    public void Dispose() => _bed?.Dispose();

    private S3ArtifactStore Remote() => new(_server!.Options(_bucket), _client!);

    private async Task WithS3Async()
    {
        _server = await S3rverServer.StartNewAsync();
        _client = _server.CreateClient();
        await _client.PutBucketAsync(_bucket);
        _bed.Dispose();
        _bed = new WalTestBed(settle: TimeSpan.Zero, time: _clock,
            replicator: (local, state) => new Replicator(local, Remote(), new UploadQueue(state), new ReplicationOptions(), _clock));
    }

    /// <summary>One scheduled sync, five minutes after the previous one; returns its manifest's name.</summary>
    private async Task<string> SyncAsync()
    {
        _clock.Advance(TimeSpan.FromMinutes(5));
        var result = await _bed.SyncAsync();
        result.Outcome.Should().BeOneOf([BackupOutcome.Succeeded, BackupOutcome.Unchanged], result.Detail);
        return _bed.Manifests()[^1];
    }

    private void Write(long segment, int size = 2000) =>
        File.WriteAllBytes(Path.Combine(_bed.WalDir, WalTestBed.Segment(segment)), RandomNumberGenerator.GetBytes(size));

    private void WriteActive(string text) => File.WriteAllText(_bed.ActivePath, text);

    private static Dictionary<string, string> Snapshot(string directory) =>
        Directory.GetFiles(directory).ToDictionary(p => Path.GetFileName(p), p => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(p))));

    private RestoreSources Sources(IArtifactStore? remote) => new(_bed.Options, _bed.Local, remote, null);

    private async Task<Dictionary<string, string>> RestoreAsync(DateTimeOffset at, string from, IArtifactStore? remote, string target)
    {
        var sources = Sources(remote);
        var artifact = await sources.LatestAsync("wal", at, from, CancellationToken.None);
        using var staged = await sources.StageAsync(artifact, CancellationToken.None);
        var restorer = new WalRestorer(_bed.Options, _clock, NullLogger.Instance);
        var prepared = await restorer.PrepareAsync(staged, artifact.Store!, target, CancellationToken.None);
        await using (prepared)
        {
            await prepared.CommitAsync(CancellationToken.None);
        }

        return Snapshot(target);
    }

    /// <summary>A history: segments added, deleted, rewritten in the store's eyes (a conflict), the active file growing and rotating.</summary>
    private async Task<List<(string Manifest, DateTimeOffset At, Dictionary<string, string> Directory)>> HistoryAsync()
    {
        var syncs = new List<(string, DateTimeOffset, Dictionary<string, string>)>();
        async Task Step()
        {
            var manifest = await SyncAsync();
            syncs.Add((manifest, _clock.GetUtcNow(), Snapshot(_bed.WalDir)));
        }

        for (var i = 1; i <= 20; i++)
        {
            Write(i);
        }

        WriteActive("order 21\n");
        await Step();
        await Step(); // nothing new
        Write(21);
        Write(22);
        WriteActive("order 23\n");
        await Step();
        File.Delete(Path.Combine(_bed.WalDir, WalTestBed.Segment(3)));
        File.Delete(Path.Combine(_bed.WalDir, WalTestBed.Segment(4)));
        await Step();
        Write(23);
        WriteActive("order 24\norder 25\n");
        await Step();
        File.Delete(Path.Combine(_bed.WalDir, WalTestBed.Segment(1)));
        Write(24);
        await Step();
        return syncs;
    }

    [Fact]
    public async Task Restore_at_each_sync_of_a_delta_chain_rebuilds_the_directory_exactly_from_the_local_store_and_from_S3()
    {
        await WithS3Async();
        var syncs = await HistoryAsync();

        var raw = new List<WalManifest>();
        foreach (var (manifest, _, _) in syncs)
        {
            raw.Add(await _bed.RawManifestAsync(manifest));
        }

        raw[0].Type.Should().Be("full");
        raw.Skip(1).Should().OnlyContain(m => m.IsDelta, "every later sync writes only what changed");
        raw[3].Removed.Should().Equal(WalTestBed.Segment(3), WalTestBed.Segment(4));
        raw[2].Added!.Select(s => s.Name).Should().Equal(WalTestBed.Segment(21), WalTestBed.Segment(22));

        var pass = await _bed.Replicator!.DrainAsync();
        pass.Failed.Should().Be(0);
        var remote = Remote();
        var inS3 = new HashSet<string>();
        await foreach (var a in remote.ListAsync("wal"))
        {
            inS3.Add(a.Name);
        }

        inS3.Should().Contain(syncs.Select(s => s.Manifest), "every manifest of the chain is replicated, parents included");

        for (var i = 0; i < syncs.Count; i++)
        {
            var (manifest, at, directory) = syncs[i];
            (await RestoreAsync(at, "local", remote, Path.Combine(_bed.Scratch, $"local-{i}"))).Should().BeEquivalentTo(directory, $"local restore at {manifest}");
            (await RestoreAsync(at, "s3", remote, Path.Combine(_bed.Scratch, $"s3-{i}"))).Should().BeEquivalentTo(directory, $"S3 restore at {manifest}");
        }
    }

    [Fact]
    public async Task A_deleted_parent_is_a_clear_error_and_nothing_is_restored()
    {
        var syncs = await HistoryAsync();
        var parent = syncs[2].Manifest;
        File.Delete(Path.Combine(_bed.StoreDir, parent));
        File.Delete(Path.Combine(_bed.StoreDir, parent + ".sha256"));
        var target = Path.Combine(_bed.Scratch, "restored");

        var act = () => RestoreAsync(syncs[^1].At, "local", null, target);

        var error = (await act.Should().ThrowAsync<RestoreException>()).Which;
        error.Should().NotBeOfType<RestoreIntegrityException>();
        error.Message.Should().Contain(parent).And.Contain("does not hold").And.Contain("nothing was restored");
        Directory.Exists(target).Should().BeFalse();

        // The syncs before the break still restore.
        (await RestoreAsync(syncs[1].At, "local", null, Path.Combine(_bed.Scratch, "older"))).Should().BeEquivalentTo(syncs[1].Directory);
    }

    [Fact]
    public async Task A_tampered_parent_is_refused_even_when_its_sidecar_was_rewritten_to_match()
    {
        var syncs = await HistoryAsync();
        var full = syncs[0].Manifest;
        var path = Path.Combine(_bed.StoreDir, full);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var text = File.ReadAllText(path);
        var victim = (await _bed.RawManifestAsync(full)).Segments[5];
        File.WriteAllText(path, text.Replace(victim.Sha256, new string('0', 64), StringComparison.Ordinal));
        File.WriteAllText(path + ".sha256", $"{Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)))}  {full}\n");

        var act = () => RestoreAsync(syncs[^1].At, "local", null, Path.Combine(_bed.Scratch, "restored"));

        var error = (await act.Should().ThrowAsync<RestoreIntegrityException>()).Which;
        error.Message.Should().Contain(full).And.Contain("sha256").And.Contain("nothing was restored");

        // With the chain's full manifest gone, the next sync (a restarted agent reads the newest manifest back) cannot
        // follow the chain: it says so and starts a new one instead of extending a broken chain.
        File.Delete(path);
        File.Delete(path + ".sha256");
        _bed.Restart();
        var next = await SyncAsync();
        (await _bed.RawManifestAsync(next)).Type.Should().Be("full", "a chain that cannot be followed is never extended");
        _bed.Logs.WithEvent(4415).Should().ContainSingle().Which.Message.Should().Contain(full);
    }

    private string ChainCachePath => Path.Combine(_bed.Options.StateDirectory, WalChainCache.FileName);

    [Fact]
    public async Task A_restarted_agent_with_nothing_new_extends_the_chain_from_wal_chain_json_and_every_sync_still_restores()
    {
        var syncs = await HistoryAsync();
        var tip = WalChainCache.Load(ChainCachePath);
        tip!.Name.Should().Be(syncs[^1].Manifest, "every sync records its manifest for the next process");
        tip.Chain.Select(l => l.Name).Should().Equal(syncs.Select(s => s.Manifest).Reverse(), "the chain back to its full manifest");
        File.GetUnixFileMode(ChainCachePath).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);

        _bed.Restart();
        var noop = await SyncAsync();
        var raw = await _bed.RawManifestAsync(noop);
        raw.IsDelta.Should().BeTrue();
        raw.Parent.Should().Be(new WalManifestParent(syncs[^1].Manifest, _bed.StoredSha(syncs[^1].Manifest)));
        raw.Depth.Should().Be(syncs.Count);
        raw.Added.Should().BeEmpty();
        raw.Removed.Should().BeEmpty();
        (await RestoreAsync(_clock.GetUtcNow(), "local", null, Path.Combine(_bed.Scratch, "noop"))).Should().BeEquivalentTo(Snapshot(_bed.WalDir));

        // Something new after another restart: the cache cannot prove the segments, the chain is resolved as before.
        _bed.Restart();
        Write(30);
        var one = await SyncAsync();
        (await _bed.RawManifestAsync(one)).Added!.Select(s => s.Name).Should().Equal(WalTestBed.Segment(30));
        (await RestoreAsync(_clock.GetUtcNow(), "local", null, Path.Combine(_bed.Scratch, "one"))).Should().BeEquivalentTo(Snapshot(_bed.WalDir));
        WalChainCache.Load(ChainCachePath)!.Name.Should().Be(one);
    }

    [Fact]
    public async Task While_the_daemon_watches_its_syncs_leave_wal_chain_json_alone_and_stopping_writes_it_for_the_next_process()
    {
        var syncs = await HistoryAsync();
        WalChainCache.Load(ChainCachePath)!.Name.Should().Be(syncs[^1].Manifest);

        using var stop = new CancellationTokenSource();
        var watch = _bed.Source.WatchAsync(ct => Task.CompletedTask, stop.Token);
        var during = await SyncAsync();
        var later = await SyncAsync();
        during.Should().NotBe(later);
        WalChainCache.Load(ChainCachePath)!.Name.Should().Be(syncs[^1].Manifest, "the daemon keeps the tip in memory: its no-op syncs write no extra file");

        await stop.CancelAsync();
        await FluentActions.Awaiting(() => watch).Should().ThrowAsync<OperationCanceledException>("the daemon's WatchService stops it so");
        var saved = WalChainCache.Load(ChainCachePath);
        saved!.Name.Should().Be(later, "written once, when the watch stops");
        saved.Chain.Select(l => l.Name).Take(2).Should().Equal(later, during);

        // The next process extends the chain from it.
        _bed.Restart();
        var next = await SyncAsync();
        (await _bed.RawManifestAsync(next)).Parent!.Name.Should().Be(later);
        WalChainCache.Load(ChainCachePath)!.Name.Should().Be(next);
    }

    [Fact]
    public async Task A_damaged_wal_chain_json_is_ignored_and_written_again()
    {
        var syncs = await HistoryAsync();
        var text = File.ReadAllText(ChainCachePath);
        var digest = WalChainCache.Load(ChainCachePath)!.SegmentsSha256;
        File.WriteAllText(ChainCachePath, text.Replace(digest, new string('0', 64), StringComparison.Ordinal));

        _bed.Restart();
        var noop = await SyncAsync();

        var raw = await _bed.RawManifestAsync(noop);
        raw.IsDelta.Should().BeTrue("the chain itself is sound: it is resolved and extended");
        raw.Parent!.Name.Should().Be(syncs[^1].Manifest);
        (await RestoreAsync(_clock.GetUtcNow(), "local", null, Path.Combine(_bed.Scratch, "noop"))).Should().BeEquivalentTo(Snapshot(_bed.WalDir));
        var rewritten = WalChainCache.Load(ChainCachePath);
        rewritten!.Name.Should().Be(noop);
        rewritten.SegmentsSha256.Should().Be(digest);
    }

    [Fact]
    public async Task A_sync_with_nothing_new_writes_a_few_hundred_bytes_whatever_the_directory_holds()
    {
        for (var i = 1; i <= 2000; i++)
        {
            Write(i, 64);
        }

        WriteActive("order 2001\n");
        var full = await SyncAsync();
        var noop = await SyncAsync();
        Write(2001, 64);
        var one = await SyncAsync();

        new FileInfo(Path.Combine(_bed.StoreDir, full)).Length.Should().BeGreaterThan(200_000);
        new FileInfo(Path.Combine(_bed.StoreDir, noop)).Length.Should().BeLessThan(800, "a no-op sync writes its header, parent and active snapshot only");
        new FileInfo(Path.Combine(_bed.StoreDir, one)).Length.Should().BeLessThan(1000);
        (await _bed.ManifestAsync(noop)).Segments.Should().HaveCount(2000);
        (await _bed.ManifestAsync(one)).Segments.Should().HaveCount(2001);
        Scheduling.BackupSchedule.MarksRun("wal", noop, out var time).Should().BeTrue("the tiny delta still dates the sync, so freshness stays right");
        time.Should().Be(_clock.GetUtcNow().AddMinutes(-5));
    }

    [Fact]
    public async Task Prune_keeps_the_parents_a_kept_delta_needs_and_every_kept_sync_still_restores()
    {
        _bed.Options.Wal.FullManifestInterval = 1000;
        _bed.Restart();
        var syncs = new List<(string Manifest, DateTimeOffset At, Dictionary<string, string> Directory)>();
        for (var day = 0; day < 10; day++)
        {
            Write(day + 1);
            if (day >= 2)
            {
                File.Delete(Path.Combine(_bed.WalDir, WalTestBed.Segment(day - 1)));
            }

            WriteActive($"day {day}\n");
            var manifest = await SyncAsync();
            syncs.Add((manifest, _clock.GetUtcNow(), Snapshot(_bed.WalDir)));
            _clock.Advance(TimeSpan.FromDays(1));
        }

        (await _bed.RawManifestAsync(syncs[^1].Manifest)).Depth.Should().Be(9, "one chain from the first sync");

        var report = await new Pruner(_bed.Options, [_bed.Local], WalManifests.ReadSegmentNamesAsync, _clock).PruneAsync(dryRun: false);

        report.Errors.Should().BeEmpty();
        _bed.Manifests().Should().Equal(syncs.Select(s => s.Manifest), "every manifest is a parent of the kept ones: none may go");
        var cutoff = _clock.GetUtcNow() - _bed.Options.Wal.Retention;
        for (var i = 0; i < syncs.Count; i++)
        {
            if (syncs[i].At < cutoff)
            {
                continue; // kept as a parent only: its own active snapshot may have aged out
            }

            (await RestoreAsync(syncs[i].At, "local", null, Path.Combine(_bed.Scratch, $"after-prune-{i}"))).Should().BeEquivalentTo(syncs[i].Directory);
        }

        // With a full manifest every 3 syncs, the chains before the window go, with the segments only they list.
        _bed.Options.Wal.FullManifestInterval = 3;
        _bed.Restart();
        for (var day = 10; day < 16; day++)
        {
            Write(day + 1);
            File.Delete(Path.Combine(_bed.WalDir, WalTestBed.Segment(day - 1)));
            WriteActive($"day {day}\n");
            var manifest = await SyncAsync();
            syncs.Add((manifest, _clock.GetUtcNow(), Snapshot(_bed.WalDir)));
            _clock.Advance(TimeSpan.FromDays(1));
        }

        report = await new Pruner(_bed.Options, [_bed.Local], WalManifests.ReadSegmentNamesAsync, _clock).PruneAsync(dryRun: false);
        report.Errors.Should().BeEmpty();
        var kept = _bed.Manifests();
        kept.Should().NotContain(syncs[0].Manifest, "the first chain ended before the window");
        foreach (var manifest in kept)
        {
            var i = syncs.FindIndex(s => s.Manifest == manifest);
            (await RestoreAsync(syncs[i].At, "local", null, Path.Combine(_bed.Scratch, $"after-second-prune-{i}"))).Should().BeEquivalentTo(syncs[i].Directory);
        }

        _bed.StoredNames().Should().NotContain(WalTestBed.Segment(1), "a segment only pruned manifests list goes");
    }
}
