using System.Diagnostics;
using Amazon.S3;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Storage.S3;

namespace VelozBackupAgent.IntegrationTests.Replication;

/// <summary>
/// The local store is primary and S3 a replica fed by a durable queue: with a real s3rver that is stopped
/// and restarted, nothing is lost and the backlog drains.
/// </summary>
public sealed class ReplicationTests : IAsyncLifetime
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-repl-").FullName;
    private readonly string _bucket = "r-" + Guid.NewGuid().ToString("N")[..12];
    private S3rverServer _server = null!;
    private AmazonS3Client _client = null!;

    public async Task InitializeAsync()
    {
        _server = await S3rverServer.StartNewAsync();
        _client = _server.CreateClient();
        await _client.PutBucketAsync(_bucket);
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _server.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }

    private (BackupRepository Repository, Replicator Replicator, S3ArtifactStore Remote) Compose(ReplicationOptions? options = null)
    {
        var local = new LocalArtifactStore(_root);
        var remote = new S3ArtifactStore(_server.Options(_bucket), _client);
        var replicator = new Replicator(local, remote, new UploadQueue(Path.Combine(_root, ".state")), options ?? new ReplicationOptions());
        return (new BackupRepository(local, replicator), replicator, remote);
    }

    [Fact]
    public async Task Artifacts_stored_while_S3_is_down_are_kept_queued_across_a_restart_and_drain_when_it_returns()
    {
        var (repository, replicator, _) = Compose();
        await repository.StoreAsync("database", "veloz_20260214_020000.dump", new GeneratedStream(6_000_000, 1));
        (await replicator.DrainAsync()).Uploaded.Should().Be(1);

        _server.Stop();
        var stored = new List<ArtifactInfo>();
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < 5; i++)
        {
            stored.Add(await repository.StoreAsync("wal", $"orders_{i + 1:D16}.wal", new GeneratedStream(1_000_000 + i, i + 10)));
        }

        stored.Add(await repository.StoreAsync("config", "config_20260214_060000.tar.gz", new GeneratedStream(5000, 99)));
        sw.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(10), "local backups never wait on S3");

        var drain = () => replicator.DrainAsync();
        await drain.Should().ThrowAsync<StoreUnavailableException>();
        replicator.Backlog.Artifacts.Should().Be(6);
        replicator.Backlog.Bytes.Should().Be(stored.Sum(a => a.Size));

        // The agent restarts: a new replicator over the same state directory finds the same backlog.
        replicator.Dispose();
        var (_, restarted, remote) = Compose();
        restarted.RefreshBacklog().Artifacts.Should().Be(6);

        await _server.StartAsync();
        var pass = await restarted.DrainAsync();

        pass.Uploaded.Should().Be(6);
        pass.Backlog.Should().Be(ReplicationBacklog.Empty);
        foreach (var a in stored)
        {
            (await remote.StatAsync(a.Kind, a.Name)).Should().Be(a);
            await using var read = await remote.OpenReadAsync(a.Kind, a.Name);
            await read.CopyToAsync(Stream.Null);
        }

        restarted.Dispose();
    }

    [Fact]
    public async Task The_daemon_loop_backs_off_while_S3_is_down_and_drains_on_its_own_when_it_returns()
    {
        var options = new ReplicationOptions { InitialBackoff = TimeSpan.FromMilliseconds(200), MaxBackoff = TimeSpan.FromMilliseconds(400) };
        var (repository, replicator, remote) = Compose(options);
        using var cts = new CancellationTokenSource();
        _server.Stop();
        var loop = replicator.RunAsync(cts.Token);

        await repository.StoreAsync("secrets", "secrets_20260214_023000.tar.gz.gpg", new GeneratedStream(300_000, 5));
        await repository.StoreAsync("database", "veloz_20260214_020000.dump", new GeneratedStream(7_000_000, 6));
        await Until(() => replicator.LastError is not null, "the loop notices S3 is down");
        replicator.Backlog.Artifacts.Should().Be(2);

        await _server.StartAsync();
        await Until(() => replicator.Backlog.Artifacts == 0, "the backlog drains after S3 returns");
        (await remote.StatAsync("database", "veloz_20260214_020000.dump")).Should().NotBeNull();
        (await remote.StatAsync("secrets", "secrets_20260214_023000.tar.gz.gpg")).Should().NotBeNull();

        await cts.CancelAsync();
        await loop;
        replicator.Dispose();
    }

    [Fact]
    public async Task Reconciliation_queues_what_S3_lacks_even_without_a_marker()
    {
        var local = new LocalArtifactStore(_root);
        await local.WriteAsync("config", "config_20260214_000000.tar.gz", new GeneratedStream(1000));
        await local.WriteAsync("config", "config_20260214_060000.tar.gz", new GeneratedStream(2000));
        var (_, replicator, remote) = Compose();

        (await replicator.ReconcileAsync()).Should().Be(2);
        (await replicator.DrainAsync()).Uploaded.Should().Be(2);
        (await replicator.ReconcileAsync()).Should().Be(0, "nothing is missing any more");
        (await remote.StatAsync("config", "config_20260214_060000.tar.gz"))!.Size.Should().Be(2000);
        replicator.Dispose();
    }

    [Fact]
    public async Task A_locally_pruned_artifact_leaves_the_queue_without_an_upload()
    {
        var (repository, replicator, remote) = Compose();
        _server.Stop();
        await repository.StoreAsync("config", "config_20260214_000000.tar.gz", new GeneratedStream(1000));
        await repository.Local.DeleteAsync("config", "config_20260214_000000.tar.gz");
        await _server.StartAsync();

        var pass = await replicator.DrainAsync();
        pass.Uploaded.Should().Be(0);
        pass.Backlog.Artifacts.Should().Be(0);
        (await remote.StatAsync("config", "config_20260214_000000.tar.gz")).Should().BeNull();
        replicator.Dispose();
    }

    private static async Task Until(Func<bool> condition, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new TimeoutException($"timed out waiting until {what}");
            }

            await Task.Delay(50);
        }
    }
}
