using VelozBackupAgent.Sources.Config;

namespace VelozBackupAgent.Tests.Sources.Config;

/// <summary>The pure parts of the configuration's git mirror: what a commit message says, how fast-import is told a path.</summary>
public sealed class ConfigGitMirrorTests
{
    private static Dictionary<string, GitTreeEntry> Tree(params (string Path, string Mode, string Id)[] entries) =>
        entries.ToDictionary(e => e.Path, e => new GitTreeEntry(e.Mode, e.Id), StringComparer.Ordinal);

    [Fact]
    public void A_change_lists_modified_added_removed_and_mode_only_changes_in_path_order()
    {
        var before = Tree(("b.yaml", "100644", "1"), ("a.yaml", "100644", "2"), ("run.sh", "100644", "3"), ("gone.yaml", "100644", "4"), ("both.sh", "100644", "5"));
        var after = Tree(("b.yaml", "100644", "1"), ("a.yaml", "100644", "9"), ("run.sh", "100755", "3"), ("new/z.yaml", "100644", "6"), ("new/a.yaml", "100644", "7"), ("both.sh", "100755", "8"));

        var change = GitTreeChange.Between(before, after);

        change.Modified.Should().Equal("a.yaml", "both.sh");
        change.Added.Should().Equal("new/a.yaml", "new/z.yaml");
        change.Removed.Should().Equal("gone.yaml");
        change.ModeChanged.Should().Equal(("run.sh", "100644", "100755"));
        change.IsEmpty.Should().BeFalse();
        change.Message("config_x.tar.gz", first: false, files: 6).Should().Be(
            "config_x.tar.gz: 2 modified, 2 added, 1 removed, 1 mode changed\n\n" +
            "modified a.yaml\nmodified both.sh\nadded new/a.yaml\nadded new/z.yaml\nremoved gone.yaml\nmode run.sh 100644 -> 100755\n");
    }

    [Fact]
    public void The_same_tree_is_no_change_and_a_first_commit_says_so()
    {
        var tree = Tree(("a.yaml", "100644", "1"), ("link", "120000", "2"));
        GitTreeChange.Between(tree, Tree(("a.yaml", "100644", "1"), ("link", "120000", "2"))).IsEmpty.Should().BeTrue();

        var first = GitTreeChange.Between(Tree(), tree);
        first.Added.Should().Equal("a.yaml", "link");
        first.Message("config_y.tar.gz", first: true, files: 2).Should().Be("config_y.tar.gz: first mirrored configuration (2 file(s))\n");
        GitTreeChange.Between(tree, tree).Subject("config_z.tar.gz", first: false, files: 2).Should().Be("config_z.tar.gz: 0 modified, 0 added, 0 removed");
    }

    [Theory]
    [InlineData("risk_limits.yaml", "risk_limits.yaml")]
    [InlineData("strategies/with space.yaml", "strategies/with space.yaml")]
    [InlineData("\"quoted\".yaml", "\"\\\"quoted\\\".yaml\"")]
    [InlineData("back\\slash", "\"back\\\\slash\"")]
    [InlineData("new\nline", "\"new\\nline\"")]
    [InlineData("tab\there", "\"tab\\there\"")]
    [InlineData("bell\a", "\"bell\\007\"")]
    [InlineData("ünïcode/ß.yaml", "ünïcode/ß.yaml")]
    public void Paths_are_quoted_the_way_fast_import_reads_them(string path, string expected) =>
        ConfigGitMirror.QuotePath(path).Should().Be(expected);
}
