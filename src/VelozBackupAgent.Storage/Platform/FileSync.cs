using Microsoft.Win32.SafeHandles;

namespace VelozBackupAgent.Storage.Platform;

/// <summary>
/// Durability of files and directory entries, the way each system offers it (<c>FileSync.Unix.cs</c>,
/// <c>FileSync.Windows.cs</c>). The one public way domain code makes a rename durable.
/// </summary>
public static partial class FileSync
{
    /// <summary>
    /// Makes a rename or unlink in <paramref name="directory"/> durable: after a crash the directory entry is either
    /// there or not, never lost after we reported success. On Windows a no-op: there is no directory fsync (NTFS
    /// journals the rename itself; a directory handle cannot be flushed without backup privileges).
    /// </summary>
    public static void FsyncDirectory(string directory)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        if (!LibC.IsSupported)
        {
            throw Unsupported("directory fsync");
        }

        FsyncDirectoryUnix(directory);
    }

    /// <summary>
    /// Makes the file at <paramref name="path"/> durable (its bytes and what is needed to read them back:
    /// <c>fdatasync(2)</c> on Linux, <c>fsync</c> on other Unix, <c>FlushFileBuffers</c> on Windows).
    /// </summary>
    public static void SyncData(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            SyncDataWindows(path);
            return;
        }

        if (!LibC.IsSupported)
        {
            throw Unsupported("fsync");
        }

        SyncDataUnix(path);
    }

    /// <summary>
    /// Asks the kernel to start writing <paramref name="handle"/>'s dirty pages back now, without waiting
    /// (<c>sync_file_range(SYNC_FILE_RANGE_WRITE)</c>): a batch whose files are all under way before the first
    /// <see cref="SyncData"/> lets that one journal commit cover the block allocations of all of them. Only a hint,
    /// it makes nothing durable; a no-op off Linux or when the call fails.
    /// </summary>
    public static void StartWriteback(SafeFileHandle handle)
    {
        ArgumentNullException.ThrowIfNull(handle);
        if (OperatingSystem.IsLinux())
        {
            StartWritebackLinux(handle);
        }
    }

    private static PlatformNotSupportedException Unsupported(string what) =>
        new($"{what} is implemented for Linux, other Unix systems and Windows only");
}
