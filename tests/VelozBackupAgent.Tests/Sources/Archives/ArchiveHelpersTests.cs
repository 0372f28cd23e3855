using VelozBackupAgent.Sources.Archives;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Tests.Sources.Archives;

public sealed class ArchiveHelpersTests
{
    [Fact]
    public void Tree_order_puts_a_directory_right_before_its_contents()
    {
        var paths = new List<string> { "strategies-old", "strategies/a.yaml", "strategies", "config.yaml", "strategies-old/x", "Z", ".env" };
        paths.Sort(TreeOrder.Compare);
        paths.Should().Equal(".env", "Z", "config.yaml", "strategies", "strategies/a.yaml", "strategies-old", "strategies-old/x");
    }

    [Fact]
    public void Owner_names_come_from_passwd_style_lines_first_name_wins()
    {
        var ids = OwnerNames.Parse(["root:x:0:0:root:/root:/bin/bash", "# comment", "veloz:x:998:998::/var/lib/veloz:/usr/sbin/nologin", "alias:x:998:1::/:/bin/sh", "broken", "nobody:x:notanumber:1"]);
        ids.Should().BeEquivalentTo(new Dictionary<int, string> { [0] = "root", [998] = "veloz" });
    }

    [Fact]
    public void Modification_time_keeps_100ns_precision()
    {
        var status = new FileStatus(FileKind.Regular, 0x1a4, 0, 0, 0, 1_700_000_000_123_456_789, 0, 0, 0);
        status.ModifiedAt.Should().Be(DateTimeOffset.FromUnixTimeSeconds(1_700_000_000).AddTicks(1_234_567));
        status.Permissions.Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
    }
}
