using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.Tests.Pitr;

public sealed class WalFileNameTests
{
    private const long Mib = 1024 * 1024;

    [Fact]
    public void Names_the_segment_holding_an_lsn()
    {
        var file = WalFileName.Containing(1, Lsn.Parse("0/3000028"), 16 * Mib);

        file.ToString().Should().Be("000000010000000000000003");
        file.SegmentNumber(16 * Mib).Should().Be(3);
        file.StartLsn(16 * Mib).Should().Be(Lsn.Parse("0/3000000"));
    }

    [Theory]
    [InlineData(16 * Mib, "16/B374D848", 7, "0000000700000016000000B3", 256)]
    [InlineData(1 * Mib, "16/B374D848", 2, "000000020000001600000B37", 4096)]
    [InlineData(64 * Mib, "16/B374D848", 3, "00000003000000160000002C", 64)]
    [InlineData(1024 * Mib, "16/B374D848", 3, "000000030000001600000002", 4)]
    public void Splits_the_segment_number_by_segments_per_log_id(long segSize, string lsn, uint timeline, string name, long perId)
    {
        WalFileName.SegmentsPerXLogId(segSize).Should().Be((ulong)perId);
        var file = WalFileName.Containing(timeline, Lsn.Parse(lsn), segSize);

        file.ToString().Should().Be(name);
        file.SegmentNumber(segSize).Should().Be(Lsn.Parse(lsn).Value / (ulong)segSize);
        WalFileName.TryParse(name, out var parsed).Should().BeTrue();
        parsed.Should().Be(file);
        file.StartLsn(segSize).Value.Should().Be(Lsn.Parse(lsn).Value / (ulong)segSize * (ulong)segSize);
    }

    [Fact]
    public void Next_crosses_the_log_id()
    {
        var last = WalFileName.Parse("0000000100000000000000FF");

        last.Next(16 * Mib).ToString().Should().Be("000000010000000100000000");
        WalFileName.FromSegment(2, 0x100, 16 * Mib).Should().Be(new WalFileName(2, 1, 0));
        WalFileName.Parse("000000010000000000000FFF").Next(Mib).ToString().Should().Be("000000010000000100000000");
    }

    [Theory]
    [InlineData("")]
    [InlineData("00000001000000000000000")]
    [InlineData("0000000100000000000000033")]
    [InlineData("00000001000000000000000a")]
    [InlineData("000000000000000000000003")]
    [InlineData("00000001000000000000000G")]
    [InlineData(" 00000001000000000000003")]
    [InlineData("00000001000000000000003.partial")]
    public void Only_24_upper_case_hex_digits_with_a_timeline_parse(string name)
    {
        WalFileName.TryParse(name, out _).Should().BeFalse();
    }

    [Fact]
    public void A_seg_field_beyond_the_segments_per_log_id_is_not_valid_for_that_size()
    {
        var file = WalFileName.Parse("000000010000000000000100");

        file.IsValidFor(16 * Mib).Should().BeFalse();
        file.IsValidFor(1 * Mib).Should().BeTrue();
        var segno = () => file.SegmentNumber(16 * Mib);
        segno.Should().Throw<ArgumentOutOfRangeException>();
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(512 * 1024L)]
    [InlineData(3 * Mib)]
    [InlineData(2048 * Mib)]
    [InlineData(-16 * Mib)]
    public void Segment_sizes_must_be_powers_of_two_from_1_MiB_to_1_GiB(long segSize)
    {
        WalFileName.IsValidSegmentSize(segSize).Should().BeFalse();
        var validate = () => WalFileName.ValidateSegmentSize(segSize);
        validate.Should().Throw<ArgumentOutOfRangeException>();
        var make = () => WalFileName.FromSegment(1, 3, segSize);
        make.Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void Timeline_zero_is_refused()
    {
        var make = () => WalFileName.FromSegment(0, 3, 16 * Mib);
        make.Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void Random_segments_round_trip_for_every_size()
    {
        var random = new Random(11);
        for (var shift = 20; shift <= 30; shift++)
        {
            var segSize = 1L << shift;
            for (var i = 0; i < 200; i++)
            {
                var segno = (ulong)random.NextInt64(0, long.MaxValue) >> (shift - 1);
                var timeline = (uint)random.Next(1, int.MaxValue);
                var file = WalFileName.FromSegment(timeline, segno, segSize);
                WalFileName.Parse(file.ToString()).Should().Be(file);
                file.SegmentNumber(segSize).Should().Be(segno);
                WalFileName.Containing(timeline, file.StartLsn(segSize) + (segSize - 1), segSize).Should().Be(file);
            }
        }
    }
}
