using VelozBackupAgent.Sources;

namespace VelozBackupAgent.Tests.Sources;

/// <summary>The OpenPGP packet walk that lets import refuse a cut gpg file without the key.</summary>
public sealed class OpenPgpPacketsTests
{
    private static void Check(params byte[] bytes) => OpenPgpPackets.CheckEncryptedMessage(new MemoryStream(bytes));

    private static string Refusal(params byte[] bytes)
    {
        var check = () => Check(bytes);
        return check.Should().Throw<ImportRefusedException>().Which.Message;
    }

    // New format: 0xC0 | tag. PKESK (1) of 3 bytes, then SEIPD (18) of 5 bytes.
    private static readonly byte[] Whole = [0xC1, 3, 1, 2, 3, 0xD2, 5, 1, 2, 3, 4, 5];

    [Fact]
    public void A_session_key_then_encrypted_data_ending_at_the_end_is_whole() => Check(Whole);

    [Fact]
    public void Every_cut_is_refused()
    {
        for (var n = 1; n < Whole.Length; n++)
        {
            Refusal(Whole[..n]).Should().Contain("cut short", $"cut after {n} bytes");
        }
    }

    [Fact]
    public void Partial_body_lengths_must_be_followed_by_the_rest()
    {
        // SEIPD streamed: a partial chunk of 2 bytes (0xE1), then a final chunk of 1 byte.
        byte[] streamed = [0xC1, 1, 9, 0xD2, 0xE1, 7, 7, 1, 7];
        Check(streamed);
        Refusal(streamed[..7]).Should().Contain("another OpenPGP length header must follow");
    }

    [Fact]
    public void Old_format_headers_are_walked_too()
    {
        // Old format: 0x80 | tag << 2 | length type (0: one length byte).
        Check(0x84, 2, 1, 2, 0xA4, 1, 9); // PKESK (1), then SEIPD (18) is not old-format-able (tags > 15): SED (9) instead
    }

    [Fact]
    public void Data_that_is_not_openpgp_or_not_encrypted_is_refused()
    {
        Refusal("hello"u8.ToArray()).Should().Contain("not an OpenPGP packet header");
        Refusal("-----BEGIN PGP MESSAGE-----"u8.ToArray()).Should().Contain("ASCII-armored");
        Refusal(0xCB, 1, 0).Should().Contain("packet of type 11"); // a literal data packet: gpg --store, not --encrypt
        Refusal(0xD2, 1, 0).Should().Contain("no session-key packet");
        Refusal([.. Whole, 0xC1, 1, 0]).Should().Contain("data after the encrypted packet");
        Refusal().Should().Contain("empty");
    }
}
