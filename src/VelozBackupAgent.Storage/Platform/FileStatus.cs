using Microsoft.Win32.SafeHandles;

namespace VelozBackupAgent.Storage.Platform;

/// <summary>What a directory entry is, as lstat sees it (a symbolic link is never followed).</summary>
public enum FileKind
{
    Regular,
    Directory,
    SymbolicLink,

    /// <summary>A FIFO, socket or device: never archived.</summary>
    Other,
}

/// <summary>
/// One coherent snapshot of a file's metadata: owner, inode and change time are not exposed by System.IO, and
/// archiving needs them (tar keeps the owner; change detection uses inode and ctime, which no user-space tool can
/// set back). Links are never followed unless asked. On Linux from <c>statx(2)</c> (<c>FileStatus.Unix.cs</c>); on
/// Windows from <c>GetFileInformationByHandle</c> and <c>FILE_BASIC_INFO</c> (<c>FileStatus.Windows.cs</c>), where
/// the device is the volume serial number, the inode the file index, the change time NTFS's ChangeTime, there is no
/// owner (uid and gid 0) and the mode is derived from the attributes as Go and restic do (<see cref="WindowsMode"/>).
/// </summary>
/// <param name="Kind">Regular file, directory, symbolic link or other.</param>
/// <param name="Mode">Permission bits including set-uid, set-gid and sticky (<c>07777</c>).</param>
/// <param name="Uid">Owner user id.</param>
/// <param name="Gid">Owner group id.</param>
/// <param name="Size">Size in bytes.</param>
/// <param name="MtimeNs">Modification time, nanoseconds since the Unix epoch.</param>
/// <param name="CtimeNs">Status change time, nanoseconds since the Unix epoch.</param>
/// <param name="Device">Device the inode lives on.</param>
/// <param name="Inode">Inode number.</param>
public readonly partial record struct FileStatus(FileKind Kind, int Mode, int Uid, int Gid, long Size, long MtimeNs, long CtimeNs, ulong Device, ulong Inode)
{
    /// <summary>The modification time with the 100 ns precision .NET keeps.</summary>
    public DateTimeOffset ModifiedAt => DateTimeOffset.UnixEpoch.AddTicks(MtimeNs / 100);

    /// <summary>Permission bits as <see cref="UnixFileMode"/>.</summary>
    public UnixFileMode Permissions => (UnixFileMode)Mode;

    /// <summary>Whether two snapshots are of the same inode.</summary>
    public bool SameInode(FileStatus other) => Device == other.Device && Inode == other.Inode;

    /// <summary>lstat(2) of <paramref name="path"/>, or null when it does not exist (any more).</summary>
    /// <exception cref="IOException">It exists but cannot be examined; the message is the system's reason.</exception>
    public static FileStatus? TryLstat(string path) => TryStat(path, followLinks: false);

    /// <summary>stat(2) (following links) or lstat(2) of <paramref name="path"/>, or null when it does not exist.</summary>
    /// <exception cref="IOException">It exists but cannot be examined; the message is the system's reason.</exception>
    public static FileStatus? TryStat(string path, bool followLinks)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (OperatingSystem.IsWindows())
        {
            return TryStatWindows(path, followLinks);
        }

        return OperatingSystem.IsLinux() ? TryStatLinux(path, followLinks) : throw Unsupported();
    }

    /// <summary>
    /// Like <see cref="TryStat"/> of <c>Path.Combine(<paramref name="directory"/>, <paramref name="name"/>)</c>, for
    /// listings: on Linux neither the path nor the result is allocated.
    /// </summary>
    /// <exception cref="IOException">It exists but cannot be examined; the message is the system's reason.</exception>
    public static FileStatus? TryStatIn(string directory, string name, bool followLinks)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(name);
        return OperatingSystem.IsLinux() ? TryStatInLinux(directory, name, followLinks) : TryStat(Path.Combine(directory, name), followLinks);
    }

    /// <summary>fstat(2) of an open file: the metadata of exactly the inode being read.</summary>
    public static FileStatus Of(SafeFileHandle handle)
    {
        ArgumentNullException.ThrowIfNull(handle);
        if (OperatingSystem.IsWindows())
        {
            return OfWindows(handle, path: null);
        }

        return OperatingSystem.IsLinux() ? OfLinux(handle) : throw Unsupported();
    }

    /// <summary>
    /// The Unix mode a Windows file is given (Windows has ACLs, not modes): 0666 for a file, 0777 for a directory or
    /// link, without the write bits when the read-only attribute is set — Go's <c>os.Stat</c> rule, which restic keeps.
    /// </summary>
    public static int WindowsMode(FileAttributes attributes)
    {
        var directoryLike = (attributes & (FileAttributes.Directory | FileAttributes.ReparsePoint)) != 0;
        var mode = directoryLike ? 0x1FF /* 0777 */ : 0x1B6 /* 0666 */;
        return (attributes & FileAttributes.ReadOnly) != 0 ? mode & ~0x92 /* ~0222 */ : mode;
    }

    /// <summary>Nanoseconds since the Unix epoch of a Windows FILETIME (100 ns units since 1601-01-01 UTC).</summary>
    public static long FileTimeToUnixNanoseconds(long fileTime) => (fileTime - 116_444_736_000_000_000L) * 100;

    private static PlatformNotSupportedException Unsupported() =>
        new("reading file status (owner, inode, change time) is implemented for Linux (statx) and Windows only");
}
