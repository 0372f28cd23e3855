using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace VelozBackupAgent.Storage.Local;

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
internal sealed partial class FilesystemSync : IDisposable
{
    private const int ORdOnly = 0;
    private const int ODirectory = 0x10000; // Linux x86_64/arm64 value of O_DIRECTORY
    private const int OCloExec = 0x80000; // Linux x86_64/arm64 value of O_CLOEXEC

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

        var fd = Open(directory, ORdOnly | ODirectory | OCloExec);
        return fd < 0 ? null : new FilesystemSync(directory, fd);
    }

    /// <summary>Makes everything written on the filesystem since <see cref="TryOpen"/> durable, or throws.</summary>
    public void Sync()
    {
        ObjectDisposedException.ThrowIf(_fd < 0, this);
        if (Syncfs(_fd) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"syncfs of the filesystem holding {_directory} failed: {Marshal.GetPInvokeErrorMessage(errno)}", errno);
        }
    }

    public void Dispose()
    {
        if (_fd >= 0)
        {
            _ = Close(_fd);
            _fd = -1;
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "syncfs", SetLastError = true)]
    private static partial int Syncfs(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
