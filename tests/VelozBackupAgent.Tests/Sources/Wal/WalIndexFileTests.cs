using System.Runtime.Versioning;
using VelozBackupAgent.Sources.Wal;

namespace VelozBackupAgent.Tests.Sources.Wal;

[SupportedOSPlatform("linux")]
public sealed class WalIndexFileTests : IDisposable
{
    private const string Wal = "/var/lib/veloz/wal";
    private static readonly string ShaA = new('a', 64);
    private static readonly string ShaB = new('b', 64);

    private readonly string _state = Directory.CreateTempSubdirectory("veloz-walidx-").FullName;

    public void Dispose() => Directory.Delete(_state, recursive: true);

    private string IndexPath => Path.Combine(_state, ".state", "wal-index.json");

    private static WalIndex Sample()
    {
        var index = new WalIndex(Wal);
        index.Set("orders_0000000000000001.wal", new WalIndexEntry(100, 638000000000000000, ShaA));
        index.Set("orders_0000000000000002.wal", new WalIndexEntry(7, 638000000000000001, null, new WalStoredCopy(5, ShaB)));
        index.SetActive(new WalActiveEntry("orders_current_20261123_101500.wal", 42, 638000000000000002, ShaB));
        return index;
    }

    [Fact]
    public void What_is_saved_loads_back_equal()
    {
        new WalIndexFile(IndexPath).Save(Sample());

        var (loaded, problem) = new WalIndexFile(IndexPath).Load(Wal);

        problem.Should().BeNull();
        loaded!.Segments.Should().BeEquivalentTo(Sample().Segments);
        loaded.Active.Should().Be(Sample().Active);
        loaded.Segments["orders_0000000000000002.wal"].IsConflict.Should().BeTrue();
    }

    [Fact]
    public void The_file_is_private_and_no_temporary_file_is_left()
    {
        new WalIndexFile(IndexPath).Save(Sample());

        File.GetUnixFileMode(IndexPath).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.GetUnixFileMode(Path.GetDirectoryName(IndexPath)!).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Directory.GetFiles(Path.GetDirectoryName(IndexPath)!).Should().ContainSingle().Which.Should().Be(IndexPath);
    }

    [Fact]
    public void No_file_means_no_index_and_no_problem()
    {
        new WalIndexFile(IndexPath).Load(Wal).Should().Be(((WalIndex?)null, (string?)null));
    }

    [Theory]
    [InlineData("{ this is not json")]
    [InlineData("")]
    [InlineData("""{"version":2,"directory":"/var/lib/veloz/wal","segments":{}}""")]
    [InlineData("""{"version":1,"directory":"/var/lib/veloz/wal","segments":{"orders_1.wal":{"size":1,"mtime":1,"sha256":"xyz"}}}""")]
    [InlineData("""{"version":1,"directory":"/var/lib/veloz/wal","segments":{"../escape":{"size":1,"mtime":1,"sha256":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}}""")]
    [InlineData("""{"version":1,"directory":"/var/lib/veloz/wal","segments":{"orders_1.wal":{"size":1,"mtime":1}}}""")]
    public void A_damaged_index_is_reported_not_trusted(string content)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(IndexPath)!);
        File.WriteAllText(IndexPath, content);

        var (loaded, problem) = new WalIndexFile(IndexPath).Load(Wal);

        loaded.Should().BeNull();
        problem.Should().NotBeNullOrEmpty();
    }

    [Fact]
    public void An_index_of_another_directory_is_not_used()
    {
        new WalIndexFile(IndexPath).Save(Sample());

        var (loaded, problem) = new WalIndexFile(IndexPath).Load("/srv/other/wal");

        loaded.Should().BeNull();
        problem.Should().Contain("another directory");
    }

    [Fact]
    public void It_knows_when_someone_else_replaced_or_removed_the_file()
    {
        var file = new WalIndexFile(IndexPath);
        file.Save(Sample());
        file.ChangedSinceLastIo().Should().BeFalse();

        var other = Sample();
        other.Set("orders_0000000000000003.wal", new WalIndexEntry(1, 1, ShaA));
        new WalIndexFile(IndexPath).Save(other);
        file.ChangedSinceLastIo().Should().BeTrue();

        file.Load(Wal);
        file.ChangedSinceLastIo().Should().BeFalse();
        File.Delete(IndexPath);
        file.ChangedSinceLastIo().Should().BeTrue();
    }

    [Fact]
    public void Versions_move_only_on_real_changes()
    {
        var index = Sample();
        var v = index.Version;
        index.Set("orders_0000000000000001.wal", new WalIndexEntry(100, 638000000000000000, ShaA));
        index.Version.Should().Be(v);
        index.Set("orders_0000000000000001.wal", new WalIndexEntry(100, 638000000000000009, ShaA));
        index.Version.Should().Be(v + 1);
        index.Remove("no-such-segment");
        index.Version.Should().Be(v + 1);
    }
}
