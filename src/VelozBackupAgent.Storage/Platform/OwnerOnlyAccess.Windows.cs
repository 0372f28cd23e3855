using System.Runtime.Versioning;
using System.Security.AccessControl;
using System.Security.Principal;

namespace VelozBackupAgent.Storage.Platform;

public static partial class OwnerOnlyAccess
{
    [SupportedOSPlatform("windows")]
    private static void ApplyToDirectoryWindows(string path, UnixFileMode mode)
    {
        var security = new DirectorySecurity();
        Fill(security, RulesFor(mode, directory: true));
        new DirectoryInfo(path).SetAccessControl(security);
    }

    /// <summary>
    /// By the file's name, not through <paramref name="file"/>'s handle: a FileStream's handle is opened without
    /// WRITE_DAC, which a name-based open asks for (the owner always has it; share modes do not apply to it).
    /// </summary>
    [SupportedOSPlatform("windows")]
    private static void ApplyToFileWindows(FileStream file, UnixFileMode mode)
    {
        var security = new FileSecurity();
        Fill(security, RulesFor(mode, directory: false));
        new FileInfo(file.Name).SetAccessControl(security);
    }

    /// <summary>A protected DACL (parent entries dropped, not copied) holding exactly <paramref name="rules"/>, one entry per account.</summary>
    [SupportedOSPlatform("windows")]
    private static void Fill(FileSystemSecurity security, IReadOnlyList<OwnerOnlyRule> rules)
    {
        security.SetAccessRuleProtection(isProtected: true, preserveInheritance: false);
        var seen = new HashSet<SecurityIdentifier>();
        foreach (var rule in rules.OrderByDescending(r => r.Rights))
        {
            var sid = Sid(rule.Principal);
            if (!seen.Add(sid))
            {
                continue; // The service runs as SYSTEM: its own entry is SYSTEM's.
            }

            var rights = rule.Rights == AclRights.FullControl ? FileSystemRights.FullControl : FileSystemRights.ReadAndExecute;
            var inheritance = rule.InheritedByChildren ? InheritanceFlags.ContainerInherit | InheritanceFlags.ObjectInherit : InheritanceFlags.None;
            security.AddAccessRule(new FileSystemAccessRule(sid, rights, inheritance, PropagationFlags.None, AccessControlType.Allow));
        }
    }

    [SupportedOSPlatform("windows")]
    private static SecurityIdentifier Sid(AclPrincipal principal) => principal switch
    {
        AclPrincipal.CurrentUser => WindowsIdentity.GetCurrent().User ?? throw new InvalidOperationException("the agent's Windows account has no SID"),
        AclPrincipal.LocalSystem => new SecurityIdentifier(WellKnownSidType.LocalSystemSid, null),
        AclPrincipal.Administrators => new SecurityIdentifier(WellKnownSidType.BuiltinAdministratorsSid, null),
        _ => throw new ArgumentOutOfRangeException(nameof(principal), principal, null),
    };

    [SupportedOSPlatform("windows")]
    private static bool IsDirectoryProtectedWindows(string path) => new DirectoryInfo(path).GetAccessControl().AreAccessRulesProtected;

    [SupportedOSPlatform("windows")]
    private static bool IsFileProtectedWindows(FileStream file) => new FileInfo(file.Name).GetAccessControl().AreAccessRulesProtected;
}
