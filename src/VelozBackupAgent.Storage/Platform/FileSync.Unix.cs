using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using Microsoft.Win32.SafeHandles;

namespace VelozBackupAgent.Storage.Platform;

public static partial class FileSync
{
    [SupportedOSPlatform("linux")]
    [SupportedOSPlatform("macos")]
    [SupportedOSPlatform("freebsd")]
    private static void FsyncDirectoryUnix(string directory)
    {
        var fd = LibC.Open(directory, LibC.ORdOnly | (OperatingSystem.IsLinux() ? LibC.ODirectory : 0));
        if (fd < 0)
        {
            throw new IOException($"cannot open directory {directory} to fsync it (errno {Marshal.GetLastPInvokeError()})");
        }

        try
        {
            if (LibC.Fsync(fd) != 0)
            {
                throw new IOException($"fsync of directory {directory} failed (errno {Marshal.GetLastPInvokeError()})");
            }
        }
        finally
        {
            _ = LibC.Close(fd);
        }
    }

    [SupportedOSPlatform("linux")]
    [SupportedOSPlatform("macos")]
    [SupportedOSPlatform("freebsd")]
    private static void SyncDataUnix(string path)
    {
        var fd = LibC.Open(path, LibC.ORdOnly | (OperatingSystem.IsLinux() ? LibC.OCloExec : 0));
        if (fd < 0)
        {
            throw new IOException($"cannot open {path} to fsync it (errno {Marshal.GetLastPInvokeError()})");
        }

        try
        {
            if ((OperatingSystem.IsLinux() ? LibC.Fdatasync(fd) : LibC.Fsync(fd)) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                throw new IOException($"fsync of {path} failed: {Marshal.GetPInvokeErrorMessage(errno)}", errno);
            }
        }
        finally
        {
            _ = LibC.Close(fd);
        }
    }

    [SupportedOSPlatform("linux")]
    private static void StartWritebackLinux(SafeFileHandle handle)
    {
        const uint SyncFileRangeWrite = 2;
        _ = LibC.SyncFileRange((int)handle.DangerousGetHandle(), 0, 0, SyncFileRangeWrite);
    }
}
