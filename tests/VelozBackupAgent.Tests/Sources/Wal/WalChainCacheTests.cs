using System.Runtime.Versioning;
using System.Security.Cryptography;
using System.Text;
using VelozBackupAgent.Sources.Wal;

namespace VelozBackupAgent.Tests.Sources.Wal;

/// <summary>
/// <c>wal-chain.json</c>'s trust rules: it is believed only when its own checksum verifies and the store proves all it
/// says (the newest manifest, its sidecar, every manifest of the chain byte for byte); anything else is ignored.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class WalChainCacheTests : IDisposable
{
    private const string Wal = "/var/lib/veloz/wal";
    private const string Store = "/var/backups/veloz/wal";
    private const string Full = "wal-manifest_20261123_100000.json";
    private const string Delta = "wal-manifest_20261123_100500.json";

    private readonly string _root = Directory.CreateTempSubdirectory("veloz-walchain-").FullName;
    private readonly Dictionary<string, byte[]> _manifests = new(StringComparer.Ordinal)
    {
        [Full] = Encoding.UTF8.GetBytes("{\"type\": \"full\"}\n"),
        [Delta] = Encoding.UTF8.GetBytes("{\"type\": \"delta\"}\n"),
    };

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string CachePath => Path.Combine(_root, ".state", WalChainCache.FileName);

    private static string Sha(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    private static readonly WalManifestSegment[] Segments =
    [
        new("orders_0000000000000001.wal", 100, new string('a', 64)),
        new("orders_0000000000000002.wal", 200, new string('b', 64)),
    ];

    private WalChainCacheDocument Document() => new(1, Wal, Store, Delta, Sha(_manifests[Delta]), 1, WalChainCache.SegmentsDigest(Segments),
        [new WalManifestParent(Delta, Sha(_manifests[Delta])), new WalManifestParent(Full, Sha(_manifests[Full]))]);

    private Task<Stream?> OpenAsync(string name, CancellationToken _) =>
        Task.FromResult<Stream?>(_manifests.TryGetValue(name, out var bytes) ? new MemoryStream(bytes) : null);

    private Task<bool> VerifyAsync(WalChainCacheDocument document, string newest = Delta, string? sidecar = null, string directory = Wal, string store = Store) =>
        WalChainCache.VerifyAsync(document, directory, store, newest, sidecar ?? Sha(_manifests[Delta]), OpenAsync, CancellationToken.None);

    [Fact]
    public async Task What_is_saved_loads_back_private_and_is_trusted_while_the_store_proves_it()
    {
        WalChainCache.Save(CachePath, Document());

        var loaded = WalChainCache.Load(CachePath);

        loaded.Should().BeEquivalentTo(Document());
        File.GetUnixFileMode(CachePath).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        (await VerifyAsync(loaded!)).Should().BeTrue();
        Directory.GetFiles(Path.GetDirectoryName(CachePath)!).Should().ContainSingle("no temporary file is left behind");
    }

    [Fact]
    public void A_missing_or_damaged_file_is_not_trusted()
    {
        WalChainCache.Load(CachePath).Should().BeNull("there is none");

        WalChainCache.Save(CachePath, Document());
        var text = File.ReadAllText(CachePath);
        File.WriteAllText(CachePath, text[..(text.Length / 2)]);
        WalChainCache.Load(CachePath).Should().BeNull("a truncated file fails its checksum");

        File.WriteAllText(CachePath, "not json at all");
        WalChainCache.Load(CachePath).Should().BeNull();
    }

    [Fact]
    public void A_tampered_file_is_ignored_even_when_it_still_parses()
    {
        WalChainCache.Save(CachePath, Document());
        var text = File.ReadAllText(CachePath);
        var digest = WalChainCache.SegmentsDigest(Segments);

        // Someone makes it claim other segments (or another parent) without the checksum of the first line matching.
        File.WriteAllText(CachePath, text.Replace(digest, new string('0', 64), StringComparison.Ordinal));
        WalChainCache.Load(CachePath).Should().BeNull();

        File.WriteAllText(CachePath, text.Replace(Full, "wal-manifest_20261123_095500.json", StringComparison.Ordinal));
        WalChainCache.Load(CachePath).Should().BeNull();
    }

    [Fact]
    public void A_file_whose_checksum_verifies_but_whose_chain_does_not_start_at_its_tip_is_ignored()
    {
        var body = "{\"version\":1,\"directory\":\"" + Wal + "\",\"store\":\"" + Store + "\",\"name\":\"" + Delta + "\",\"sha256\":\"" + Sha(_manifests[Delta])
            + "\",\"depth\":1,\"segmentsSha256\":\"" + new string('c', 64) + "\",\"chain\":[{\"name\":\"" + Full + "\",\"sha256\":\"" + Sha(_manifests[Full]) + "\"}]}";
        Directory.CreateDirectory(Path.GetDirectoryName(CachePath)!);
        File.WriteAllText(CachePath, Sha(Encoding.UTF8.GetBytes(body)) + "\n" + body);

        WalChainCache.Load(CachePath).Should().BeNull();
    }

    [Fact]
    public async Task It_is_not_trusted_when_the_newest_manifest_is_another_or_has_another_checksum()
    {
        (await VerifyAsync(Document(), newest: "wal-manifest_20261123_101000.json")).Should().BeFalse("another sync wrote a newer manifest");
        (await VerifyAsync(Document(), sidecar: new string('d', 64))).Should().BeFalse("the newest manifest's sidecar says other bytes");
        (await VerifyAsync(Document(), directory: "/elsewhere")).Should().BeFalse("it describes another WAL directory");
        (await VerifyAsync(Document(), store: "/elsewhere")).Should().BeFalse("it describes another store");
    }

    [Fact]
    public async Task It_is_not_trusted_when_a_manifest_of_the_chain_is_gone_or_changed()
    {
        var document = Document();

        _manifests[Full] = Encoding.UTF8.GetBytes("{\"type\": \"full\", \"tampered\": true}\n");
        (await VerifyAsync(document)).Should().BeFalse("the full manifest has other bytes than when the chain was resolved");

        _manifests.Remove(Full);
        (await VerifyAsync(document)).Should().BeFalse("the chain's full manifest is gone");

        _manifests[Full] = Encoding.UTF8.GetBytes("{\"type\": \"full\"}\n");
        _manifests[Delta] = Encoding.UTF8.GetBytes("{\"type\": \"delta\", \"tampered\": true}\n");
        (await VerifyAsync(document)).Should().BeFalse("the newest manifest's bytes differ from its (unchanged) sidecar");
    }

    [Fact]
    public void The_segment_digest_does_not_depend_on_order_and_changes_with_any_field()
    {
        var digest = WalChainCache.SegmentsDigest(Segments);

        WalChainCache.SegmentsDigest(Segments.Reverse()).Should().Be(digest);
        WalChainCache.SegmentsDigest([Segments[0], Segments[1] with { Size = 201 }]).Should().NotBe(digest);
        WalChainCache.SegmentsDigest([Segments[0], Segments[1] with { Sha256 = new string('c', 64) }]).Should().NotBe(digest);
        WalChainCache.SegmentsDigest([Segments[0]]).Should().NotBe(digest);
        WalChainCache.SegmentsDigest([]).Should().NotBe(digest);
    }
}
