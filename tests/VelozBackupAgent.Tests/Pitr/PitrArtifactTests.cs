using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.Tests.Pitr;

public sealed class PitrArtifactTests
{
    private static readonly WalFileName Seg3 = WalFileName.Parse("000000010000000000000003");

    [Fact]
    public void A_segment()
    {
        var a = PitrArtifact.Classify("000000020000000A000000FF")!;

        a.Type.Should().Be(PitrArtifactType.Segment);
        a.File.Should().Be(new WalFileName(2, 0xA, 0xFF));
        a.Timeline.Should().Be(2);
        a.BaseStem.Should().BeNull();
    }

    [Fact]
    public void A_piece_carries_its_offsets()
    {
        var a = PitrArtifact.Classify("000000010000000000000004.00025A50-00031000.partial")!;

        a.Type.Should().Be(PitrArtifactType.Partial);
        a.File.Should().Be(WalFileName.Parse("000000010000000000000004"));
        (a.PartialStart, a.PartialEnd).Should().Be((0x25A50u, 0x31000u));
        a.IsWholeSegment.Should().BeFalse();
        PitrArtifact.PieceName(a.File!.Value, 0x25A50, 0x31000).Should().Be(a.Name);
    }

    [Fact]
    public void PostgreSQLs_own_partial_is_a_whole_segment_piece()
    {
        var a = PitrArtifact.Classify("000000010000000000000004.partial")!;

        a.Type.Should().Be(PitrArtifactType.Partial);
        a.IsWholeSegment.Should().BeTrue();
        PitrArtifact.PartialName(a.File!.Value).Should().Be(a.Name);
    }

    [Fact]
    public void History_and_backup_history()
    {
        var h = PitrArtifact.Classify("0000000A.history")!;
        h.Type.Should().Be(PitrArtifactType.History);
        h.Timeline.Should().Be(10);
        PitrArtifact.HistoryName(10).Should().Be("0000000A.history");

        var b = PitrArtifact.Classify("000000010000000000000003.00000028.backup")!;
        b.Type.Should().Be(PitrArtifactType.BackupHistory);
        b.File.Should().Be(Seg3);
        b.BackupOffset.Should().Be(0x28);
        PitrArtifact.BackupHistoryName(Seg3, 0x28).Should().Be(b.Name);
    }

    [Theory]
    [InlineData("base_20261201_010000.tar.gz", PitrArtifactType.BaseArchive, "base_20261201_010000", ".tar.gz")]
    [InlineData("base_20261201_010000-2.tar.zst", PitrArtifactType.BaseArchive, "base_20261201_010000-2", ".tar.zst")]
    [InlineData("base_20261201_010000.tar", PitrArtifactType.BaseArchive, "base_20261201_010000", ".tar")]
    [InlineData("base_20261201_010000-2.json", PitrArtifactType.BaseInfo, "base_20261201_010000-2", ".json")]
    public void Bases_pair_by_stem(string name, PitrArtifactType type, string stem, string suffix)
    {
        var a = PitrArtifact.Classify(name)!;

        a.Type.Should().Be(type);
        a.BaseStem.Should().Be(stem);
        a.BaseSuffix.Should().Be(suffix);
        a.File.Should().BeNull();
        (type == PitrArtifactType.BaseInfo ? PitrArtifact.BaseInfoName(stem) : PitrArtifact.BaseArchiveName(stem, suffix)).Should().Be(name);
    }

    [Fact]
    public void Base_stems_come_from_the_time()
    {
        var t = new DateTimeOffset(2026, 12, 1, 1, 0, 0, TimeSpan.Zero);

        PitrArtifact.BaseStemFor(t).Should().Be("base_20261201_010000");
        PitrArtifact.BaseStemFor(t, 2).Should().Be("base_20261201_010000-2");
        PitrArtifact.CompressionOf(".tar.zst").Should().Be("zstd");
        PitrArtifact.CompressionOf(".zip").Should().BeNull();
    }

    [Theory]
    [InlineData("base_x.tar.gz")]
    [InlineData("base_20261301_010000.tar.gz")]
    [InlineData("base_20261201_010000.zip")]
    [InlineData("base_20261201_010000.tar.gz.sha256")]
    [InlineData("other_20261201_010000.tar.gz")]
    [InlineData("base_x_20261201_010000.tar.gz")]
    [InlineData("000000010000000000000003.partial.tmp")]
    [InlineData("00000001000000000000000a")]
    [InlineData("000000010000000000000004.00031000-00025A50.partial")]
    [InlineData("000000010000000000000004.00000000-00000000.partial")]
    [InlineData("000000010000000000000004.00000000-40000001.partial")]
    [InlineData("000000010000000000000004.0000000-00025A50.partial")]
    [InlineData("000000010000000000000004.00000000-00025a50.partial")]
    [InlineData("000000010000000000000003.0000028.backup")]
    [InlineData("00000000.history")]
    [InlineData("0000000a.history")]
    [InlineData("1.history")]
    [InlineData("notes.txt")]
    [InlineData("")]
    public void Foreign_names_are_not_pitr_artifacts(string name)
    {
        PitrArtifact.Classify(name).Should().BeNull();
    }

    [Fact]
    public void Piece_names_refuse_an_empty_range()
    {
        var make = () => PitrArtifact.PieceName(Seg3, 5, 5);
        make.Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void Every_name_the_helpers_make_classifies_back()
    {
        var random = new Random(3);
        for (var i = 0; i < 500; i++)
        {
            var file = WalFileName.FromSegment((uint)random.Next(1, 100), (ulong)random.NextInt64(0, 1L << 40), 16 * 1024 * 1024);
            var start = (uint)random.Next(0, 1 << 24);
            var end = (uint)random.Next((int)start + 1, (1 << 24) + 1);
            var piece = PitrArtifact.Classify(PitrArtifact.PieceName(file, start, end))!;
            (piece.File, piece.PartialStart, piece.PartialEnd).Should().Be((file, start, end));
            PitrArtifact.Classify(file.ToString())!.File.Should().Be(file);
        }
    }
}
