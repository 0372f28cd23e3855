using System.Runtime.InteropServices;

namespace VelozBackupAgent.Storage.Platform;

/// <summary>Swapping two directories in one step, where the system can.</summary>
public static class DirectoryExchange
{
    /// <summary>
    /// Swaps two existing paths atomically (Linux <c>renameat2(RENAME_EXCHANGE)</c>): at no instant is either name
    /// missing. Returns false where the kernel or file system does not support it, and always off Linux (Windows has
    /// no such call): the caller then falls back to two renames, between which the target name is briefly missing.
    /// </summary>
    public static bool TryExchange(string a, string b)
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        const uint RenameExchange = 2;
        try
        {
            if (LibC.RenameAt2(LibC.AtFdCwd, a, LibC.AtFdCwd, b, RenameExchange) == 0)
            {
                return true;
            }
        }
        catch (EntryPointNotFoundException)
        {
            return false;
        }

        var errno = Marshal.GetLastPInvokeError();
        return errno is LibC.ENOSYS or LibC.EINVAL or LibC.ENOTSUP
            ? false
            : throw new IOException($"cannot swap {a} and {b} (errno {errno})");
    }
}
