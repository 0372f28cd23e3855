using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using Microsoft.Win32.SafeHandles;

namespace VelozBackupAgent.Storage.Platform;

public readonly partial record struct FileStatus
{
    /// <summary>Opens the entry itself (a directory too; a link itself unless <paramref name="followLinks"/>) for its attributes only.</summary>
    [SupportedOSPlatform("windows")]
    private static FileStatus? TryStatWindows(string path, bool followLinks)
    {
        var flags = Kernel32.FileFlagBackupSemantics | (followLinks ? 0 : Kernel32.FileFlagOpenReparsePoint);
        using var handle = Kernel32.CreateFile(path, Kernel32.FileReadAttributes, Kernel32.FileShareAll, 0, Kernel32.OpenExisting, flags, 0);
        if (handle.IsInvalid)
        {
            var error = Marshal.GetLastPInvokeError();
            return error is Kernel32.ErrorFileNotFound or Kernel32.ErrorPathNotFound
                ? null
                : throw new IOException($"{path}: {Marshal.GetPInvokeErrorMessage(error)}", error);
        }

        return OfWindows(handle, path);
    }

    [SupportedOSPlatform("windows")]
    private static FileStatus OfWindows(SafeFileHandle handle, string? path)
    {
        if (!Kernel32.GetFileInformationByHandle(handle, out var info))
        {
            var error = Marshal.GetLastPInvokeError();
            throw new IOException($"{path ?? "an open file"}: {Marshal.GetPInvokeErrorMessage(error)}", error);
        }

        // ChangeTime (any change of data or metadata) is only in FILE_BASIC_INFO; without it, the write time.
        var basic = default(Kernel32.FileBasicInfo);
        var changed = Kernel32.GetFileInformationByHandleEx(handle, Kernel32.FileBasicInfoClass, out basic, (uint)Marshal.SizeOf<Kernel32.FileBasicInfo>());
        var attributes = (FileAttributes)info.FileAttributes;
        var written = ((long)info.LastWriteTimeHigh << 32) | info.LastWriteTimeLow;
        return new FileStatus(
            KindOf(attributes),
            WindowsMode(attributes),
            0,
            0,
            ((long)info.FileSizeHigh << 32) | info.FileSizeLow,
            FileTimeToUnixNanoseconds(written),
            FileTimeToUnixNanoseconds(changed ? basic.ChangeTime : written),
            info.VolumeSerialNumber,
            ((ulong)info.FileIndexHigh << 32) | info.FileIndexLow);
    }

    /// <summary>A reparse point (symbolic link or junction) is a link; else a directory or a regular file.</summary>
    internal static FileKind KindOf(FileAttributes attributes) =>
        (attributes & FileAttributes.ReparsePoint) != 0 ? FileKind.SymbolicLink
        : (attributes & FileAttributes.Directory) != 0 ? FileKind.Directory
        : (attributes & FileAttributes.Device) != 0 ? FileKind.Other
        : FileKind.Regular;
}
