using VelozBackupAgent.Sources.Archives;
using VelozBackupAgent.Sources.Secrets;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Tests.Sources.Secrets;

public sealed class SecretsFingerprintTests
{
    private static readonly FileStatus Base = new(FileKind.Regular, 0x180, 998, 998, 41, 1_700_000_000_000_000_000, 1_700_000_000_000_000_000, 2049, 1234);

    private static string Of(FileStatus status, string path = "binance.key", params string[] recipients) =>
        SecretsState.Fingerprint([new SourceEntry(path, "/etc/veloz/secrets/" + path, status, null)], recipients.Length == 0 ? ["AAAA"] : recipients);

    [Fact]
    public void The_same_metadata_gives_the_same_fingerprint() => Of(Base).Should().Be(Of(Base));

    [Fact]
    public void Any_metadata_change_moves_it()
    {
        var all = new[]
        {
            Of(Base),
            Of(Base with { Size = 42 }),
            Of(Base with { MtimeNs = Base.MtimeNs + 1 }),
            Of(Base with { CtimeNs = Base.CtimeNs + 1 }),
            Of(Base with { Mode = 0x1a4 }),
            Of(Base with { Uid = 0 }),
            Of(Base with { Inode = 99 }),
            Of(Base, "renamed.key"),
            Of(Base, "binance.key", "BBBB"),
            Of(Base, "binance.key", "AAAA", "BBBB"),
        };
        all.Should().OnlyHaveUniqueItems();
    }

    [Fact]
    public void Recipient_order_does_not_matter() =>
        Of(Base, "k", "AAAA", "BBBB").Should().Be(Of(Base, "k", "BBBB", "AAAA"));

    [Fact]
    public void It_is_a_bare_hash_that_names_nothing() =>
        Of(Base).Should().MatchRegex("^[0-9a-f]{64}$");
}
