using System.Runtime.InteropServices;

namespace VelozBackupAgent.Restore;

/// <summary>The few POSIX calls .NET does not offer: ownership, an atomic directory swap, the effective uid.</summary>
internal static class Native
{
    private const uint RenameExchange = 2;
    private const int AtFdCwd = -100;

    /// <summary>True when the agent runs as root (and may therefore give files their recorded owners).</summary>
    public static bool IsRoot => !OperatingSystem.IsWindows() && GetEuid() == 0;

    /// <summary>Sets the owner of <paramref name="path"/> without following a symlink.</summary>
    public static void LChown(string path, int uid, int gid)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        if (LchownCore(path, uid, gid) != 0)
        {
            throw new IOException($"cannot set the owner of {path} to {uid}:{gid} (errno {Marshal.GetLastPInvokeError()})");
        }
    }

    /// <summary>
    /// Swaps two existing paths atomically (<c>renameat2(RENAME_EXCHANGE)</c>): at no instant is either name
    /// missing. Returns false where the kernel or file system does not support it.
    /// </summary>
    public static bool TryExchange(string a, string b)
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        try
        {
            if (RenameAt2(AtFdCwd, a, AtFdCwd, b, RenameExchange) == 0)
            {
                return true;
            }
        }
        catch (EntryPointNotFoundException)
        {
            return false;
        }

        var errno = Marshal.GetLastPInvokeError();
        const int ENOSYS = 38, EINVAL = 22, ENOTSUP = 95;
        return errno is ENOSYS or EINVAL or ENOTSUP
            ? false
            : throw new IOException($"cannot swap {a} and {b} (errno {errno})");
    }

    [DllImport("libc", EntryPoint = "lchown", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int LchownCore([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int uid, int gid);

    [DllImport("libc", EntryPoint = "renameat2", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int RenameAt2(int olddirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string oldpath, int newdirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string newpath, uint flags);

    [DllImport("libc", EntryPoint = "geteuid")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern uint GetEuid();
}
