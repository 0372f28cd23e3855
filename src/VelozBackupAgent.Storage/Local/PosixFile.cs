using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace VelozBackupAgent.Storage.Local;

/// <summary>The few POSIX calls .NET does not expose: fsync of a directory, liveness of a pid.</summary>
internal static partial class PosixFile
{
    private const int ORdOnly = 0;
    private const int ODirectory = 0x10000; // Linux x86_64/arm64 value of O_DIRECTORY
    private const int OCloExec = 0x80000; // Linux x86_64/arm64 value of O_CLOEXEC

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

    /// <summary>
    /// Asks the kernel to start writing <paramref name="handle"/>'s dirty pages back now, without waiting
    /// (<c>sync_file_range(SYNC_FILE_RANGE_WRITE)</c>): a batch whose files are all under way before the first
    /// <see cref="SyncData"/> lets that one journal commit cover the block allocations of all of them. Only a hint,
    /// it makes nothing durable; a no-op off Linux or when the call fails.
    /// </summary>
    public static void StartWriteback(SafeFileHandle handle)
    {
        if (OperatingSystem.IsLinux())
        {
            const uint SyncFileRangeWrite = 2;
            _ = SyncFileRange((int)handle.DangerousGetHandle(), 0, 0, SyncFileRangeWrite);
        }
    }

    /// <summary>
    /// Makes the file at <paramref name="path"/> durable (its bytes and what is needed to read them back:
    /// <c>fdatasync(2)</c> on Linux, <c>fsync</c> elsewhere), through a read-only descriptor of its own.
    /// </summary>
    public static void SyncData(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
            stream.Flush(flushToDisk: true);
            return;
        }

        var fd = Open(path, ORdOnly | (OperatingSystem.IsLinux() ? OCloExec : 0));
        if (fd < 0)
        {
            throw new IOException($"cannot open {path} to fsync it (errno {Marshal.GetLastPInvokeError()})");
        }

        try
        {
            if ((OperatingSystem.IsLinux() ? Fdatasync(fd) : Fsync(fd)) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                throw new IOException($"fsync of {path} failed: {Marshal.GetPInvokeErrorMessage(errno)}", errno);
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

    /// <summary>
    /// True when the process <paramref name="pid"/> that named a temporary file may still be writing it: it exists, and
    /// (on Linux) it did not start after the file was last written, which would make it a newer process that only
    /// reuses the pid of the dead writer.
    /// </summary>
    public static bool IsWriterAlive(int pid, DateTimeOffset lastWritten)
    {
        if (!ProcessExists(pid))
        {
            return false;
        }

        if (pid == Environment.ProcessId)
        {
            return true;
        }

        // /proc's start time counts in clock ticks (10 ms): two seconds of slack for clocks and rounding.
        return StartTime(pid) is not { } started || started <= lastWritten + TimeSpan.FromSeconds(2);
    }

    /// <summary>When <paramref name="pid"/> started (from /proc on Linux); null elsewhere or when it cannot be read.</summary>
    internal static DateTimeOffset? StartTime(int pid)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        try
        {
            // "pid (comm) state ppid …": comm may hold spaces and parentheses, so fields are counted after the last ')'.
            var stat = File.ReadAllText($"/proc/{pid.ToString(System.Globalization.CultureInfo.InvariantCulture)}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var ticks = long.Parse(fields[19], System.Globalization.CultureInfo.InvariantCulture); // field 22, starttime
            var bootLine = File.ReadLines("/proc/stat").First(l => l.StartsWith("btime ", StringComparison.Ordinal));
            var boot = long.Parse(bootLine[6..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
            var hz = SysConf(SysConfClockTicks);
            return DateTimeOffset.FromUnixTimeSeconds(boot).AddSeconds(ticks / (double)(hz > 0 ? hz : 100));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/> (e.g. SIGINT = 2, to let a child stop cleanly); false when it failed.</summary>
    public static bool Signal(int pid, int signal) => !OperatingSystem.IsWindows() && pid > 0 && Kill(pid, signal) == 0;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int Fdatasync(int fd);

    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static partial int SyncFileRange(int fd, long offset, long nbytes, uint flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    private const int SysConfClockTicks = 2; // _SC_CLK_TCK

    [LibraryImport("libc", EntryPoint = "sysconf")]
    private static partial long SysConf(int name);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
