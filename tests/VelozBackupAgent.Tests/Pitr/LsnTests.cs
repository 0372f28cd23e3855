using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.Tests.Pitr;

public sealed class LsnTests
{
    [Theory]
    [InlineData("0/3000028", 0x3000028UL)]
    [InlineData("16/B374D848", 0x16_B374D848UL)]
    [InlineData("0/0", 0UL)]
    [InlineData("FFFFFFFF/FFFFFFFF", ulong.MaxValue)]
    [InlineData("00000001/00000002", 0x1_00000002UL)]
    public void Parses_and_formats_like_PostgreSQL(string text, ulong value)
    {
        var lsn = Lsn.Parse(text);

        lsn.Value.Should().Be(value);
        lsn.ToString().Should().Be($"{value >> 32:X}/{value & 0xFFFFFFFF:X}", "no zero padding, upper case");
    }

    [Fact]
    public void Lower_case_is_accepted_and_printed_upper_case()
    {
        Lsn.Parse("16/b374d848").Should().Be(new Lsn(0x16_B374D848UL));
        Lsn.Parse("16/b374d848").ToString().Should().Be("16/B374D848");
    }

    [Theory]
    [InlineData("")]
    [InlineData("0/")]
    [InlineData("/0")]
    [InlineData("G/1")]
    [InlineData("1/2/3")]
    [InlineData("123456789/0")]
    [InlineData("0/123456789")]
    [InlineData(" 0/1")]
    [InlineData("0/1 ")]
    [InlineData("0x0/1")]
    [InlineData("+0/1")]
    [InlineData("-1/1")]
    [InlineData("0\\1")]
    [InlineData("01")]
    public void Junk_does_not_parse(string text)
    {
        Lsn.TryParse(text, out _).Should().BeFalse();
        var parse = () => Lsn.Parse(text);
        parse.Should().Throw<FormatException>().Which.Message.Should().NotContain("\n");
    }

    [Fact]
    public void Null_does_not_parse()
    {
        Lsn.TryParse((string?)null, out var lsn).Should().BeFalse();
        lsn.Should().Be(Lsn.Invalid);
    }

    [Fact]
    public void Random_values_round_trip()
    {
        var random = new Random(7);
        for (var i = 0; i < 2000; i++)
        {
            var value = (ulong)random.NextInt64() ^ ((ulong)random.Next() << 40);
            var lsn = new Lsn(value);
            Lsn.Parse(lsn.ToString()).Should().Be(lsn);
            Lsn.Parse(lsn.ToString().ToLowerInvariant()).Should().Be(lsn);
        }
    }

    [Fact]
    public void Compares_by_position()
    {
        var a = Lsn.Parse("0/FFFFFFFF");
        var b = Lsn.Parse("1/0");

        (a < b).Should().BeTrue();
        (b > a).Should().BeTrue();
        (a <= Lsn.Parse("0/FFFFFFFF")).Should().BeTrue();
        (b >= a).Should().BeTrue();
        a.CompareTo(b).Should().BeNegative();
        new[] { b, a, Lsn.Invalid }.Order().Should().Equal(Lsn.Invalid, a, b);
        Lsn.Invalid.Should().Be(new Lsn(0));
    }

    [Fact]
    public void Arithmetic_is_in_bytes_and_checked()
    {
        var a = Lsn.Parse("0/FFFFFFFF");

        (a + 1).Should().Be(Lsn.Parse("1/0"));
        (a + -0xFFFFFFFFL).Should().Be(Lsn.Invalid);
        (Lsn.Parse("1/0") - a).Should().Be(1);
        (a - Lsn.Parse("1/0")).Should().Be(-1);
        (new Lsn(long.MaxValue) - Lsn.Invalid).Should().Be(long.MaxValue);
        (Lsn.Invalid - new Lsn(1UL << 63)).Should().Be(long.MinValue);
        (new Lsn(ulong.MaxValue) + long.MinValue).Should().Be(new Lsn(long.MaxValue));

        var over = () => new Lsn(ulong.MaxValue) + 1;
        var under = () => Lsn.Invalid + -1;
        var tooFar = () => new Lsn(ulong.MaxValue) - Lsn.Invalid;
        over.Should().Throw<OverflowException>();
        under.Should().Throw<OverflowException>();
        tooFar.Should().Throw<OverflowException>();
    }
}
