using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Wal;
using ChildProcess = VelozBackupAgent.IntegrationTests.Infrastructure.ChildProcess;

namespace VelozBackupAgent.IntegrationTests.Sources.Wal;

/// <summary>The WAL source's group commit: segments count (index, manifest, counters) only once their batch is durable.</summary>
public sealed class WalGroupCommitTests : IDisposable
{
    private readonly WalTestBed _bed = new();

    public void Dispose() => _bed.Dispose();

    private string[] HiddenInStore() => [.. Directory.GetFiles(_bed.StoreDir).Select(Path.GetFileName).Where(n => n!.StartsWith('.'))!];

    /// <summary>The segments (of the first few) that the saved index records.</summary>
    private List<string> IndexedSegments()
    {
        var text = File.Exists(_bed.IndexPath) ? File.ReadAllText(_bed.IndexPath) : "";
        return [.. Enumerable.Range(1, 10).Select(i => WalTestBed.Segment(i)).Where(n => text.Contains(n, StringComparison.Ordinal))];
    }

    [Fact]
    public async Task More_segments_than_one_batch_holds_are_all_stored_listed_and_counted()
    {
        var count = WalSource.BatchMaxSegments + 3;
        var contents = new Dictionary<string, byte[]>();
        for (var i = 1; i <= count; i++)
        {
            contents[WalTestBed.Segment(i)] = _bed.WriteSegment(i, 64 + i);
        }

        var result = await _bed.SyncAsync();

        result.Outcome.Should().Be(BackupOutcome.Succeeded, result.Detail);
        result.Detail.Should().Contain($"{count} new segments");
        _bed.Source.Status.SegmentsStored.Should().Be(count);
        HiddenInStore().Should().BeEmpty();
        foreach (var (name, bytes) in contents)
        {
            _bed.Stored(name).Should().Equal(bytes);
            _bed.StoredSha(name).Should().Be(WalTestBed.Sha(bytes));
        }

        var manifest = await _bed.ManifestAsync(_bed.Manifests().Single());
        manifest.Segments.Select(s => s.Name).Should().Equal(contents.Keys.Order(StringComparer.Ordinal));
        var check = await ChildProcess.RunAsync("bash", ["-c", "sha256sum -c --strict --quiet *.sha256"], workingDirectory: _bed.StoreDir);
        check.ExitCode.Should().Be(0, check.StdOut + check.StdErr);

        // Nothing new: nothing is staged or committed again.
        var again = await _bed.SyncAsync();
        again.Detail.Should().NotContain("new segment");
        _bed.Source.Status.SegmentsStored.Should().Be(count);
    }

    [Fact]
    public async Task A_commit_that_fails_counts_no_segment_of_its_batch_and_the_next_sync_completes()
    {
        var one = _bed.WriteSegment(1, 3000);
        var two = _bed.WriteSegment(2, 4000);
        var three = _bed.WriteSegment(3, 5000);

        // A real obstacle in the store, whoever runs the test: a directory where segment 2 goes, so the batch's
        // commit fails at its second rename.
        var obstacle = Path.Combine(_bed.StoreDir, WalTestBed.Segment(2));
        Directory.CreateDirectory(obstacle);

        var failed = await _bed.SyncAsync();

        failed.Outcome.Should().Be(BackupOutcome.Failed);
        failed.Detail.Should().Contain("local store could not commit 3 artifacts").And.Contain("none of them counts as stored").And.NotContain("\n");
        _bed.Source.Status.SegmentsStored.Should().Be(0);
        _bed.Manifests().Should().BeEmpty();
        IndexedSegments().Should().BeEmpty("no segment of a batch that failed to commit is recorded as stored");
        HiddenInStore().Should().BeEmpty();

        // Under final names only complete artifacts: segment 1 (renamed before the failure, its bytes durable first), nothing else.
        _bed.StoredNames().Should().Equal(WalTestBed.Segment(1));
        _bed.Stored(WalTestBed.Segment(1)).Should().Equal(one);
        _bed.StoredSha(WalTestBed.Segment(1)).Should().Be(WalTestBed.Sha(one));
        File.Exists(Path.Combine(_bed.StoreDir, WalTestBed.Segment(3))).Should().BeFalse();

        Directory.Delete(obstacle);
        var repaired = await _bed.SyncAsync();

        repaired.Outcome.Should().Be(BackupOutcome.Succeeded, repaired.Detail);
        repaired.Detail.Should().Contain("2 new segments", "segment 1 is recognised from its sidecar, not stored again");
        _bed.Stored(WalTestBed.Segment(2)).Should().Equal(two);
        _bed.Stored(WalTestBed.Segment(3)).Should().Equal(three);
        var manifest = await _bed.ManifestAsync(_bed.Manifests().Single());
        manifest.Segments.Should().Equal(
            new WalManifestSegment(WalTestBed.Segment(1), 3000, WalTestBed.Sha(one)),
            new WalManifestSegment(WalTestBed.Segment(2), 4000, WalTestBed.Sha(two)),
            new WalManifestSegment(WalTestBed.Segment(3), 5000, WalTestBed.Sha(three)));
        IndexedSegments().Should().BeEquivalentTo(WalTestBed.Segment(1), WalTestBed.Segment(2), WalTestBed.Segment(3));
        HiddenInStore().Should().BeEmpty();
    }

    /// <summary>
    /// A full batch commits on another thread while the next is staged. When the commit in flight fails (the first
    /// batch, or the second while the third is staged), the run fails, none of that batch counts, the batches before
    /// it do, no staged file is left, and the next sync stores the rest.
    /// </summary>
    [Theory]
    [InlineData(2, 0)]
    [InlineData(WalSource.BatchMaxSegments + 2, WalSource.BatchMaxSegments)]
    public async Task A_commit_in_flight_that_fails_fails_the_run_and_counts_none_of_its_batch(int obstacleAt, int counted)
    {
        var count = (2 * WalSource.BatchMaxSegments) + 3;
        var contents = new Dictionary<string, byte[]>();
        for (var i = 1; i <= count; i++)
        {
            contents[WalTestBed.Segment(i)] = _bed.WriteSegment(i, 32 + (i % 7));
        }

        var obstacle = Path.Combine(_bed.StoreDir, WalTestBed.Segment(obstacleAt));
        Directory.CreateDirectory(obstacle);

        var failed = await _bed.SyncAsync();

        failed.Outcome.Should().Be(BackupOutcome.Failed);
        failed.Detail.Should().Contain($"local store could not commit {WalSource.BatchMaxSegments} artifacts").And.Contain("none of them counts as stored");
        _bed.Source.Status.SegmentsStored.Should().Be(counted);
        _bed.Manifests().Should().BeEmpty();
        HiddenInStore().Should().BeEmpty("a failed run leaves no staged file, in flight or not");
        var storedNow = _bed.StoredNames().Where(n => n.StartsWith("orders_0", StringComparison.Ordinal)).ToList();
        storedNow.Should().Equal(contents.Keys.Order(StringComparer.Ordinal).Take(obstacleAt - 1),
            "what was renamed before the failure is complete, and nothing after it is in place");
        foreach (var name in storedNow)
        {
            _bed.Stored(name).Should().Equal(contents[name]);
        }

        Directory.Delete(obstacle);
        var repaired = await _bed.SyncAsync();

        repaired.Outcome.Should().Be(BackupOutcome.Succeeded, repaired.Detail);
        repaired.Detail.Should().Contain($"{count - (obstacleAt - 1)} new segments", "what is in place is recognised from its sidecar, not stored again");
        _bed.Source.Status.SegmentsStored.Should().Be(counted + count - (obstacleAt - 1));
        foreach (var (name, bytes) in contents)
        {
            _bed.Stored(name).Should().Equal(bytes);
            _bed.StoredSha(name).Should().Be(WalTestBed.Sha(bytes));
        }

        var manifest = await _bed.ManifestAsync(_bed.Manifests().Single());
        manifest.Segments.Select(s => s.Name).Should().Equal(contents.Keys.Order(StringComparer.Ordinal));
        HiddenInStore().Should().BeEmpty();
    }

    [Fact]
    public async Task An_unreadable_segment_is_left_out_of_its_batch_and_the_rest_commit()
    {
        var one = _bed.WriteSegment(1, 1000);
        var three = _bed.WriteSegment(3, 3000);

        // A segment whose link points nowhere fails at open, whoever runs the test; the batch goes on without it.
        var broken = Path.Combine(_bed.WalDir, WalTestBed.Segment(2));
        File.CreateSymbolicLink(broken, Path.Combine(_bed.Scratch, "gone", "orders.wal"));

        var result = await _bed.SyncAsync();

        result.Outcome.Should().Be(BackupOutcome.Failed);
        _bed.StoredNames().Where(n => n.StartsWith("orders_0", StringComparison.Ordinal)).Should().Equal(WalTestBed.Segment(1), WalTestBed.Segment(3));
        _bed.Stored(WalTestBed.Segment(1)).Should().Equal(one);
        _bed.Stored(WalTestBed.Segment(3)).Should().Equal(three);
        _bed.Source.Status.SegmentsStored.Should().Be(2);
        HiddenInStore().Should().BeEmpty();
        File.Delete(broken);
    }
}
