namespace VelozBackupAgent.Storage.Platform;

/// <summary>Who an owner-only ACL entry is for.</summary>
public enum AclPrincipal
{
    /// <summary>The account the agent runs as (LocalSystem when it runs as the service).</summary>
    CurrentUser,

    /// <summary>NT AUTHORITY\SYSTEM (S-1-5-18).</summary>
    LocalSystem,

    /// <summary>BUILTIN\Administrators (S-1-5-32-544).</summary>
    Administrators,
}

/// <summary>What an owner-only ACL entry allows.</summary>
public enum AclRights
{
    /// <summary>Read data, attributes and permissions; list a directory.</summary>
    Read,

    /// <summary>Read, write, delete, execute, change permissions and take ownership.</summary>
    FullControl,
}

/// <summary>One allow entry of an owner-only ACL.</summary>
/// <param name="Principal">Whom it is for.</param>
/// <param name="Rights">What it allows.</param>
/// <param name="InheritedByChildren">Whether files and directories created inside (a directory) get it too.</param>
public sealed record OwnerOnlyRule(AclPrincipal Principal, AclRights Rights, bool InheritedByChildren);

/// <summary>
/// The Windows meaning of the agent's Unix modes 0600 (files) and 0700 (directories): a protected DACL (nothing
/// inherited from the parent, so a readable C:\ProgramData does not leak in) that allows only the agent's own account,
/// SYSTEM and Administrators — full control where the owner may write, read only where the owner may only read (0400,
/// 0500). A directory's entries are inherited by what is created inside it, so a file made there is private from its
/// first byte. The rule set is data (<see cref="RulesFor"/>, unit-tested on Linux); <c>OwnerOnlyAccess.Windows.cs</c>
/// turns it into a <see cref="System.Security.AccessControl.FileSystemSecurity"/>.
/// </summary>
public static partial class OwnerOnlyAccess
{
    private const UnixFileMode OwnerBits = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>
    /// The entries of the ACL that means <paramref name="mode"/> for a file or a <paramref name="directory"/>.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="mode"/> grants group or others something, or the owner
    /// nothing to read: not an owner-only mode, which has no ACL meaning here.</exception>
    public static IReadOnlyList<OwnerOnlyRule> RulesFor(UnixFileMode mode, bool directory)
    {
        if ((mode & ~OwnerBits) != 0 || (mode & UnixFileMode.UserRead) == 0)
        {
            throw new ArgumentException(
                $"mode {Convert.ToString((int)mode, 8).PadLeft(4, '0')} is not owner-only (0400 to 0700): it has no owner-only ACL", nameof(mode));
        }

        var owner = (mode & UnixFileMode.UserWrite) != 0 ? AclRights.FullControl : AclRights.Read;
        return
        [
            new OwnerOnlyRule(AclPrincipal.CurrentUser, owner, directory),
            new OwnerOnlyRule(AclPrincipal.LocalSystem, AclRights.FullControl, directory),
            new OwnerOnlyRule(AclPrincipal.Administrators, AclRights.FullControl, directory),
        ];
    }

    /// <summary>
    /// Gives the directory at <paramref name="path"/> the owner-only ACL of <paramref name="mode"/> on Windows;
    /// elsewhere sets the mode itself.
    /// </summary>
    public static void ApplyToDirectory(string path, UnixFileMode mode)
    {
        if (OperatingSystem.IsWindows())
        {
            ApplyToDirectoryWindows(path, mode);
            return;
        }

        File.SetUnixFileMode(path, mode);
    }

    /// <summary>
    /// Gives the open file <paramref name="file"/> the owner-only ACL of <paramref name="mode"/> on Windows (by its
    /// name, before anything is written); elsewhere sets the mode through the handle.
    /// </summary>
    public static void ApplyToFile(FileStream file, UnixFileMode mode)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (OperatingSystem.IsWindows())
        {
            ApplyToFileWindows(file, mode);
            return;
        }

        File.SetUnixFileMode(file.SafeFileHandle, mode);
    }

    /// <summary>
    /// Whether the directory already is owner-only for <paramref name="mode"/>: on Unix its mode has no bit beyond it;
    /// on Windows its DACL is protected (inherits nothing from the parent).
    /// </summary>
    public static bool IsDirectoryOwnerOnly(string path, UnixFileMode mode) => OperatingSystem.IsWindows()
        ? IsDirectoryProtectedWindows(path)
        : (File.GetUnixFileMode(path) & ~mode) == 0;

    /// <summary>Whether the open file already is owner-only for <paramref name="mode"/> (see <see cref="IsDirectoryOwnerOnly"/>).</summary>
    public static bool IsFileOwnerOnly(FileStream file, UnixFileMode mode)
    {
        ArgumentNullException.ThrowIfNull(file);
        return OperatingSystem.IsWindows()
            ? IsFileProtectedWindows(file)
            : (File.GetUnixFileMode(file.SafeFileHandle) & ~mode) == 0;
    }
}
