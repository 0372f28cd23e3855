using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using Microsoft.Win32.SafeHandles;

namespace VelozBackupAgent.Storage.Platform;

/// <summary>Opening a file for reading without the advisory lock .NET takes on Unix.</summary>
public static class UnlockedOpen
{
    /// <summary>
    /// A plain <c>open(O_RDONLY | O_NONBLOCK | O_CLOEXEC)</c> of <paramref name="path"/>: .NET's own
    /// FileStream/OpenHandle takes a shared <c>flock</c> on every file it reads, which would make a writer that locks
    /// its files (<c>flock LOCK_EX|LOCK_NB</c>) fail while a backup happens to be reading. O_NONBLOCK keeps a FIFO from
    /// hanging us. Null with the <paramref name="errno"/> when it fails. Linux only (the flag values are Linux's);
    /// elsewhere <see cref="File.OpenHandle"/> with <see cref="FileShare.ReadWrite"/> | <see cref="FileShare.Delete"/>.
    /// </summary>
    [SupportedOSPlatform("linux")]
    public static SafeFileHandle? OpenRead(string path, out int errno)
    {
        var fd = LibC.Open(path, LibC.ORdOnly | LibC.ONonBlock | LibC.OCloExec);
        if (fd < 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return null;
        }

        errno = 0;
        return new SafeFileHandle(fd, ownsHandle: true);
    }
}
