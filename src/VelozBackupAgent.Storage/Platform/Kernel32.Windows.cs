using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using Microsoft.Win32.SafeHandles;

namespace VelozBackupAgent.Storage.Platform;

/// <summary>
/// The Win32 calls .NET does not expose, for <see cref="FileStatus"/> on Windows: a file's identity (volume serial
/// and file index, Windows' device and inode) and its change time. Compiled on Linux, never run (the README says so).
/// </summary>
[SupportedOSPlatform("windows")]
internal static partial class Kernel32
{
    public const uint FileReadAttributes = 0x80;
    public const uint FileShareAll = 0x7; // FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE
    public const uint OpenExisting = 3;
    public const uint FileFlagBackupSemantics = 0x02000000; // needed to open a directory
    public const uint FileFlagOpenReparsePoint = 0x00200000; // the link itself, not what it points to
    public const int ErrorFileNotFound = 2;
    public const int ErrorPathNotFound = 3;
    public const int FileBasicInfoClass = 0;

    /// <summary>BY_HANDLE_FILE_INFORMATION (fileapi.h): 13 DWORDs, FILETIMEs as low/high pairs.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct ByHandleFileInformation
    {
        public uint FileAttributes;
        public uint CreationTimeLow;
        public uint CreationTimeHigh;
        public uint LastAccessTimeLow;
        public uint LastAccessTimeHigh;
        public uint LastWriteTimeLow;
        public uint LastWriteTimeHigh;
        public uint VolumeSerialNumber;
        public uint FileSizeHigh;
        public uint FileSizeLow;
        public uint NumberOfLinks;
        public uint FileIndexHigh;
        public uint FileIndexLow;
    }

    /// <summary>FILE_BASIC_INFO (winbase.h): four LARGE_INTEGER times (100 ns since 1601) and the attributes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct FileBasicInfo
    {
        public long CreationTime;
        public long LastAccessTime;
        public long LastWriteTime;
        public long ChangeTime;
        public uint FileAttributes;
    }

    [LibraryImport("kernel32.dll", EntryPoint = "CreateFileW", SetLastError = true, StringMarshalling = StringMarshalling.Utf16)]
    public static partial SafeFileHandle CreateFile(string fileName, uint desiredAccess, uint shareMode, nint securityAttributes, uint creationDisposition, uint flagsAndAttributes, nint templateFile);

    [LibraryImport("kernel32.dll", EntryPoint = "GetFileInformationByHandle", SetLastError = true)]
    [return: MarshalAs(UnmanagedType.Bool)]
    public static partial bool GetFileInformationByHandle(SafeFileHandle file, out ByHandleFileInformation information);

    [LibraryImport("kernel32.dll", EntryPoint = "GetFileInformationByHandleEx", SetLastError = true)]
    [return: MarshalAs(UnmanagedType.Bool)]
    public static partial bool GetFileInformationByHandleEx(SafeFileHandle file, int informationClass, out FileBasicInfo information, uint bufferSize);
}
