using System.Globalization;
using VelozBackupAgent.Catalog;

namespace VelozBackupAgent.Pitr;

/// <summary>What a name in the <c>pitr</c> kind is.</summary>
public enum PitrArtifactType
{
    /// <summary>A complete WAL segment, <c>000000010000000000000003</c>.</summary>
    Segment,

    /// <summary>
    /// Part of a segment: our receiver's piece <c>&lt;segment&gt;.&lt;START&gt;-&lt;END&gt;.partial</c>, or PostgreSQL's own
    /// <c>&lt;segment&gt;.partial</c> (archived at promotion).
    /// </summary>
    Partial,

    /// <summary>A timeline history file, <c>00000002.history</c>.</summary>
    History,

    /// <summary>A backup history file from archive_command, <c>&lt;segment&gt;.&lt;offset&gt;.backup</c>.</summary>
    BackupHistory,

    /// <summary>A base backup's archive, <c>base_YYYYMMDD_HHMMSS[-N].tar.gz</c> (or <c>.tar.zst</c>, <c>.tar</c>).</summary>
    BaseArchive,

    /// <summary>A base backup's metadata, <c>base_YYYYMMDD_HHMMSS[-N].json</c>, written last.</summary>
    BaseInfo,
}

/// <summary>
/// One artifact name of the <c>pitr</c> kind, classified. <see cref="Classify"/> is the one place that decides
/// what a name is; the helpers make the names, so parsing and formatting cannot drift apart.
/// </summary>
/// <param name="Type">What it is.</param>
/// <param name="Name">The name as stored.</param>
/// <param name="File">The segment a segment, piece, partial or backup history file belongs to; null otherwise.</param>
/// <param name="Timeline">The timeline of WAL and history files; 0 for base backups (their timeline is in the JSON).</param>
/// <param name="PartialStart">A piece's first byte offset inside its segment. 0 otherwise.</param>
/// <param name="PartialEnd">
/// The offset just past a piece's last byte. 0 for PostgreSQL's own <c>X.partial</c>, whose name does not say
/// how much it holds (<see cref="IsWholeSegment"/>), and for every other type.
/// </param>
/// <param name="BaseStem">For a base archive or JSON: the name without its suffix, which pairs the two.</param>
public sealed record PitrArtifact(PitrArtifactType Type, string Name, WalFileName? File, uint Timeline, uint PartialStart, uint PartialEnd, string? BaseStem)
{
    /// <summary>The prefix of base backup names.</summary>
    public const string BasePrefix = "base";

    /// <summary>The suffix of base backup metadata.</summary>
    public const string BaseInfoSuffix = ".json";

    /// <summary>Archive suffixes a base may have, with the compression each means.</summary>
    public static IReadOnlyList<string> BaseArchiveSuffixes { get; } = [".tar.gz", ".tar.zst", ".tar"];

    private const string PartialSuffix = ".partial";
    private const string HistorySuffix = ".history";
    private const string BackupSuffix = ".backup";
    private const uint MaxSegmentBytes = 1024 * 1024 * 1024; // no piece can end beyond the largest segment size

    /// <summary>For a backup history file: the start offset inside its segment (from the name). 0 otherwise.</summary>
    public uint BackupOffset { get; init; }

    /// <summary>True for PostgreSQL's own <c>X.partial</c>: treated like the whole-segment piece the receiver normalises it to.</summary>
    public bool IsWholeSegment => Type == PitrArtifactType.Partial && PartialStart == 0 && PartialEnd == 0;

    /// <summary>For a base archive or JSON: the suffix after <see cref="BaseStem"/> (<c>.tar.gz</c>, <c>.json</c>…).</summary>
    public string? BaseSuffix => BaseStem is null ? null : Name[BaseStem.Length..];

    /// <summary>What <paramref name="name"/> is, or null for anything that is none of the types (foreign files, bad times, lower-case hex).</summary>
    public static PitrArtifact? Classify(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (WalFileName.TryParse(name, out var segment))
        {
            return new PitrArtifact(PitrArtifactType.Segment, name, segment, segment.Timeline, 0, 0, null);
        }

        if (name.Length > 24 && WalFileName.TryParse(name.AsSpan(0, 24), out var file))
        {
            return ClassifyWalSuffix(name, file, name.AsSpan(24));
        }

        if (name.Length == 8 + HistorySuffix.Length && name.EndsWith(HistorySuffix, StringComparison.Ordinal)
            && TryParseHex8(name.AsSpan(0, 8), out var timeline) && timeline != 0)
        {
            return new PitrArtifact(PitrArtifactType.History, name, null, timeline, 0, 0, null);
        }

        return ClassifyBase(name);
    }

    /// <summary>Our piece name: <c>&lt;segment&gt;.&lt;START8&gt;-&lt;END8&gt;.partial</c>.</summary>
    public static string PieceName(WalFileName file, uint start, uint end)
    {
        if (start >= end)
        {
            throw new ArgumentOutOfRangeException(nameof(end), end, "a piece ends after it starts");
        }

        return string.Create(CultureInfo.InvariantCulture, $"{file}.{start:X8}-{end:X8}{PartialSuffix}");
    }

    /// <summary>PostgreSQL's name for a partial segment archived at promotion: <c>&lt;segment&gt;.partial</c>.</summary>
    public static string PartialName(WalFileName file) => file + PartialSuffix;

    /// <summary><c>%08X.history</c>.</summary>
    public static string HistoryName(uint timeline)
    {
        ArgumentOutOfRangeException.ThrowIfZero(timeline);
        return string.Create(CultureInfo.InvariantCulture, $"{timeline:X8}{HistorySuffix}");
    }

    /// <summary><c>&lt;segment&gt;.&lt;offset8&gt;.backup</c>.</summary>
    public static string BackupHistoryName(WalFileName file, uint offset) =>
        string.Create(CultureInfo.InvariantCulture, $"{file}.{offset:X8}{BackupSuffix}");

    /// <summary>The stem of the base taken at <paramref name="utc"/>: <c>base_YYYYMMDD_HHMMSS[-N]</c>.</summary>
    public static string BaseStemFor(DateTimeOffset utc, int sequence = 1) => ArtifactName.Format(BasePrefix, utc, "", sequence);

    /// <summary>The archive name of a base: <paramref name="stem"/> + <paramref name="suffix"/> (one of <see cref="BaseArchiveSuffixes"/>).</summary>
    public static string BaseArchiveName(string stem, string suffix)
    {
        ArgumentNullException.ThrowIfNull(stem);
        if (!BaseArchiveSuffixes.Contains(suffix, StringComparer.Ordinal))
        {
            throw new ArgumentOutOfRangeException(nameof(suffix), suffix, "a base archive is .tar.gz, .tar.zst or .tar");
        }

        return stem + suffix;
    }

    /// <summary>The metadata name of a base: <paramref name="stem"/> + <c>.json</c>.</summary>
    public static string BaseInfoName(string stem)
    {
        ArgumentNullException.ThrowIfNull(stem);
        return stem + BaseInfoSuffix;
    }

    /// <summary>The compression an archive suffix means: gzip, zstd or none; null for other suffixes.</summary>
    public static string? CompressionOf(string archiveSuffix) => archiveSuffix switch
    {
        ".tar.gz" => "gzip",
        ".tar.zst" => "zstd",
        ".tar" => "none",
        _ => null,
    };

    private static PitrArtifact? ClassifyWalSuffix(string name, WalFileName file, ReadOnlySpan<char> rest)
    {
        if (rest.SequenceEqual(PartialSuffix))
        {
            return new PitrArtifact(PitrArtifactType.Partial, name, file, file.Timeline, 0, 0, null);
        }

        // ".SSSSSSSS-EEEEEEEE.partial"
        if (rest.Length == 1 + 8 + 1 + 8 + PartialSuffix.Length && rest[0] == '.' && rest[9] == '-' && rest.EndsWith(PartialSuffix)
            && TryParseHex8(rest.Slice(1, 8), out var start) && TryParseHex8(rest.Slice(10, 8), out var end)
            && start < end && end <= MaxSegmentBytes)
        {
            return new PitrArtifact(PitrArtifactType.Partial, name, file, file.Timeline, start, end, null);
        }

        // ".OOOOOOOO.backup"
        if (rest.Length == 1 + 8 + BackupSuffix.Length && rest[0] == '.' && rest.EndsWith(BackupSuffix)
            && TryParseHex8(rest.Slice(1, 8), out var offset))
        {
            return new PitrArtifact(PitrArtifactType.BackupHistory, name, file, file.Timeline, 0, 0, null) { BackupOffset = offset };
        }

        return null;
    }

    private static PitrArtifact? ClassifyBase(string name)
    {
        if (!name.StartsWith(BasePrefix + "_", StringComparison.Ordinal)
            || !ArtifactName.TryParse(name, out var prefix, out _, out _, out var suffix)
            || !string.Equals(prefix, BasePrefix, StringComparison.Ordinal))
        {
            return null;
        }

        var stem = name[..^suffix.Length];
        if (string.Equals(suffix, BaseInfoSuffix, StringComparison.Ordinal))
        {
            return new PitrArtifact(PitrArtifactType.BaseInfo, name, null, 0, 0, 0, stem);
        }

        return BaseArchiveSuffixes.Contains(suffix, StringComparer.Ordinal)
            ? new PitrArtifact(PitrArtifactType.BaseArchive, name, null, 0, 0, 0, stem)
            : null;
    }

    private static bool TryParseHex8(ReadOnlySpan<char> text, out uint value)
    {
        value = 0;
        return text.Length == 8 && WalFileName.IsUpperHex(text)
            && uint.TryParse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
    }
}
