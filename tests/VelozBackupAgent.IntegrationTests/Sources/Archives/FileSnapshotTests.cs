using VelozBackupAgent.Sources.Archives;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.IntegrationTests.Sources.Archives;

/// <summary>Files that change while they are archived, on real files: never an archive whose header and data disagree.</summary>
public sealed class FileSnapshotTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("veloz-snapshot-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private SourceEntry Listed(string name, string content)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        return new SourceEntry(name, path, FileStatus.TryLstat(path)!.Value, null);
    }

    private static async Task<Exception?> ReadToEndAsync(FileSnapshot snapshot) =>
        await Record.ExceptionAsync(() => snapshot.Content.CopyToAsync(Stream.Null));

    [Fact]
    public async Task An_unchanged_file_reads_exactly_its_size()
    {
        var entry = Listed("a.yaml", "exactly this");
        using var snapshot = FileSnapshot.Open(entry);
        snapshot.Content.Length.Should().Be(12);
        using var copy = new MemoryStream();
        await snapshot.Content.CopyToAsync(copy);
        copy.ToArray().Should().Equal("exactly this"u8.ToArray());
    }

    [Fact]
    public async Task A_file_appended_to_while_read_is_reported()
    {
        var entry = Listed("a.yaml", "start");
        using var snapshot = FileSnapshot.Open(entry);
        await File.AppendAllTextAsync(entry.FullPath, " and more");
        (await ReadToEndAsync(snapshot)).Should().BeOfType<SourceChangedException>().Which.Message.Should().Be($"{entry.FullPath} grew while it was being backed up");
    }

    [Fact]
    public async Task A_file_truncated_while_read_is_reported()
    {
        var entry = Listed("a.yaml", "a longer content");
        using var snapshot = FileSnapshot.Open(entry);
        await File.WriteAllTextAsync(entry.FullPath, "short");
        (await ReadToEndAsync(snapshot)).Should().BeOfType<SourceChangedException>().Which.Message.Should().Be($"{entry.FullPath} shrank while it was being backed up");
    }

    [Fact]
    public async Task A_file_rewritten_in_place_with_the_same_size_is_reported()
    {
        var entry = Listed("a.yaml", "version-1");
        using var snapshot = FileSnapshot.Open(entry);
        await using (var f = new FileStream(entry.FullPath, FileMode.Open, FileAccess.Write))
        {
            await f.WriteAsync("VERSION-2"u8.ToArray());
        }

        (await ReadToEndAsync(snapshot)).Should().BeOfType<SourceChangedException>().Which.Message.Should().Be($"{entry.FullPath} was written while it was being backed up");
    }

    [Fact]
    public async Task A_file_swapped_for_a_symbolic_link_after_listing_is_never_read_through_it()
    {
        var entry = Listed("a.yaml", "listed");
        var elsewhere = Path.Combine(_dir, "elsewhere");
        await File.WriteAllTextAsync(elsewhere, "must not be read");
        File.Delete(entry.FullPath);
        File.CreateSymbolicLink(entry.FullPath, elsewhere);

        var open = () => FileSnapshot.Open(entry);
        open.Should().Throw<SourceChangedException>().Which.Message.Should().Be($"{entry.FullPath} was replaced while it was being backed up");
    }

    [Fact]
    public async Task A_failed_archive_is_left_unfinished_so_gzip_rejects_it()
    {
        var good = Listed("a.yaml", "fine");
        var bad = Listed("b.yaml", "will be deleted");
        File.Delete(bad.FullPath);
        using var output = new MemoryStream();

        var write = () => TarGzArchive.WriteAsync(output, [good, bad], OwnerNames.None, CancellationToken.None);

        await write.Should().ThrowAsync<SourceChangedException>();
        var partial = Path.Combine(_dir, "partial.tar.gz");
        await File.WriteAllBytesAsync(partial, output.ToArray());
        var check = await Infrastructure.ChildProcess.RunAsync("gzip", ["-t", partial]);
        check.ExitCode.Should().NotBe(0, "no end-of-archive marker nor gzip trailer follows a failure, so gzip itself rejects what was written");
    }
}
