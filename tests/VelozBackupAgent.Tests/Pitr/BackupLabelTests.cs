using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.Tests.Pitr;

public sealed class BackupLabelTests
{
    internal const string Sample = """
        START WAL LOCATION: 0/3000028 (file 000000010000000000000003)
        CHECKPOINT LOCATION: 0/3000060
        BACKUP METHOD: streamed
        BACKUP FROM: primary
        START TIME: 2026-12-01 22:08:02 UTC
        LABEL: pg_basebackup base backup
        START TIMELINE: 1

        """;

    [Fact]
    public void Parses_what_pg_basebackup_writes()
    {
        var label = BackupLabel.Parse(Sample);

        label.Should().Be(new BackupLabel(Lsn.Parse("0/3000028"), WalFileName.Parse("000000010000000000000003"), 1, Lsn.Parse("0/3000060"),
            "streamed", "primary", "2026-12-01 22:08:02 UTC", new DateTimeOffset(2026, 12, 1, 22, 8, 2, TimeSpan.Zero), "pg_basebackup base backup"));
        label.CheckSegmentSize(16 * 1024 * 1024).Should().BeNull();
        label.CheckSegmentSize(1024 * 1024).Should().Contain("000000010000000000000030");
    }

    [Fact]
    public void A_label_may_contain_colons_and_the_file_may_have_CRLF_and_unknown_lines()
    {
        var label = BackupLabel.Parse(Sample.Replace("\n", "\r\n", StringComparison.Ordinal)
            .Replace("LABEL: pg_basebackup base backup", "LABEL: nightly: 22:08", StringComparison.Ordinal) + "INCREMENTAL FROM LSN: 0/2000000\r\n");

        label.Label.Should().Be("nightly: 22:08");
    }

    [Fact]
    public void Before_PostgreSQL_11_the_timeline_comes_from_the_file_name()
    {
        var label = BackupLabel.Parse("START WAL LOCATION: 1/A000028 (file 000000030000000100000000A)\nCHECKPOINT LOCATION: 1/A000060\n".Replace("000000030000000100000000A", "00000003000000010000000A", StringComparison.Ordinal));

        label.StartTimeline.Should().Be(3);
        label.StartTime.Should().BeNull();
    }

    [Theory]
    [InlineData("2026-12-01 22:08:02 GMT", "2026-12-01T22:08:02+00:00")]
    [InlineData("2026-12-01 22:08:02 +03", "2026-12-01T22:08:02+03:00")]
    [InlineData("2026-12-01 22:08:02 -0330", "2026-12-01T22:08:02-03:30")]
    [InlineData("2026-12-01 22:08:02 +05:30", "2026-12-01T22:08:02+05:30")]
    public void Start_times_with_a_known_offset_are_read(string text, string expected)
    {
        BackupLabel.Parse(Sample.Replace("2026-12-01 22:08:02 UTC", text, StringComparison.Ordinal)).StartTime.Should().Be(DateTimeOffset.Parse(expected, System.Globalization.CultureInfo.InvariantCulture));
    }

    [Theory]
    [InlineData("2026-12-01 22:08:02 CET")]
    [InlineData("2026-12-01 22:08:02 IST")]
    [InlineData("yesterday UTC")]
    public void Start_times_in_an_ambiguous_zone_are_kept_as_text_only(string text)
    {
        var label = BackupLabel.Parse(Sample.Replace("2026-12-01 22:08:02 UTC", text, StringComparison.Ordinal));

        label.StartTime.Should().BeNull();
        label.StartTimeText.Should().Be(text);
    }

    [Theory]
    [InlineData("START WAL LOCATION: 0/3000028 (file 000000010000000000000003)", "", "no START WAL LOCATION")]
    [InlineData("CHECKPOINT LOCATION: 0/3000060", "", "no CHECKPOINT LOCATION")]
    [InlineData("(file 000000010000000000000003)", "(file 00000001000000000000003)", "is not '%X/%X (file <segment>)'")]
    [InlineData("0/3000028 (file", "0/30000G8 (file", "START WAL LOCATION")]
    [InlineData("CHECKPOINT LOCATION: 0/3000060", "CHECKPOINT LOCATION: nowhere", "CHECKPOINT LOCATION 'nowhere' is not an LSN")]
    [InlineData("CHECKPOINT LOCATION: 0/3000060", "CHECKPOINT LOCATION: 0/2000000", "is before START WAL LOCATION")]
    [InlineData("START TIMELINE: 1", "START TIMELINE: 2", "START TIMELINE '2' does not match")]
    [InlineData("START TIMELINE: 1", "START TIMELINE: one", "START TIMELINE 'one'")]
    [InlineData("LABEL: pg_basebackup base backup", "LABEL: a\nLABEL: b", "'LABEL' appears twice")]
    public void Junk_is_a_one_line_FormatException(string replace, string with, string message)
    {
        var parse = () => BackupLabel.Parse(Sample.Replace(replace, with, StringComparison.Ordinal));

        parse.Should().Throw<FormatException>().Which.Message.Should().StartWith("backup_label").And.Contain(message).And.NotContain("\n");
    }

    [Fact]
    public void Binary_junk_is_a_FormatException()
    {
        var parse = () => BackupLabel.Parse("\0\u0001\u00ff garbage");

        parse.Should().Throw<FormatException>();
    }
}
