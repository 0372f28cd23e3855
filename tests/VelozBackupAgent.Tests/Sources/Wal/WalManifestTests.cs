using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using VelozBackupAgent.Sources.Wal;

namespace VelozBackupAgent.Tests.Sources.Wal;

public sealed class WalManifestTests
{
    private static readonly string ShaA = new('a', 64);
    private static readonly string ShaB = new('b', 64);

    private static WalManifest Sample(int segments = 3) => new(
        WalManifest.FormatName,
        1,
        "veloz-1",
        new DateTimeOffset(2026, 11, 23, 10, 15, 0, TimeSpan.Zero),
        "Scheduled",
        "/var/lib/veloz/wal \"quoted\"",
        new WalManifestActive("orders_current.wal", "orders_current_20261123_101500.wal", 42, ShaB),
        [.. Enumerable.Range(1, segments).Select(i => new WalManifestSegment($"orders_{i:D16}.wal", i * 10, ShaA))],
        [new WalManifestPending("orders_0000000000000099.wal", 3)],
        [new WalManifestConflict("orders_0000000000000050.wal", 10, ShaA, 11, null)],
        [new WalManifestUnreadable("orders_0000000000000060.wal", "Permission denied")],
        "0600",
        "0750");

    private static async Task<string> TextAsync(WalManifest manifest)
    {
        using var buffer = new MemoryStream();
        await manifest.WriteAsync(buffer, CancellationToken.None);
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    [Fact]
    public async Task What_is_written_reads_back_equal()
    {
        using var buffer = new MemoryStream();
        await Sample().WriteAsync(buffer, CancellationToken.None);
        buffer.Position = 0;

        var read = await WalManifest.ReadAsync(buffer);

        read.Should().BeEquivalentTo(Sample());
    }

    [Fact]
    public async Task It_is_valid_json_with_camel_case_fields()
    {
        using var doc = JsonDocument.Parse(await TextAsync(Sample()));
        var root = doc.RootElement;
        root.GetProperty("format").GetString().Should().Be("veloz-wal-manifest");
        root.GetProperty("active").GetProperty("artifact").GetString().Should().Be("orders_current_20261123_101500.wal");
        root.GetProperty("segments").GetArrayLength().Should().Be(3);
        root.GetProperty("directory").GetString().Should().Be("/var/lib/veloz/wal \"quoted\"");
        root.GetProperty("conflicts")[0].TryGetProperty("sourceSha256", out _).Should().BeFalse("an unknown checksum is left out, not written as a fake one");
    }

    [Fact]
    public async Task Every_segment_is_on_its_own_line_so_sed_can_make_a_sha256sum_file()
    {
        // The README's fallback for machines without jq relies on this layout.
        var text = await TextAsync(Sample(5));
        var lines = text.Split('\n')
            .Select(l => Regex.Match(l, "\"name\":\"([^\"]*)\",\"size\":[0-9]*,\"sha256\":\"([0-9a-f]{64})\""))
            .Where(m => m.Success)
            .Select(m => $"{m.Groups[2].Value}  {m.Groups[1].Value}")
            .ToList();
        lines.Should().HaveCount(5);
        lines[0].Should().Be($"{ShaA}  orders_0000000000000001.wal");
    }

    [Fact]
    public async Task Empty_lists_and_no_active_file_are_written_as_such()
    {
        var empty = Sample(0) with { Active = null, Pending = [], Conflicts = [], Unreadable = [] };
        using var doc = JsonDocument.Parse(await TextAsync(empty));
        doc.RootElement.GetProperty("active").ValueKind.Should().Be(JsonValueKind.Null);
        doc.RootElement.GetProperty("segments").GetArrayLength().Should().Be(0);
    }

    [Fact]
    public async Task Something_else_is_not_taken_for_a_manifest()
    {
        using var other = new MemoryStream("""{"format":"something-else","version":1,"segments":[]}"""u8.ToArray());
        var read = () => WalManifest.ReadAsync(other);
        await read.Should().ThrowAsync<InvalidDataException>();
    }

    [Fact]
    public async Task Modes_are_written_as_octal_and_a_manifest_without_them_reads_as_unrecorded()
    {
        using (var doc = JsonDocument.Parse(await TextAsync(Sample())))
        {
            doc.RootElement.GetProperty("fileMode").GetString().Should().Be("0600");
            doc.RootElement.GetProperty("directoryMode").GetString().Should().Be("0750");
        }

        // Written before modes were recorded: still a manifest, the modes unknown (a restore uses its defaults).
        var older = Sample() with { FileMode = null, DirectoryMode = null };
        var text = await TextAsync(older);
        text.Should().NotContain("fileMode").And.NotContain("directoryMode");
        using var input = new MemoryStream(Encoding.UTF8.GetBytes(text));
        var read = await WalManifest.ReadAsync(input);
        read.FileMode.Should().BeNull();
        read.DirectoryMode.Should().BeNull();
    }

    [Theory]
    [InlineData(0x180, "0600")]
    [InlineData(0x1A0, "0640")]
    [InlineData(0x1FF, "0777")]
    [InlineData(0x9ED, "0755")] // setuid and sticky bits are not permissions a restore hands out
    public void A_mode_is_formatted_as_four_octal_digits_of_permission_bits(int mode, string expected) =>
        WalManifest.FormatMode((UnixFileMode)mode).Should().Be(expected);

    [Theory]
    [InlineData("0600", 0x180)]
    [InlineData("640", 0x1A0)]
    [InlineData("4755", 0x1ED)]
    public void A_recorded_mode_reads_back_as_its_permission_bits(string text, int expected) =>
        WalManifest.ParseMode(text).Should().Be((UnixFileMode)expected);

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("0689")]
    [InlineData("rw-r-----")]
    [InlineData("100644")]
    public void Anything_else_is_no_recorded_mode(string? text) =>
        WalManifest.ParseMode(text).Should().BeNull();
}
