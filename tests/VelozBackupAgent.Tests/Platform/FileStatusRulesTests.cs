using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Tests.Platform;

/// <summary>
/// The OS-neutral parts of <see cref="FileStatus"/> on Windows: the mode given to a file that has only attributes,
/// the kind of an entry, and FILETIME to Unix nanoseconds (the Win32 calls around them never ran here).
/// </summary>
public sealed class FileStatusRulesTests
{
    [Theory]
    [InlineData(FileAttributes.Normal, 0b110_110_110)] // 0666
    [InlineData(FileAttributes.Archive, 0b110_110_110)]
    [InlineData(FileAttributes.ReadOnly, 0b100_100_100)] // 0444
    [InlineData(FileAttributes.Directory, 0b111_111_111)] // 0777
    [InlineData(FileAttributes.Directory | FileAttributes.ReadOnly, 0b101_101_101)] // 0555
    [InlineData(FileAttributes.ReparsePoint, 0b111_111_111)]
    public void A_windows_file_gets_the_mode_go_and_restic_give_it(FileAttributes attributes, int mode) =>
        FileStatus.WindowsMode(attributes).Should().Be(mode);

    [Theory]
    [InlineData(FileAttributes.Normal, FileKind.Regular)]
    [InlineData(FileAttributes.Archive | FileAttributes.Hidden, FileKind.Regular)]
    [InlineData(FileAttributes.Directory, FileKind.Directory)]
    [InlineData(FileAttributes.ReparsePoint, FileKind.SymbolicLink)]
    [InlineData(FileAttributes.Directory | FileAttributes.ReparsePoint, FileKind.SymbolicLink)] // a junction or directory link: never followed
    [InlineData(FileAttributes.Device, FileKind.Other)]
    public void A_windows_entry_is_a_link_whenever_it_is_a_reparse_point(FileAttributes attributes, FileKind kind) =>
        FileStatus.KindOf(attributes).Should().Be(kind);

    [Fact]
    public void A_filetime_becomes_nanoseconds_since_the_unix_epoch()
    {
        var when = new DateTimeOffset(2026, 12, 2, 20, 15, 30, TimeSpan.Zero).AddTicks(1234567);
        FileStatus.FileTimeToUnixNanoseconds(when.UtcDateTime.ToFileTimeUtc())
            .Should().Be((when - DateTimeOffset.UnixEpoch).Ticks * 100);
        FileStatus.FileTimeToUnixNanoseconds(116_444_736_000_000_000L).Should().Be(0);
    }
}
