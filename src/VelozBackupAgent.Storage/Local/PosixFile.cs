using Microsoft.Win32.SafeHandles;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Storage.Local;

/// <summary>
/// The store's old name for the durability calls, now in <see cref="Platform"/> (<see cref="FileSync"/>): kept only
/// while <see cref="LocalWriteBatch"/> still calls it; new code calls <see cref="FileSync"/> directly.
/// </summary>
internal static class PosixFile
{
    /// <inheritdoc cref="FileSync.FsyncDirectory"/>
    public static void FsyncDirectory(string directory) => FileSync.FsyncDirectory(directory);

    /// <inheritdoc cref="FileSync.StartWriteback"/>
    public static void StartWriteback(SafeFileHandle handle) => FileSync.StartWriteback(handle);

    /// <inheritdoc cref="FileSync.SyncData"/>
    public static void SyncData(string path) => FileSync.SyncData(path);
}
