using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Time.Testing;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Restore;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Tests.Support;

namespace VelozBackupAgent.Tests.Cluster;

/// <summary>
/// <c>restore database latest</c> on a cluster node: the dump another node took is in the shared S3 prefix only, so
/// "latest" is the newer of the local store's and S3's, not the local store's first.
/// </summary>
public sealed class ClusterRestoreLatestTests : IDisposable
{
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 12, 3, 6, 0, 0, TimeSpan.Zero));
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-cluster-latest-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Theory]
    [InlineData(true, "veloz_20261203_050000.dump", "s3")]
    [InlineData(false, "veloz_20261203_020000.dump", "local")]
    public async Task Latest_is_the_newer_of_the_local_store_and_s3_on_a_cluster_node_and_the_local_store_first_otherwise(bool cluster, string expected, string target)
    {
        var (local, remote) = await StoresAsync(("local", "veloz_20261203_020000.dump"), ("s3", "veloz_20261203_050000.dump"));

        var found = await Sources(cluster, local, remote).LatestAsync(BackupKinds.Database, null, null, CancellationToken.None);

        found.Name.Should().Be(expected);
        found.Store!.Target.Should().Be(target);
    }

    [Fact]
    public async Task The_same_dump_in_both_is_read_from_the_local_store_and_at_still_bounds_it()
    {
        var (local, remote) = await StoresAsync(("local", "veloz_20261203_050000.dump"), ("s3", "veloz_20261203_050000.dump"), ("s3", "veloz_20261203_060000.dump"));
        var sources = Sources(true, local, remote);

        var found = await sources.LatestAsync(BackupKinds.Database, new DateTimeOffset(2026, 12, 3, 5, 30, 0, TimeSpan.Zero), null, CancellationToken.None);

        found.Name.Should().Be("veloz_20261203_050000.dump");
        found.Store!.Target.Should().Be("local");
        (await sources.LatestAsync(BackupKinds.Database, null, "local", CancellationToken.None)).Store!.Target.Should().Be("local", "--from local is the local store only");
    }

    private async Task<(LocalArtifactStore Local, IArtifactStore Remote)> StoresAsync(params (string Store, string Name)[] artifacts)
    {
        var local = new LocalArtifactStore(Directory.CreateDirectory(Path.Combine(_root, "local")).FullName, _clock);
        var remote = new S3Folder(new LocalArtifactStore(Directory.CreateDirectory(Path.Combine(_root, "s3")).FullName, _clock));
        foreach (var (store, name) in artifacts)
        {
            await using var content = new MemoryStream(new byte[16]);
            await (store == "local" ? (IArtifactStore)local : remote).WriteAsync(BackupKinds.Database, name, content);
        }

        return (local, remote);
    }

    private RestoreSources Sources(bool cluster, LocalArtifactStore local, IArtifactStore remote)
    {
        var options = BackupConfiguration.Load(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Backup:LocalRoot"] = Path.Combine(_root, "local"), ["Backup:NodeName"] = "node-a", ["Backup:Cluster:Enabled"] = cluster ? "true" : "false",
            ["Backup:Database:ConnectionString"] = "Host=127.0.0.1;Database=veloz;Username=veloz",
        }).Build());
        return new RestoreSources(options, local, remote, s3Factory: null);
    }
}
