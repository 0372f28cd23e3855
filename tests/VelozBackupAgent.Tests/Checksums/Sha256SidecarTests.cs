using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Checksums;

namespace VelozBackupAgent.Tests.Checksums;

public class Sha256SidecarTests
{
    private const string Hash = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

    [Fact]
    public void Formats_like_sha256sum()
    {
        Sha256Sidecar.Format(Hash, "veloz_20260214_120000.dump").Should().Be($"{Hash}  veloz_20260214_120000.dump\n");
    }

    [Theory]
    [InlineData($"{Hash}  a.dump\n")]
    [InlineData($"{Hash} *a.dump\n")]
    [InlineData($"{Hash}  a.dump")]
    public void Parses_text_and_binary_mode(string text)
    {
        Sha256Sidecar.Parse(text, "a.dump").Should().Be(Hash);
    }

    [Fact]
    public void Parses_upper_case_digests_as_lower_case()
    {
        Sha256Sidecar.Parse($"{Hash.ToUpperInvariant()}  a.dump\n", "a.dump").Should().Be(Hash);
    }

    [Theory]
    [InlineData($"{Hash}  b.dump\n")]
    [InlineData("garbage\n")]
    [InlineData("")]
    [InlineData($"{Hash}  a.dump\n{Hash}  a.dump\n")]
    [InlineData("zz91b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  a.dump\n")]
    public void Refuses_a_sidecar_that_is_malformed_or_names_another_file(string text)
    {
        var parse = () => Sha256Sidecar.Parse(text, "a.dump");
        parse.Should().Throw<ArtifactIntegrityException>();
    }

    [Fact]
    public void Refuses_to_format_a_non_digest()
    {
        var format = () => Sha256Sidecar.Format("abc", "a.dump");
        format.Should().Throw<ArgumentException>();
    }
}
