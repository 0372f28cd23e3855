using System.Diagnostics;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Checksums;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.IntegrationTests.Stores;

/// <summary>The contract suite on the local directory store.</summary>
public sealed class LocalArtifactStoreContractTests : ArtifactStoreContractTests, IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-local-").FullName;

    protected override Task<IArtifactStore> CreateStoreAsync() => Task.FromResult<IArtifactStore>(new LocalArtifactStore(_root));

    protected override async Task TamperDataAsync(string kind, string name)
    {
        await using var f = new FileStream(Path.Combine(_root, kind, name), FileMode.Open, FileAccess.ReadWrite);
        f.Position = f.Length / 2;
        var b = f.ReadByte();
        f.Position = f.Length / 2;
        f.WriteByte((byte)(b ^ 0x01));
    }

    protected override Task TamperSidecarAsync(string kind, string name) =>
        File.WriteAllTextAsync(Path.Combine(_root, kind, name + ".sha256"), Sha256Sidecar.Format(new string('a', 64), name));

    public void Dispose() => Directory.Delete(_root, recursive: true);
}

/// <summary>What only the local store does: modes, crash debris, a full disk, compatibility with sha256sum.</summary>
public sealed class LocalArtifactStoreTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-local-").FullName;

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public async Task Files_are_0600_and_directories_0700()
    {
        var store = new LocalArtifactStore(_root);
        await store.WriteAsync("secrets", "secrets_20260214_120000.tar.gz.gpg", new GeneratedStream(100));

        File.GetUnixFileMode(Path.Combine(_root, "secrets")).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.GetUnixFileMode(Path.Combine(_root, "secrets", "secrets_20260214_120000.tar.gz.gpg")).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.GetUnixFileMode(Path.Combine(_root, "secrets", "secrets_20260214_120000.tar.gz.gpg.sha256")).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    [Fact]
    public async Task The_sidecar_is_checked_by_sha256sum_by_hand()
    {
        var store = new LocalArtifactStore(_root);
        await store.WriteAsync("database", "veloz_20260214_120000.dump", new GeneratedStream(1_000_000));

        var ok = await ChildProcess.RunAsync("sha256sum", ["-c", "veloz_20260214_120000.dump.sha256"], null, null, null, Path.Combine(_root, "database"));
        ok.ExitCode.Should().Be(0, ok.StdErr);
        ok.StdOut.Should().Contain("veloz_20260214_120000.dump: OK");
    }

    [Fact]
    public async Task Listing_without_checksums_lists_the_same_complete_artifacts_with_their_sizes()
    {
        var store = new LocalArtifactStore(_root);
        await store.WriteAsync("wal", "orders_0000000000000001.wal", new GeneratedStream(100));
        await store.WriteAsync("wal", "orders_0000000000000002.wal", new GeneratedStream(200));
        await File.WriteAllTextAsync(Path.Combine(_root, "wal", "orders_0000000000000003.wal"), "no sidecar: an interrupted write");

        var full = new List<ArtifactInfo>();
        var cheap = new List<ArtifactInfo>();
        await foreach (var a in store.ListWithoutChecksumsAsync("wal"))
        {
            cheap.Add(a);
        }

        await foreach (var a in store.ListAsync("wal"))
        {
            full.Add(a);
        }

        cheap.Select(a => (a.Name, a.Size)).Should().BeEquivalentTo(full.Select(a => (a.Name, a.Size)));
        cheap.Select(a => a.Name).Should().BeEquivalentTo("orders_0000000000000001.wal", "orders_0000000000000002.wal");
        cheap.Should().OnlyContain(a => a.Sha256 == null);
        full.Should().OnlyContain(a => a.Sha256 != null);
    }

    [Fact]
    public async Task A_data_file_without_its_sidecar_does_not_count_and_a_new_write_replaces_it()
    {
        var store = new LocalArtifactStore(_root);
        Directory.CreateDirectory(Path.Combine(_root, "database"));
        await File.WriteAllTextAsync(Path.Combine(_root, "database", "veloz_20260214_120000.dump"), "half a dump");

        (await store.StatAsync("database", "veloz_20260214_120000.dump")).Should().BeNull();
        var listed = new List<ArtifactInfo>();
        await foreach (var a in store.ListAsync("database"))
        {
            listed.Add(a);
        }

        listed.Should().BeEmpty();
        var info = await store.WriteAsync("database", "veloz_20260214_120000.dump", new GeneratedStream(10));
        info.Size.Should().Be(10);
    }

    [Fact]
    public async Task Debris_of_dead_writers_is_removed_and_live_writers_are_left_alone()
    {
        var time = new ManualClock(new DateTimeOffset(2026, 2, 14, 12, 0, 0, TimeSpan.Zero));
        var store = new LocalArtifactStore(_root, time);
        await store.WriteAsync("wal", "orders_0000000000000001.wal", new GeneratedStream(10));
        var dir = Path.Combine(_root, "wal");
        var deadTemp = Path.Combine(dir, ".orders_0000000000000002.wal.999999999.abcd.tmp");
        var liveTemp = Path.Combine(dir, $".orders_0000000000000003.wal.{Environment.ProcessId}.abcd.tmp");
        var orphan = Path.Combine(dir, "orders_0000000000000004.wal");
        var strayedSidecar = Path.Combine(dir, "orders_0000000000000005.wal.sha256");
        foreach (var f in new[] { deadTemp, liveTemp, orphan, strayedSidecar })
        {
            await File.WriteAllTextAsync(f, "x");
        }

        File.SetLastWriteTimeUtc(orphan, time.GetUtcNow().UtcDateTime.AddMinutes(-1));
        File.SetLastWriteTimeUtc(liveTemp, time.GetUtcNow().UtcDateTime.AddMinutes(-1));

        // A fresh orphan may be a write between its two renames: kept.
        store.RemoveInterruptedWrites().Should().Be(2);
        File.Exists(deadTemp).Should().BeFalse();
        File.Exists(strayedSidecar).Should().BeFalse();
        File.Exists(liveTemp).Should().BeTrue();
        File.Exists(orphan).Should().BeTrue();

        time.Advance(TimeSpan.FromMinutes(15));
        store.RemoveInterruptedWrites().Should().Be(1);
        File.Exists(orphan).Should().BeFalse();
        (await store.StatAsync("wal", "orders_0000000000000001.wal")).Should().NotBeNull();
    }

    [Fact]
    public async Task A_writer_process_killed_mid_stream_leaves_nothing_listed_and_its_debris_is_cleaned()
    {
        var source = Path.Combine(Path.GetTempPath(), $"veloz-fifo-{Guid.NewGuid():N}");
        (await ChildProcess.RunAsync("mkfifo", [source])).ExitCode.Should().Be(0);
        try
        {
            // The real CLI imports from a FIFO that we feed, then we SIGKILL it mid-stream.
            using var writer = VelozBackupBinary.Start(["import", "database", source, $"--Backup:LocalRoot={_root}"]);
            await using (var fifo = new FileStream(source, FileMode.Open, FileAccess.Write))
            {
                var chunk = new byte[1 << 20];
                for (var i = 0; i < 8; i++)
                {
                    await fifo.WriteAsync(chunk);
                }

                await fifo.FlushAsync();
                await WaitForTempAsync(Path.Combine(_root, "database"));
                writer.Kill();
                await writer.WaitForExitAsync();
            }

            var store = new LocalArtifactStore(_root);
            var listed = new List<ArtifactInfo>();
            await foreach (var a in store.ListAsync("database"))
            {
                listed.Add(a);
            }

            listed.Should().BeEmpty();
            Directory.GetFiles(Path.Combine(_root, "database"), ".*.tmp").Should().NotBeEmpty("the killed writer leaves its temp file");
            store.RemoveInterruptedWrites().Should().BeGreaterThan(0);
            Directory.GetFiles(Path.Combine(_root, "database")).Should().BeEmpty();
        }
        finally
        {
            File.Delete(source);
        }
    }

    [RootFact]
    public async Task A_full_disk_fails_with_one_clear_error_and_harms_no_earlier_artifact()
    {
        var mount = Directory.CreateTempSubdirectory("veloz-tiny-").FullName;
        (await ChildProcess.RunAsync("mount", ["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", mount])).ExitCode.Should().Be(0);
        try
        {
            var store = new LocalArtifactStore(mount);
            var earlier = await store.WriteAsync("database", "veloz_20260213_120000.dump", new GeneratedStream(1_000_000, 5));

            var write = () => store.WriteAsync("database", "veloz_20260214_120000.dump", new GeneratedStream(10_000_000, 6));

            (await write.Should().ThrowAsync<StoreException>()).Which.Message.Should().Contain("no space left on device");
            var listed = new List<ArtifactInfo>();
            await foreach (var a in store.ListAsync("database"))
            {
                listed.Add(a);
            }

            listed.Should().Equal(earlier);
            await using var read = await store.OpenReadAsync("database", earlier.Name);
            await read.CopyToAsync(Stream.Null);
            Directory.GetFiles(Path.Combine(mount, "database"), ".*").Should().BeEmpty("the failed write cleans up its temp file");
        }
        finally
        {
            await ChildProcess.RunAsync("umount", [mount]);
            Directory.Delete(mount, recursive: true);
        }
    }

    [Fact]
    public async Task A_missing_root_is_a_clear_store_error()
    {
        var store = new LocalArtifactStore(Path.Combine(_root, "gone"));
        var write = () => store.WriteAsync("database", "veloz_20260214_120000.dump", new GeneratedStream(1));
        (await write.Should().ThrowAsync<StoreException>()).Which.Message.Should().Contain("does not exist");
    }

    private static async Task WaitForTempAsync(string dir)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (Directory.Exists(dir) && Directory.GetFiles(dir, ".*.tmp").Length > 0)
            {
                return;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"no temp file appeared in {dir}");
    }
}
