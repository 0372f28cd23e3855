using System.Globalization;

namespace VelozBackupAgent.Pitr;

/// <summary>
/// A base backup's <c>backup_label</c>, parsed as PostgreSQL's <c>read_backup_label</c> does: where replay must start
/// (<see cref="StartLsn"/> on <see cref="StartTimeline"/>) and the checkpoint it begins from.
/// </summary>
/// <param name="StartLsn">START WAL LOCATION.</param>
/// <param name="StartWalFile">The file named after START WAL LOCATION.</param>
/// <param name="StartTimeline">START TIMELINE (PostgreSQL 11+; before that, the file's timeline).</param>
/// <param name="CheckpointLsn">CHECKPOINT LOCATION.</param>
/// <param name="BackupMethod">BACKUP METHOD (streamed, pg_start_backup).</param>
/// <param name="BackupFrom">BACKUP FROM (primary, standby).</param>
/// <param name="StartTimeText">START TIME as written, with the server's time zone abbreviation.</param>
/// <param name="StartTime">START TIME when its zone is UTC/GMT or a numeric offset; null for other abbreviations, which cannot be resolved safely.</param>
/// <param name="Label">LABEL.</param>
public sealed record BackupLabel(
    Lsn StartLsn, WalFileName StartWalFile, uint StartTimeline, Lsn CheckpointLsn, string? BackupMethod, string? BackupFrom, string? StartTimeText, DateTimeOffset? StartTime, string? Label)
{
    /// <summary>Parses the file's text; <see cref="FormatException"/> (one line) when START WAL LOCATION or CHECKPOINT LOCATION is missing or malformed, or the timelines disagree.</summary>
    public static BackupLabel Parse(string content)
    {
        ArgumentNullException.ThrowIfNull(content);
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var raw in content.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            var colon = line.IndexOf(": ", StringComparison.Ordinal);
            if (line.Length == 0 || colon <= 0)
            {
                continue;
            }

            if (!fields.TryAdd(line[..colon], line[(colon + 2)..]))
            {
                throw new FormatException($"backup_label: {PitrText.Quote(line[..colon])} appears twice");
            }
        }

        var (startLsn, file) = StartLocation(Required(fields, "START WAL LOCATION"));
        if (!Lsn.TryParse(Required(fields, "CHECKPOINT LOCATION"), out var checkpoint))
        {
            throw new FormatException($"backup_label: CHECKPOINT LOCATION {PitrText.Quote(fields["CHECKPOINT LOCATION"])} is not an LSN");
        }

        var timeline = file.Timeline;
        if (fields.TryGetValue("START TIMELINE", out var tliText)
            && (!uint.TryParse(tliText, NumberStyles.None, CultureInfo.InvariantCulture, out timeline) || timeline != file.Timeline))
        {
            throw new FormatException($"backup_label: START TIMELINE {PitrText.Quote(tliText)} does not match the timeline of {file}");
        }

        if (checkpoint < startLsn)
        {
            throw new FormatException($"backup_label: CHECKPOINT LOCATION {checkpoint} is before START WAL LOCATION {startLsn}");
        }

        var startTime = fields.GetValueOrDefault("START TIME");
        return new BackupLabel(startLsn, file, timeline, checkpoint, fields.GetValueOrDefault("BACKUP METHOD"), fields.GetValueOrDefault("BACKUP FROM"),
            startTime, startTime is null ? null : ParseTime(startTime), fields.GetValueOrDefault("LABEL"));
    }

    /// <summary>Null when <see cref="StartWalFile"/> is the segment holding <see cref="StartLsn"/> for <paramref name="segSize"/>; else one line.</summary>
    public string? CheckSegmentSize(long segSize)
    {
        var expected = WalFileName.Containing(StartTimeline, StartLsn, segSize);
        return expected == StartWalFile ? null : $"backup_label names {StartWalFile} for {StartLsn}, but with {segSize}-byte segments that is {expected}";
    }

    private static string Required(Dictionary<string, string> fields, string key) =>
        fields.TryGetValue(key, out var value) ? value : throw new FormatException($"backup_label has no {key} line");

    /// <summary><c>0/3000028 (file 000000010000000000000003)</c>.</summary>
    private static (Lsn, WalFileName) StartLocation(string text)
    {
        const string FileMarker = " (file ";
        var at = text.IndexOf(FileMarker, StringComparison.Ordinal);
        if (at > 0 && text.EndsWith(')') && Lsn.TryParse(text.AsSpan(0, at), out var lsn)
            && WalFileName.TryParse(text.AsSpan(at + FileMarker.Length, text.Length - at - FileMarker.Length - 1), out var file))
        {
            return (lsn, file);
        }

        throw new FormatException($"backup_label: START WAL LOCATION {PitrText.Quote(text)} is not '%X/%X (file <segment>)'");
    }

    /// <summary><c>2026-12-01 22:08:02 UTC</c> (PostgreSQL's <c>%Y-%m-%d %H:%M:%S %Z</c>).</summary>
    private static DateTimeOffset? ParseTime(string text)
    {
        var space = text.LastIndexOf(' ');
        if (space < 0 || !DateTime.TryParseExact(text[..space], "yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture, DateTimeStyles.None, out var local))
        {
            return null;
        }

        var zone = text[(space + 1)..];
        if (zone is "UTC" or "GMT" or "Z" or "UCT")
        {
            return new DateTimeOffset(local, TimeSpan.Zero);
        }

        // Zones without an abbreviation print as a numeric offset: +03, -0330, +05:30.
        var digits = zone.Replace(":", "", StringComparison.Ordinal);
        if (digits.Length is 3 or 5 && digits[0] is '+' or '-' && digits.Skip(1).All(char.IsAsciiDigit))
        {
            var hours = int.Parse(digits.AsSpan(1, 2), CultureInfo.InvariantCulture);
            var minutes = digits.Length == 5 ? int.Parse(digits.AsSpan(3, 2), CultureInfo.InvariantCulture) : 0;
            var offset = new TimeSpan(hours, minutes, 0);
            if (hours <= 14 && minutes < 60)
            {
                return new DateTimeOffset(local, digits[0] == '-' ? -offset : offset);
            }
        }

        return null;
    }
}
