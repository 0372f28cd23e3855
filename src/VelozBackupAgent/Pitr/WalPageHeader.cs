using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace VelozBackupAgent.Pitr;

/// <summary>
/// The header every 8 KiB WAL page starts with (XLogPageHeaderData; the long form on a segment's first page),
/// read little-endian, and checks that a segment or piece really is the WAL it claims to be. The magic number
/// is not tied to a PostgreSQL version: a segment only has to use one nonzero magic throughout.
/// </summary>
/// <param name="Magic">xlp_magic (0xD110 for PostgreSQL 15).</param>
/// <param name="Info">xlp_info flag bits.</param>
/// <param name="Timeline">xlp_tli: the timeline the page was written on.</param>
/// <param name="PageAddress">xlp_pageaddr: the LSN of the page's first byte.</param>
/// <param name="RemainingLength">xlp_rem_len: bytes of a record continued from the previous page.</param>
/// <param name="SystemIdentifier">Long header only: the cluster's system identifier.</param>
/// <param name="SegmentSize">Long header only: xlp_seg_size.</param>
/// <param name="BlockSize">Long header only: xlp_xlog_blcksz.</param>
public sealed record WalPageHeader(ushort Magic, ushort Info, uint Timeline, Lsn PageAddress, uint RemainingLength, ulong? SystemIdentifier, uint? SegmentSize, uint? BlockSize)
{
    /// <summary>XLOG_BLCKSZ.</summary>
    public const int PageSize = 8192;

    /// <summary>SizeOfXLogShortPHD.</summary>
    public const int ShortHeaderSize = 24;

    /// <summary>SizeOfXLogLongPHD.</summary>
    public const int LongHeaderSize = 40;

    /// <summary>XLP_LONG_HEADER.</summary>
    public const ushort LongHeaderFlag = 0x0002;

    /// <summary>XLP_ALL_FLAGS: any other bit in xlp_info is corruption.</summary>
    public const ushort AllFlags = 0x000F;

    /// <summary>True when the page has the long header (a segment's first page).</summary>
    public bool IsLong => (Info & LongHeaderFlag) != 0;

    /// <summary>
    /// Reads a header; false for fewer than 24 bytes, for a never-written page (its header is all zeros), and for
    /// a long header cut short (fewer than 40 bytes).
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> page, [MaybeNullWhen(false)] out WalPageHeader header)
    {
        header = null;
        if (page.Length < ShortHeaderSize || !page[..ShortHeaderSize].ContainsAnyExcept((byte)0))
        {
            return false;
        }

        var info = BinaryPrimitives.ReadUInt16LittleEndian(page[2..]);
        var isLong = (info & LongHeaderFlag) != 0;
        if (isLong && page.Length < LongHeaderSize)
        {
            return false;
        }

        header = new WalPageHeader(
            BinaryPrimitives.ReadUInt16LittleEndian(page),
            info,
            BinaryPrimitives.ReadUInt32LittleEndian(page[4..]),
            new Lsn(BinaryPrimitives.ReadUInt64LittleEndian(page[8..])),
            BinaryPrimitives.ReadUInt32LittleEndian(page[16..]),
            isLong ? BinaryPrimitives.ReadUInt64LittleEndian(page[24..]) : null,
            isLong ? BinaryPrimitives.ReadUInt32LittleEndian(page[32..]) : null,
            isLong ? BinaryPrimitives.ReadUInt32LittleEndian(page[36..]) : null);
        return true;
    }

    /// <summary>
    /// Checks the first bytes of a complete segment (at least its first page; any further whole pages are checked
    /// too): the first page has a long header with this cluster's system identifier (when
    /// <paramref name="expectedSystemIdentifier"/> is given), segment size and 8 KiB blocks; every page has the same
    /// nonzero magic, the page address its position means, a timeline from 1 to the file's own that never goes
    /// back, and no unknown flag bits. A complete segment has no never-written pages: PostgreSQL writes a header
    /// on every page even after a WAL switch. Returns null when all is well, else one operator-readable line.
    /// </summary>
    public static string? CheckSegment(ReadOnlySpan<byte> data, WalFileName expected, long segSize, ulong? expectedSystemIdentifier)
    {
        WalFileName.ValidateSegmentSize(segSize);
        if (!expected.IsValidFor(segSize))
        {
            return $"{expected} is not a segment name for {segSize}-byte segments";
        }

        if (data.Length > segSize)
        {
            return Invariant($"{expected} has {data.Length} bytes, more than a {segSize}-byte segment");
        }

        if (data.Length < LongHeaderSize)
        {
            return Invariant($"{expected} is too short to be a WAL segment ({data.Length} bytes)");
        }

        if (!TryRead(data, out var first))
        {
            return $"{expected} starts with a zero page";
        }

        if (!first.IsLong)
        {
            return $"{expected} is not a WAL segment: its first page has no long header (xlp_info 0x{first.Info:X4})";
        }

        if (expectedSystemIdentifier is { } sysid && first.SystemIdentifier != sysid)
        {
            return Invariant($"{expected} is not a WAL segment of this cluster: system identifier {first.SystemIdentifier}, expected {sysid}");
        }

        if (first.SegmentSize != segSize)
        {
            return Invariant($"{expected} has segment size {first.SegmentSize}, expected {segSize}");
        }

        if (first.BlockSize != PageSize)
        {
            return Invariant($"{expected} has WAL block size {first.BlockSize}, expected {PageSize}");
        }

        return CheckPages(data, 0, expected, segSize);
    }

    /// <summary>
    /// Checks a piece's bytes, which start at <paramref name="startOffset"/> inside <paramref name="file"/>: every page
    /// header that begins inside them (at a multiple of 8 KiB at or after the start) must be valid as
    /// <see cref="CheckSegment"/> describes. A piece that starts mid-page has no header for that first partial page,
    /// and a header cut off by the piece's end is checked as far as it goes. Null when fine, else one line.
    /// </summary>
    public static string? CheckPieceData(ReadOnlySpan<byte> data, uint startOffset, WalFileName file, long segSize)
    {
        WalFileName.ValidateSegmentSize(segSize);
        if (!file.IsValidFor(segSize))
        {
            return $"{file} is not a segment name for {segSize}-byte segments";
        }

        if (startOffset + (long)data.Length > segSize)
        {
            return Invariant($"{file}: {data.Length} bytes from offset {PitrText.Hex(startOffset)} run past the end of a {segSize}-byte segment");
        }

        return CheckPages(data, startOffset, file, segSize);
    }

    private static string? CheckPages(ReadOnlySpan<byte> data, long startOffset, WalFileName file, long segSize)
    {
        var segmentStart = file.StartLsn(segSize);
        ushort? magic = null;
        uint lastTimeline = 0;
        var firstPage = (startOffset + PageSize - 1) / PageSize * PageSize;
        for (var offset = firstPage; offset < startOffset + data.Length; offset += PageSize)
        {
            var at = (int)(offset - startOffset);
            var bytes = data[at..Math.Min(data.Length, at + PageSize)];
            var where = $"{file}: page at offset {PitrText.Hex(offset)}";
            if (bytes.Length < (offset == 0 ? LongHeaderSize : ShortHeaderSize))
            {
                // A header cut short by the end of a piece: what is there must not contradict the rules.
                return CheckHeaderPrefix(bytes, offset, segmentStart, file, magic, where);
            }

            if (!TryRead(bytes, out var header))
            {
                return offset == 0 ? $"{file} starts with a zero page" : $"{where} is empty (all zeros)";
            }

            if (header.Magic == 0 || (magic is { } m && header.Magic != m))
            {
                return magic is { } seen
                    ? $"{where} has magic 0x{header.Magic:X4}, expected 0x{seen:X4} like the pages before it"
                    : $"{where} has magic 0x{header.Magic:X4}";
            }

            magic = header.Magic;
            if ((header.Info & ~AllFlags) != 0)
            {
                return $"{where} has unknown flag bits in xlp_info 0x{header.Info:X4}";
            }

            if (offset == 0 && !header.IsLong)
            {
                return $"{where} has no long header, which a segment's first page must have";
            }

            var address = segmentStart + offset;
            if (header.PageAddress != address)
            {
                return $"{where} has page address {header.PageAddress}, expected {address}";
            }

            if (header.Timeline == 0 || header.Timeline > file.Timeline)
            {
                return Invariant($"{where} has timeline {header.Timeline}, expected 1 to {file.Timeline}");
            }

            if (header.Timeline < lastTimeline)
            {
                return Invariant($"{where} has timeline {header.Timeline} after a page of timeline {lastTimeline}");
            }

            lastTimeline = header.Timeline;
            if (header.IsLong && (header.SegmentSize != segSize || header.BlockSize != PageSize))
            {
                return Invariant($"{where} has segment size {header.SegmentSize} and block size {header.BlockSize}, expected {segSize} and {PageSize}");
            }
        }

        return null;
    }

    private static string? CheckHeaderPrefix(ReadOnlySpan<byte> bytes, long offset, Lsn segmentStart, WalFileName file, ushort? magic, string where)
    {
        if (!bytes.ContainsAnyExcept((byte)0))
        {
            return $"{where} is empty (all zeros)";
        }

        if (bytes.Length >= 2)
        {
            var m = BinaryPrimitives.ReadUInt16LittleEndian(bytes);
            if (m == 0 || (magic is { } seen && m != seen))
            {
                return $"{where} has magic 0x{m:X4}";
            }
        }

        if (offset == 0 && bytes.Length >= 4 && (BinaryPrimitives.ReadUInt16LittleEndian(bytes[2..]) & LongHeaderFlag) == 0)
        {
            return $"{where} has no long header, which a segment's first page must have";
        }

        if (bytes.Length >= 8)
        {
            var tli = BinaryPrimitives.ReadUInt32LittleEndian(bytes[4..]);
            if (tli == 0 || tli > file.Timeline)
            {
                return Invariant($"{where} has timeline {tli}, expected 1 to {file.Timeline}");
            }
        }

        if (bytes.Length >= 16)
        {
            var address = new Lsn(BinaryPrimitives.ReadUInt64LittleEndian(bytes[8..]));
            if (address != segmentStart + offset)
            {
                return $"{where} has page address {address}, expected {segmentStart + offset}";
            }
        }

        return null;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
