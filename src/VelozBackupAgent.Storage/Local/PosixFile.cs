using System.Runtime.InteropServices;

namespace VelozBackupAgent.Storage.Local;

/// <summary>The few POSIX calls .NET does not expose: fsync of a directory, liveness of a pid.</summary>
internal static partial class PosixFile
{
    private const int ORdOnly = 0;
    private const int ODirectory = 0x10000; // Linux x86_64/arm64 value of O_DIRECTORY

    /// <summary>
    /// Makes a rename or unlink in <paramref name="directory"/> durable: after a crash the directory
    /// entry is either there or not, never lost after we reported success. No-op on Windows.
    /// </summary>
    public static void FsyncDirectory(string directory)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var fd = Open(directory, ORdOnly | (OperatingSystem.IsLinux() ? ODirectory : 0));
        if (fd < 0)
        {
            throw new IOException($"cannot open directory {directory} to fsync it (errno {Marshal.GetLastPInvokeError()})");
        }

        try
        {
            if (Fsync(fd) != 0)
            {
                throw new IOException($"fsync of directory {directory} failed (errno {Marshal.GetLastPInvokeError()})");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    /// <summary>True when a process with this id exists (kill(pid, 0) succeeds or is refused for permission).</summary>
    public static bool ProcessExists(int pid)
    {
        if (pid <= 0)
        {
            return false;
        }

        if (OperatingSystem.IsWindows())
        {
            try
            {
                using var p = System.Diagnostics.Process.GetProcessById(pid);
                return !p.HasExited;
            }
            catch (ArgumentException)
            {
                return false;
            }
        }

        if (Kill(pid, 0) == 0)
        {
            return true;
        }

        const int EPERM = 1;
        return Marshal.GetLastPInvokeError() == EPERM;
    }

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/> (e.g. SIGINT = 2, to let a child stop cleanly); false when it failed.</summary>
    public static bool Signal(int pid, int signal) => !OperatingSystem.IsWindows() && pid > 0 && Kill(pid, signal) == 0;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
