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
/// line. A descendant stays known after its parent exits (a postmaster that pg_ctl left behind), so its children count too.
/// </summary>
public sealed class ProcessTreeSampler : IAsyncDisposable
{
    private readonly string _marker;
    private readonly HashSet<int> _agents = [];
    private readonly Dictionary<int, string> _known = [];
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
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && ParentOf(pid) is { } parent)
                {
                    parents[pid] = parent;
                }
            }

            foreach (var (pid, parent) in parents)
            {
                if (parent == self && !_agents.Contains(pid) && ReadText(pid, "cmdline").Contains(_marker, StringComparison.Ordinal))
                {
                    _agents.Add(pid);
                }
            }

            // Parents before children: repeat until no new descendant turns up.
            bool added;
            do
            {
                added = false;
                foreach (var (pid, parent) in parents)
                {
                    if (!_agents.Contains(pid) && !_known.ContainsKey(pid) && (_agents.Contains(parent) || _known.ContainsKey(parent)))
                    {
                        _known[pid] = "";
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
                if (cmdline.Length == 0 || cmdline == _known[pid])
                {
                    continue;
                }

                var environ = ReadText(pid, "environ");
                _known[pid] = cmdline;
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

    private static int? ParentOf(int pid)
    {
        var stat = ReadText(pid, "stat");
        var close = stat.LastIndexOf(')');
        if (close < 0 || close + 2 >= stat.Length)
        {
            return null;
        }

        var fields = stat[(close + 2)..].Split(' ');
        return fields.Length > 1 && int.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var parent) ? parent : null;
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
