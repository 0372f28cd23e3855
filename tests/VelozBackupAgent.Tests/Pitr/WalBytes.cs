using System.Buffers.Binary;
using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.Tests.Pitr;

/// <summary>Builds WAL bytes with page headers laid out as PostgreSQL 15 writes them on x86.</summary>
internal static class WalBytes
{
    public const ushort Magic15 = 0xD110;
    public const ulong SystemId = 7700000000000000001;

    /// <summary>The first <paramref name="pages"/> pages of <paramref name="file"/>, every header valid.</summary>
    public static byte[] Segment(WalFileName file, long segSize, int pages, ulong systemId = SystemId, ushort magic = Magic15, Func<int, uint>? pageTimeline = null)
    {
        var data = new byte[pages * WalPageHeader.PageSize];
        for (var p = 0; p < pages; p++)
        {
            WriteHeader(data.AsSpan(p * WalPageHeader.PageSize), file, segSize, p * (long)WalPageHeader.PageSize, systemId, magic, pageTimeline?.Invoke(p) ?? file.Timeline);
            // Some record bytes after the header, so a page is never mistaken for an empty one.
            data[(p * WalPageHeader.PageSize) + 100] = 0x5A;
        }

        return data;
    }

    public static void WriteHeader(Span<byte> page, WalFileName file, long segSize, long offset, ulong systemId = SystemId, ushort magic = Magic15, uint? timeline = null)
    {
        var isLong = offset == 0;
        BinaryPrimitives.WriteUInt16LittleEndian(page, magic);
        BinaryPrimitives.WriteUInt16LittleEndian(page[2..], isLong ? WalPageHeader.LongHeaderFlag : (ushort)0x0001);
        BinaryPrimitives.WriteUInt32LittleEndian(page[4..], timeline ?? file.Timeline);
        BinaryPrimitives.WriteUInt64LittleEndian(page[8..], (file.StartLsn(segSize) + offset).Value);
        BinaryPrimitives.WriteUInt32LittleEndian(page[16..], 0);
        if (isLong)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(page[24..], systemId);
            BinaryPrimitives.WriteUInt32LittleEndian(page[32..], (uint)segSize);
            BinaryPrimitives.WriteUInt32LittleEndian(page[36..], WalPageHeader.PageSize);
        }
    }
}
