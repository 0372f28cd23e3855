using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace VelozBackupAgent.Sources.Archives;

/// <summary>What a directory entry is, as lstat sees it (a symbolic link is never followed).</summary>
internal enum FileKind
{
    Regular,
    Directory,
    SymbolicLink,

    /// <summary>A FIFO, socket or device: never archived.</summary>
    Other,
}

/// <summary>
/// One coherent snapshot of a file's metadata from <c>statx(2)</c>: owner, inode and change time are not
/// exposed by System.IO, and archiving needs them (tar keeps the owner; change detection uses inode and
/// ctime, which no user-space tool can set back). Links are never followed.
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
internal readonly record struct FileStatus(FileKind Kind, int Mode, int Uid, int Gid, long Size, long MtimeNs, long CtimeNs, ulong Device, ulong Inode)
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxBasicStats = 0x7ff;
    private const int StatxSize = 256;
    private const int ENOENT = 2;
    private const int ENOTDIR = 20;

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
        var name = Marshal.StringToCoTaskMemUTF8(path);
        try
        {
            return Call(AtFdCwd, name, followLinks ? 0 : AtSymlinkNoFollow, missingIsNull: true);
        }
        finally
        {
            Marshal.FreeCoTaskMem(name);
        }
    }

    /// <summary>fstat(2) of an open file: the metadata of exactly the inode being read.</summary>
    public static FileStatus Of(SafeFileHandle handle)
    {
        ArgumentNullException.ThrowIfNull(handle);
        var added = false;
        var empty = Marshal.StringToCoTaskMemUTF8("");
        try
        {
            handle.DangerousAddRef(ref added);
            return Call((int)handle.DangerousGetHandle(), empty, AtEmptyPath, missingIsNull: false)!.Value;
        }
        finally
        {
            Marshal.FreeCoTaskMem(empty);
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    private static FileStatus? Call(int dirFd, nint path, int flags, bool missingIsNull)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("archiving files needs Linux (statx)");
        }

        var buffer = Marshal.AllocHGlobal(StatxSize);
        try
        {
            if (Statx(dirFd, path, flags, StatxBasicStats, buffer) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (missingIsNull && errno is ENOENT or ENOTDIR)
                {
                    return null;
                }

                throw new IOException(Marshal.GetPInvokeErrorMessage(errno), errno);
            }

            // struct statx (include/uapi/linux/stat.h): fixed-size fields, the same layout on every architecture.
            var mode = (ushort)Marshal.ReadInt16(buffer, 28);
            var kind = (mode & 0xF000) switch
            {
                0x8000 => FileKind.Regular,
                0x4000 => FileKind.Directory,
                0xA000 => FileKind.SymbolicLink,
                _ => FileKind.Other,
            };
            return new FileStatus(
                kind,
                mode & 0xFFF,
                Marshal.ReadInt32(buffer, 20),
                Marshal.ReadInt32(buffer, 24),
                Marshal.ReadInt64(buffer, 40),
                Nanoseconds(buffer, 112),
                Nanoseconds(buffer, 96),
                ((ulong)(uint)Marshal.ReadInt32(buffer, 136) << 32) | (uint)Marshal.ReadInt32(buffer, 140),
                (ulong)Marshal.ReadInt64(buffer, 32));
        }
        finally
        {
            Marshal.FreeHGlobal(buffer);
        }
    }

    private static long Nanoseconds(nint buffer, int offset) =>
        (Marshal.ReadInt64(buffer, offset) * 1_000_000_000L) + (uint)Marshal.ReadInt32(buffer, offset + 8);

    // DllImport, not LibraryImport: every argument is blittable, so nothing is marshalled, and this project
    // does not allow unsafe code (which the LibraryImport generator needs).
    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Statx(int dirFd, nint path, int flags, uint mask, nint buffer);
}
