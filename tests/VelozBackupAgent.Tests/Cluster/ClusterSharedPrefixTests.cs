using System.Text;
using Microsoft.Extensions.Configuration;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Stores;

namespace VelozBackupAgent.Tests.Cluster;

/// <summary>
/// Backup:Cluster's shared prefix: which kinds go under it in S3, the archive rule two receivers meet there (the same
/// name with the same bytes is accepted, other bytes are refused and the stored copy kept), and the local-first view a
/// restore on one node reads. The shared archive is a real local store standing in for the S3 prefix: the rule is the
/// IArtifactStore contract both stores keep, driven through the real <see cref="Replicator"/>.
/// </summary>
public sealed class ClusterSharedPrefixTests : IDisposable
{
    private const string Segment = "000000010000000000000007";
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-shared-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void With_the_cluster_on_the_database_wide_kinds_go_under_the_shared_prefix_and_the_node_local_ones_stay_under_the_node()
    {
        var clustered = StoreComposition.S3StoreOptionsFrom(Options(("Backup:Cluster:Enabled", "true"), ("Backup:Cluster:SharedPrefix", "veloz/shared")));
        clustered.Validate();
        clustered.PrefixOf(BackupKinds.Pitr).Should().Be("veloz/shared");
        clustered.PrefixOf(BackupKinds.Database).Should().Be("veloz/shared");
        clustered.PrefixOf(BackupKinds.Wal).Should().Be("node-a");
        clustered.PrefixOf(BackupKinds.Config).Should().Be("node-a");
        clustered.PrefixOf(BackupKinds.Secrets).Should().Be("node-a");

        var single = StoreComposition.S3StoreOptionsFrom(Options());
        BackupKinds.All.Select(single.PrefixOf).Should().AllBe("node-a", "one node keeps every kind under its name, as before");
    }

    [Fact]
    public async Task Two_nodes_archiving_the_same_segment_store_it_once_and_other_bytes_under_its_name_are_refused_never_written()
    {
        var shared = new LocalArtifactStore(Dir("shared"));
        var (a, aQueue, aReplicator) = Node("node-a", shared);
        var (b, bQueue, bReplicator) = Node("node-b", shared);
        var refusals = new List<ReplicationRefusal>();
        bReplicator.Refused += (_, r) => refusals.Add(r);

        // The old holder archived it before it died; the new one re-streamed the same segment from its start.
        var wal = Encoding.ASCII.GetBytes(new string('w', 8192));
        var archived = await Store(a, Segment, wal);
        await Store(b, Segment, wal);
        (await aReplicator.DrainAsync()).Uploaded.Should().Be(1);
        var second = await bReplicator.DrainAsync();
        (second.Uploaded, second.AlreadyPresent, second.Failed).Should().Be((0, 1, 0), "the same name with the same sha256 is already archived");
        bQueue.Pending().Should().BeEmpty();

        // The same name with other bytes (another cluster's WAL, a corrupt copy): refused, the archived copy kept.
        await Store(b, "000000010000000000000008", Encoding.ASCII.GetBytes(new string('x', 8192)));
        await Store(a, "000000010000000000000008", wal);
        (await aReplicator.DrainAsync()).Uploaded.Should().Be(1);
        var conflict = await bReplicator.DrainAsync();
        (conflict.Uploaded, conflict.AlreadyPresent, conflict.Failed).Should().Be((0, 0, 1));
        refusals.Should().ContainSingle().Which.Name.Should().Be("000000010000000000000008");
        refusals[0].Reason.Should().Contain("different content");
        (await shared.StatAsync(BackupKinds.Pitr, "000000010000000000000008"))!.Sha256.Should().Be(archived.Sha256, "the archived copy is never overwritten");
        bQueue.Pending().Should().ContainSingle("the refused copy stays queued, so it is reported again until someone looks");
    }

    [Fact]
    public async Task The_local_first_view_lists_both_stores_once_and_reads_from_s3_only_what_the_node_lacks()
    {
        var local = new LocalArtifactStore(Dir("node-b"));
        var remote = new LocalArtifactStore(Dir("shared"));
        await local.WriteAsync(BackupKinds.Pitr, "000000010000000000000009", new MemoryStream([9, 9]));
        await remote.WriteAsync(BackupKinds.Pitr, "000000010000000000000009", new MemoryStream([9, 9]));
        await remote.WriteAsync(BackupKinds.Pitr, Segment, new MemoryStream([7, 7, 7]));

        var both = new LocalFirstArtifactStore(local, remote);
        var names = new List<string>();
        await foreach (var artifact in both.ListWithoutChecksumsAsync(BackupKinds.Pitr))
        {
            names.Add(artifact.Name);
        }

        names.Should().BeEquivalentTo(["000000010000000000000009", Segment]);
        (await both.HolderAsync(BackupKinds.Pitr, "000000010000000000000009")).Should().BeSameAs(local);
        (await both.HolderAsync(BackupKinds.Pitr, Segment)).Should().BeSameAs(remote);
        await using (var stream = await both.OpenReadAsync(BackupKinds.Pitr, "000000010000000000000009"))
        {
            await stream.CopyToAsync(Stream.Null);
        }

        both.RemoteReads.Should().Be(0);
        await using (var stream = await both.OpenReadAsync(BackupKinds.Pitr, Segment))
        {
            var copy = new MemoryStream();
            await stream.CopyToAsync(copy);
            copy.ToArray().Should().Equal(7, 7, 7);
        }

        both.RemoteReads.Should().Be(1);
        (await both.StatAsync(BackupKinds.Pitr, Segment))!.Size.Should().Be(3);
        var write = () => both.WriteAsync(BackupKinds.Pitr, "00000002.history", new MemoryStream([1]));
        await write.Should().ThrowAsync<NotSupportedException>();
    }

    private string Dir(string relative) => Directory.CreateDirectory(Path.Combine(_root, relative)).FullName;

    private (BackupRepository Repository, UploadQueue Queue, Replicator Replicator) Node(string name, LocalArtifactStore shared)
    {
        var local = new LocalArtifactStore(Dir(Path.Combine(name, "backup")));
        var queue = new UploadQueue(Path.Combine(_root, name, "state"));
        var replicator = new Replicator(local, shared, queue, new ReplicationOptions(), TimeProvider.System);
        return (new BackupRepository(local, replicator, TimeProvider.System), queue, replicator);
    }

    private static Task<VelozBackupAgent.Storage.ArtifactInfo> Store(BackupRepository repository, string name, byte[] bytes) =>
        repository.StoreAsync(BackupKinds.Pitr, name, new MemoryStream(bytes));

    private BackupOptions Options(params (string Key, string Value)[] settings)
    {
        var all = new Dictionary<string, string?>
        {
            ["Backup:LocalRoot"] = _root, ["Backup:NodeName"] = "node-a", ["Backup:S3:Enabled"] = "true", ["Backup:S3:Bucket"] = "veloz-backups",
            ["Backup:Secrets:Recipients:0"] = "backup@example.com",
        };
        foreach (var (k, v) in settings)
        {
            all[k] = v;
        }

        return BackupConfiguration.Load(new ConfigurationBuilder().AddInMemoryCollection(all).Build());
    }
}
