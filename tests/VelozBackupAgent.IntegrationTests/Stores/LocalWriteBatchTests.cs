using System.Security.Cryptography;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Checksums;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.IntegrationTests.Stores;

/// <summary>The local store's group commit, on real files: what counts before, at and after a commit, and after a failure.</summary>
public sealed class LocalWriteBatchTests : IDisposable
{
    private const string Kind = "wal";
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-batch-").FullName;

    private string Dir => Path.Combine(_root, Kind);

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    private static string Name(int i) => $"orders_{i:D16}.wal";

    private static byte[] Bytes(int i, int size) => [.. Enumerable.Range(0, size).Select(b => (byte)(b * 7 + i))];

    private static async Task<List<ArtifactInfo>> ListAsync(LocalArtifactStore store)
    {
        var listed = new List<ArtifactInfo>();
        await foreach (var a in store.ListAsync(Kind))
        {
            listed.Add(a);
        }

        return listed;
    }

    private string[] Hidden() => [.. Directory.GetFiles(Dir).Select(Path.GetFileName).Where(n => n!.StartsWith('.'))!];

    [Fact]
    public async Task Staged_artifacts_do_not_count_until_the_commit_and_are_complete_after_it()
    {
        var store = new LocalArtifactStore(_root);
        using var batch = store.BeginBatch(Kind);
        var staged = new List<ArtifactInfo>();
        for (var i = 1; i <= 3; i++)
        {
            staged.Add(batch.Stage(Name(i), new MemoryStream(Bytes(i, 1000 * i))));
        }

        batch.Count.Should().Be(3);
        batch.Bytes.Should().Be(6000);
        staged.Select(s => s.Sha256).Should().Equal(Enumerable.Range(1, 3).Select(i => Convert.ToHexStringLower(SHA256.HashData(Bytes(i, 1000 * i)))));

        // Before the commit only hidden temporary files exist: nothing under a final name, nothing listed.
        (await ListAsync(store)).Should().BeEmpty();
        Directory.GetFiles(Dir).Select(Path.GetFileName).Should().HaveCount(6).And.OnlyContain(n => n!.StartsWith('.') && n.EndsWith(".tmp", StringComparison.Ordinal));
        (await store.StatAsync(Kind, Name(1))).Should().BeNull();

        var outcomes = batch.Commit();

        outcomes.Select(o => o.Name).Should().Equal(Name(1), Name(2), Name(3));
        outcomes.Should().OnlyContain(o => o.Stored != null && o.Conflict == null && !o.AlreadyStored);
        outcomes.Select(o => o.Stored!.Sha256).Should().Equal(staged.Select(s => s.Sha256));
        batch.Count.Should().Be(0);
        Hidden().Should().BeEmpty();
        (await ListAsync(store)).Select(a => (a.Name, a.Size, a.Sha256)).Should().BeEquivalentTo(staged.Select(s => (s.Name, s.Size, s.Sha256)));
        for (var i = 1; i <= 3; i++)
        {
            (await File.ReadAllBytesAsync(Path.Combine(Dir, Name(i)))).Should().Equal(Bytes(i, 1000 * i));
            File.GetUnixFileMode(Path.Combine(Dir, Name(i))).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
            File.GetUnixFileMode(Path.Combine(Dir, Name(i) + ".sha256")).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        var check = await ChildProcess.RunAsync("bash", ["-c", "sha256sum -c --strict *.sha256"], workingDirectory: Dir);
        check.ExitCode.Should().Be(0, check.StdOut + check.StdErr);
        check.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Should().HaveCount(3).And.OnlyContain(l => l.EndsWith(": OK", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Many_small_artifacts_commit_by_one_filesystem_sync_and_are_complete_few_or_large_ones_by_file()
    {
        var store = new LocalArtifactStore(_root);
        using (var few = store.BeginBatch(Kind))
        {
            for (var i = 1; i < LocalWriteBatch.FilesystemSyncMinSmallArtifacts; i++)
            {
                few.Stage(Name(i), new MemoryStream(Bytes(i, 16 * 1024)));
            }

            few.UsesFilesystemSync.Should().BeFalse("fewer small artifacts than the threshold are synced one by one");
            few.Stage(Name(100), new MemoryStream(Bytes(100, 16 * 1024)));
            few.UsesFilesystemSync.Should().Be(OperatingSystem.IsLinux(), "the threshold reached on Linux: one syncfs");
            few.Commit().Should().OnlyContain(o => o.Stored != null);
        }

        using (var large = store.BeginBatch(Kind))
        {
            for (var i = 200; i < 200 + LocalWriteBatch.FilesystemSyncMinSmallArtifacts; i++)
            {
                large.Stage(Name(i), new MemoryStream(Bytes(i, (int)LocalWriteBatch.SmallArtifactBytes)));
            }

            large.UsesFilesystemSync.Should().BeFalse("artifacts of 1 MiB and more are synced file by file, their write-back started at staging");
            large.Commit().Should().OnlyContain(o => o.Stored != null);
        }

        var listed = await ListAsync(store);
        listed.Should().HaveCount(2 * LocalWriteBatch.FilesystemSyncMinSmallArtifacts);
        Hidden().Should().BeEmpty();
        var check = await ChildProcess.RunAsync("bash", ["-c", "sha256sum -c --strict *.sha256"], workingDirectory: Dir);
        check.ExitCode.Should().Be(0, check.StdOut + check.StdErr);
        check.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Should().HaveCount(listed.Count).And.OnlyContain(l => l.EndsWith(": OK", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_batch_disposed_without_commit_leaves_nothing()
    {
        var store = new LocalArtifactStore(_root);
        using (var batch = store.BeginBatch(Kind))
        {
            batch.Stage(Name(1), new MemoryStream(Bytes(1, 100)));
            batch.Stage(Name(2), new MemoryStream(Bytes(2, 100)));
        }

        Directory.GetFiles(Dir).Should().BeEmpty();
        (await ListAsync(store)).Should().BeEmpty();
    }

    [Fact]
    public async Task A_source_that_fails_mid_copy_leaves_no_trace_and_the_rest_of_the_batch_commits()
    {
        var store = new LocalArtifactStore(_root);
        using var batch = store.BeginBatch(Kind);
        batch.Stage(Name(1), new MemoryStream(Bytes(1, 500)));

        // More than one buffer's worth (1 MiB) is written before the source fails.
        var act = () => batch.Stage(Name(2), new GeneratedStream(3 << 20, seed: 2, failAfter: (1 << 20) + 4096));
        act.Should().Throw<IOException>().WithMessage("generated failure*");
        batch.Count.Should().Be(1);
        Directory.GetFiles(Dir).Should().HaveCount(2, "only the first artifact's temporary files remain");

        batch.Stage(Name(3), new MemoryStream(Bytes(3, 700)));
        batch.Commit().Select(o => o.Name).Should().Equal(Name(1), Name(3));

        (await ListAsync(store)).Select(a => a.Name).Should().BeEquivalentTo(Name(1), Name(3));
        Directory.GetFiles(Dir).Select(Path.GetFileName).Should().BeEquivalentTo(Name(1), Name(1) + ".sha256", Name(3), Name(3) + ".sha256");
    }

    [Fact]
    public async Task A_name_stored_meanwhile_is_never_overwritten_and_an_orphan_is_replaced()
    {
        var store = new LocalArtifactStore(_root);
        await store.WriteAsync(Kind, Name(1), new MemoryStream(Bytes(1, 300)));
        await store.WriteAsync(Kind, Name(2), new MemoryStream(Bytes(99, 300)));
        await File.WriteAllTextAsync(Path.Combine(Dir, Name(3)), "half a segment from a crash");

        using var batch = store.BeginBatch(Kind);
        batch.Stage(Name(1), new MemoryStream(Bytes(1, 300)));
        batch.Stage(Name(2), new MemoryStream(Bytes(2, 300)));
        batch.Stage(Name(3), new MemoryStream(Bytes(3, 300)));
        var outcomes = batch.Commit();

        outcomes[0].AlreadyStored.Should().BeTrue();
        outcomes[0].Stored!.Sha256.Should().Be(Convert.ToHexStringLower(SHA256.HashData(Bytes(1, 300))));
        outcomes[1].Stored.Should().BeNull();
        outcomes[1].Conflict!.Sha256.Should().Be(Convert.ToHexStringLower(SHA256.HashData(Bytes(99, 300))));
        outcomes[2].Stored!.Size.Should().Be(300);
        (await File.ReadAllBytesAsync(Path.Combine(Dir, Name(2)))).Should().Equal(Bytes(99, 300), "the stored copy is kept");
        (await File.ReadAllBytesAsync(Path.Combine(Dir, Name(3)))).Should().Equal(Bytes(3, 300));
        Hidden().Should().BeEmpty();
    }

    [Fact]
    public async Task A_commit_that_fails_mid_batch_leaves_complete_artifacts_or_nothing_and_a_new_batch_completes()
    {
        var store = new LocalArtifactStore(_root);
        using (var batch = store.BeginBatch(Kind))
        {
            for (var i = 1; i <= 3; i++)
            {
                batch.Stage(Name(i), new MemoryStream(Bytes(i, 2000)));
            }

            // A real obstacle, whoever runs the test: a directory where the second artifact goes.
            Directory.CreateDirectory(Path.Combine(Dir, Name(2)));
            var act = () => batch.Commit();
            act.Should().Throw<StoreException>().WithMessage("local store could not commit 3 artifacts in *none of them counts as stored");
        }

        // Nothing half-made under a final name: the first is complete (its bytes were durable before its rename),
        // the others are absent, and no temporary file is left.
        Hidden().Should().BeEmpty();
        Directory.GetFiles(Dir).Select(Path.GetFileName).Should().BeEquivalentTo(Name(1), Name(1) + ".sha256");
        Sha256Sidecar.Parse(await File.ReadAllTextAsync(Path.Combine(Dir, Name(1) + ".sha256")), Name(1))
            .Should().Be(Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(Path.Combine(Dir, Name(1))))));

        Directory.Delete(Path.Combine(Dir, Name(2)));
        using (var again = store.BeginBatch(Kind))
        {
            for (var i = 1; i <= 3; i++)
            {
                again.Stage(Name(i), new MemoryStream(Bytes(i, 2000)));
            }

            var outcomes = again.Commit();
            outcomes.Select(o => o.AlreadyStored).Should().Equal(true, false, false);
        }

        var listed = await ListAsync(store);
        listed.Select(a => a.Name).Should().BeEquivalentTo(Name(1), Name(2), Name(3));
        foreach (var a in listed)
        {
            a.Sha256.Should().Be(Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(Path.Combine(Dir, a.Name)))));
        }
    }
}
