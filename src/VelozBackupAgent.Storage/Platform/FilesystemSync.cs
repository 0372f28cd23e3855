using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Storage.Platform;

/// <summary>
/// One <c>syncfs(2)</c> for a whole batch of small files: the kernel writes back every dirty page and inode of the
/// filesystem holding the directory and commits the journal once, where one <c>fdatasync</c> per file costs a journal
/// commit (and a cache flush) per file. The descriptor is opened before the batch writes anything, because since
/// Linux 5.8 <c>syncfs</c> reports a write-back error of <em>any</em> file of that filesystem that happened after the
/// descriptor was opened — so an I/O error on one of the batch's files is an error here, as it would be from its own
/// <c>fdatasync</c>. Linux only (<see cref="TryOpen"/> returns null elsewhere and the batch syncs file by file).
/// </summary>
/// <remarks>
/// The price is that the call also flushes other processes' dirty data on the same filesystem; the batch uses it
/// only when it holds many small files (<see cref="LocalWriteBatch"/>), where per-file syncs are the whole cost.
/// </remarks>
[SupportedOSPlatform("linux")]
internal sealed class FilesystemSync : IDisposable
{
    private readonly string _directory;
    private int _fd;

    private FilesystemSync(string directory, int fd)
    {
        _directory = directory;
        _fd = fd;
    }

    /// <summary>A descriptor on <paramref name="directory"/>'s filesystem, or null off Linux or when it cannot be opened.</summary>
    public static FilesystemSync? TryOpen(string directory)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        var fd = LibC.Open(directory, LibC.ORdOnly | LibC.ODirectory | LibC.OCloExec);
        return fd < 0 ? null : new FilesystemSync(directory, fd);
    }

    /// <summary>Makes everything written on the filesystem since <see cref="TryOpen"/> durable, or throws.</summary>
    public void Sync()
    {
        ObjectDisposedException.ThrowIf(_fd < 0, this);
        if (LibC.Syncfs(_fd) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"syncfs of the filesystem holding {_directory} failed: {Marshal.GetPInvokeErrorMessage(errno)}", errno);
        }
    }

    public void Dispose()
    {
        if (_fd >= 0)
        {
            _ = LibC.Close(_fd);
            _fd = -1;
        }
    }
}
