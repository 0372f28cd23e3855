using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Replication;

/// <summary>One artifact waiting to be copied to the replica.</summary>
/// <param name="Kind">Artifact kind.</param>
/// <param name="Name">Artifact name.</param>
/// <param name="EnqueuedAt">When it was queued (the marker's time).</param>
public sealed record PendingUpload(string Kind, string Name, DateTimeOffset EnqueuedAt);

/// <summary>
/// A durable queue of local artifacts that the replica lacks: one empty marker file per artifact under
/// <c>&lt;state&gt;/upload-queue/&lt;kind&gt;/&lt;name&gt;</c>. Creating a marker is one small file, so a local backup
/// never waits on S3; markers survive restarts and crashes, and any process (the daemon or a one-shot
/// CLI run) can add to the queue that the daemon drains. A marker lost in a crash is not a lost upload:
/// the replicator's periodic reconciliation compares both stores and queues whatever is missing.
/// </summary>
public sealed class UploadQueue
{
    private readonly string _directory;

    /// <param name="stateDirectory">The agent's state directory (<c>&lt;LocalRoot&gt;/.state</c>).</param>
    public UploadQueue(string stateDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(stateDirectory);
        _directory = Path.Combine(stateDirectory, "upload-queue");
    }

    /// <summary>Queues an artifact; queuing one that is already queued is a no-op.</summary>
    public void Enqueue(string kind, string name)
    {
        ArtifactNames.Validate(kind, name);
        var dir = Path.Combine(_directory, kind);
        CreatePrivateDirectory(dir);
        var marker = Path.Combine(dir, name);
        if (File.Exists(marker))
        {
            return;
        }

        using (var f = PrivateFiles.Open(marker, FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite))
        {
            f.Flush(flushToDisk: true);
        }

        FileSync.FsyncDirectory(dir);
    }

    /// <summary>Removes an artifact from the queue (it reached the replica, or it no longer exists locally).</summary>
    public void Complete(string kind, string name)
    {
        ArtifactNames.Validate(kind, name);
        File.Delete(Path.Combine(_directory, kind, name));
    }

    /// <summary>Everything queued, oldest first.</summary>
    public IReadOnlyList<PendingUpload> Pending()
    {
        var result = new List<PendingUpload>();
        if (!Directory.Exists(_directory))
        {
            return result;
        }

        foreach (var kindDir in new DirectoryInfo(_directory).EnumerateDirectories())
        {
            foreach (var marker in kindDir.EnumerateFiles())
            {
                result.Add(new PendingUpload(kindDir.Name, marker.Name, new DateTimeOffset(marker.LastWriteTimeUtc, TimeSpan.Zero)));
            }
        }

        result.Sort((a, b) => a.EnqueuedAt != b.EnqueuedAt ? a.EnqueuedAt.CompareTo(b.EnqueuedAt) : string.CompareOrdinal(a.Name, b.Name));
        return result;
    }

    private static void CreatePrivateDirectory(string dir) => PrivateFiles.CreateDirectory(dir);
}
