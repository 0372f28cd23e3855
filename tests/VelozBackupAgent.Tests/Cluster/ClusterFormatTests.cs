using VelozBackupAgent.Cluster;

namespace VelozBackupAgent.Tests.Cluster;

/// <summary>How status and the log write a node's clock skew.</summary>
public sealed class ClusterFormatTests
{
    [Theory]
    [InlineData(-0.0001, "+0.000 s")] // rounds to a negative zero: once printed "-+0.000 s"
    [InlineData(0.0, "+0.000 s")]
    [InlineData(-0.25, "-0.250 s")]
    [InlineData(1.5, "+1.500 s")]
    public void A_skew_is_signed_to_the_millisecond(double seconds, string text)
    {
        ClusterDatabase.FormatSkew(seconds).Should().Be(text);
    }
}
