using System.Globalization;
using VelozBackupAgent.Sources;
using ChildProcess = VelozBackupAgent.IntegrationTests.Infrastructure.ChildProcess;
using Xunit.Abstractions;

namespace VelozBackupAgent.IntegrationTests.Sources.Wal;

/// <summary>
/// The watcher with a real writer process: WatchAsync feeding change-triggered runs through the real
/// runner, as the daemon wires it, while a child process writes the WAL directory.
/// </summary>
public sealed class WalWatchTests : IDisposable
{
    private readonly WalTestBed _bed = new();
    private readonly ITestOutputHelper _output;
    private readonly CancellationTokenSource _stop = new();
    private int _runs;
    private Task? _watch;

    public WalWatchTests(ITestOutputHelper output)
    {
        _output = output;
        _bed.Runner.Completed += (_, r) =>
        {
            if (r.Trigger == BackupTrigger.Change)
            {
                Interlocked.Increment(ref _runs);
            }
        };
    }

    public void Dispose()
    {
        _stop.Cancel();
        try
        {
            _watch?.GetAwaiter().GetResult();
        }
        catch (OperationCanceledException)
        {
            // Stopped.
        }

        _stop.Dispose();
        _bed.Dispose();
    }

    private void StartWatching() =>
        _watch = _bed.Source.WatchAsync(ct => _bed.Runner.RunAsync("wal", BackupTrigger.Change, ct), _stop.Token);

    [Fact]
    public async Task Segments_sealed_by_a_live_writer_are_each_stored_within_seconds_with_an_equal_checksum()
    {
        const int Segments = 25;
        var seals = Path.Combine(_bed.Scratch, "seals.log");
        StartWatching();

        // VeloZ's way: append records to the active file, seal it by renaming it to the next segment number.
        using var writer = ChildProcess.Start("bash", ["-c", """
            set -eu
            n=0
            while [ $n -lt $COUNT ]; do
              n=$((n+1))
              for r in 1 2 3 4; do
                printf 'segment %d record %d %s\n' $n $r "$(head -c 48 /dev/urandom | base64 -w0)" >> "$DIR/orders_current.wal"
                sleep 0.04
              done
              seg=$(printf 'orders_%016d.wal' $n)
              mv "$DIR/orders_current.wal" "$DIR/$seg"
              echo "$(date +%s%N) $seg" >> "$SEALS"
            done
            for r in 1 2 3; do printf 'tail record %d\n' $r >> "$DIR/orders_current.wal"; done
            """], new Dictionary<string, string?> { ["DIR"] = _bed.WalDir, ["SEALS"] = seals, ["COUNT"] = Segments.ToString(CultureInfo.InvariantCulture) });
        await writer.WaitForExitAsync();
        writer.ExitCode.Should().Be(0, await writer.StandardError.ReadToEndAsync());

        var names = Enumerable.Range(1, Segments).Select(i => WalTestBed.Segment(i)).ToList();
        await WaitUntilAsync(() => names.All(n => _bed.StoredNames().Contains(n)), TimeSpan.FromSeconds(30));

        var latencies = new List<TimeSpan>();
        foreach (var line in File.ReadAllLines(seals))
        {
            var parts = line.Split(' ');
            var sealedAt = DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(parts[0], CultureInfo.InvariantCulture) / 1_000_000);
            var source = File.ReadAllBytes(Path.Combine(_bed.WalDir, parts[1]));
            _bed.Stored(parts[1]).Should().Equal(source);
            _bed.StoredSha(parts[1]).Should().Be(WalTestBed.Sha(source));
            var storedAt = File.GetLastWriteTimeUtc(Path.Combine(_bed.StoreDir, parts[1] + ".sha256"));
            latencies.Add(new DateTimeOffset(storedAt, TimeSpan.Zero) - sealedAt);
        }

        latencies.Should().HaveCount(Segments);
        latencies.Sort();
        _output.WriteLine($"seal-to-stored latency over {Segments} segments: p50 {latencies[Segments / 2].TotalSeconds:F2} s, " +
                          $"p90 {latencies[Segments * 9 / 10].TotalSeconds:F2} s, max {latencies[^1].TotalSeconds:F2} s, min {latencies[0].TotalSeconds:F2} s; " +
                          $"{_runs} change-triggered runs (settle time {_bed.Options.Wal.SettleTime.TotalSeconds} s)");
        _bed.Source.Status.ConflictsDetected.Should().Be(0);
        _bed.Source.Status.Unreadable.Should().BeEmpty();

        // Once the writer has paused, the watcher snapshots the last active file: a true prefix, here all of it.
        var final = File.ReadAllBytes(_bed.ActivePath);
        await WaitUntilAsync(() => _bed.Snapshots().Any(s => _bed.Stored(s).AsSpan().SequenceEqual(final)), TimeSpan.FromSeconds(15));
        var sources = names.Select(n => File.ReadAllBytes(Path.Combine(_bed.WalDir, n))).Append(final).ToList();
        foreach (var snapshot in _bed.Snapshots().Select(_bed.Stored))
        {
            sources.Any(s => IsPrefix(snapshot, s)).Should().BeTrue("every snapshot is a prefix of the active file it was taken from (now sealed, or still active)");
        }

        // The scheduled safety net finds nothing missing and lists it all.
        var sync = await _bed.SyncAsync();
        sync.Artifacts.Should().ContainSingle().Which.Name.Should().StartWith("wal-manifest_");
        var manifest = await _bed.ManifestAsync(sync.Artifacts[0].Name);
        manifest.Segments.Select(s => s.Name).Should().Equal(names);
        _bed.Stored(manifest.Active!.Artifact).Should().Equal(final);
    }

    [Fact]
    public async Task An_active_file_appended_to_without_pause_starts_no_run_until_its_writes_pause()
    {
        StartWatching();
        await Task.Delay(500); // the watcher's first pass over the empty directory

        using var writer = ChildProcess.Start("bash", ["-c", """
            for i in $(seq 1 60); do printf 'order %d\n' $i >> "$ACTIVE"; sleep 0.05; done
            """], new Dictionary<string, string?> { ["ACTIVE"] = _bed.ActivePath });
        await writer.WaitForExitAsync();
        var runsWhileWriting = Volatile.Read(ref _runs);

        var final = File.ReadAllBytes(_bed.ActivePath);
        await WaitUntilAsync(() => _bed.Snapshots().Count == 1, TimeSpan.FromSeconds(15));

        runsWhileWriting.Should().Be(0, "an engine appending all day must not cause a backup run per write");
        _bed.Stored(_bed.Snapshots()[0]).Should().Equal(final);
        await Task.Delay(1500);
        Volatile.Read(ref _runs).Should().Be(1);
    }

    [Fact]
    public async Task A_segment_copied_in_slowly_is_stored_once_and_whole()
    {
        StartWatching();
        var path = Path.Combine(_bed.WalDir, WalTestBed.Segment(7));
        using var copy = ChildProcess.Start("bash", ["-c", """
            for i in $(seq 1 20); do head -c 4096 /dev/urandom >> "$SEGMENT"; sleep 0.15; done
            """], new Dictionary<string, string?> { ["SEGMENT"] = path });
        await copy.WaitForExitAsync();

        await WaitUntilAsync(() => _bed.StoredNames().Contains(WalTestBed.Segment(7)), TimeSpan.FromSeconds(15));

        _bed.Stored(WalTestBed.Segment(7)).Should().Equal(File.ReadAllBytes(path)).And.HaveCount(20 * 4096);
        _bed.Source.Status.ConflictsDetected.Should().Be(0, "a half-done copy was never stored");
    }

    [Fact]
    public async Task Segments_already_there_when_the_watcher_starts_are_shipped_by_its_first_pass()
    {
        var one = _bed.WriteSegment(1, 1000);
        var two = _bed.WriteSegment(2, 2000);

        StartWatching();

        await WaitUntilAsync(() => _bed.StoredNames().Contains(WalTestBed.Segment(2)), TimeSpan.FromSeconds(15));
        _bed.Stored(WalTestBed.Segment(1)).Should().Equal(one);
        _bed.Stored(WalTestBed.Segment(2)).Should().Equal(two);
        _bed.Manifests().Should().BeEmpty("change-triggered runs write no manifest");
    }

    [Fact]
    public async Task A_segment_sealed_by_a_rename_is_stored_without_waiting_the_settle_time_and_one_written_in_place_is_not()
    {
        var settle = TimeSpan.FromMinutes(10);
        using var bed = new WalTestBed(settle);
        using var stop = new CancellationTokenSource();
        var watch = bed.Source.WatchAsync(ct => bed.Runner.RunAsync("wal", BackupTrigger.Change, ct), stop.Token);
        try
        {
            await Task.Delay(500); // the watcher's first pass over the empty directory

            // Written in place under its sealed name: it must wait the (10 min) settle time.
            await File.WriteAllBytesAsync(Path.Combine(bed.WalDir, WalTestBed.Segment(1)), [1, 2, 3]);

            // Sealed VeloZ's way: the active file renamed to its segment name.
            var sealedBytes = new byte[4096];
            Random.Shared.NextBytes(sealedBytes);
            await File.WriteAllBytesAsync(bed.ActivePath, sealedBytes);
            var started = TimeProvider.System.GetTimestamp();
            File.Move(bed.ActivePath, Path.Combine(bed.WalDir, WalTestBed.Segment(2)));

            await WaitUntilAsync(() => bed.StoredNames().Contains(WalTestBed.Segment(2)), TimeSpan.FromSeconds(30));

            TimeProvider.System.GetElapsedTime(started).Should().BeLessThan(settle, "stored while the settle time had not elapsed");
            bed.Stored(WalTestBed.Segment(2)).Should().Equal(sealedBytes);
            bed.StoredNames().Should().NotContain(WalTestBed.Segment(1), "a file written in place waits the settle time");
            bed.Source.Status.ConflictsDetected.Should().Be(0);
        }
        finally
        {
            await stop.CancelAsync();
            try
            {
                await watch;
            }
            catch (OperationCanceledException)
            {
                // Stopped.
            }
        }
    }

    private static bool IsPrefix(byte[] prefix, byte[] of) => of.Length >= prefix.Length && of.AsSpan(0, prefix.Length).SequenceEqual(prefix);

    private static async Task WaitUntilAsync(Func<bool> condition, TimeSpan limit)
    {
        var started = TimeProvider.System.GetTimestamp();
        while (!condition())
        {
            TimeProvider.System.GetElapsedTime(started).Should().BeLessThan(limit, "the watcher should have shipped it by then");
            await Task.Delay(50);
        }
    }
}
