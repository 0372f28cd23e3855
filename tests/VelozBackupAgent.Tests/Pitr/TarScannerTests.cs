using System.Buffers.Binary;
using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.Tests.Pitr;

public sealed class TarScannerTests
{
    private const ulong SystemId = 7714123456789012345;

    private static readonly byte[] Label = Encoding.UTF8.GetBytes(BackupLabelTests.Sample);

    /// <summary>A manifest as PostgreSQL writes it, about <paramref name="minBytes"/> long, with a correct Manifest-Checksum.</summary>
    internal static byte[] Manifest(int minBytes = 0, string ranges = "{ \"Timeline\": 1, \"Start-LSN\": \"0/3000028\", \"End-LSN\": \"0/3000100\" }", string? checksum = null)
    {
        var body = new StringBuilder("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n");
        var i = 0;
        do
        {
            body.Append(System.Globalization.CultureInfo.InvariantCulture,
                $"{{ \"Path\": \"base/5/{16384 + i}\", \"Size\": 8192, \"Last-Modified\": \"2026-12-01 22:08:02 GMT\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"c7b6a7e1\" }},\n");
            i++;
        }
        while (body.Length < minBytes);

        body.Append("{ \"Path\": \"global/pg_control\", \"Size\": 8192, \"Last-Modified\": \"2026-12-01 22:08:02 GMT\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"0a1b2c3d\" }\n],\n");
        body.Append("\"WAL-Ranges\": [\n").Append(ranges).Append("\n],\n");
        var bytes = Encoding.UTF8.GetBytes(body.ToString());
        var sum = checksum ?? Convert.ToHexStringLower(SHA256.HashData(bytes));
        return [.. bytes, .. Encoding.UTF8.GetBytes($"\"Manifest-Checksum\": \"{sum}\"}}\n")];
    }

    private static byte[] PgControl()
    {
        var control = new byte[8192];
        BinaryPrimitives.WriteUInt64LittleEndian(control, SystemId);
        control[8] = 0xAB;
        return control;
    }

    private static byte[] Tar(TarEntryFormat format, params (string Name, byte[]? Data)[] entries)
    {
        using var buffer = new MemoryStream();
        using (var writer = new TarWriter(buffer, format, leaveOpen: true))
        {
            foreach (var (name, data) in entries)
            {
                var type = data is null ? TarEntryType.Directory : format == TarEntryFormat.V7 ? TarEntryType.V7RegularFile : TarEntryType.RegularFile;
                TarEntry entry = format switch
                {
                    TarEntryFormat.Ustar => new UstarTarEntry(type, name),
                    TarEntryFormat.Pax => new PaxTarEntry(type, name),
                    TarEntryFormat.Gnu => new GnuTarEntry(type, name),
                    _ => new V7TarEntry(type, name),
                };
                if (data is not null)
                {
                    entry.DataStream = new MemoryStream(data);
                }

                writer.WriteEntry(entry);
            }
        }

        return buffer.ToArray();
    }

    private static byte[] BaseTar(TarEntryFormat format, byte[]? manifest = null, params (string Name, byte[]? Data)[] extra) => Tar(format,
    [
        ("backup_label", Label),
        ("global", null),
        ("global/pg_control", PgControl()),
        ("pg_wal", null),
        ("pg_wal/000000010000000000000003", new byte[3000]),
        ("pg_wal/archive_status", null),
        .. extra,
        ("backup_manifest", manifest ?? Manifest()),
    ]);

    /// <summary>Reads everything through a scanner in reads of <paramref name="chunk"/> bytes, checks it came out unchanged, returns the result.</summary>
    private static TarScanResult Scan(byte[] tar, int chunk)
    {
        using var scanner = new TarScanner(new MemoryStream(tar));
        var copy = new byte[tar.Length];
        var at = 0;
        int n;
        while ((n = scanner.Read(copy, at, Math.Min(chunk, copy.Length - at))) > 0)
        {
            at += n;
        }

        scanner.Read(new byte[1], 0, 1).Should().Be(0);
        at.Should().Be(tar.Length);
        copy.AsSpan().SequenceEqual(tar).Should().BeTrue("the scanner passes every byte through unchanged");
        scanner.Completed.Should().BeTrue();
        return scanner.Result;
    }

    public static TheoryData<TarEntryFormat, int> FormatsAndChunks()
    {
        var data = new TheoryData<TarEntryFormat, int>();
        foreach (var format in new[] { TarEntryFormat.Ustar, TarEntryFormat.Pax, TarEntryFormat.Gnu })
        {
            foreach (var chunk in new[] { 1, 7, 511, 512, 513, 64 * 1024 })
            {
                data.Add(format, chunk);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(FormatsAndChunks))]
    public void A_base_backup_tar_yields_its_label_system_identifier_and_manifest(TarEntryFormat format, int chunk)
    {
        var manifest = Manifest();
        var tar = BaseTar(format, manifest);

        var result = Scan(tar, chunk);

        result.Problems.Should().BeEmpty();
        result.Ended.Should().BeTrue();
        result.Entries.Should().Be(7);
        result.TarBytes.Should().Be(tar.Length);
        result.Label.Should().Be(BackupLabel.Parse(BackupLabelTests.Sample));
        result.SystemIdentifier.Should().Be(SystemId);
        result.ManifestSha256.Should().Be(Convert.ToHexStringLower(SHA256.HashData(manifest)));
        result.WalRanges.Should().Equal(new WalRange(1, Lsn.Parse("0/3000028"), Lsn.Parse("0/3000100")));
        result.StopLsn.Should().Be(Lsn.Parse("0/3000100"));
        result.StopTimeline.Should().Be(1);
        result.WalFiles.Should().Equal("000000010000000000000003");
    }

    [Theory]
    [InlineData(TarEntryFormat.Pax)]
    [InlineData(TarEntryFormat.Gnu)]
    public void Long_names_from_pax_and_GNU_headers_are_followed(TarEntryFormat format)
    {
        var longWal = new string('A', 150);
        var longDir = "base/16384/" + new string('d', 90) + "/" + new string('f', 90);
        var tar = BaseTar(format, null, (longDir, new byte[700]), ("pg_wal/" + longWal, new byte[10]), ("./pg_wal/00000002.history", new byte[40]));

        var result = Scan(tar, 7);

        result.Problems.Should().BeEmpty();
        result.Entries.Should().Be(10);
        result.WalFiles.Should().Equal("000000010000000000000003", longWal, "00000002.history");
        result.SystemIdentifier.Should().Be(SystemId);
    }

    [Fact]
    public void A_ustar_name_split_into_prefix_and_name_is_joined()
    {
        var longWal = new string('B', 100);
        var tar = BaseTar(TarEntryFormat.Ustar, null, ("pg_wal/" + longWal, new byte[10]));
        tar.AsSpan().IndexOf(Encoding.ASCII.GetBytes("pg_wal/" + longWal)).Should().Be(-1, "the path is split into prefix and name");

        Scan(tar, 511).WalFiles.Should().Contain(longWal);
    }

    [Fact]
    public void A_ten_MiB_manifest_is_hashed_whole_and_its_ranges_read_from_the_tail_without_holding_it()
    {
        var manifest = Manifest(10 * 1024 * 1024, "{ \"Timeline\": 1, \"Start-LSN\": \"0/3000028\", \"End-LSN\": \"0/5000060\" },\n{ \"Timeline\": 2, \"Start-LSN\": \"0/5000060\", \"End-LSN\": \"0/6000100\" }");
        var tar = BaseTar(TarEntryFormat.Pax, manifest);

        foreach (var chunk in new[] { 7, 511, 64 * 1024 })
        {
            var result = Scan(tar, chunk);
            result.Problems.Should().BeEmpty();
            result.ManifestSha256.Should().Be(Convert.ToHexStringLower(SHA256.HashData(manifest)));
            result.WalRanges.Should().HaveCount(2);
            result.StopLsn.Should().Be(Lsn.Parse("0/6000100"));
            result.StopTimeline.Should().Be(2);
        }

        // Memory: the manifest's tail ring, not the manifest.
        using var scanner = new TarScanner(new MemoryStream(tar));
        var buffer = new byte[64 * 1024];
        var before = GC.GetAllocatedBytesForCurrentThread();
        while (scanner.Read(buffer, 0, buffer.Length) > 0)
        {
        }

        (GC.GetAllocatedBytesForCurrentThread() - before).Should().BeLessThan(3L * 1024 * 1024);
        scanner.Result.WalRanges.Should().HaveCount(2);
    }

    [Fact]
    public async Task Reading_asynchronously_sees_the_same()
    {
        var tar = BaseTar(TarEntryFormat.Gnu);
        using var scanner = new TarScanner(new MemoryStream(tar));
        using var copy = new MemoryStream();

        await scanner.CopyToAsync(copy);

        copy.ToArray().Should().Equal(tar);
        scanner.Result.Problems.Should().BeEmpty();
        scanner.Result.SystemIdentifier.Should().Be(SystemId);
    }

    [Fact]
    public void A_manifest_checksum_that_does_not_match_is_a_problem()
    {
        var result = Scan(BaseTar(TarEntryFormat.Ustar, Manifest(checksum: new string('0', 64))), 4096);

        result.Problems.Should().ContainSingle().Which.Should().StartWith("backup_manifest: its Manifest-Checksum 0000");
        result.WalRanges.Should().HaveCount(1, "the ranges are still read");
    }

    [Fact]
    public void An_unreadable_manifest_tail_leaves_no_ranges_and_says_so()
    {
        var noRanges = Scan(BaseTar(TarEntryFormat.Ustar, Encoding.UTF8.GetBytes("{ \"Files\": [] }\n")), 4096);
        noRanges.WalRanges.Should().BeEmpty();
        noRanges.Problems.Should().Contain("backup_manifest: no WAL-Ranges found at its end");

        var badLsn = Scan(BaseTar(TarEntryFormat.Ustar, Manifest(ranges: "{ \"Timeline\": 1, \"Start-LSN\": \"0/30G0028\", \"End-LSN\": \"0/3000100\" }")), 4096);
        badLsn.WalRanges.Should().BeEmpty();
        badLsn.Problems.Should().ContainSingle().Which.Should().StartWith("backup_manifest: cannot read WAL-Ranges");

        var empty = Scan(BaseTar(TarEntryFormat.Ustar, Manifest(ranges: "")), 4096);
        empty.WalRanges.Should().BeEmpty();
        empty.Problems.Should().ContainSingle().Which.Should().Contain("empty");

        var backwards = Scan(BaseTar(TarEntryFormat.Ustar, Manifest(ranges: "{ \"Timeline\": 1, \"Start-LSN\": \"0/3000100\", \"End-LSN\": \"0/3000028\" }")), 4096);
        backwards.Problems.Should().ContainSingle().Which.Should().Contain("ends before it starts");
    }

    [Fact]
    public void Whitespace_and_extra_fields_in_the_ranges_are_fine()
    {
        var ranges = "  {\n\t\"Timeline\" :  1 ,\r\n \"Start-LSN\": \"0/3000028\", \"Extra\": [1, {\"a\": 2}], \"End-LSN\"  : \"0/3000100\"\n}";

        Scan(BaseTar(TarEntryFormat.Ustar, Manifest(ranges: ranges)), 100).WalRanges.Should().Equal(new WalRange(1, Lsn.Parse("0/3000028"), Lsn.Parse("0/3000100")));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(200)]
    [InlineData(-1)]
    public void An_archive_cut_in_the_middle_of_an_entry_is_truncated(int into)
    {
        var tar = BaseTar(TarEntryFormat.Ustar);
        var manifestHeader = tar.AsSpan().IndexOf("backup_manifest"u8);
        var cut = tar.AsSpan(0, manifestHeader + 512 + (into > 0 ? into : Manifest().Length + into)).ToArray();

        var result = Scan(cut, 333);

        result.Ended.Should().BeFalse();
        result.ManifestSha256.Should().BeNull();
        result.Problems.Should().ContainSingle().Which.Should().StartWith("the archive is truncated in 'backup_manifest'");
    }

    [Fact]
    public void An_archive_without_its_end_blocks_is_truncated()
    {
        var tar = BaseTar(TarEntryFormat.Ustar);

        var noEnd = Scan(tar.AsSpan(0, tar.Length - 1024).ToArray(), 4096);
        noEnd.Ended.Should().BeFalse();
        noEnd.Problems.Should().ContainSingle().Which.Should().StartWith("the archive is truncated: it ends after 7 entries");
        noEnd.ManifestSha256.Should().NotBeNull("the manifest itself was whole");

        var oneBlock = Scan(tar.AsSpan(0, tar.Length - 512).ToArray(), 4096);
        oneBlock.Problems.Should().ContainSingle().Which.Should().Contain("only one of its two end-of-archive blocks");

        var midHeader = Scan(tar.AsSpan(0, tar.AsSpan().IndexOf("backup_manifest"u8) + 100).ToArray(), 4096);
        midHeader.Problems.Should().ContainSingle().Which.Should().StartWith("the archive is truncated inside a header");
    }

    [Fact]
    public void Zero_padding_after_the_end_is_fine_but_other_bytes_are_not()
    {
        var tar = BaseTar(TarEntryFormat.Ustar);

        Scan([.. tar, .. new byte[8192]], 1000).Problems.Should().BeEmpty();
        var trailing = Scan([.. tar, .. new byte[100], 1, 2, 3], 1000);
        trailing.Ended.Should().BeTrue();
        trailing.Problems.Should().ContainSingle().Which.Should().StartWith("non-zero bytes follow the end-of-archive marker");
    }

    [Fact]
    public void A_bad_header_checksum_stops_the_scan_with_a_problem()
    {
        var tar = BaseTar(TarEntryFormat.Ustar);
        var control = tar.AsSpan().IndexOf("global/pg_control"u8);
        tar[control + 5] ^= 0x20;

        var result = Scan(tar, 512);

        result.Problems.Should().ContainSingle().Which.Should().Match("the tar header at offset * has a bad checksum*");
        result.Ended.Should().BeFalse();
        result.SystemIdentifier.Should().BeNull();
        result.Label.Should().NotBeNull("what came before is still known");
    }

    [Fact]
    public void A_base256_size_field_is_read()
    {
        var tar = BaseTar(TarEntryFormat.Ustar);
        var at = tar.AsSpan().IndexOf("global/pg_control"u8);
        var header = tar.AsSpan(at, 512);
        header.Slice(124, 12).Clear();
        header[124] = 0x80;
        BinaryPrimitives.WriteUInt32BigEndian(header[(124 + 8)..], 8192);
        WriteChecksum(header);

        var result = Scan(tar, 100);

        result.Problems.Should().BeEmpty();
        result.SystemIdentifier.Should().Be(SystemId);
        TarScanner.ParseNumber([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00]).Should().Be(256);
        TarScanner.ParseNumber([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).Should().BeNull("negative");
        TarScanner.ParseNumber([0x80, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).Should().BeNull("too large");
        TarScanner.ParseNumber("   0017 \0"u8).Should().Be(15);
        TarScanner.ParseNumber("0019\0"u8).Should().BeNull();
    }

    [Fact]
    public void A_hand_made_ustar_archive_with_gnu_long_name_and_pax_size_is_followed()
    {
        // GNU 'L' long name for backup_label's real entry, then a pax header overriding the size of pg_control's.
        using var buffer = new MemoryStream();
        var longName = Encoding.UTF8.GetBytes("backup_label\0");
        buffer.Write(Header("././@LongLink", longName.Length, 'L'));
        buffer.Write(Padded(longName));
        buffer.Write(Header(new string('x', 100), Label.Length, '0'));
        buffer.Write(Padded(Label));
        var pax = Encoding.UTF8.GetBytes("15 size=000016\n");
        buffer.Write(Header("PaxHeaders/pg_control", pax.Length, 'x'));
        buffer.Write(Padded(pax));
        buffer.Write(Header("global/pg_control", 999, '0'));
        buffer.Write(Padded(PgControl().AsSpan(0, 16).ToArray()));
        buffer.Write(new byte[1024]);

        var result = Scan(buffer.ToArray(), 13);

        result.Problems.Should().BeEmpty();
        result.Entries.Should().Be(2);
        result.Label.Should().NotBeNull();
        result.SystemIdentifier.Should().Be(SystemId);
    }

    [Fact]
    public void A_malformed_pax_header_is_a_problem()
    {
        using var buffer = new MemoryStream();
        var pax = Encoding.UTF8.GetBytes("99 size=16\n");
        buffer.Write(Header("PaxHeaders/x", pax.Length, 'x'));
        buffer.Write(Padded(pax));
        buffer.Write(Header("global/pg_control", 16, '0'));
        buffer.Write(Padded(PgControl().AsSpan(0, 16).ToArray()));
        buffer.Write(new byte[1024]);

        var result = Scan(buffer.ToArray(), 512);

        result.Problems.Should().ContainSingle().Which.Should().Contain("malformed pax header");
        result.SystemIdentifier.Should().Be(SystemId);
    }

    [Fact]
    public void Links_and_directories_carry_no_data_whatever_their_size_says()
    {
        using var buffer = new MemoryStream();
        buffer.Write(Header("pg_tblspc/16385", 1234, '2'));
        buffer.Write(Header("global/pg_control", 16, '0'));
        buffer.Write(Padded(PgControl().AsSpan(0, 16).ToArray()));
        buffer.Write(new byte[1024]);

        var result = Scan(buffer.ToArray(), 512);

        result.Problems.Should().BeEmpty();
        result.SystemIdentifier.Should().Be(SystemId);
    }

    [Fact]
    public void A_short_pg_control_and_a_broken_label_are_problems()
    {
        var result = Scan(Tar(TarEntryFormat.Ustar, ("backup_label", "junk"u8.ToArray()), ("global/pg_control", new byte[4])), 512);

        result.Label.Should().BeNull();
        result.SystemIdentifier.Should().BeNull();
        result.Problems.Should().BeEquivalentTo("global/pg_control is shorter than 8 bytes", "backup_label has no START WAL LOCATION line");
    }

    [Fact]
    public void An_empty_stream_is_an_empty_archive()
    {
        var result = Scan([], 512);

        result.Ended.Should().BeFalse();
        result.Problems.Should().Equal("the archive is empty");
    }

    [Fact]
    public void A_result_taken_before_the_end_says_so()
    {
        using var scanner = new TarScanner(new MemoryStream(BaseTar(TarEntryFormat.Ustar)));
        scanner.ReadExactly(new byte[1000], 0, 1000);

        scanner.Completed.Should().BeFalse();
        scanner.Result.Problems.Should().Contain("the archive was not read to its end");
    }

    [Fact]
    public void A_zero_length_read_is_not_the_end()
    {
        using var scanner = new TarScanner(new MemoryStream(BaseTar(TarEntryFormat.Ustar)));

        scanner.Read([], 0, 0).Should().Be(0);
        scanner.Completed.Should().BeFalse();
    }

    [Fact]
    public void Random_damage_never_throws_and_never_changes_the_bytes()
    {
        var random = new Random(9);
        var good = BaseTar(TarEntryFormat.Pax, null, (new string('n', 130), new byte[2000]));
        for (var i = 0; i < 300; i++)
        {
            var tar = (byte[])good.Clone();
            for (var k = random.Next(1, 6); k > 0; k--)
            {
                tar[random.Next(tar.Length)] = (byte)random.Next(256);
            }

            var length = random.Next(2) == 0 ? tar.Length : random.Next(tar.Length);
            var result = Scan(tar.AsSpan(0, length).ToArray(), random.Next(1, 2000));
            result.TarBytes.Should().Be(length);
        }
    }

    [Fact]
    public void Disposing_closes_the_inner_stream_unless_asked_not_to()
    {
        var inner = new MemoryStream([1, 2, 3]);
        new TarScanner(inner, leaveOpen: true).Dispose();
        inner.CanRead.Should().BeTrue();
        new TarScanner(inner).Dispose();
        inner.CanRead.Should().BeFalse();
    }

    private static byte[] Header(string name, long size, char type)
    {
        var header = new byte[512];
        Encoding.ASCII.GetBytes(name).CopyTo(header, 0);
        Encoding.ASCII.GetBytes("0000644\0").CopyTo(header, 100);
        Encoding.ASCII.GetBytes("0000000\0").CopyTo(header, 108);
        Encoding.ASCII.GetBytes("0000000\0").CopyTo(header, 116);
        Encoding.ASCII.GetBytes(Convert.ToString(size, 8).PadLeft(11, '0') + "\0").CopyTo(header, 124);
        Encoding.ASCII.GetBytes("00000000000\0").CopyTo(header, 136);
        header[156] = (byte)type;
        Encoding.ASCII.GetBytes("ustar\000").CopyTo(header, 257);
        WriteChecksum(header);
        return header;
    }

    private static void WriteChecksum(Span<byte> header)
    {
        header.Slice(148, 8).Fill((byte)' ');
        var sum = 0;
        foreach (var b in header)
        {
            sum += b;
        }

        Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 ").CopyTo(header[148..]);
    }

    private static byte[] Padded(byte[] data) => [.. data, .. new byte[(512 - (data.Length % 512)) % 512]];
}
