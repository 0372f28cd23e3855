using System.Security.Cryptography;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.IntegrationTests.Stores;

/// <summary>
/// The behaviour every <see cref="IArtifactStore"/> must have, run unchanged against each store (local
/// directory, S3 on a real s3rver), the way restic runs one suite over all its backends.
/// </summary>
public abstract class ArtifactStoreContractTests : IAsyncLifetime
{
    protected const string Kind = "database";
    private IArtifactStore? _store;

    protected IArtifactStore Store => _store ?? throw new InvalidOperationException("store not created");

    /// <summary>A fresh, empty store for one test.</summary>
    protected abstract Task<IArtifactStore> CreateStoreAsync();

    /// <summary>Flips one stored byte of the artifact behind the store's back.</summary>
    protected abstract Task TamperDataAsync(string kind, string name);

    /// <summary>Replaces the artifact's sidecar with a well-formed one holding another digest.</summary>
    protected abstract Task TamperSidecarAsync(string kind, string name);

    public async Task InitializeAsync() => _store = await CreateStoreAsync();

    public virtual Task DisposeAsync() => Task.CompletedTask;

    [Theory]
    [InlineData(0L)]
    [InlineData(1L)]
    [InlineData(1_000_003L)]
    public async Task Round_trips_small_artifacts(long size) => await RoundTripAsync(size);

    [Fact]
    public async Task Round_trips_a_streamed_artifact_larger_than_100_MiB() => await RoundTripAsync((100L << 20) + 12_345);

    private async Task RoundTripAsync(long size)
    {
        var name = $"veloz_20260214_120000-{size % 9999 + 2}.dump";
        var expected = GeneratedStream.Sha256Of(size, 7);

        var info = await Store.WriteAsync(Kind, name, new GeneratedStream(size, 7));

        info.Should().Be(new ArtifactInfo(Kind, name, size, expected));
        (await Store.StatAsync(Kind, name)).Should().Be(info);
        await using var read = await Store.OpenReadAsync(Kind, name);
        Convert.ToHexStringLower(await SHA256.HashDataAsync(read)).Should().Be(expected);
    }

    [Fact]
    public async Task Lists_complete_artifacts_only_and_never_sidecars()
    {
        await Store.WriteAsync(Kind, "veloz_20260214_120000.dump", new GeneratedStream(10));
        await Store.WriteAsync(Kind, "veloz_20260215_120000.dump", new GeneratedStream(20));
        await Store.WriteAsync("config", "config_20260214_120000.tar.gz", new GeneratedStream(30));

        var listed = await ListAsync(Kind);

        listed.Select(a => (a.Name, a.Size)).Should().BeEquivalentTo(new[] { ("veloz_20260214_120000.dump", 10L), ("veloz_20260215_120000.dump", 20L) });
        (await ListAsync("secrets")).Should().BeEmpty();
    }

    [Fact]
    public async Task Stat_of_a_missing_artifact_is_null_and_reading_it_says_not_found()
    {
        (await Store.StatAsync(Kind, "veloz_20260214_120000.dump")).Should().BeNull();
        var open = () => Store.OpenReadAsync(Kind, "veloz_20260214_120000.dump");
        await open.Should().ThrowAsync<ArtifactNotFoundException>();
    }

    [Fact]
    public async Task Delete_removes_the_artifact_and_deleting_again_is_fine()
    {
        await Store.WriteAsync(Kind, "veloz_20260214_120000.dump", new GeneratedStream(100));
        await Store.DeleteAsync(Kind, "veloz_20260214_120000.dump");
        (await Store.StatAsync(Kind, "veloz_20260214_120000.dump")).Should().BeNull();
        (await ListAsync(Kind)).Should().BeEmpty();
        await Store.DeleteAsync(Kind, "veloz_20260214_120000.dump");
    }

    [Fact]
    public async Task Writing_the_same_bytes_again_is_a_no_op()
    {
        var first = await Store.WriteAsync(Kind, "veloz_20260214_120000.dump", new GeneratedStream(5000, 3));
        var second = await Store.WriteAsync(Kind, "veloz_20260214_120000.dump", new GeneratedStream(5000, 3));
        second.Should().Be(first);
        (await ListAsync(Kind)).Should().ContainSingle();
    }

    [Fact]
    public async Task Refuses_to_overwrite_an_artifact_with_different_bytes_and_keeps_the_original()
    {
        var original = await Store.WriteAsync(Kind, "veloz_20260214_120000.dump", new GeneratedStream(5000, 3));

        var overwrite = () => Store.WriteAsync(Kind, "veloz_20260214_120000.dump", new GeneratedStream(5000, 4));

        await overwrite.Should().ThrowAsync<ArtifactConflictException>();
        (await Store.StatAsync(Kind, "veloz_20260214_120000.dump")).Should().Be(original);
        await using var read = await Store.OpenReadAsync(Kind, "veloz_20260214_120000.dump");
        Convert.ToHexStringLower(await SHA256.HashDataAsync(read)).Should().Be(original.Sha256);
    }

    [Fact]
    public async Task Refuses_bytes_that_do_not_match_the_expected_checksum()
    {
        var wrong = GeneratedStream.Sha256Of(4000, 99);
        var write = () => Store.WriteAsync(Kind, "veloz_20260214_120000.dump", new GeneratedStream(4000, 1), wrong);
        await write.Should().ThrowAsync<ArtifactIntegrityException>();
        (await ListAsync(Kind)).Should().BeEmpty();
    }

    [Fact]
    public async Task A_source_that_dies_mid_stream_leaves_nothing_that_counts_as_a_backup()
    {
        var write = () => Store.WriteAsync(Kind, "veloz_20260214_120000.dump", new GeneratedStream(40L << 20, 1, failAfter: 12L << 20));
        await write.Should().ThrowAsync<Exception>().Where(e => e is IOException || e.InnerException is IOException);
        (await ListAsync(Kind)).Should().BeEmpty();
        (await Store.StatAsync(Kind, "veloz_20260214_120000.dump")).Should().BeNull();
    }

    [Fact]
    public async Task A_cancelled_write_leaves_nothing_that_counts_as_a_backup()
    {
        using var cts = new CancellationTokenSource();
        var source = new CancellingStream(new GeneratedStream(40L << 20), cts, cancelAfter: 9L << 20);
        var write = () => Store.WriteAsync(Kind, "veloz_20260214_120000.dump", source, cancellationToken: cts.Token);
        await write.Should().ThrowAsync<OperationCanceledException>();
        (await ListAsync(Kind)).Should().BeEmpty();
    }

    [Fact]
    public async Task A_tampered_stored_byte_is_detected_when_read()
    {
        await Store.WriteAsync(Kind, "veloz_20260214_120000.dump", new GeneratedStream(300_000));
        await TamperDataAsync(Kind, "veloz_20260214_120000.dump");

        var read = async () =>
        {
            await using var s = await Store.OpenReadAsync(Kind, "veloz_20260214_120000.dump");
            await s.CopyToAsync(Stream.Null);
        };

        await read.Should().ThrowAsync<ArtifactIntegrityException>();
    }

    [Fact]
    public async Task A_tampered_sidecar_is_detected_when_read()
    {
        await Store.WriteAsync(Kind, "veloz_20260214_120000.dump", new GeneratedStream(300_000));
        await TamperSidecarAsync(Kind, "veloz_20260214_120000.dump");

        var read = async () =>
        {
            await using var s = await Store.OpenReadAsync(Kind, "veloz_20260214_120000.dump");
            await s.CopyToAsync(Stream.Null);
        };

        await read.Should().ThrowAsync<ArtifactIntegrityException>();
    }

    [Theory]
    [InlineData("database", "../escape.dump")]
    [InlineData("database", ".hidden")]
    [InlineData("database", "x.dump.sha256")]
    [InlineData("../etc", "x.dump")]
    public async Task Refuses_names_that_could_leave_their_folder(string kind, string name)
    {
        var write = () => Store.WriteAsync(kind, name, new GeneratedStream(1));
        await write.Should().ThrowAsync<ArgumentException>();
    }

    protected async Task<List<ArtifactInfo>> ListAsync(string kind)
    {
        var list = new List<ArtifactInfo>();
        await foreach (var a in Store.ListAsync(kind))
        {
            list.Add(a);
        }

        return list;
    }

    /// <summary>Cancels its token once <c>cancelAfter</c> bytes have been read, like Ctrl-C mid-backup.</summary>
    private sealed class CancellingStream(Stream inner, CancellationTokenSource cts, long cancelAfter) : Stream
    {
        private long _read;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _read; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_read >= cancelAfter)
            {
                cts.Cancel();
                cts.Token.ThrowIfCancellationRequested();
            }

            var n = inner.Read(buffer);
            _read += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
