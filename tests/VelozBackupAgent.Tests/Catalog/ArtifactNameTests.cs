using VelozBackupAgent.Catalog;

namespace VelozBackupAgent.Tests.Catalog;

public class ArtifactNameTests
{
    private static readonly DateTimeOffset Noon = new(2026, 2, 14, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData("config", ".tar.gz", "config_20260214_120000.tar.gz")]
    [InlineData("veloz", ".dump", "veloz_20260214_120000.dump")]
    [InlineData("secrets", ".tar.gz.gpg", "secrets_20260214_120000.tar.gz.gpg")]
    public void Formats_the_seeds_names(string prefix, string suffix, string expected)
    {
        ArtifactName.Format(prefix, Noon, suffix).Should().Be(expected);
    }

    [Fact]
    public void Formats_in_utc_whatever_the_offset()
    {
        var local = new DateTimeOffset(2026, 2, 14, 13, 0, 0, TimeSpan.FromHours(1));
        ArtifactName.Format("veloz", local, ".dump").Should().Be("veloz_20260214_120000.dump");
    }

    [Fact]
    public void Same_second_artifacts_get_distinct_names_that_sort_after_the_first()
    {
        var first = ArtifactName.Format("config", Noon, ".tar.gz");
        var second = ArtifactName.Format("config", Noon, ".tar.gz", 2);
        second.Should().Be("config_20260214_120000-2.tar.gz").And.NotBe(first);
        ArtifactName.TryParse(second, out _, out var t, out var seq, out _).Should().BeTrue();
        t.Should().Be(Noon);
        seq.Should().Be(2);
    }

    [Theory]
    [InlineData("config_20260214_120000.tar.gz", "config", ".tar.gz", 1)]
    [InlineData("veloz_20260214_120000-17.dump", "veloz", ".dump", 17)]
    [InlineData("orders_current_20260214_120000.wal", "orders_current", ".wal", 1)]
    [InlineData("wal-manifest_20260214_120000.json", "wal-manifest", ".json", 1)]
    public void Parses_prefix_time_sequence_and_suffix(string name, string prefix, string suffix, int sequence)
    {
        ArtifactName.TryParse(name, out var p, out var t, out var s, out var x).Should().BeTrue();
        (p, t, s, x).Should().Be((prefix, Noon, sequence, suffix));
    }

    [Theory]
    [InlineData("orders_0000000000000001.wal")]
    [InlineData("config.tar.gz")]
    [InlineData("config_20261399_120000.tar.gz")]
    [InlineData("config_20260214_250000.tar.gz")]
    [InlineData("config_20260214_120000")]
    [InlineData("")]
    public void Rejects_names_without_a_valid_time(string name)
    {
        ArtifactName.TryParse(name, out _, out _, out _, out _).Should().BeFalse();
    }

    [Fact]
    public void Round_trips_every_second_of_a_day_sample()
    {
        var random = new Random(42);
        for (var i = 0; i < 1000; i++)
        {
            var t = Noon.AddSeconds(random.Next(-100_000_000, 100_000_000));
            var name = ArtifactName.Format("veloz", t, ".dump", random.Next(1, 50));
            ArtifactName.TryParse(name, out _, out var parsed, out _, out _).Should().BeTrue(name);
            parsed.Should().Be(t);
        }
    }
}
