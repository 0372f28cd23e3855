using System.Globalization;
using VelozBackupAgent.Sources;
using Xunit.Abstractions;

namespace VelozBackupAgent.IntegrationTests.Sources.Wal;

/// <summary>
/// Many segments: what must hold (nothing re-read when nothing changed, also after a restart or a lost
/// index) is asserted; how long it takes is only measured and printed. VELOZ_WAL_SCALE_SEGMENTS sets the
/// count (default 500 to keep the suite quick; the report's numbers use 10,000 in a Release build).
/// </summary>
public sealed class WalScaleTests(ITestOutputHelper output) : IDisposable
{
    private readonly WalTestBed _bed = new();

    public void Dispose() => _bed.Dispose();

    [Fact]
    public async Task Thousands_of_segments_are_synced_without_re_reading_any_when_nothing_changed()
    {
        var count = int.TryParse(Environment.GetEnvironmentVariable("VELOZ_WAL_SCALE_SEGMENTS"), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : 500;
        var content = new byte[1024];
        for (var i = 1; i <= count; i++)
        {
            content[0] = (byte)i;
            content[1] = (byte)(i >> 8);
            var path = Path.Combine(_bed.WalDir, WalTestBed.Segment(i));
            await File.WriteAllBytesAsync(path, content);
            File.SetLastWriteTimeUtc(path, TimeProvider.System.GetUtcNow().UtcDateTime.AddMinutes(-5));
        }

        var first = await TimedAsync(BackupTrigger.Scheduled);
        first.Result.Outcome.Should().Be(BackupOutcome.Succeeded, first.Result.Detail);
        first.Result.Artifacts.Should().HaveCount(count + 1);

        var read = _bed.Source.Status.SourceBytesRead;
        var opened = _bed.Source.Status.SourceFilesOpened;
        var noChange = new List<(TimeSpan Elapsed, long Allocated)>();
        for (var i = 0; i < 3; i++)
        {
            var sync = await TimedAsync(BackupTrigger.Scheduled);
            sync.Result.Artifacts.Should().ContainSingle("only the manifest is new");
            noChange.Add((sync.Elapsed, sync.Allocated));
        }

        var change = await TimedAsync(BackupTrigger.Change);
        change.Result.Outcome.Should().Be(BackupOutcome.Unchanged);
        _bed.Source.Status.SourceBytesRead.Should().Be(read);
        _bed.Source.Status.SourceFilesOpened.Should().Be(opened);

        _bed.Restart();
        var restarted = await TimedAsync(BackupTrigger.Scheduled);
        File.Delete(_bed.IndexPath);
        _bed.Restart();
        var rebuilt = await TimedAsync(BackupTrigger.Scheduled);
        rebuilt.Result.Artifacts.Should().ContainSingle();
        _bed.Source.Status.SourceBytesRead.Should().Be(0, "a restarted agent without an index reads no segment either");

        var manifestSize = new FileInfo(Path.Combine(_bed.StoreDir, _bed.Manifests()[^1])).Length;
        var indexSize = new FileInfo(_bed.IndexPath).Length;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{count} segments of 1 KiB: first sync {first.Elapsed.TotalSeconds:F2} s; no-change scheduled sync " +
            $"{string.Join(" / ", noChange.Select(x => $"{x.Elapsed.TotalMilliseconds:F0} ms ({x.Allocated / 1024 / 1024.0:F1} MiB allocated)"))}; " +
            $"no-change change-triggered run {change.Elapsed.TotalMilliseconds:F0} ms; after a restart {restarted.Elapsed.TotalMilliseconds:F0} ms; " +
            $"without an index {rebuilt.Elapsed.TotalMilliseconds:F0} ms; manifest {manifestSize / 1024.0:F0} KiB, index {indexSize / 1024.0:F0} KiB; " +
            $"peak working set {Environment.WorkingSet / 1024 / 1024} MiB now, {System.Diagnostics.Process.GetCurrentProcess().PeakWorkingSet64 / 1024 / 1024} MiB peak"));
    }

    private async Task<(BackupRunResult Result, TimeSpan Elapsed, long Allocated)> TimedAsync(BackupTrigger trigger)
    {
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var started = TimeProvider.System.GetTimestamp();
        var result = await _bed.SyncAsync(trigger);
        var elapsed = TimeProvider.System.GetElapsedTime(started);
        return (result, elapsed, GC.GetTotalAllocatedBytes(precise: true) - allocated);
    }
}
