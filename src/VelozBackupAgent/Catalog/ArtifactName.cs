using System.Globalization;
using System.Text.RegularExpressions;

namespace VelozBackupAgent.Catalog;

/// <summary>
/// The naming scheme of timestamped artifacts: <c>&lt;prefix&gt;_YYYYMMDD_HHMMSS[-N]&lt;suffix&gt;</c> in UTC,
/// as the seeds name them (<c>config_20260214_120000.tar.gz</c>). <c>-N</c> (N ≥ 2) separates two artifacts
/// made in the same second. The time comes from the name, never from a file's modification time, so it
/// survives copies, downloads and restores.
/// </summary>
public static partial class ArtifactName
{
    private const string TimeFormat = "yyyyMMdd_HHmmss";

    /// <summary>Makes the name for an artifact taken at <paramref name="utc"/>; <paramref name="sequence"/> ≥ 2 disambiguates.</summary>
    public static string Format(string prefix, DateTimeOffset utc, string suffix, int sequence = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sequence, 1);
        var stamp = utc.UtcDateTime.ToString(TimeFormat, CultureInfo.InvariantCulture);
        return sequence == 1
            ? $"{prefix}_{stamp}{suffix}"
            : string.Create(CultureInfo.InvariantCulture, $"{prefix}_{stamp}-{sequence}{suffix}");
    }

    /// <summary>Reads the time and sequence out of a name; false when the name does not follow the scheme.</summary>
    public static bool TryParse(string name, out string prefix, out DateTimeOffset time, out int sequence, out string suffix)
    {
        prefix = suffix = "";
        time = default;
        sequence = 0;
        var m = NameRegex().Match(name);
        if (!m.Success || !DateTime.TryParseExact(m.Groups["stamp"].Value, TimeFormat, CultureInfo.InvariantCulture,
                DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var utc))
        {
            return false;
        }

        prefix = m.Groups["prefix"].Value;
        suffix = m.Groups["suffix"].Value;
        time = new DateTimeOffset(utc, TimeSpan.Zero);
        sequence = m.Groups["seq"].Success ? int.Parse(m.Groups["seq"].Value, CultureInfo.InvariantCulture) : 1;
        return sequence >= 1;
    }

    [GeneratedRegex(@"^(?<prefix>[A-Za-z0-9.-]+(?:_[A-Za-z][A-Za-z0-9.-]*)*)_(?<stamp>\d{8}_\d{6})(?:-(?<seq>\d{1,4}))?(?<suffix>\.[A-Za-z0-9._-]+)$")]
    private static partial Regex NameRegex();
}
