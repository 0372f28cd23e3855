using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Restore;
using VelozBackupAgent.Sources;

namespace VelozBackupAgent.Pitr;

/// <summary>A commit or restore point <c>pg_waldump</c> printed.</summary>
/// <param name="Position">Where its record starts.</param>
/// <param name="Xid">The transaction (commits).</param>
/// <param name="Time">The commit's time, or null for a restore point without one.</param>
/// <param name="RestorePoint">The restore point's name, for RESTORE_POINT records.</param>
public sealed record WalEvent(Lsn Position, string? Xid, DateTimeOffset? Time, string? RestorePoint);

/// <summary>
/// Reads staged WAL with <c>pg_waldump</c> (the server's own reader) before a restore stops anything: the newest commit
/// (so a time target past the end of the WAL is refused up front, not by a server that then will not start), the commit
/// of a target transaction, a restore point by name, and WAL that cannot be read at all.
/// </summary>
public sealed partial class WalDump
{
    private readonly string _pgWalDump;
    private readonly ILogger _logger;

    public WalDump(string pgWalDump, ILogger logger)
    {
        _pgWalDump = pgWalDump;
        _logger = logger;
    }

    /// <summary>
    /// Commits and restore points in [<paramref name="start"/>, <paramref name="end"/>) of the staged directory, along
    /// the staged files' timelines (the steps' order). A record pg_waldump cannot read before the last staged segment is
    /// an error: replay would stop there.
    /// </summary>
    public async Task<IReadOnlyList<WalEvent>> EventsAsync(string directory, IReadOnlyList<WalReplayStep> steps, long segmentSize, Lsn start, Lsn end, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(steps);
        var events = new List<WalEvent>();
        var runs = new List<(uint Timeline, Lsn From, Lsn To)>();
        foreach (var step in steps)
        {
            var from = step.File.StartLsn(segmentSize);
            var to = from + step.CoveredBytes;
            if (to <= start || from >= end)
            {
                continue;
            }

            from = from < start ? start : from;
            to = to > end ? end : to;
            if (runs.Count > 0 && runs[^1].Timeline == step.File.Timeline && runs[^1].To == from)
            {
                runs[^1] = (runs[^1].Timeline, runs[^1].From, to);
            }
            else
            {
                runs.Add((step.File.Timeline, from, to));
            }
        }

        var lastSegmentStart = steps.Count == 0 ? Lsn.Invalid : steps[^1].File.StartLsn(segmentSize);
        foreach (var (timeline, from, to) in runs)
        {
            if (to <= from)
            {
                continue;
            }

            var output = await RunAsync(directory, timeline, from, to, lastSegmentStart, cancellationToken);
            foreach (var line in output.Split('\n'))
            {
                if (Parse(line) is { } e)
                {
                    events.Add(e);
                }
            }
        }

        return events;
    }

    /// <summary>Reads one pg_waldump line; null for records that are neither a commit nor a restore point.</summary>
    internal static WalEvent? Parse(string line)
    {
        var m = RecordRegex().Match(line);
        if (!m.Success || !Lsn.TryParse(m.Groups["lsn"].Value, out var lsn))
        {
            return null;
        }

        var desc = m.Groups["desc"].Value;
        var commit = CommitRegex().Match(desc);
        if (commit.Success)
        {
            var time = DateTimeOffset.TryParseExact(commit.Groups["time"].Value, ["yyyy-MM-dd HH:mm:ss.ffffff", "yyyy-MM-dd HH:mm:ss"], CultureInfo.InvariantCulture,
                DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t) ? t : (DateTimeOffset?)null;
            return new WalEvent(lsn, m.Groups["xid"].Value, time, null);
        }

        var point = RestorePointRegex().Match(desc);
        return point.Success ? new WalEvent(lsn, null, null, point.Groups["name"].Value.TrimEnd()) : null;
    }

    private async Task<string> RunAsync(string directory, uint timeline, Lsn from, Lsn to, Lsn lastSegmentStart, CancellationToken cancellationToken)
    {
        var arguments = new List<string>
        {
            "--path=" + directory, "--timeline=" + timeline.ToString(CultureInfo.InvariantCulture),
            "--start=" + from, "--end=" + to, "--rmgr=Transaction", "--rmgr=XLOG",
        };
        var spec = new ChildProcessSpec(_pgWalDump, arguments, "pg_waldump")
        {
            // Commit times in UTC, whatever the machine's zone.
            Environment = new Dictionary<string, string?> { ["TZ"] = "UTC", ["PGTZ"] = "UTC" },
            Inherit = InheritedVariables.Libpq,
            InstallHint = "pg_waldump comes with the PostgreSQL server package (e.g. postgresql-15); set Backup:Database:BinDirectory to its bin directory",
        };
        await using var child = ChildProcess.Start(spec, _logger);
        using var reader = new StreamReader(child.Output);
        var output = new System.Text.StringBuilder();
        try
        {
            while (await reader.ReadLineAsync(cancellationToken) is { } line)
            {
                output.AppendLine(line);
            }
        }
        catch (BackupSourceException ex)
        {
            // pg_waldump ends with an error where the valid WAL ends (zeros after the last record of a partial segment,
            // or a record torn by the receiver's last write): normal at the end, a problem anywhere earlier.
            var at = ErrorAtRegex().Match(ex.Message);
            if (at.Success && Lsn.TryParse(at.Groups["lsn"].Value, out var bad) && bad < lastSegmentStart)
            {
                throw new RestoreIntegrityException($"the stored WAL cannot be read at {bad} on timeline {timeline} (pg_waldump: {ex.Message}): replay would stop there; nothing was stopped", ex);
            }

            if (!at.Success && !ex.Message.Contains("invalid record", StringComparison.OrdinalIgnoreCase) && !ex.Message.Contains("could not find file", StringComparison.OrdinalIgnoreCase))
            {
                throw new RestoreException($"pg_waldump could not read the staged WAL: {ex.Message}", ex);
            }
        }

        return output.ToString();
    }

    [GeneratedRegex(@"^rmgr: \S+\s+len \(rec/tot\):\s+\d+/\s*\d+, tx:\s+(?<xid>\d+), lsn: (?<lsn>[0-9A-F]+/[0-9A-F]+), prev [0-9A-F]+/[0-9A-F]+, desc: (?<desc>.*)$")]
    private static partial Regex RecordRegex();

    [GeneratedRegex(@"^COMMIT (?<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?) UTC")]
    private static partial Regex CommitRegex();

    [GeneratedRegex(@"^RESTORE_POINT (?<name>.*)$")]
    private static partial Regex RestorePointRegex();

    [GeneratedRegex(@"(?:error in WAL record at|invalid record length at|invalid magic number \w+ in log segment \S+, offset \d+|at) (?<lsn>[0-9A-F]+/[0-9A-F]+)")]
    private static partial Regex ErrorAtRegex();
}
