using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Tests.Platform;

/// <summary>
/// The Windows meaning of the agent's modes, as data: what ACL <see cref="OwnerOnlyAccess"/> builds on Windows for 0600
/// and 0700 (that code path itself never ran here: no Windows machine).
/// </summary>
public sealed class OwnerOnlyAccessTests
{
    private const UnixFileMode Mode0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode Mode0700 = Mode0600 | UnixFileMode.UserExecute;

    [Fact]
    public void A_0600_file_is_full_control_for_the_agent_SYSTEM_and_Administrators_and_nobody_else() =>
        OwnerOnlyAccess.RulesFor(Mode0600, directory: false).Should().Equal(
            new OwnerOnlyRule(AclPrincipal.CurrentUser, AclRights.FullControl, InheritedByChildren: false),
            new OwnerOnlyRule(AclPrincipal.LocalSystem, AclRights.FullControl, InheritedByChildren: false),
            new OwnerOnlyRule(AclPrincipal.Administrators, AclRights.FullControl, InheritedByChildren: false));

    [Fact]
    public void A_0700_directory_has_the_same_three_entries_inherited_by_what_is_created_inside() =>
        OwnerOnlyAccess.RulesFor(Mode0700, directory: true).Should().Equal(
            new OwnerOnlyRule(AclPrincipal.CurrentUser, AclRights.FullControl, InheritedByChildren: true),
            new OwnerOnlyRule(AclPrincipal.LocalSystem, AclRights.FullControl, InheritedByChildren: true),
            new OwnerOnlyRule(AclPrincipal.Administrators, AclRights.FullControl, InheritedByChildren: true));

    [Theory]
    [InlineData(0b100_000_000)] // 0400
    [InlineData(0b101_000_000)] // 0500
    public void An_owner_read_only_mode_lets_the_agent_read_only(int mode) =>
        OwnerOnlyAccess.RulesFor((UnixFileMode)mode, directory: false)
            .Should().ContainSingle(r => r.Principal == AclPrincipal.CurrentUser).Which.Rights.Should().Be(AclRights.Read);

    [Theory]
    [InlineData(0b110_100_000, "0640")]
    [InlineData(0b111_101_101, "0755")]
    [InlineData(0b110_000_100, "0604")]
    [InlineData(0b010_000_000, "0200")]
    [InlineData(0, "0000")]
    public void A_mode_that_is_not_owner_only_has_no_acl_meaning_and_says_so(int mode, string octal) =>
        FluentActions.Invoking(() => OwnerOnlyAccess.RulesFor((UnixFileMode)mode, directory: false))
            .Should().Throw<ArgumentException>().WithMessage($"mode {octal} is not owner-only (0400 to 0700): it has no owner-only ACL*");

    [Fact]
    public void On_Linux_applying_to_a_directory_and_a_file_sets_0700_and_0600()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var root = Directory.CreateTempSubdirectory("veloz-acl-").FullName;
        try
        {
            File.SetUnixFileMode(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            OwnerOnlyAccess.IsDirectoryOwnerOnly(root, Mode0700).Should().BeFalse();
            OwnerOnlyAccess.ApplyToDirectory(root, Mode0700);
            File.GetUnixFileMode(root).Should().Be(Mode0700);
            OwnerOnlyAccess.IsDirectoryOwnerOnly(root, Mode0700).Should().BeTrue();

            var path = Path.Combine(root, "f");
            using (var file = new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead }))
            {
                OwnerOnlyAccess.IsFileOwnerOnly(file, Mode0600).Should().BeFalse();
                OwnerOnlyAccess.ApplyToFile(file, Mode0600);
                OwnerOnlyAccess.IsFileOwnerOnly(file, Mode0600).Should().BeTrue();
            }

            File.GetUnixFileMode(path).Should().Be(Mode0600);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
