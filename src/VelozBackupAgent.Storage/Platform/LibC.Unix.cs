using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace VelozBackupAgent.Storage.Platform;

/// <summary>
/// Every libc call the agent makes, in one place. POSIX calls are marked for the systems that have them, the
/// Linux-only ones (<c>statx</c>, <c>renameat2</c>, <c>fdatasync</c>, <c>sync_file_range</c>, <c>syncfs</c>) for Linux: the
/// platform-compatibility analyzer (CA1416, an error in this build) refuses a call that is not guarded by the
/// matching <see cref="OperatingSystem"/> check, so no Windows path can reach one.
/// </summary>
[SupportedOSPlatform("linux")]
[SupportedOSPlatform("macos")]
[SupportedOSPlatform("freebsd")]
internal static partial class LibC
{
    public const int ORdOnly = 0;
    public const int ONonBlock = 0x800; // 04000: Linux x86_64/arm64
    public const int ODirectory = 0x10000; // Linux x86_64/arm64 value of O_DIRECTORY
    public const int OCloExec = 0x80000; // Linux x86_64/arm64 value of O_CLOEXEC
    public const int AtFdCwd = -100;
    public const int SysConfClockTicks = 2; // _SC_CLK_TCK

    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int EACCES = 13;
    public const int ENOTDIR = 20;
    public const int EINVAL = 22;
    public const int ENOSYS = 38;
    public const int ENOTSUP = 95;

    /// <summary>True on the systems this class is for (the guard CA1416 understands for them).</summary>
    [SupportedOSPlatformGuard("linux")]
    [SupportedOSPlatformGuard("macos")]
    [SupportedOSPlatformGuard("freebsd")]
    public static bool IsSupported => OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD();

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    public static partial int Fsync(int fd);

    [SupportedOSPlatform("linux")]
    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    public static partial int Fdatasync(int fd);

    [SupportedOSPlatform("linux")]
    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    public static partial int SyncFileRange(int fd, long offset, long nbytes, uint flags);

    [SupportedOSPlatform("linux")]
    [LibraryImport("libc", EntryPoint = "syncfs", SetLastError = true)]
    public static partial int Syncfs(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "sysconf")]
    public static partial long SysConf(int name);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "lchown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int LChown(string path, int uid, int gid);

    [SupportedOSPlatform("linux")]
    [LibraryImport("libc", EntryPoint = "renameat2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int RenameAt2(int olddirfd, string oldpath, int newdirfd, string newpath, uint flags);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    public static partial uint GetEuid();

    [LibraryImport("libc", EntryPoint = "getuid")]
    public static partial uint GetUid();

    [LibraryImport("libc", EntryPoint = "getgid")]
    public static partial uint GetGid();

    [SupportedOSPlatform("linux")]
    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true)]
    public static partial int Statx(int dirFd, nint path, int flags, uint mask, nint buffer);

    /// <summary>statx with the path (NUL-terminated UTF-8) and the result in caller's buffers: nothing allocated per call.</summary>
    [SupportedOSPlatform("linux")]
    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true)]
    public static partial int StatxBuffers(int dirFd, ReadOnlySpan<byte> path, int flags, uint mask, Span<byte> buffer);
}
