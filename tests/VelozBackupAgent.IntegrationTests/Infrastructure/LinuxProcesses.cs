using System.Diagnostics;
using System.Globalization;

namespace VelozBackupAgent.IntegrationTests.Infrastructure;

/// <summary>
/// What /proc says about processes, for test clean-up: a cluster's postmaster and its children are found by
/// their working directory (PostgreSQL chdirs into its data directory) or by a path in their command line.
/// </summary>
internal static class LinuxProcesses
{
    /// <summary>True while <paramref name="pid"/> exists and is neither a zombie nor dead.</summary>
    public static bool IsAlive(int pid)
    {
        var stat = ReadStat(pid);
        return stat is not null && stat.Value.State is not ('Z' or 'X' or 'x');
    }

    /// <summary>
    /// True while /proc still lists <paramref name="pid"/>, zombies included: a killed process that PID 1 has not
    /// reaped yet still answers kill(pid, 0), so PostgreSQL's lock-file check would take it for a live postmaster.
    /// </summary>
    public static bool Exists(int pid) => Directory.Exists($"/proc/{pid}");

    /// <summary>Waits until /proc no longer lists any of <paramref name="pids"/> (reaped); false on timeout.</summary>
    public static async Task<bool> WaitVanishedAsync(IEnumerable<int> pids, TimeSpan timeout)
    {
        var left = pids.ToList();
        var watch = Stopwatch.StartNew();
        while (true)
        {
            left.RemoveAll(p => !Exists(p));
            if (left.Count == 0)
            {
                return true;
            }

            if (watch.Elapsed > timeout)
            {
                return false;
            }

            await Task.Delay(20);
        }
    }

    /// <summary>Live direct children of <paramref name="pid"/>.</summary>
    public static List<int> ChildrenOf(int pid) => [.. AllPids().Where(p => ReadStat(p) is { } s && s.ParentPid == pid && IsAlive(p))];

    /// <summary>The working directory of <paramref name="pid"/>, or null when it cannot be read.</summary>
    public static string? WorkingDirectory(int pid)
    {
        try
        {
            return new DirectoryInfo($"/proc/{pid}/cwd").ResolveLinkTarget(returnFinalTarget: false)?.FullName;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// Live processes (other than this one) whose working directory is <paramref name="root"/> or below it, or
    /// with an argument that is <paramref name="root"/> or a path below it.
    /// </summary>
    public static List<int> Under(string root)
    {
        var prefix = root.TrimEnd('/') + "/";
        var self = Environment.ProcessId;
        var found = new List<int>();
        foreach (var pid in AllPids())
        {
            if (pid == self || !IsAlive(pid))
            {
                continue;
            }

            var cwd = WorkingDirectory(pid);
            if (cwd is not null && (cwd + "/").StartsWith(prefix, StringComparison.Ordinal))
            {
                found.Add(pid);
                continue;
            }

            if (Arguments(pid).Any(a => a == prefix.TrimEnd('/') || a.Contains(prefix, StringComparison.Ordinal)))
            {
                found.Add(pid);
            }
        }

        return found;
    }

    /// <summary>SIGKILL, ignoring a process that is already gone.</summary>
    public static void Kill(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill();
        }
        catch (ArgumentException)
        {
            // gone already
        }
        catch (InvalidOperationException)
        {
            // exited meanwhile
        }
    }

    /// <summary>Waits until none of <paramref name="pids"/> is alive; false on timeout.</summary>
    public static async Task<bool> WaitGoneAsync(IEnumerable<int> pids, TimeSpan timeout)
    {
        var left = pids.ToList();
        var watch = Stopwatch.StartNew();
        while (true)
        {
            left.RemoveAll(p => !IsAlive(p));
            if (left.Count == 0)
            {
                return true;
            }

            if (watch.Elapsed > timeout)
            {
                return false;
            }

            await Task.Delay(20);
        }
    }

    private static IEnumerable<int> AllPids()
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                yield return pid;
            }
        }
    }

    private static string[] Arguments(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (IOException)
        {
            return [];
        }
        catch (UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>State and parent from /proc/PID/stat ("pid (comm) S ppid ..."; comm may hold spaces and parentheses).</summary>
    private static (char State, int ParentPid)? ReadStat(int pid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }

        var close = text.LastIndexOf(')');
        if (close < 0 || close + 2 >= text.Length)
        {
            return null;
        }

        var fields = text[(close + 2)..].Split(' ');
        return fields.Length > 1 && int.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var parent)
            ? (fields[0][0], parent)
            : null;
    }
}
