using VelozBackupAgent.Sources.Secrets;

namespace VelozBackupAgent.Tests.Sources.Secrets;

/// <summary>Real <c>gpg --with-colons --fixed-list-mode --list-keys</c> output of gpg 2.2.</summary>
public sealed class GpgKeyListingTests
{
    private const string Good = """
        tru:o:1:1795425360:1795425361:3:1:5
        pub:-:255:22:D5CE55E1E7AF2F64:1795425360:::u:::scESC:::::ed25519:::0:
        fpr:::::::::664E15C59758B78E888CC524D5CE55E1E7AF2F64:
        uid:-::::1795425360::105BF9F5B1F2B77CADA2ED8DF9C374FC789D23AF::Good <good@example.com>::::::::::0:
        sub:-:255:18:BCAA260FA4777061:1795425360::::::e:::::cv25519::
        fpr:::::::::E61B1B2442097A128B7210B0BCAA260FA4777061:
        """;

    [Fact]
    public void A_key_with_an_encryption_subkey_is_usable()
    {
        var key = GpgKeyListing.Parse(Good).Should().ContainSingle().Subject;
        key.Fingerprint.Should().Be("664E15C59758B78E888CC524D5CE55E1E7AF2F64");
        key.UserIds.Should().Equal("Good <good@example.com>");
        key.Unusable.Should().BeNull();
        key.Describe().Should().Be("Good <good@example.com> (664E15C59758B78E888CC524D5CE55E1E7AF2F64)");
    }

    [Theory]
    [InlineData("pub:e:255:22:6ED3DC5486E87CD0:1577836800:1577923200::u:::sc:::::ed25519:::0:", "expired since 2020-01-02")]
    [InlineData("pub:r:255:22:23214D262E2FCD89:1795425360:::-:::sc:::::ed25519:::0:", "revoked")]
    [InlineData("pub:u:255:22:A217EBAD651E0CE2:1795425360:::u:::scSC:::::ed25519:::0:", "not usable for encryption (no valid encryption subkey: expired, revoked or never made)")]
    [InlineData("pub:-:255:22:A217EBAD651E0CE2:1795425360:::u:::scESCD:::::ed25519:::0:", "disabled")]
    [InlineData("pub:i:255:22:A217EBAD651E0CE2:1795425360:::u:::scESC:::::ed25519:::0:", "invalid")]
    public void Unusable_keys_say_why(string pub, string reason)
    {
        var listing = pub + "\nfpr:::::::::0A0CDF97B7B5E65F4874593323214D262E2FCD89:\nuid:r::::1795425360::968B::Someone <a@example.com>::::::::::0:\n";
        GpgKeyListing.Parse(listing).Should().ContainSingle().Which.Unusable.Should().Be(reason);
    }

    [Fact]
    public void Subkey_fingerprints_are_not_taken_for_the_primary_and_several_keys_are_listed()
    {
        var two = Good + "\n" + Good.Replace("664E15C59758B78E888CC524D5CE55E1E7AF2F64", "1111111111111111111111111111111111111111", StringComparison.Ordinal);
        GpgKeyListing.Parse(two).Select(k => k.Fingerprint).Should().Equal("664E15C59758B78E888CC524D5CE55E1E7AF2F64", "1111111111111111111111111111111111111111");
    }

    [Fact]
    public void Escaped_user_ids_are_unescaped() =>
        GpgKeyListing.Parse(Good.Replace("Good <good@example.com>", @"Ops\x3a backup <ops@example.com>", StringComparison.Ordinal))[0].UserIds
            .Should().Equal("Ops: backup <ops@example.com>");

    [Fact]
    public void No_keys_in_an_empty_listing() =>
        GpgKeyListing.Parse("tru::1:1795425362:0:3:1:5\n").Should().BeEmpty();
}
