using System.Runtime.InteropServices;

namespace VelozBackupAgent.Storage.Platform;

/// <summary>
/// Unix file ownership: who the agent runs as and giving a file its owner. Windows has no uid/gid: there the agent is
/// never "root", <see cref="LChown"/> does nothing and who may read a file is its ACL (<see cref="OwnerOnlyAccess"/>).
/// </summary>
public static class Owners
{
    /// <summary>True when the agent runs as root (and may therefore give files their recorded owners). False on Windows.</summary>
    public static bool IsRoot => LibC.IsSupported && LibC.GetEuid() == 0;

    /// <summary>The real user and group id of the agent; (-1, -1) on Windows.</summary>
    public static (int Uid, int Gid) Current => LibC.IsSupported ? ((int)LibC.GetUid(), (int)LibC.GetGid()) : (-1, -1);

    /// <summary>Sets the owner of <paramref name="path"/> without following a symlink. A no-op on Windows.</summary>
    public static void LChown(string path, int uid, int gid)
    {
        if (!LibC.IsSupported)
        {
            return;
        }

        if (LibC.LChown(path, uid, gid) != 0)
        {
            throw new IOException($"cannot set the owner of {path} to {uid}:{gid} (errno {Marshal.GetLastPInvokeError()})");
        }
    }
}
