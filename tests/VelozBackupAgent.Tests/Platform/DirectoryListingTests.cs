using System.Runtime.Versioning;
using VelozBackupAgent.Sources.Wal;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Tests.Platform;

/// <summary>
/// The stat-free listings of a no-op sync (issue 16): names from the directory alone, one allocation-free stat per WAL
/// segment, and the store's leftovers found in a listing the caller already made. They must see what the
/// <see cref="FileInfo"/>-based code they replace saw.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class DirectoryListingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("veloz-listing-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string content = "x")
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        return path;
    }

    [Fact]
    public void Files_lists_hidden_files_and_no_directories()
    {
        Write("a.wal");
        Write(".a.wal.123.abcd.tmp");
        Directory.CreateDirectory(Path.Combine(_dir, "sub"));
        File.CreateSymbolicLink(Path.Combine(_dir, "link.wal"), Path.Combine(_dir, "a.wal"));

        DirectoryNames.Files(_dir).Should().BeEquivalentTo(["a.wal", ".a.wal.123.abcd.tmp", "link.wal"]);
    }

    [Fact]
    public void Complete_keeps_only_data_files_with_their_sidecar()
    {
        var names = new HashSet<string>(["a.wal", "a.wal.sha256", "b.wal", "c.wal.sha256", ".d.wal", ".d.wal.sha256", ".e.wal.1.ab.tmp"], StringComparer.Ordinal);

        DirectoryNames.Complete(names).Should().BeEquivalentTo(["a.wal"]);
        DirectoryNames.HasSidecar(names, "a.wal").Should().BeTrue();
        DirectoryNames.HasSidecar(names, "b.wal").Should().BeFalse();
        DirectoryNames.HasArtifact(names, "c.wal.sha256").Should().BeFalse();
        DirectoryNames.HasArtifact(names, "a.wal.sha256").Should().BeTrue();
    }

    [Fact]
    public void TryStatIn_sees_what_TryStat_sees_links_followed_and_missing_is_null()
    {
        var file = Write("orders_0000000000000001.wal", new string('z', 1234));
        File.SetLastWriteTimeUtc(file, new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc).AddTicks(1234567));
        File.CreateSymbolicLink(Path.Combine(_dir, "link.wal"), file);

        FileStatus.TryStatIn(_dir, "orders_0000000000000001.wal", followLinks: true).Should().Be(FileStatus.TryStat(file, followLinks: true));
        FileStatus.TryStatIn(_dir, "link.wal", followLinks: true)!.Value.Size.Should().Be(1234);
        FileStatus.TryStatIn(_dir, "link.wal", followLinks: false)!.Value.Kind.Should().Be(FileKind.SymbolicLink);
        FileStatus.TryStatIn(_dir, "missing.wal", followLinks: true).Should().BeNull();
    }

    [Fact]
    public void A_segment_state_from_stat_equals_the_one_from_FileInfo_the_index_was_written_with()
    {
        var file = Write("orders_0000000000000001.wal", "abc");
        File.SetLastWriteTimeUtc(file, new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc).AddTicks(1234567));

        WalFileState.Of(FileStatus.TryStatIn(_dir, "orders_0000000000000001.wal", followLinks: true)!.Value)
            .Should().Be(WalFileState.Of(new FileInfo(file)));
    }

    [Fact]
    public void Content_changed_in_place_with_the_same_size_changes_the_state_by_its_mtime()
    {
        var file = Write("orders_0000000000000001.wal", "aaaa");
        File.SetLastWriteTimeUtc(file, new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        var before = WalFileState.Of(FileStatus.TryStatIn(_dir, "orders_0000000000000001.wal", followLinks: true)!.Value);

        using (var stream = new FileStream(file, FileMode.Open, FileAccess.Write))
        {
            stream.Write("bbbb"u8);
        }

        var after = WalFileState.Of(FileStatus.TryStatIn(_dir, "orders_0000000000000001.wal", followLinks: true)!.Value);
        after.Size.Should().Be(before.Size);
        after.Should().NotBe(before, "a rewrite gives a new mtime, so the run examines the segment again instead of trusting the index");
    }

    [Fact]
    public void Leftovers_are_found_in_the_callers_listing_and_taken_out_of_it()
    {
        Write("a.wal");
        Write("a.wal.sha256");
        Write("b.wal.sha256"); // a sidecar whose data is gone: debris
        Write("c.wal"); // data without sidecar, younger than the grace: a write in progress, kept
        var deadTemp = Write(".d.wal.999999999.0badcafe.tmp"); // no such pid: a dead writer's
        var liveTemp = Write($".e.wal.{Environment.ProcessId}.0badcafe.tmp"); // this process: a live writer's
        var store = new LocalArtifactStore(Path.GetDirectoryName(_dir)!);
        var kind = Path.GetFileName(_dir);
        var names = DirectoryNames.Files(_dir);

        var removed = store.RemoveLeftovers(kind, names);

        removed.Select(r => r.Name).Should().BeEquivalentTo(["b.wal.sha256", Path.GetFileName(deadTemp)]);
        names.Should().BeEquivalentTo(["a.wal", "a.wal.sha256", "c.wal", Path.GetFileName(liveTemp)]);
        File.Exists(deadTemp).Should().BeFalse();
        File.Exists(liveTemp).Should().BeTrue();
        store.FindLeftovers(kind).Should().BeEmpty("the same rules as the listing of every kind");
    }
}
