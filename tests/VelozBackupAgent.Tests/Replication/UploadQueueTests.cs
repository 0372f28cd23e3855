using VelozBackupAgent.Replication;

namespace VelozBackupAgent.Tests.Replication;

public sealed class UploadQueueTests : IDisposable
{
    private readonly string _state = Directory.CreateTempSubdirectory("veloz-queue-").FullName;

    public void Dispose() => Directory.Delete(_state, recursive: true);

    [Fact]
    public void Survives_a_new_instance_like_a_restart()
    {
        new UploadQueue(_state).Enqueue("database", "veloz_20260214_120000.dump");
        new UploadQueue(_state).Enqueue("config", "config_20260214_120000.tar.gz");

        var pending = new UploadQueue(_state).Pending();
        pending.Select(p => (p.Kind, p.Name)).Should().BeEquivalentTo(new[]
        {
            ("database", "veloz_20260214_120000.dump"),
            ("config", "config_20260214_120000.tar.gz"),
        });
    }

    [Fact]
    public void Enqueue_is_idempotent_and_complete_removes()
    {
        var q = new UploadQueue(_state);
        q.Enqueue("wal", "orders_0000000000000001.wal");
        q.Enqueue("wal", "orders_0000000000000001.wal");
        q.Pending().Should().ContainSingle();
        q.Complete("wal", "orders_0000000000000001.wal");
        q.Pending().Should().BeEmpty();
    }

    [Fact]
    public void Refuses_names_that_would_escape_the_queue()
    {
        var q = new UploadQueue(_state);
        var enqueue = () => q.Enqueue("wal", "../../etc/passwd");
        enqueue.Should().Throw<ArgumentException>();
    }

    [Fact]
    public void Markers_are_private()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var q = new UploadQueue(_state);
        q.Enqueue("secrets", "secrets_20260214_120000.tar.gz.gpg");
        File.GetUnixFileMode(Path.Combine(_state, "upload-queue", "secrets", "secrets_20260214_120000.tar.gz.gpg"))
            .Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }
}
