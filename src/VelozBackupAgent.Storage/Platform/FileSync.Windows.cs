using System.Runtime.Versioning;

namespace VelozBackupAgent.Storage.Platform;

public static partial class FileSync
{
    /// <summary><c>FlushFileBuffers</c> through a handle of its own (what <see cref="FileStream.Flush(bool)"/> calls).</summary>
    [SupportedOSPlatform("windows")]
    private static void SyncDataWindows(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        stream.Flush(flushToDisk: true);
    }
}
