using System.Formats.Tar;
using System.IO.Compression;
using VelozBackupAgent.Restore;

namespace VelozBackupAgent.IntegrationTests.Restore;

/// <summary>
/// Archives are hostile until proven otherwise: crafted tar entries that would escape the target are refused
/// before anything reaches it, both by the extractor and through <c>restore config</c> on the real binary.
/// </summary>
public sealed class HostileArchiveTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-hostile-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    public static TheoryData<string, string> Hostile => new()
    {
        { "dotdot", "'..' would leave the target directory" },
        { "absolute", "absolute path" },
        { "symlink-escape", "points outside the target directory" },
        { "symlink-absolute", "points outside the target directory" },
        { "write-through-link", "is a symbolic link, not a directory" },
        { "hardlink-outside", "must name an earlier file of the archive" },
        { "char-device", "device files are never restored" },
        { "fifo", "FIFOs are never restored" },
        { "duplicate", "appears twice" },
    };

    [Theory]
    [MemberData(nameof(Hostile))]
    public async Task A_hostile_entry_is_refused_and_the_target_is_left_exactly_as_it_was(string attack, string message)
    {
        var target = Path.Combine(_root, "target");
        Directory.CreateDirectory(target);
        File.WriteAllText(Path.Combine(target, "config.yaml"), "original\n");
        using var tar = Craft(attack);

        var act = async () => await SafeTarExtractor.ExtractAsync(tar, target, new TarExtractOptions(), "crafted.tar", CancellationToken.None);

        (await act.Should().ThrowAsync<RestoreIntegrityException>()).Which.Message.Should().Contain(message);
        Directory.GetFileSystemEntries(target).Should().Equal(Path.Combine(target, "config.yaml"));
        File.ReadAllText(Path.Combine(target, "config.yaml")).Should().Be("original\n");
        File.Exists(Path.Combine(_root, "escaped")).Should().BeFalse();
    }

    [Fact]
    public async Task A_well_formed_archive_keeps_modes_links_and_nested_directories()
    {
        var target = Path.Combine(_root, "ok");
        var tar = new MemoryStream();
        await using (var writer = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            writer.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "strategies/") { Mode = (UnixFileMode)0x1ED });
            writer.WriteEntry(Regular("strategies/a.yaml", "a: 1\n", (UnixFileMode)0x180));
            writer.WriteEntry(Regular("./config.yaml", "x: 1\n", (UnixFileMode)0x1A4));
            writer.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, "current.yaml") { LinkName = "strategies/a.yaml" });
            writer.WriteEntry(new PaxTarEntry(TarEntryType.HardLink, "strategies/b.yaml") { LinkName = "strategies/a.yaml" });
        }

        tar.Position = 0;
        using var tree = await SafeTarExtractor.ExtractAsync(tar, target, new TarExtractOptions(), "ok.tar", CancellationToken.None);
        Directory.GetFileSystemEntries(target).Should().ContainSingle("until committed, only the staging directory exists");
        tree.Commit();

        File.ReadAllText(Path.Combine(target, "strategies", "a.yaml")).Should().Be("a: 1\n");
        File.GetUnixFileMode(Path.Combine(target, "strategies", "a.yaml")).Should().Be((UnixFileMode)0x180);
        File.GetUnixFileMode(Path.Combine(target, "config.yaml")).Should().Be((UnixFileMode)0x1A4);
        new FileInfo(Path.Combine(target, "current.yaml")).LinkTarget.Should().Be("strategies/a.yaml");
        File.ReadAllText(Path.Combine(target, "strategies", "b.yaml")).Should().Be("a: 1\n");
        Directory.GetDirectories(target).Should().Equal(Path.Combine(target, "strategies"));
    }

    [Fact]
    public async Task Restore_config_of_a_crafted_archive_stored_with_a_valid_checksum_is_refused_by_the_binary()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        var crafted = Path.Combine(bed.Root, "config_20260101_000000.tar.gz");
        await using (var file = File.Create(crafted))
        await using (var gzip = new GZipStream(file, CompressionLevel.Fastest))
        {
            await Craft("dotdot").CopyToAsync(gzip);
        }

        (await bed.RunAsync("import", "config", crafted)).ExitCode.Should().Be(0);
        var before = RestoreTestBed.Snapshot(bed.ConfigRoot);

        var restore = await bed.RunAsync("restore", "config", "latest");
        restore.ExitCode.Should().Be(1);
        restore.ErrorLines.Should().ContainSingle().Which.Should().Contain("refusing archive entry '../escaped'");
        RestoreTestBed.Snapshot(bed.ConfigRoot).Should().BeEquivalentTo(before);
        File.Exists(Path.Combine(bed.Root, "etc", "escaped")).Should().BeFalse();
        (await File.ReadAllLinesAsync(bed.ServiceLog)).Should().Equal(["started"]);
    }

    private static MemoryStream Craft(string attack)
    {
        var tar = new MemoryStream();
        using (var writer = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            writer.WriteEntry(Regular("config.yaml", "hostile\n", (UnixFileMode)0x1A4));
            switch (attack)
            {
                case "dotdot":
                    writer.WriteEntry(Regular("../escaped", "x", (UnixFileMode)0x1A4));
                    break;
                case "absolute":
                    writer.WriteEntry(Regular("/tmp/escaped", "x", (UnixFileMode)0x1A4));
                    break;
                case "symlink-escape":
                    writer.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, "strategies/link") { LinkName = "../../escaped" });
                    break;
                case "symlink-absolute":
                    writer.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, "link") { LinkName = "/etc/passwd" });
                    break;
                case "write-through-link":
                    writer.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, "link") { LinkName = "." });
                    writer.WriteEntry(Regular("link/escaped", "x", (UnixFileMode)0x1A4));
                    break;
                case "hardlink-outside":
                    writer.WriteEntry(new PaxTarEntry(TarEntryType.HardLink, "passwd") { LinkName = "etc/passwd" });
                    break;
                case "char-device":
                    writer.WriteEntry(new PaxTarEntry(TarEntryType.CharacterDevice, "null") { DeviceMajor = 1, DeviceMinor = 3 });
                    break;
                case "fifo":
                    writer.WriteEntry(new PaxTarEntry(TarEntryType.Fifo, "pipe"));
                    break;
                case "duplicate":
                    writer.WriteEntry(Regular("config.yaml", "second\n", (UnixFileMode)0x1A4));
                    break;
                default:
                    throw new ArgumentException(attack);
            }
        }

        tar.Position = 0;
        return tar;
    }

    private static PaxTarEntry Regular(string name, string content, UnixFileMode mode) =>
        new(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(content)), Mode = mode };
}
