using System.Globalization;
using System.Text;

namespace VelozBackupAgent.IntegrationTests.Infrastructure;

/// <summary>One look at a running process: its argv and its environment as /proc shows them.</summary>
/// <param name="Pid">The process.</param>
/// <param name="Arguments">/proc/PID/cmdline, split at NUL.</param>
/// <param name="Environment">/proc/PID/environ as NAME → value (empty when it could not be read).</param>
/// <param name="RawEnvironment">/proc/PID/environ as it is (NULs kept), to search for a secret anywhere in it.</param>
/// <param name="RawCommandLine">/proc/PID/cmdline as it is.</param>
public sealed record ProcessSnapshot(int Pid, IReadOnlyList<string> Arguments, IReadOnlyDictionary<string, string> Environment, string RawEnvironment, string RawCommandLine)
{
    /// <summary>True when an argument is <paramref name="program"/> or a path ending in <c>/program</c>.</summary>
    public bool Runs(string program) => Arguments.Any(a => a == program || a.EndsWith("/" + program, StringComparison.Ordinal));

    public override string ToString() => $"{Pid}: {string.Join(' ', Arguments)}";
}

/// <summary>
/// Watches, from a background thread, every process descended from the real veloz-backup binaries this test process
/// started (the agent's children, and theirs, e.g. the restore_command a recovering server runs), and records each one's
/// /proc/PID/cmdline and /proc/PID/environ while it runs: at first sight and again after an exec changes its command
/// line. A descendant stays known after its parent exits (a postmaster that pg_ctl left behind), so its children count
/// too; a pid is forgotten once it is gone or has another start time, so a reused pid is not taken for a descendant.
/// </summary>
public sealed class ProcessTreeSampler : IAsyncDisposable
{
    private readonly string _marker;
    // By pid, with the start time from /proc/PID/stat: a pid that comes back with another start time is another process.
    private readonly Dictionary<int, long> _agents = [];
    private readonly Dictionary<int, (long Started, string CommandLine)> _known = [];
    private readonly List<ProcessSnapshot> _snapshots = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    /// <param name="agentMarker">An argument that marks the agent itself (e.g. the path of veloz-backup.dll).</param>
    public ProcessTreeSampler(string agentMarker)
    {
        _marker = agentMarker;
        _loop = Task.Factory.StartNew(Loop, TaskCreationOptions.LongRunning);
    }

    /// <summary>How many times /proc was scanned.</summary>
    public int Scans { get; private set; }

    /// <summary>Every snapshot so far.</summary>
    public IReadOnlyList<ProcessSnapshot> Snapshots
    {
        get
        {
            lock (_snapshots)
            {
                return [.. _snapshots];
            }
        }
    }

    private void Loop()
    {
        var self = System.Environment.ProcessId;
        while (!_stop.IsCancellationRequested)
        {
            var parents = new Dictionary<int, int>();
            var started = new Dictionary<int, long>();
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && Stat(pid) is { } stat)
                {
                    parents[pid] = stat.Parent;
                    started[pid] = stat.Started;
                }
            }

            // A pid that is gone, or back with another start time, is forgotten: pids are reused quickly on a busy machine.
            foreach (var gone in _agents.Where(a => started.GetValueOrDefault(a.Key, -1) != a.Value).Select(a => a.Key).ToList())
            {
                _agents.Remove(gone);
            }

            foreach (var gone in _known.Where(k => started.GetValueOrDefault(k.Key, -1) != k.Value.Started).Select(k => k.Key).ToList())
            {
                _known.Remove(gone);
            }

            foreach (var (pid, parent) in parents)
            {
                if (parent == self && !_agents.ContainsKey(pid) && ReadText(pid, "cmdline").Contains(_marker, StringComparison.Ordinal))
                {
                    _agents[pid] = started[pid];
                }
            }

            // Parents before children: repeat until no new descendant turns up.
            bool added;
            do
            {
                added = false;
                foreach (var (pid, parent) in parents)
                {
                    if (!_agents.ContainsKey(pid) && !_known.ContainsKey(pid) && (_agents.ContainsKey(parent) || _known.ContainsKey(parent)))
                    {
                        _known[pid] = (started[pid], "");
                        added = true;
                    }
                }
            }
            while (added);

            foreach (var pid in _known.Keys.ToList())
            {
                if (!parents.ContainsKey(pid))
                {
                    continue;
                }

                var cmdline = ReadText(pid, "cmdline");
                if (cmdline.Length == 0 || cmdline == _known[pid].CommandLine)
                {
                    continue;
                }

                // Between fork and execve a child is still a copy of its parent: /proc shows the parent's command line
                // and environment, not what the child will run with (that is set by the exec). Wait for the exec.
                if (cmdline == ReadText(parents[pid], "cmdline"))
                {
                    continue;
                }

                var environ = ReadText(pid, "environ");
                if (ReadText(pid, "cmdline") != cmdline)
                {
                    // It exited (or exec'd again) between the two reads: what was read of its environment is nothing
                    // (an empty read of a process that is gone) or another program's. Look again at the next scan.
                    continue;
                }

                _known[pid] = (_known[pid].Started, cmdline);
                lock (_snapshots)
                {
                    _snapshots.Add(new ProcessSnapshot(pid, cmdline.Split('\0', StringSplitOptions.RemoveEmptyEntries), ParseEnvironment(environ), environ, cmdline));
                }
            }

            Scans++;
            Thread.Sleep(5);
        }
    }

    private static Dictionary<string, string> ParseEnvironment(string environ)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in environ.Split('\0', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = entry.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                result[entry[..eq]] = entry[(eq + 1)..];
            }
        }

        return result;
    }

    /// <summary>Parent and start time (clock ticks after boot) from /proc/PID/stat: "pid (comm) S ppid … starttime …".</summary>
    private static (int Parent, long Started)? Stat(int pid)
    {
        var stat = ReadText(pid, "stat");
        var close = stat.LastIndexOf(')');
        if (close < 0 || close + 2 >= stat.Length)
        {
            return null;
        }

        // After the comm: state is field 3, ppid 4, starttime 22.
        var fields = stat[(close + 2)..].Split(' ');
        return fields.Length > 19
            && int.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var parent)
            && long.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out var started)
            ? (parent, started)
            : null;
    }

    private static string ReadText(int pid, string file)
    {
        try
        {
            return Encoding.UTF8.GetString(File.ReadAllBytes($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/{file}"));
        }
        catch (IOException)
        {
            return "";
        }
        catch (UnauthorizedAccessException)
        {
            return "";
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
