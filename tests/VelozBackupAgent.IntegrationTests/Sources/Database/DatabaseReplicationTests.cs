using System.Diagnostics;
using System.Globalization;
using Amazon.S3;
using Amazon.S3.Model;
using Npgsql;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Database;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Storage.S3;
using static VelozBackupAgent.IntegrationTests.Sources.Database.DatabaseTestKit;
using ChildProcess = VelozBackupAgent.IntegrationTests.Infrastructure.ChildProcess;

namespace VelozBackupAgent.IntegrationTests.Sources.Database;

/// <summary>
/// The dump and S3, with a real s3rver: the copy made during the dump lands with the local checksum, and
/// whatever S3 does (down, stalled, or the dump failing) the local backup is unharmed and nothing half-made
/// counts as an artifact in S3.
/// </summary>
public sealed class DatabaseReplicationTests : IAsyncLifetime, IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-dbs3-").FullName;
    private readonly string _bucket = "db-" + Guid.NewGuid().ToString("N")[..12];
    private readonly ManualClock _clock = new(At);
    private readonly CapturedLogs _logs = new();
    private PostgresDatabase _db = null!;
    private S3rverServer _server = null!;
    private AmazonS3Client _client = null!;
    private S3ArtifactStore _remote = null!;
    private UploadQueue _queue = null!;
    private Replicator _replicator = null!;

    public async Task InitializeAsync()
    {
        _db = await PostgresDatabase.CreateAsync("veloz_dbs3");
        _server = await S3rverServer.StartNewAsync();
        _client = _server.CreateClient();
        await _client.PutBucketAsync(_bucket);
        _remote = new S3ArtifactStore(_server.Options(_bucket), _client);
        _queue = new UploadQueue(Path.Combine(_root, ".state"));
        _replicator = new Replicator(new LocalArtifactStore(_root), _remote, _queue, new ReplicationOptions());
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        await _db.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }

    public void Dispose()
    {
        _replicator.Dispose();
        _remote.Dispose();
        _client.Dispose();
        _logs.Dispose();
    }

    private BackupRepository Repository() => new(new LocalArtifactStore(_root), _replicator, _clock);

    private DatabaseSource Source(int bufferMiB = 64, string? connectionString = null)
    {
        var options = new BackupOptions { LocalRoot = _root };
        options.Database.ConnectionString = connectionString ?? _db.ConnectionString;
        options.Database.BinDirectory = TestEnvironment.PostgresBinDirectory;
        options.Database.S3OverlapBufferMiB = bufferMiB;
        return new DatabaseSource(options, Repository(), _clock, _logs.Factory, _ => null);
    }

    private async Task<List<string>> RemoteKeysAsync()
    {
        var listing = await _client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = _bucket });
        return [.. (listing.S3Objects ?? []).Select(o => o.Key)];
    }

    [Fact]
    public async Task The_dump_lands_in_both_stores_with_equal_checksums_without_queueing()
    {
        await _db.SeedOrdersAsync(1000);
        await AddRandomTableAsync(_db, "ticks", 12);

        var output = await Source().RunAsync(BackupTrigger.Scheduled, CancellationToken.None);

        var local = output.Artifacts.Single();
        local.Size.Should().BeGreaterThan(2 * S3StoreOptions.MinPartSizeBytes, "big enough for a multipart upload");
        (await _remote.StatAsync(local.Kind, local.Name)).Should().Be(local);
        await using (var read = await _remote.OpenReadAsync(local.Kind, local.Name))
        {
            await read.CopyToAsync(Stream.Null);
        }

        _queue.Pending().Should().BeEmpty();
        output.Detail.Should().Contain("; s3: copied during the dump, checksum verified;", "the dump's S3 copy, then what became of the globals");
        _replicator.LastUploadAt.Should().NotBeNull();
    }

    [Fact]
    public async Task With_S3_stopped_the_local_dump_succeeds_and_is_queued_then_drained()
    {
        await _db.SeedOrdersAsync(1000);
        _server.Stop();

        var output = await Source().RunAsync(BackupTrigger.Scheduled, CancellationToken.None);

        var local = output.Artifacts.Single();
        (await new LocalArtifactStore(_root).StatAsync(local.Kind, local.Name)).Should().Be(local);
        _queue.Pending().Should().ContainSingle().Which.Name.Should().Be(local.Name);
        output.Detail.Should().Contain("; s3: queued (the copy made during the write failed: ");
        _logs.Lines.Should().Contain(l => l.Contains("the S3 copy made during the dump was given up", StringComparison.Ordinal));

        await _server.StartAsync();
        (await RemoteKeysAsync()).Should().BeEmpty("nothing half-made is left in S3");
        (await _replicator.DrainAsync()).Uploaded.Should().Be(1);
        (await _remote.StatAsync(local.Kind, local.Name)).Should().Be(local);
    }

    [Fact]
    public async Task A_stalled_S3_is_abandoned_at_the_buffer_limit_and_never_holds_up_the_local_dump()
    {
        await AddRandomTableAsync(_db, "ticks", 12);
        var s3rver = S3rverPid();
        (await ChildProcess.RunAsync("kill", ["-STOP", s3rver])).ExitCode.Should().Be(0);
        StoreResultProbe result;
        try
        {
            var output = await Source(bufferMiB: 1).RunAsync(BackupTrigger.Scheduled, CancellationToken.None);
            result = new StoreResultProbe(output.Artifacts.Single(), output.Detail!);
        }
        finally
        {
            await ChildProcess.RunAsync("kill", ["-CONT", s3rver]);
        }

        result.Detail.Should().Contain("; s3: queued (the copy made during the write fell more than 1 MiB behind)");
        _queue.Pending().Should().ContainSingle().Which.Name.Should().Be(result.Artifact.Name);
        (await RemoteKeysAsync()).Should().BeEmpty();
        (await _replicator.DrainAsync()).Uploaded.Should().Be(1);
        (await _remote.StatAsync(result.Artifact.Kind, result.Artifact.Name)).Should().Be(result.Artifact);
    }

    [Fact]
    public async Task A_dump_that_fails_mid_stream_leaves_nothing_in_either_store_nor_in_the_queue()
    {
        await AddRandomTableAsync(_db, "ticks", 100);
        var appName = "veloz-backup-test-" + Guid.NewGuid().ToString("N")[..8];
        var source = Source(connectionString: new NpgsqlConnectionStringBuilder(_db.ConnectionString) { ApplicationName = appName }.ConnectionString);

        var run = source.RunAsync(BackupTrigger.Scheduled, CancellationToken.None);
        await WaitForPartialWriteAsync(Path.Combine(_root, "database"), run);
        await WaitForMultipartUploadAsync(run);
        await _db.ScalarAsync<long>($"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{appName}'");

        var failed = async () => await run;
        await failed.Should().ThrowAsync<BackupSourceException>();
        Files(_root).Should().BeEmpty();
        _queue.Pending().Should().BeEmpty();
        (await RemoteKeysAsync()).Should().BeEmpty("the abandoned multipart upload never completes");
    }

    [Fact]
    public async Task An_artifact_that_fails_its_check_is_removed_and_never_reaches_S3()
    {
        var repository = Repository();
        var logger = _logs.Factory.CreateLogger("test");
        const string Name = "veloz_20261123_020000.dump";

        var store = () => repository.StoreAsync(BackupKinds.Database, Name, new GeneratedStream(12_000_000, 3), new ArtifactWriteOptions
        {
            Validate = (a, ct) => DatabaseSource.CheckReadableAsync(Tool("pg_restore"), repository.Local.PathOf(a.Kind, a.Name), null, logger, ct),
            OverlapBufferBytes = 64L << 20,
        });

        (await store.Should().ThrowAsync<BackupSourceException>()).Which.Message.Should().StartWith($"the dump {Name} is not a readable pg_dump archive");
        Files(_root).Should().BeEmpty();
        _queue.Pending().Should().BeEmpty();
        (await RemoteKeysAsync()).Should().BeEmpty();
    }

    /// <summary>
    /// Polls until s3rver has stored a part of a multipart upload (it keeps them under
    /// <c>&lt;bucket&gt;/._S3rver_uploads/&lt;upload id&gt;/</c>; it cannot list multipart uploads).
    /// </summary>
    private async Task WaitForMultipartUploadAsync(Task run)
    {
        var uploads = Path.Combine(_server.DataDirectory, _bucket, "._S3rver_uploads");
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30) && !run.IsCompleted)
        {
            if (Directory.Exists(uploads) && Directory.EnumerateFiles(uploads, "1", SearchOption.AllDirectories).Any())
            {
                return;
            }

            await Task.Delay(20);
        }

        Assert.Fail("the overlapped multipart upload never stored a part");
    }

    private string S3rverPid()
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                var argv = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                if (argv.Contains(_server.DataDirectory) && argv.Contains(_server.Port.ToString(CultureInfo.InvariantCulture)))
                {
                    return Path.GetFileName(dir);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Gone meanwhile.
            }
        }

        throw new InvalidOperationException("s3rver's process was not found");
    }

    private sealed record StoreResultProbe(ArtifactInfo Artifact, string Detail);
}
