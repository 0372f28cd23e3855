using System.Globalization;

namespace VelozBackupAgent.Pitr;

/// <summary>What a point-in-time restore stops at.</summary>
public enum PitrTargetKind
{
    /// <summary>The end of all stored WAL.</summary>
    Latest,

    /// <summary><c>recovery_target_time</c>: the last commit at or before the time is kept.</summary>
    Time,

    /// <summary><c>recovery_target_lsn</c>: replay up to and including the WAL position.</summary>
    Lsn,

    /// <summary><c>recovery_target_xid</c>: up to and including the commit of the transaction.</summary>
    Xid,

    /// <summary><c>recovery_target_name</c>: the restore point made with <c>pg_create_restore_point()</c>.</summary>
    Name,

    /// <summary>The time of the newest commit in the stored WAL (the drill's "specific time"); the end of the WAL when none.</summary>
    LastCommit,
}

/// <summary>A recovery target, as the operator gave it, and the PostgreSQL settings it becomes.</summary>
public sealed record PitrTarget(PitrTargetKind Kind, DateTimeOffset? Time = null, Lsn? Position = null, string? Xid = null, string? Name = null)
{
    public static PitrTarget Latest { get; } = new(PitrTargetKind.Latest);

    /// <summary>The newest commit the stored WAL holds: resolved to a <see cref="PitrTargetKind.Time"/> target once the WAL is read.</summary>
    public static PitrTarget LastCommit { get; } = new(PitrTargetKind.LastCommit);

    /// <summary>For messages: <c>time 2026-11-23 09:55:00+00</c>, <c>LSN 0/5000060</c>, …</summary>
    public string Describe() => Kind switch
    {
        PitrTargetKind.Time => "time " + FormatTime(Time!.Value),
        PitrTargetKind.Lsn => $"LSN {Position}",
        PitrTargetKind.Xid => $"transaction {Xid}",
        PitrTargetKind.Name => $"restore point '{Name}'",
        PitrTargetKind.LastCommit => "the newest stored commit",
        _ => "the end of the stored WAL (latest)",
    };

    /// <summary>The recovery_target_* setting (none for latest). Times are written in UTC with an explicit zone.</summary>
    public (string Key, string Value)? Setting() => Kind switch
    {
        PitrTargetKind.Time => ("recovery_target_time", FormatTime(Time!.Value)),
        PitrTargetKind.Lsn => ("recovery_target_lsn", Position!.Value.ToString()),
        PitrTargetKind.Xid => ("recovery_target_xid", Xid!),
        PitrTargetKind.Name => ("recovery_target_name", Name!),
        _ => null,
    };

    /// <summary>
    /// Exactly one of the targets (or none: latest). TIME is ISO 8601, with or without a zone: without one it is UTC.
    /// Throws <see cref="ArgumentException"/> with a one-line message.
    /// </summary>
    public static PitrTarget Parse(string? time, string? lsn, string? xid, string? name)
    {
        var given = new[] { time, lsn, xid, name }.Count(v => !string.IsNullOrWhiteSpace(v));
        if (given > 1)
        {
            throw new ArgumentException("give one target: --target-time, --target-lsn, --target-xid or --target-name (none: the end of the stored WAL)");
        }

        if (!string.IsNullOrWhiteSpace(time))
        {
            return DateTimeOffset.TryParse(time, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t)
                ? new PitrTarget(PitrTargetKind.Time, Time: t)
                : throw new ArgumentException($"--target-time: not a time: '{time}' (ISO 8601, e.g. 2026-11-23T09:55:00Z or 2026-11-23 11:55:00+02:00; without a zone it is UTC)");
        }

        if (!string.IsNullOrWhiteSpace(lsn))
        {
            return Lsn.TryParse(lsn, out var l) && l != Lsn.Invalid
                ? new PitrTarget(PitrTargetKind.Lsn, Position: l)
                : throw new ArgumentException($"--target-lsn: not a WAL position: '{lsn}' (e.g. 0/5000060, as pg_current_wal_lsn() prints it)");
        }

        if (!string.IsNullOrWhiteSpace(xid))
        {
            return ulong.TryParse(xid, NumberStyles.None, CultureInfo.InvariantCulture, out var x) && x is > 2 and <= uint.MaxValue
                ? new PitrTarget(PitrTargetKind.Xid, Xid: x.ToString(CultureInfo.InvariantCulture))
                : throw new ArgumentException($"--target-xid: not a transaction id: '{xid}' (a number, as txid_current() printed it)");
        }

        if (!string.IsNullOrWhiteSpace(name))
        {
            return name.Length <= 63 && !name.Contains('\'', StringComparison.Ordinal) && !name.Any(char.IsControl)
                ? new PitrTarget(PitrTargetKind.Name, Name: name)
                : throw new ArgumentException($"--target-name: not a restore point name: '{name}' (at most 63 characters, no quote)");
        }

        return Latest;
    }

    internal static string FormatTime(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00";
}
