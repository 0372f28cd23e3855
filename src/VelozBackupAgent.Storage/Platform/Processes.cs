using System.Globalization;
using System.Runtime.InteropServices;

namespace VelozBackupAgent.Storage.Platform;

/// <summary>Other processes by id: whether one exists, when it started, a signal to it.</summary>
public static class Processes
{
    /// <summary>
    /// True when a process with this id exists: on Unix kill(pid, 0) succeeds or is refused for permission; on
    /// Windows <see cref="System.Diagnostics.Process.GetProcessById(int)"/> finds it and it has not exited.
    /// </summary>
    public static bool Exists(int pid)
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

        if (!LibC.IsSupported)
        {
            return false;
        }

        if (LibC.Kill(pid, 0) == 0)
        {
            return true;
        }

        return Marshal.GetLastPInvokeError() == LibC.EPERM;
    }

    /// <summary>
    /// True when the process <paramref name="pid"/> that named a temporary file may still be writing it: it exists, and
    /// (on Linux) it did not start after the file was last written, which would make it a newer process that only
    /// reuses the pid of the dead writer.
    /// </summary>
    public static bool IsWriterAlive(int pid, DateTimeOffset lastWritten)
    {
        if (!Exists(pid))
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
    public static DateTimeOffset? StartTime(int pid)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        try
        {
            // "pid (comm) state ppid …": comm may hold spaces and parentheses, so fields are counted after the last ')'.
            var stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var ticks = long.Parse(fields[19], CultureInfo.InvariantCulture); // field 22, starttime
            var bootLine = File.ReadLines("/proc/stat").First(l => l.StartsWith("btime ", StringComparison.Ordinal));
            var boot = long.Parse(bootLine[6..].Trim(), CultureInfo.InvariantCulture);
            var hz = LibC.SysConf(LibC.SysConfClockTicks);
            return DateTimeOffset.FromUnixTimeSeconds(boot).AddSeconds(ticks / (double)(hz > 0 ? hz : 100));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>
    /// Sends <paramref name="signal"/> to <paramref name="pid"/> (e.g. SIGINT = 2, to let a child stop cleanly); false
    /// when it failed, and always on Windows (no signals: the caller stops the process its own way).
    /// </summary>
    public static bool Signal(int pid, int signal) => LibC.IsSupported && pid > 0 && LibC.Kill(pid, signal) == 0;
}
