using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Checksums;
using VelozBackupAgent.Storage.S3;
using Xunit.Abstractions;

namespace VelozBackupAgent.IntegrationTests.Stores;

public sealed class S3rverFixture : IAsyncLifetime
{
    public S3rverServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await S3rverServer.StartNewAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>The S3 store against a real s3rver process.</summary>
public sealed class S3ArtifactStoreTests : IClassFixture<S3rverFixture>, IAsyncLifetime
{
    private const int Part = S3StoreOptions.MinPartSizeBytes;

    private readonly S3rverServer _server;
    private readonly ITestOutputHelper _output;
    private readonly AmazonS3Client _client;
    private readonly string _bucket = "t-" + Guid.NewGuid().ToString("N")[..12];

    public S3ArtifactStoreTests(S3rverFixture fixture, ITestOutputHelper output)
    {
        _server = fixture.Server;
        _output = output;
        _client = _server.CreateClient();
    }

    public async Task InitializeAsync() => await _client.PutBucketAsync(_bucket);

    public Task DisposeAsync()
    {
        _client.Dispose();
        return Task.CompletedTask;
    }

    private S3ArtifactStore Store(Action<S3StoreOptions>? configure = null)
    {
        var options = _server.Options(_bucket);
        configure?.Invoke(options);
        return new S3ArtifactStore(options, _client);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(1000)]
    [InlineData(Part)] // exactly one part: a single put
    [InlineData((Part * 7L) / 2)] // 3.5 parts: multipart
    public async Task Round_trip_streams_stores_verifies_and_reads_back(long size)
    {
        var store = Store();
        var name = $"x_{size}.dump";
        var expectedSha = GeneratedStream.Sha256Of(size);

        var info = await store.WriteAsync("database", name, new GeneratedStream(size));

        info.Should().Be(new ArtifactInfo("database", name, size, expectedSha));
        (await store.StatAsync("database", name)).Should().Be(info);
        await using (var read = await store.OpenReadAsync("database", name))
        {
            Convert.ToHexStringLower(await SHA256.HashDataAsync(read)).Should().Be(expectedSha);
        }

        // Stored exactly: raw object size, metadata and a sha256sum-format sidecar.
        var head = await _client.GetObjectMetadataAsync(_bucket, $"veloz-1/database/{name}");
        head.ContentLength.Should().Be(size);
        head.Metadata["x-amz-meta-sha256"].Should().Be(expectedSha);
        (await RawTextAsync($"veloz-1/database/{name}.sha256")).Should().Be($"{expectedSha}  {name}\n");
        (await store.ListAsync("database").ToListAsync()).Should().ContainSingle()
            .Which.Should().Be(new ArtifactInfo("database", name, size, null));
    }

    [Fact]
    public async Task Multipart_with_expected_checksum_sets_metadata_at_initiate()
    {
        var store = Store();
        var size = (Part * 5L) / 2;
        var sha = GeneratedStream.Sha256Of(size, seed: 3);

        var info = await store.WriteAsync("wal", "orders_0000000000000001.wal", new GeneratedStream(size, seed: 3), sha);

        info.Sha256.Should().Be(sha);
        (await store.StatAsync("wal", "orders_0000000000000001.wal"))!.Size.Should().Be(size);
    }

    [Fact(Skip = "s3rver 3.7.1 does not implement UploadPartCopy (501 NotImplemented); runs against AWS or MinIO")]
    public async Task Multipart_object_larger_than_the_single_copy_limit_gets_its_metadata_by_part_copy()
    {
        var store = Store(o => o.MaxSingleCopyBytes = Part);
        var size = (Part * 5L) / 2;
        var sha = GeneratedStream.Sha256Of(size, seed: 4);

        (await store.WriteAsync("database", "big.dump", new GeneratedStream(size, seed: 4))).Sha256.Should().Be(sha);

        await using var read = await store.OpenReadAsync("database", "big.dump");
        Convert.ToHexStringLower(await SHA256.HashDataAsync(read)).Should().Be(sha);
    }

    [Fact]
    public async Task List_shows_only_objects_with_sidecars_of_that_kind_and_node()
    {
        var store = Store();
        await store.WriteAsync("config", "config_20260101_000000.tar.gz", new GeneratedStream(10));
        await store.WriteAsync("config", "config_20260102_000000.tar.gz", new GeneratedStream(20));
        await store.WriteAsync("database", "veloz_20260101_000000.dump", new GeneratedStream(30));
        await RawPutAsync("veloz-1/config/orphan.tar.gz", "no sidecar");
        await RawPutAsync("veloz-1/config/lonely.tar.gz.sha256", Sha256Sidecar.Format(new string('a', 64), "lonely.tar.gz"));
        await RawPutAsync("veloz-1/config/sub/deeper.tar.gz", "not in this folder");
        await RawPutAsync("veloz-2/config/other-node.tar.gz", "other prefix");

        var listed = await store.ListAsync("config").ToListAsync();

        listed.Select(a => (a.Name, a.Size)).Should().BeEquivalentTo(new[]
        {
            ("config_20260101_000000.tar.gz", 10L),
            ("config_20260102_000000.tar.gz", 20L),
        });
        (await store.StatAsync("config", "orphan.tar.gz")).Should().BeNull();
        (await store.StatAsync("config", "lonely.tar.gz")).Should().BeNull();
        await FluentActions.Awaiting(() => store.OpenReadAsync("config", "orphan.tar.gz")).Should().ThrowAsync<ArtifactNotFoundException>();
    }

    [Fact]
    public async Task List_pages_through_more_than_one_thousand_keys()
    {
        var store = Store();
        var tasks = Enumerable.Range(0, 600).Select(i => store.WriteAsync("wal", $"orders_{i:D16}.wal", new GeneratedStream(i % 7, seed: i)));
        foreach (var batch in tasks.Chunk(16))
        {
            await Task.WhenAll(batch);
        }

        var listed = await store.ListAsync("wal").ToListAsync();

        listed.Should().HaveCount(600); // 1200 keys with the sidecars: two pages
        listed.Select(a => a.Name).Should().OnlyHaveUniqueItems();
    }

    [Fact]
    public async Task Delete_removes_object_and_sidecar_and_tolerates_missing()
    {
        var store = Store();
        await store.WriteAsync("secrets", "secrets_20260101_000000.tar.gz.gpg", new GeneratedStream(100));

        await store.DeleteAsync("secrets", "secrets_20260101_000000.tar.gz.gpg");
        await store.DeleteAsync("secrets", "secrets_20260101_000000.tar.gz.gpg");
        await store.DeleteAsync("secrets", "never_written.gpg");

        (await store.StatAsync("secrets", "secrets_20260101_000000.tar.gz.gpg")).Should().BeNull();
        (await store.ListAsync("secrets").ToListAsync()).Should().BeEmpty();
        (await _client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = _bucket })).S3Objects.Should().BeNullOrEmpty();
        await FluentActions.Awaiting(() => store.OpenReadAsync("secrets", "secrets_20260101_000000.tar.gz.gpg"))
            .Should().ThrowAsync<ArtifactNotFoundException>();
    }

    [Theory]
    [InlineData(100)]
    [InlineData((Part * 3L) / 2)]
    public async Task Same_content_is_idempotent_and_different_content_is_refused(long size)
    {
        var store = Store();
        var first = await store.WriteAsync("database", "d.dump", new GeneratedStream(size, seed: 1));

        (await store.WriteAsync("database", "d.dump", new GeneratedStream(size, seed: 1))).Should().Be(first);
        (await store.WriteAsync("database", "d.dump", new UnreadableStream(), first.Sha256)).Should().Be(first);

        var conflict = await FluentActions.Awaiting(() => store.WriteAsync("database", "d.dump", new GeneratedStream(size, seed: 2)))
            .Should().ThrowAsync<ArtifactConflictException>();
        _output.WriteLine(conflict.Which.Message);
        conflict.Which.Message.Should().Contain("refusing to overwrite");
        (await store.StatAsync("database", "d.dump")).Should().Be(first);
    }

    [Theory]
    [InlineData(100)]
    [InlineData((Part * 3L) / 2)]
    public async Task Content_that_does_not_match_the_expected_checksum_is_refused_and_not_stored(long size)
    {
        var store = Store();
        var wrong = GeneratedStream.Sha256Of(size, seed: 9);

        await FluentActions.Awaiting(() => store.WriteAsync("database", "e.dump", new GeneratedStream(size), wrong))
            .Should().ThrowAsync<ArtifactIntegrityException>();

        (await store.ListAsync("database").ToListAsync()).Should().BeEmpty();
        await AssertBucketHoldsNothingAsync();
    }

    [Theory]
    [InlineData(1000)]
    [InlineData((Part * 3L) / 2)]
    public async Task Chunked_uploads_that_s3rver_stores_wrongly_are_caught_and_removed(long size)
    {
        var store = Store(o => o.ChunkedUpload = true);

        var thrown = await FluentActions.Awaiting(() => store.WriteAsync("database", "c.dump", new GeneratedStream(size)))
            .Should().ThrowAsync<ArtifactIntegrityException>();

        _output.WriteLine(thrown.Which.Message);
        thrown.Which.Message.Should().Contain("ChunkedUpload to false").And.NotContain("\n");
        (await store.ListAsync("database").ToListAsync()).Should().BeEmpty();
        (await store.StatAsync("database", "c.dump")).Should().BeNull();
        await AssertBucketHoldsNothingAsync();
    }

    [Fact]
    public async Task A_tampered_object_is_detected_when_read()
    {
        var store = Store();
        await store.WriteAsync("config", "t.tar.gz", new GeneratedStream(5000));
        var tampered = new byte[5000];
        await new GeneratedStream(5000).ReadExactlyAsync(tampered);
        tampered[1234] ^= 0x01;
        await _client.PutObjectAsync(new PutObjectRequest
        {
            BucketName = _bucket,
            Key = "veloz-1/config/t.tar.gz",
            InputStream = new MemoryStream(tampered),
            UseChunkEncoding = false,
        });

        var read = async () =>
        {
            await using var stream = await store.OpenReadAsync("config", "t.tar.gz");
            await stream.CopyToAsync(Stream.Null);
        };

        var thrown = await read.Should().ThrowAsync<ArtifactIntegrityException>();
        _output.WriteLine(thrown.Which.Message);
        thrown.Which.Message.Should().Contain("checksum mismatch");
    }

    [Fact]
    public async Task A_tampered_sidecar_is_detected_by_stat_and_read()
    {
        var store = Store();
        await store.WriteAsync("config", "s.tar.gz", new GeneratedStream(5000));
        await RawPutAsync("veloz-1/config/s.tar.gz.sha256", Sha256Sidecar.Format(GeneratedStream.Sha256Of(5000, seed: 2), "s.tar.gz"));

        var stat = await FluentActions.Awaiting(() => store.StatAsync("config", "s.tar.gz")).Should().ThrowAsync<ArtifactIntegrityException>();
        _output.WriteLine(stat.Which.Message);
        await FluentActions.Awaiting(() => store.OpenReadAsync("config", "s.tar.gz")).Should().ThrowAsync<ArtifactIntegrityException>();
    }

    [Theory]
    [InlineData(5000)]
    [InlineData((Part * 5L) / 2)] // multipart
    public async Task An_object_damaged_on_the_S3_server_is_a_checksum_mismatch_not_an_SDK_exception(long size)
    {
        var store = Store();
        await store.WriteAsync("config", "d.tar.gz", new GeneratedStream(size));
        FlipByteOnDisk("veloz-1/config/d.tar.gz");

        var read = async () =>
        {
            await using var stream = await store.OpenReadAsync("config", "d.tar.gz");
            await stream.CopyToAsync(Stream.Null);
        };

        var thrown = await read.Should().ThrowAsync<ArtifactIntegrityException>();
        _output.WriteLine(thrown.Which.Message);
        thrown.Which.Message.Should().Contain("checksum mismatch").And.Contain($"s3://{_bucket}/veloz-1/config/d.tar.gz").And.NotContain("Expected hash");
    }

    [Fact]
    public async Task A_sidecar_damaged_on_the_S3_server_is_a_checksum_mismatch_not_an_SDK_exception()
    {
        var store = Store();
        await store.WriteAsync("config", "e.tar.gz", new GeneratedStream(5000));
        FlipByteOnDisk("veloz-1/config/e.tar.gz.sha256");

        var stat = await FluentActions.Awaiting(() => store.StatAsync("config", "e.tar.gz")).Should().ThrowAsync<ArtifactIntegrityException>();
        _output.WriteLine(stat.Which.Message);
        stat.Which.Message.Should().Contain("checksum mismatch").And.Contain("e.tar.gz.sha256").And.NotContain("Expected hash");
        await FluentActions.Awaiting(() => store.OpenReadAsync("config", "e.tar.gz")).Should().ThrowAsync<ArtifactIntegrityException>();
    }

    [Fact]
    public async Task With_an_unreachable_hold_S3_is_tried_once_and_later_calls_fail_at_once_until_the_hold_ends()
    {
        await using var server = await S3rverServer.StartNewAsync();
        await server.CreateBucketAsync("breaker");
        using var client = server.CreateClient();
        using var logs = new Sources.Archives.CapturedLogs();
        var clock = new ManualClock(new DateTimeOffset(2026, 12, 2, 4, 0, 0, TimeSpan.Zero));
        var options = server.Options("breaker");
        options.MaxRetries = 0; // no retry delays to wait for on the manual clock
        options.UnreachableHold = TimeSpan.FromMinutes(1);
        var store = new S3ArtifactStore(options, client, logs.Factory().CreateLogger<S3ArtifactStore>(), clock);
        server.Stop();

        var first = await FluentActions.Awaiting(() => store.StatAsync("wal", "orders_0000000000000001.wal")).Should().ThrowAsync<StoreUnavailableException>();
        first.Which.Message.Should().Contain("unreachable");
        await server.StartAsync();

        // S3 is back, but within the hold the verdict stands: no request is sent.
        clock.Advance(TimeSpan.FromSeconds(30));
        var second = await FluentActions.Awaiting(() => store.WriteAsync("wal", "orders_0000000000000001.wal", new GeneratedStream(100)))
            .Should().ThrowAsync<StoreUnavailableException>();
        _output.WriteLine(second.Which.Message);
        second.Which.Message.Should().StartWith(first.Which.Message).And.Contain("found 30 s ago; not tried again");

        clock.Advance(TimeSpan.FromSeconds(31));
        (await store.WriteAsync("wal", "orders_0000000000000001.wal", new GeneratedStream(100))).Size.Should().Be(100);
    }

    [Fact]
    public async Task With_the_hold_for_the_store_s_life_only_the_first_call_pays_the_retries()
    {
        await using var server = await S3rverServer.StartNewAsync();
        await server.CreateBucketAsync("once");
        using var client = server.CreateClient();
        using var logs = new Sources.Archives.CapturedLogs();
        var options = server.Options("once");
        options.UnreachableHold = Timeout.InfiniteTimeSpan;
        var store = new S3ArtifactStore(options, client, logs.Factory().CreateLogger<S3ArtifactStore>());
        server.Stop();

        for (var i = 0; i < 3; i++)
        {
            await FluentActions.Awaiting(() => store.StatAsync("wal", "orders_0000000000000001.wal")).Should().ThrowAsync<StoreUnavailableException>();
        }

        logs.Lines.Count(l => l.Contains("S3 request failed, retry", StringComparison.Ordinal)).Should().Be(options.MaxRetries, "one series of retries, then the verdict");
    }

    [Fact]
    public async Task A_writer_whose_stream_fails_midway_leaves_nothing()
    {
        var store = Store();
        var aborts = RecordAborts();

        var thrown = await FluentActions.Awaiting(() => store.WriteAsync("database", "f.dump", new GeneratedStream(Part * 4L, failAfter: (Part * 5L) / 2)))
            .Should().ThrowAsync<IOException>();

        _output.WriteLine(thrown.Which.Message);
        (await store.ListAsync("database").ToListAsync()).Should().BeEmpty();
        await AssertBucketHoldsNothingAsync();

        // s3rver implements neither ListMultipartUploads nor AbortMultipartUpload (it keeps the parts in its
        // data directory), so what can be checked here is that the store asked S3 to abort the upload.
        aborts.Should().Equal("veloz-1/database/f.dump");
    }

    [Fact]
    public async Task A_cancelled_write_leaves_nothing()
    {
        var store = Store();
        using var cts = new CancellationTokenSource();
        var stream = new CallbackStream(new GeneratedStream(Part * 5L), Part * 3L, cts.Cancel); // cancelled while parts upload

        var aborts = RecordAborts();

        await FluentActions.Awaiting(() => store.WriteAsync("database", "g.dump", stream, cancellationToken: cts.Token))
            .Should().ThrowAsync<OperationCanceledException>();

        aborts.Should().Equal("veloz-1/database/g.dump");

        (await store.ListAsync("database").ToListAsync()).Should().BeEmpty();
        await AssertBucketHoldsNothingAsync();
    }

    [Fact]
    public async Task An_object_left_without_its_sidecar_is_replaced_by_the_next_write()
    {
        var store = Store();
        await RawPutAsync("veloz-1/database/h.dump", "half-written leftover");

        var info = await store.WriteAsync("database", "h.dump", new GeneratedStream(300));

        info.Sha256.Should().Be(GeneratedStream.Sha256Of(300));
        (await store.StatAsync("database", "h.dump")).Should().Be(info);
    }

    [Fact]
    public async Task A_missing_bucket_is_one_clear_line()
    {
        var store = new S3ArtifactStore(_server.Options("no-such-bucket"), _client);

        var clock = Stopwatch.StartNew();
        var write = await FluentActions.Awaiting(() => store.WriteAsync("database", "x.dump", new GeneratedStream(10)))
            .Should().ThrowAsync<StoreException>();
        var list = await FluentActions.Awaiting(() => store.ListAsync("database").ToListAsync().AsTask())
            .Should().ThrowAsync<StoreException>();

        _output.WriteLine(write.Which.Message);
        write.Which.Message.Should().Be($"S3 bucket 'no-such-bucket' does not exist at {_server.ServiceUrl}");
        list.Which.Message.Should().Be(write.Which.Message);
        write.Which.IsPermanent.Should().BeTrue();
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Wrong_credentials_are_one_clear_line()
    {
        using var client = S3ArtifactStore.CreateClient(_server.Options(_bucket), new BasicAWSCredentials("NOT-S3RVER", "wrong"));
        var store = new S3ArtifactStore(_server.Options(_bucket), client);

        var clock = Stopwatch.StartNew();
        var thrown = await FluentActions.Awaiting(() => store.WriteAsync("database", "x.dump", new GeneratedStream(10)))
            .Should().ThrowAsync<StoreException>();
        var list = await FluentActions.Awaiting(() => store.ListAsync("database").ToListAsync().AsTask())
            .Should().ThrowAsync<StoreException>();

        _output.WriteLine(thrown.Which.Message);
        _output.WriteLine(list.Which.Message);
        thrown.Which.Message.Should().Contain($"bucket '{_bucket}'").And.Contain("credentials").And.NotContain("\n").And.NotContain("wrong");
        list.Which.Message.Should().StartWith("S3 refused the credentials (InvalidAccessKeyId)");
        thrown.Which.IsPermanent.Should().BeTrue();
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task An_unreachable_endpoint_is_one_clear_line_after_fast_retries()
    {
        var options = _server.Options(_bucket);
        options.ServiceUrl = "http://127.0.0.1:1";
        using var client = S3ArtifactStore.CreateClient(options, new BasicAWSCredentials("a", "b"));
        var store = new S3ArtifactStore(options, client);

        var clock = Stopwatch.StartNew();
        var thrown = await FluentActions.Awaiting(() => store.WriteAsync("database", "x.dump", new GeneratedStream(10)))
            .Should().ThrowAsync<StoreUnavailableException>();

        _output.WriteLine(thrown.Which.Message);
        thrown.Which.Message.Should().StartWith("S3 at http://127.0.0.1:1 is unreachable after 2 retries: Connection refused");
        thrown.Which.IsPermanent.Should().BeFalse();
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task S3_going_away_is_unavailable_and_writes_succeed_when_it_returns()
    {
        await using var server = await S3rverServer.StartNewAsync();
        await server.CreateBucketAsync("comeback");
        using var client = server.CreateClient();
        var store = new S3ArtifactStore(server.Options("comeback"), client);
        await store.WriteAsync("wal", "orders_0000000000000001.wal", new GeneratedStream(100));

        server.Stop();
        var thrown = await FluentActions.Awaiting(() => store.WriteAsync("wal", "orders_0000000000000002.wal", new GeneratedStream(100)))
            .Should().ThrowAsync<StoreUnavailableException>();
        _output.WriteLine(thrown.Which.Message);

        await server.StartAsync();
        await store.WriteAsync("wal", "orders_0000000000000002.wal", new GeneratedStream(100));
        (await store.ListAsync("wal").ToListAsync()).Should().HaveCount(2);
    }

    [Fact]
    public async Task Aborting_stale_uploads_is_best_effort_where_listing_them_is_not_implemented()
    {
        var store = Store();
        await _client.InitiateMultipartUploadAsync(_bucket, "veloz-1/database/stale.dump");

        // s3rver answers ListMultipartUploads with 501 NotImplemented: logged and skipped, not thrown.
        var aborted = await store.AbortStaleUploadsAsync(TimeSpan.Zero);

        aborted.Should().Be(0);
        await FluentActions.Awaiting(() => _client.ListMultipartUploadsAsync(new ListMultipartUploadsRequest { BucketName = _bucket }))
            .Should().ThrowAsync<AmazonS3Exception>().Where(e => e.ErrorCode == "NotImplemented");
    }

    [Fact]
    public async Task A_kind_with_its_own_prefix_is_written_listed_read_and_deleted_there_and_the_others_stay_under_the_node()
    {
        // Backup:Cluster: the database-wide kinds under the shared prefix, the node-local ones under the node's name.
        var nodeA = Store(o => o.KindPrefixes = new Dictionary<string, string> { ["pitr"] = "cluster" });
        var nodeB = Store(o => { o.Prefix = "veloz-2"; o.KindPrefixes = new Dictionary<string, string> { ["pitr"] = "cluster" }; });
        await nodeA.WriteAsync("pitr", "000000010000000000000001", new GeneratedStream(100));
        await nodeA.WriteAsync("wal", "orders_0000000000000001.wal", new GeneratedStream(10));
        await nodeB.WriteAsync("wal", "orders_0000000000000001.wal", new GeneratedStream(20));

        var keys = (await _client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = _bucket })).S3Objects.Select(o => o.Key);
        keys.Should().BeEquivalentTo(
            "cluster/pitr/000000010000000000000001", "cluster/pitr/000000010000000000000001.sha256",
            "veloz-1/wal/orders_0000000000000001.wal", "veloz-1/wal/orders_0000000000000001.wal.sha256",
            "veloz-2/wal/orders_0000000000000001.wal", "veloz-2/wal/orders_0000000000000001.wal.sha256");

        // The other node sees the shared segment and accepts the same bytes again; other bytes are refused.
        (await nodeB.StatAsync("pitr", "000000010000000000000001"))!.Sha256.Should().Be(GeneratedStream.Sha256Of(100));
        (await nodeB.WriteAsync("pitr", "000000010000000000000001", new GeneratedStream(100))).Size.Should().Be(100);
        await FluentActions.Awaiting(() => nodeB.WriteAsync("pitr", "000000010000000000000001", new GeneratedStream(99)))
            .Should().ThrowAsync<ArtifactConflictException>();
        var listed = new List<string>();
        await foreach (var a in nodeB.ListAsync("pitr"))
        {
            listed.Add(a.Name);
        }

        listed.Should().Equal("000000010000000000000001");
        await nodeB.DeleteAsync("pitr", "000000010000000000000001");
        (await nodeA.StatAsync("pitr", "000000010000000000000001")).Should().BeNull();
    }

    [Fact]
    public async Task Throughput_of_a_large_upload_and_read()
    {
        var mib = int.TryParse(Environment.GetEnvironmentVariable("VELOZ_S3_BENCH_MIB"), out var m) ? m : 64;
        var size = mib * 1024L * 1024;
        var store = Store(o => o.PartSizeBytes = 16 * 1024 * 1024);
        var before = GC.GetTotalAllocatedBytes(precise: false);

        var clock = Stopwatch.StartNew();
        await store.WriteAsync("database", "large.dump", new GeneratedStream(size));
        var write = clock.Elapsed;
        clock.Restart();
        await using (var read = await store.OpenReadAsync("database", "large.dump"))
        {
            await read.CopyToAsync(Stream.Null);
        }

        var readTime = clock.Elapsed;
        _output.WriteLine(
            $"{mib} MiB: write {mib / write.TotalSeconds:F1} MiB/s ({write.TotalSeconds:F2} s), read+verify {mib / readTime.TotalSeconds:F1} MiB/s; " +
            $"allocated {(GC.GetTotalAllocatedBytes(precise: false) - before) / (1024 * 1024)} MiB, peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / (1024 * 1024)} MiB");
    }

    /// <summary>Keys for which the client sends AbortMultipartUpload from now on.</summary>
    private List<string> RecordAborts()
    {
        var keys = new List<string>();
        _client.BeforeRequestEvent += (_, e) =>
        {
            if (e is WebServiceRequestEventArgs { Request: AbortMultipartUploadRequest abort })
            {
                lock (keys)
                {
                    keys.Add(abort.Key);
                }
            }
        };
        return keys;
    }

    /// <summary>Flips one byte of the file s3rver keeps an object's bytes in (<c>&lt;directory&gt;/&lt;bucket&gt;/&lt;key&gt;._S3rver_object</c>).</summary>
    private void FlipByteOnDisk(string key)
    {
        var path = Path.Combine(_server.DataDirectory, _bucket, key + "._S3rver_object");
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x01;
        File.WriteAllBytes(path, bytes);
    }

    private async Task RawPutAsync(string key, string text) =>
        await _client.PutObjectAsync(new PutObjectRequest { BucketName = _bucket, Key = key, ContentBody = text, UseChunkEncoding = false });

    private async Task<string> RawTextAsync(string key)
    {
        using var response = await _client.GetObjectAsync(_bucket, key);
        using var reader = new StreamReader(response.ResponseStream, Encoding.UTF8);
        return await reader.ReadToEndAsync();
    }

    private async Task AssertBucketHoldsNothingAsync() =>
        (await _client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = _bucket })).S3Objects.Should().BeNullOrEmpty();

    /// <summary>Passes reads through and calls <c>callback</c> once <c>after</c> bytes have gone by.</summary>
    private sealed class CallbackStream(Stream inner, long after, Action callback) : Stream
    {
        private long _read;
        private bool _called;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _read; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = inner.Read(buffer, offset, count);
            _read += n;
            if (!_called && _read >= after)
            {
                _called = true;
                callback();
            }

            return n;
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
