using System.Globalization;

namespace VelozBackupAgent.Pitr;

/// <summary>
/// A WAL segment file name, <c>%08X%08X%08X</c> of (timeline, log, seg) as PostgreSQL's <c>XLogFileName</c>
/// writes it. <see cref="Log"/> and <see cref="Seg"/> split the segment number by <c>0x100000000 / segSize</c>
/// segments per "log id", so the name alone does not give the segment number: every conversion takes the
/// cluster's segment size.
/// </summary>
public readonly record struct WalFileName(uint Timeline, uint Log, uint Seg)
{
    /// <summary>PostgreSQL's default <c>wal_segment_size</c>: 16 MiB.</summary>
    public const long DefaultSegmentSize = 16 * 1024 * 1024;

    private const long MinSegmentSize = 1024 * 1024;
    private const long MaxSegmentSize = 1024 * 1024 * 1024;

    /// <summary>True for a size <c>initdb --wal-segsize</c> accepts: a power of two from 1 MiB to 1 GiB.</summary>
    public static bool IsValidSegmentSize(long segSize) =>
        segSize is >= MinSegmentSize and <= MaxSegmentSize && (segSize & (segSize - 1)) == 0;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> unless <paramref name="segSize"/> is a valid WAL segment size.</summary>
    public static void ValidateSegmentSize(long segSize)
    {
        if (!IsValidSegmentSize(segSize))
        {
            throw new ArgumentOutOfRangeException(nameof(segSize), segSize, "a WAL segment size is a power of two from 1 MiB to 1 GiB");
        }
    }

    /// <summary>Segments per log id: 256 for 16 MiB segments.</summary>
    public static ulong SegmentsPerXLogId(long segSize)
    {
        ValidateSegmentSize(segSize);
        return 0x1_0000_0000UL / (ulong)segSize;
    }

    /// <summary>The file holding segment number <paramref name="segno"/> of <paramref name="timeline"/>.</summary>
    public static WalFileName FromSegment(uint timeline, ulong segno, long segSize)
    {
        ArgumentOutOfRangeException.ThrowIfZero(timeline);
        var perId = SegmentsPerXLogId(segSize);
        if (segno > ulong.MaxValue / (ulong)segSize)
        {
            throw new ArgumentOutOfRangeException(nameof(segno), segno, "beyond the last WAL segment");
        }

        return new WalFileName(timeline, (uint)(segno / perId), (uint)(segno % perId));
    }

    /// <summary>The file of <paramref name="timeline"/> that holds the byte at <paramref name="lsn"/>.</summary>
    public static WalFileName Containing(uint timeline, Lsn lsn, long segSize)
    {
        ValidateSegmentSize(segSize);
        return FromSegment(timeline, lsn.Value / (ulong)segSize, segSize);
    }

    /// <summary>False when <see cref="Seg"/> is out of range for <paramref name="segSize"/> (a name no cluster of that size writes).</summary>
    public bool IsValidFor(long segSize) => Timeline != 0 && Seg < SegmentsPerXLogId(segSize);

    /// <summary>The segment number (<c>lsn / segSize</c>); throws when the name is not valid for <paramref name="segSize"/>.</summary>
    public ulong SegmentNumber(long segSize)
    {
        if (!IsValidFor(segSize))
        {
            throw new ArgumentOutOfRangeException(nameof(segSize), segSize, $"{this} is not a segment name for {segSize}-byte segments");
        }

        return ((ulong)Log * SegmentsPerXLogId(segSize)) + Seg;
    }

    /// <summary>The LSN of the segment's first byte.</summary>
    public Lsn StartLsn(long segSize) => new(SegmentNumber(segSize) * (ulong)segSize);

    /// <summary>The next segment's file on the same timeline.</summary>
    public WalFileName Next(long segSize) => FromSegment(Timeline, SegmentNumber(segSize) + 1, segSize);

    /// <summary>24 upper-case hex digits, e.g. <c>000000010000000000000003</c>.</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Timeline:X8}{Log:X8}{Seg:X8}");

    /// <summary>Exactly 24 upper-case hex digits with a nonzero timeline; false for anything else.</summary>
    public static bool TryParse(string? name, out WalFileName file) => TryParse(name.AsSpan(), out file);

    /// <inheritdoc cref="TryParse(string?, out WalFileName)"/>
    public static bool TryParse(ReadOnlySpan<char> name, out WalFileName file)
    {
        file = default;
        if (name.Length != 24 || !IsUpperHex(name))
        {
            return false;
        }

        var timeline = uint.Parse(name[..8], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
        if (timeline == 0)
        {
            return false;
        }

        file = new WalFileName(
            timeline,
            uint.Parse(name[8..16], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture),
            uint.Parse(name[16..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture));
        return true;
    }

    /// <summary>Like <see cref="TryParse(string?, out WalFileName)"/>, throwing <see cref="FormatException"/>.</summary>
    public static WalFileName Parse(string name) =>
        TryParse(name, out var file) ? file : throw new FormatException($"{PitrText.Quote(name)} is not a WAL segment name (24 upper-case hex digits)");

    /// <summary>Upper-case hex only: PostgreSQL never writes lower case, and a second spelling would make two names for one file.</summary>
    internal static bool IsUpperHex(ReadOnlySpan<char> text)
    {
        foreach (var c in text)
        {
            if (c is not ((>= '0' and <= '9') or (>= 'A' and <= 'F')))
            {
                return false;
            }
        }

        return true;
    }
}
