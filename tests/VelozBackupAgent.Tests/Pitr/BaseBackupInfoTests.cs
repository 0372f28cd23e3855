using System.Text;
using System.Text.Json.Nodes;
using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.Tests.Pitr;

public sealed class BaseBackupInfoTests
{
    internal static BaseBackupInfo Sample() => new()
    {
        Format = 1,
        Archive = "base_20261201_220800.tar.zst",
        ArchiveSha256 = new string('a', 64),
        ArchiveBytes = 123_456_789,
        TarBytes = 987_654_321,
        Compression = "zstd",
        SystemIdentifier = "7714000000000000001",
        ServerVersion = "15.10",
        ServerVersionNum = 150010,
        Timeline = 1,
        StartLsn = "0/3000028",
        StartWalFile = "000000010000000000000003",
        StopLsn = "0/3000100",
        StopTimeline = 1,
        StartTime = new DateTimeOffset(2026, 12, 1, 22, 8, 2, TimeSpan.Zero),
        StopTime = new DateTimeOffset(2026, 12, 1, 22, 9, 40, TimeSpan.Zero),
        WalSegmentSize = 16 * 1024 * 1024,
        ManifestSha256 = new string('b', 64),
        Label = "pg_basebackup base backup",
        PgBasebackupVersion = "pg_basebackup (PostgreSQL) 15.10",
    };

    private static string Json(BaseBackupInfo info) => Encoding.UTF8.GetString(info.ToUtf8Bytes());

    private static string Mutate(Action<JsonObject> change)
    {
        var node = JsonNode.Parse(Json(Sample()))!.AsObject();
        change(node);
        return node.ToJsonString();
    }

    private static BaseBackupInfo Read(string json) => BaseBackupInfo.Read(new MemoryStream(Encoding.UTF8.GetBytes(json)));

    [Fact]
    public void What_is_written_reads_back_equal()
    {
        using var stream = new MemoryStream();
        Sample().Write(stream);
        stream.Position = 0;

        var info = BaseBackupInfo.Read(stream);

        info.Should().Be(Sample());
        info.Start.Should().Be(Lsn.Parse("0/3000028"));
        info.Stop.Should().Be(Lsn.Parse("0/3000100"));
        info.SystemIdentifierValue.Should().Be(7714000000000000001);
    }

    [Fact]
    public async Task ReadAsync_reads_the_same()
    {
        var info = await BaseBackupInfo.ReadAsync(new MemoryStream(Sample().ToUtf8Bytes()));

        info.Should().Be(Sample());
    }

    [Fact]
    public void The_document_is_camelCase_with_string_lsns_and_a_string_system_identifier()
    {
        var node = JsonNode.Parse(Json(Sample()))!.AsObject();

        node.Select(p => p.Key).Should().Equal("format", "archive", "archiveSha256", "archiveBytes", "tarBytes", "compression", "systemIdentifier",
            "serverVersion", "serverVersionNum", "timeline", "startLsn", "startWalFile", "stopLsn", "stopTimeline", "startTime", "stopTime",
            "walSegmentSize", "manifestSha256", "label", "pgBasebackupVersion");
        node["startLsn"]!.GetValue<string>().Should().Be("0/3000028");
        node["systemIdentifier"]!.GetValue<string>().Should().Be("7714000000000000001");
        node["startTime"]!.GetValue<string>().Should().Be("2026-12-01T22:08:02+00:00");
        Json(Sample()).Should().EndWith("}\n");
    }

    [Fact]
    public void Optional_fields_may_be_absent_or_null()
    {
        Read(Mutate(o => { o.Remove("manifestSha256"); o.Remove("label"); })).Label.Should().BeNull();
        Read(Mutate(o => o["label"] = null)).Label.Should().BeNull();
    }

    [Fact]
    public void Unknown_fields_are_ignored_so_a_newer_writer_stays_readable()
    {
        Read(Mutate(o => o["addedLater"] = new JsonObject { ["x"] = 1 })).Should().Be(Sample());
    }

    [Fact]
    public void A_byte_order_mark_is_accepted()
    {
        BaseBackupInfo.Parse([0xEF, 0xBB, 0xBF, .. Sample().ToUtf8Bytes()]).Should().Be(Sample());
    }

    [Theory]
    [InlineData("startLsn")]
    [InlineData("stopLsn")]
    [InlineData("systemIdentifier")]
    [InlineData("timeline")]
    [InlineData("format")]
    [InlineData("archiveBytes")]
    [InlineData("startTime")]
    [InlineData("pgBasebackupVersion")]
    public void A_missing_field_is_named(string field)
    {
        var read = () => Read(Mutate(o => o.Remove(field)));

        read.Should().Throw<FormatException>().Which.Message.Should().Contain(field).And.NotContain("\n");
    }

    [Theory]
    [InlineData("startLsn", "0/")]
    [InlineData("stopLsn", "G/1")]
    [InlineData("startWalFile", "000000010000000000000004")]
    [InlineData("compression", "gzip")]
    [InlineData("compression", "lz4")]
    [InlineData("archiveSha256", "ABC")]
    [InlineData("manifestSha256", "xyz")]
    [InlineData("systemIdentifier", "-1")]
    [InlineData("systemIdentifier", "0")]
    [InlineData("systemIdentifier", "99999999999999999999999")]
    [InlineData("archive", "base_x.tar.zst")]
    [InlineData("archive", "../../etc/passwd")]
    [InlineData("serverVersion", "")]
    public void Inconsistent_values_are_refused(string field, string value)
    {
        var read = () => Read(Mutate(o => o[field] = value));

        read.Should().Throw<FormatException>().Which.Message.Should().StartWith("base backup info is not valid: ").And.NotContain("\n");
    }

    [Theory]
    [InlineData("format", 2)]
    [InlineData("timeline", 0)]
    [InlineData("stopTimeline", 0)]
    [InlineData("walSegmentSize", 1000)]
    [InlineData("archiveBytes", -1)]
    [InlineData("serverVersionNum", 0)]
    public void Out_of_range_numbers_are_refused(string field, long value)
    {
        var read = () => Read(Mutate(o => o[field] = value));

        read.Should().Throw<FormatException>();
    }

    [Fact]
    public void A_stop_before_the_start_is_refused()
    {
        var read = () => Read(Mutate(o => o["stopLsn"] = "0/3000000"));

        read.Should().Throw<FormatException>().WithMessage("*stopLsn 0/3000000 is before startLsn 0/3000028*");
    }

    [Theory]
    [InlineData("")]
    [InlineData("null")]
    [InlineData("[]")]
    [InlineData("42")]
    [InlineData("{")]
    [InlineData("{}")]
    [InlineData("not json at all")]
    [InlineData("{\"format\": \"1\"}")]
    public void Junk_is_a_FormatException(string json)
    {
        var read = () => Read(json);

        read.Should().Throw<FormatException>().Which.Message.Should().NotContain("\n");
    }

    [Fact]
    public void Hostile_documents_are_FormatExceptions_not_crashes()
    {
        var deep = Mutate(o => o["x"] = 1).Replace("\"x\":1", "\"x\":" + new string('[', 100_000) + new string(']', 100_000), StringComparison.Ordinal);
        var huge = Mutate(o => o["archiveBytes"] = 1).Replace("\"archiveBytes\":1", "\"archiveBytes\":1" + new string('0', 400), StringComparison.Ordinal);
        var exponent = Mutate(o => o["timeline"] = 1).Replace("\"timeline\":1", "\"timeline\":1e3", StringComparison.Ordinal);
        var wrongType = Mutate(o => o["timeline"] = new JsonArray());
        var nullRequired = Mutate(o => o["startLsn"] = null);
        var negativeUint = Mutate(o => o["timeline"] = -1);
        var duplicate = Mutate(o => o["x"] = 1).Replace("\"x\":1", "\"timeline\":2", StringComparison.Ordinal);
        var badDate = Mutate(o => o["startTime"] = "yesterday");
        var tooLong = Mutate(o => o["label"] = new string('x', BaseBackupInfo.MaxBytes));

        foreach (var json in new[] { deep, huge, exponent, wrongType, nullRequired, negativeUint, duplicate, badDate, tooLong })
        {
            var read = () => Read(json);
            read.Should().Throw<FormatException>().Which.Message.Should().NotContain("\n");
        }
    }

    [Fact]
    public void Random_byte_damage_is_read_or_refused_never_a_crash()
    {
        var random = new Random(5);
        var good = Sample().ToUtf8Bytes();
        for (var i = 0; i < 3000; i++)
        {
            var bytes = (byte[])good.Clone();
            for (var k = random.Next(1, 4); k > 0; k--)
            {
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            }

            try
            {
                BaseBackupInfo.Parse(bytes).Problem().Should().BeNull();
            }
            catch (FormatException)
            {
            }
        }
    }

    [Fact]
    public void An_invalid_document_is_not_written()
    {
        var write = () => (Sample() with { StartLsn = "junk" }).ToUtf8Bytes();

        write.Should().Throw<FormatException>();
    }
}
