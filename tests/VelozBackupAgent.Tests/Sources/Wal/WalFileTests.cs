using System.Runtime.Versioning;
using System.Security.Cryptography;
using VelozBackupAgent.Sources.Wal;

namespace VelozBackupAgent.Tests.Sources.Wal;

[SupportedOSPlatform("linux")]
public sealed class WalFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("veloz-walfile-").FullName;
    private readonly WalReadCounter _counter = new();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, byte[] content)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, content);
        return path;
    }

    private static WalFileState StateOf(string path) => WalFileState.Of(new FileInfo(path));

    [Fact]
    public async Task A_prefix_read_yields_exactly_the_first_n_bytes_while_the_file_keeps_growing()
    {
        var path = Write("orders_current.wal", RandomNumberGenerator.GetBytes(10_000));
        var expected = File.ReadAllBytes(path);
        using var handle = WalFile.OpenRead(path, _counter);
        var n = RandomAccess.GetLength(handle);
        using (var appender = new FileStream(path, FileMode.Append))
        {
            appender.Write(RandomNumberGenerator.GetBytes(5_000));
        }

        using var stream = new WalReadStream(handle, path, n, _counter, ownsHandle: false);
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy);

        copy.ToArray().Should().Equal(expected);
        _counter.Bytes.Should().Be(10_000);
        _counter.Opens.Should().Be(1);
    }

    [Fact]
    public async Task A_file_truncated_under_the_reader_fails_instead_of_yielding_short_data()
    {
        var path = Write("orders_current.wal", new byte[4096]);
        using var handle = WalFile.OpenRead(path, _counter);
        using (var truncate = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            truncate.SetLength(100);
        }

        using var stream = new WalReadStream(handle, path, 4096, _counter, ownsHandle: false);
        var read = () => stream.CopyToAsync(Stream.Null);
        await read.Should().ThrowAsync<WalFileChangedException>().WithMessage("*shrank to 100 bytes*");
    }

    [Fact]
    public async Task A_segment_that_grows_while_it_is_copied_is_refused_at_the_end()
    {
        var path = Write("orders_0000000000000001.wal", new byte[3000]);
        var listed = StateOf(path);
        await using var stream = WalFile.OpenSegment(path, listed, _counter);
        var buffer = new byte[1000];
        await stream.ReadExactlyAsync(buffer);
        File.AppendAllText(path, "late write");

        var rest = () => stream.CopyToAsync(Stream.Null);
        await rest.Should().ThrowAsync<WalFileChangedException>().WithMessage("*changed while it was being read*");
    }

    [Fact]
    public void A_segment_that_is_not_as_listed_is_refused_before_reading()
    {
        var path = Write("orders_0000000000000001.wal", new byte[3000]);
        var listed = StateOf(path);
        File.AppendAllText(path, "more");

        var open = () => WalFile.OpenSegment(path, listed, _counter);
        open.Should().Throw<WalFileChangedException>();
    }

    [Fact]
    public async Task A_segment_as_listed_is_read_whole_and_hashes_like_sha256sum()
    {
        var content = RandomNumberGenerator.GetBytes(3_000_000);
        var path = Write("orders_0000000000000001.wal", content);
        await using var stream = WalFile.OpenSegment(path, StateOf(path), _counter);

        var sha = await WalFile.Sha256Async(stream, CancellationToken.None);

        sha.Should().Be(Convert.ToHexStringLower(SHA256.HashData(content)));
        _counter.Bytes.Should().Be(3_000_000);
    }

    [Fact]
    public void A_missing_file_is_reported_as_gone_and_a_dangling_link_as_unreadable()
    {
        var gone = () => WalFile.OpenRead(Path.Combine(_dir, "orders_0000000000000001.wal"), _counter);
        gone.Should().Throw<WalFileReadException>().Which.Vanished.Should().BeTrue();

        var link = Path.Combine(_dir, "orders_0000000000000002.wal");
        File.CreateSymbolicLink(link, Path.Combine(_dir, "no-such-target"));
        var dangling = () => WalFile.OpenRead(link, _counter);
        var ex = dangling.Should().Throw<WalFileReadException>().Which;
        ex.Vanished.Should().BeFalse();
        ex.Message.Should().Contain(link);
    }
}
