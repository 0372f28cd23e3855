using System.Buffers.Binary;
using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.Tests.Pitr;

public sealed class WalPageHeaderTests
{
    private const long Seg16 = 16 * 1024 * 1024;
    private const int Page = WalPageHeader.PageSize;
    private static readonly WalFileName File3 = WalFileName.Parse("000000010000000000000003");

    [Fact]
    public void Reads_a_long_header()
    {
        var data = WalBytes.Segment(File3, Seg16, 1);

        WalPageHeader.TryRead(data, out var h).Should().BeTrue();
        h!.Magic.Should().Be(WalBytes.Magic15);
        h.IsLong.Should().BeTrue();
        h.Timeline.Should().Be(1);
        h.PageAddress.Should().Be(Lsn.Parse("0/3000000"));
        h.SystemIdentifier.Should().Be(WalBytes.SystemId);
        h.SegmentSize.Should().Be((uint)Seg16);
        h.BlockSize.Should().Be((uint)Page);
    }

    [Fact]
    public void Reads_a_short_header()
    {
        var data = WalBytes.Segment(File3, Seg16, 2);

        WalPageHeader.TryRead(data.AsSpan(Page), out var h).Should().BeTrue();
        h!.IsLong.Should().BeFalse();
        h.PageAddress.Should().Be(Lsn.Parse("0/3002000"));
        h.SystemIdentifier.Should().BeNull();
        h.SegmentSize.Should().BeNull();
    }

    [Fact]
    public void A_zero_page_or_a_short_span_is_no_header()
    {
        WalPageHeader.TryRead(new byte[Page], out _).Should().BeFalse();
        WalPageHeader.TryRead(WalBytes.Segment(File3, Seg16, 1).AsSpan(0, 23), out _).Should().BeFalse();
        WalPageHeader.TryRead(WalBytes.Segment(File3, Seg16, 1).AsSpan(0, 39), out _).Should().BeFalse("a long header needs 40 bytes");
        WalPageHeader.TryRead(WalBytes.Segment(File3, Seg16, 2).AsSpan(Page, 24), out _).Should().BeTrue();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(64)]
    public void A_good_segment_passes(int megabytes)
    {
        var segSize = megabytes * 1024L * 1024;
        var file = WalFileName.FromSegment(2, 77, segSize);

        WalPageHeader.CheckSegment(WalBytes.Segment(file, segSize, 16), file, segSize, WalBytes.SystemId).Should().BeNull();
        WalPageHeader.CheckSegment(WalBytes.Segment(file, segSize, 1), file, segSize, null).Should().BeNull();
    }

    [Fact]
    public void A_whole_segment_passes()
    {
        var segSize = 1024L * 1024;
        var file = WalFileName.FromSegment(1, 5, segSize);

        WalPageHeader.CheckSegment(WalBytes.Segment(file, segSize, (int)(segSize / Page)), file, segSize, WalBytes.SystemId).Should().BeNull();
    }

    [Fact]
    public void Another_clusters_segment_is_named()
    {
        var data = WalBytes.Segment(File3, Seg16, 1, systemId: 7714000000000000000);

        WalPageHeader.CheckSegment(data, File3, Seg16, 7700000000000000000).Should()
            .Be("000000010000000000000003 is not a WAL segment of this cluster: system identifier 7714000000000000000, expected 7700000000000000000");
    }

    [Fact]
    public void A_wrong_page_address_is_named()
    {
        var data = WalBytes.Segment(File3, Seg16, 3);
        BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan((2 * Page) + 8), Lsn.Parse("0/3004000").Value + Page);

        WalPageHeader.CheckSegment(data, File3, Seg16, null).Should()
            .Be("000000010000000000000003: page at offset 0x4000 has page address 0/3006000, expected 0/3004000");
    }

    [Fact]
    public void A_segment_of_another_file_is_a_wrong_address()
    {
        var data = WalBytes.Segment(WalFileName.Parse("000000010000000000000004"), Seg16, 1);

        WalPageHeader.CheckSegment(data, File3, Seg16, null).Should().Contain("page address 0/4000000, expected 0/3000000");
    }

    [Fact]
    public void A_wrong_segment_size_is_named()
    {
        var data = WalBytes.Segment(File3, 1024 * 1024, 1);

        WalPageHeader.CheckSegment(data, File3, Seg16, null).Should().Be("000000010000000000000003 has segment size 1048576, expected 16777216");
    }

    [Fact]
    public void A_zero_first_page_is_named()
    {
        WalPageHeader.CheckSegment(new byte[Page * 2], File3, Seg16, null).Should().Be("000000010000000000000003 starts with a zero page");
    }

    [Fact]
    public void A_zero_page_inside_a_complete_segment_is_named()
    {
        var data = WalBytes.Segment(File3, Seg16, 3);
        data.AsSpan(Page, Page).Clear();

        WalPageHeader.CheckSegment(data, File3, Seg16, null).Should().Be("000000010000000000000003: page at offset 0x2000 is empty (all zeros)");
    }

    [Fact]
    public void The_magic_must_be_the_same_on_every_page_but_no_version_is_assumed()
    {
        WalPageHeader.CheckSegment(WalBytes.Segment(File3, Seg16, 3, magic: 0xD113), File3, Seg16, null).Should().BeNull();

        var data = WalBytes.Segment(File3, Seg16, 3);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(2 * Page), 0xD113);
        WalPageHeader.CheckSegment(data, File3, Seg16, null).Should().Contain("offset 0x4000 has magic 0xD113, expected 0xD110");
    }

    [Fact]
    public void The_first_page_needs_the_long_header()
    {
        var data = WalBytes.Segment(File3, Seg16, 1);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(2), 0);

        WalPageHeader.CheckSegment(data, File3, Seg16, null).Should().Contain("no long header");
    }

    [Fact]
    public void Unknown_flag_bits_are_corruption()
    {
        var data = WalBytes.Segment(File3, Seg16, 2);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(Page + 2), 0x0011);

        WalPageHeader.CheckSegment(data, File3, Seg16, null).Should().Contain("unknown flag bits");
    }

    [Fact]
    public void Pages_before_a_switch_point_may_carry_the_parent_timeline()
    {
        var file = WalFileName.Parse("000000030000000000000009");
        var data = WalBytes.Segment(file, Seg16, 4, pageTimeline: p => p < 2 ? 2u : 3u);

        WalPageHeader.CheckSegment(data, file, Seg16, null).Should().BeNull();
    }

    [Fact]
    public void A_page_timeline_above_the_files_or_going_back_is_named()
    {
        var above = WalBytes.Segment(File3, Seg16, 2, pageTimeline: p => p == 1 ? 2u : 1u);
        WalPageHeader.CheckSegment(above, File3, Seg16, null).Should().Contain("offset 0x2000 has timeline 2, expected 1 to 1");

        var file = WalFileName.Parse("000000030000000000000009");
        var back = WalBytes.Segment(file, Seg16, 3, pageTimeline: p => p == 1 ? 3u : 2u);
        WalPageHeader.CheckSegment(back, file, Seg16, null).Should().Contain("offset 0x4000 has timeline 2 after a page of timeline 3");

        var zero = WalBytes.Segment(File3, Seg16, 1, pageTimeline: _ => 0);
        WalPageHeader.CheckSegment(zero, File3, Seg16, null).Should().Contain("timeline 0");
    }

    [Fact]
    public void Too_little_or_too_much_data_is_named()
    {
        WalPageHeader.CheckSegment(new byte[10], File3, Seg16, null).Should().Contain("too short");
        WalPageHeader.CheckSegment(new byte[(1024 * 1024) + 1], File3, 1024 * 1024, null).Should().Contain("more than");
        WalPageHeader.CheckSegment(WalBytes.Segment(File3, Seg16, 1), WalFileName.Parse("000000010000000000000100"), Seg16, null)
            .Should().Contain("not a segment name");
    }

    [Fact]
    public void A_piece_from_offset_zero_is_checked_like_a_segment()
    {
        var data = WalBytes.Segment(File3, Seg16, 4).AsSpan(0, (3 * Page) + 100).ToArray();

        WalPageHeader.CheckPieceData(data, 0, File3, Seg16).Should().BeNull();
        data[(2 * Page) + 9] ^= 0x01;
        WalPageHeader.CheckPieceData(data, 0, File3, Seg16).Should().Contain("page at offset 0x4000 has page address");
    }

    [Fact]
    public void A_piece_starting_mid_page_has_no_header_for_that_page()
    {
        var segment = WalBytes.Segment(File3, Seg16, 8);
        segment.AsSpan(Page, WalPageHeader.ShortHeaderSize).Clear(); // the header of the page the piece starts in: not part of it
        var start = Page + 0xA50;
        var end = (5 * Page) + 300;

        WalPageHeader.CheckPieceData(segment.AsSpan(start, end - start), (uint)start, File3, Seg16).Should().BeNull();
    }

    [Fact]
    public void A_piece_page_with_the_wrong_address_or_timeline_is_named()
    {
        var segment = WalBytes.Segment(File3, Seg16, 8);
        BinaryPrimitives.WriteUInt32LittleEndian(segment.AsSpan((4 * Page) + 4), 5);
        const int Start = 0x2A50;

        WalPageHeader.CheckPieceData(segment.AsSpan(Start, (6 * Page) - Start), Start, File3, Seg16).Should()
            .Be("000000010000000000000003: page at offset 0x8000 has timeline 5, expected 1 to 1");
    }

    [Fact]
    public void A_piece_ending_inside_a_header_is_checked_as_far_as_it_goes()
    {
        var segment = WalBytes.Segment(File3, Seg16, 3);
        var start = Page + 8;

        WalPageHeader.CheckPieceData(segment.AsSpan(start, Page - 8 + 12), (uint)start, File3, Seg16).Should().BeNull();
        BinaryPrimitives.WriteUInt32LittleEndian(segment.AsSpan((2 * Page) + 4), 9);
        WalPageHeader.CheckPieceData(segment.AsSpan(start, Page - 8 + 12), (uint)start, File3, Seg16).Should().Contain("timeline 9");
        WalPageHeader.CheckPieceData(new byte[Page + 10], 0, File3, Seg16).Should().Contain("starts with a zero page");
    }

    [Fact]
    public void A_piece_must_fit_in_its_segment()
    {
        WalPageHeader.CheckPieceData(new byte[100], (uint)Seg16 - 50, File3, Seg16).Should().Contain("run past the end");
    }

    [Fact]
    public void A_piece_with_a_zero_page_is_named()
    {
        var segment = WalBytes.Segment(File3, Seg16, 4);
        segment.AsSpan(2 * Page, Page).Clear();

        WalPageHeader.CheckPieceData(segment.AsSpan(100), 100, File3, Seg16).Should().Contain("offset 0x4000 is empty");
    }
}
