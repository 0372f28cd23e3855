using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using VelozBackupAgent.Restore;
using VelozBackupAgent.Sources.Config;

namespace VelozBackupAgent.Tests.Sources.Config;

/// <summary>The unified-diff formatter (<see cref="ConfigDiffer"/>) and the three renderings (<see cref="ConfigDiffReport"/>) on in-memory archives.</summary>
public sealed class ConfigDiffTests
{
    private const UnixFileMode Rw = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode RwR = Rw | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    private static readonly string Ten = string.Concat(Enumerable.Range(1, 10).Select(i => $"l{i}\n"));

    private static async Task<ConfigTree> Archive(string label, params (string Path, object Content, UnixFileMode Mode)[] files)
    {
        if (files.Length == 0)
        {
            return new ConfigTree(label); // TarWriter writes no bytes for an empty archive
        }

        var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.Fastest, leaveOpen: true))
        using (var tar = new TarWriter(gzip, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var (path, content, mode) in files)
            {
                var bytes = content as byte[] ?? Encoding.UTF8.GetBytes((string)content);
                tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, path) { Mode = mode, DataStream = new MemoryStream(bytes) });
            }
        }

        buffer.Position = 0;
        return await ConfigTree.ReadArchiveAsync(buffer, label, CancellationToken.None);
    }

    private static async Task<IReadOnlyList<ConfigFileChange>> Compare(string? oldText, string? newText, string path = "config.yaml")
    {
        var a = await Archive("a", oldText is null ? [] : [(path, oldText, RwR)]);
        var b = await Archive("b", newText is null ? [] : [(path, newText, RwR)]);
        return ConfigDiffer.Compare(a, b);
    }

    private static string Lines(params string[] lines) => string.Concat(lines.Select(l => l + "\n"));

    [Fact]
    public async Task A_modified_line_is_one_hunk_with_three_lines_of_context_each_side()
    {
        var change = (await Compare(Ten, Ten.Replace("l5\n", "L5\n", StringComparison.Ordinal))).Should().ContainSingle().Subject;

        change.Status.Should().Be("modified");
        (change.LinesAdded, change.LinesRemoved).Should().Be((1, 1));
        change.Diff.Should().Be(Lines("--- a/config.yaml", "+++ b/config.yaml", "@@ -2,7 +2,7 @@", " l2", " l3", " l4", "-l5", "+L5", " l6", " l7", " l8"));
    }

    [Fact]
    public async Task Changes_more_than_six_lines_apart_are_two_hunks_and_closer_ones_share_one()
    {
        var text = string.Concat(Enumerable.Range(1, 20).Select(i => $"l{i}\n"));
        var far = (await Compare(text, text.Replace("l2\n", "X\n", StringComparison.Ordinal).Replace("l18\n", "Y\n", StringComparison.Ordinal))).Single();
        far.Diff.Should().Contain("@@ -1,5 +1,5 @@\n l1\n-l2\n+X\n l3\n l4\n l5\n@@ -15,6 +15,6 @@\n l15\n l16\n l17\n-l18\n+Y\n l19\n l20\n");

        var near = (await Compare(text, text.Replace("l2\n", "X\n", StringComparison.Ordinal).Replace("l9\n", "Y\n", StringComparison.Ordinal))).Single();
        near.Diff!.Split('\n').Count(l => l.StartsWith("@@", StringComparison.Ordinal)).Should().Be(1, "six unchanged lines between two changes are shared context");
        near.Diff.Should().Contain("@@ -1,12 +1,12 @@\n");
    }

    [Fact]
    public async Task An_inserted_line_at_the_start_has_a_hunk_starting_at_line_one()
    {
        var change = (await Compare(Lines("a", "b"), Lines("new", "a", "b"))).Single();
        change.Diff.Should().Be(Lines("--- a/config.yaml", "+++ b/config.yaml", "@@ -1,2 +1,3 @@", "+new", " a", " b"));
        (change.LinesAdded, change.LinesRemoved).Should().Be((1, 0));
    }

    [Fact]
    public async Task An_added_file_is_all_plus_lines_against_dev_null_and_a_removed_one_all_minus()
    {
        var added = (await Compare(null, Lines("x: 1", "y: 2"), "strategies/new.yaml")).Single();
        added.Should().Match<ConfigFileChange>(c => c.Status == "added" && c.OldMode == null && c.NewMode == 0x1A4 && c.NewSize == 10 && c.LinesAdded == 2 && c.LinesRemoved == 0);
        added.Diff.Should().Be(Lines("--- /dev/null", "+++ b/strategies/new.yaml", "@@ -0,0 +1,2 @@", "+x: 1", "+y: 2"));

        var removed = (await Compare(Lines("only"), null)).Single();
        removed.Should().Match<ConfigFileChange>(c => c.Status == "removed" && c.NewMode == null && c.OldSize == 5 && c.LinesRemoved == 1);
        removed.Diff.Should().Be(Lines("--- a/config.yaml", "+++ /dev/null", "@@ -1 +0,0 @@", "-only"));

        var text = ConfigDiffReport.Text("A", "B", [added, removed]);
        text.Should().StartWith("diff config A B\n");
        text.Should().Contain("added file strategies/new.yaml (mode 0644, 10 bytes)\n--- /dev/null\n");
        text.Should().Contain("removed file config.yaml (mode 0644, 5 bytes)\n--- a/config.yaml\n+++ /dev/null\n");
    }

    [Fact]
    public async Task A_mode_only_change_is_one_line_and_no_diff()
    {
        var a = await Archive("a", (".env", "K=v\n", RwR));
        var b = await Archive("b", (".env", "K=v\n", Rw));

        var change = ConfigDiffer.Compare(a, b).Should().ContainSingle().Subject;

        change.Should().Match<ConfigFileChange>(c => c.Status == "mode" && c.OldMode == 0x1A4 && c.NewMode == 0x180 && c.Diff == null && c.LinesAdded == 0);
        ConfigDiffReport.Text("a", "b", [change]).Should().Be("diff config a b\nmode changed .env: 0644 -> 0600\n");
    }

    [Fact]
    public async Task A_content_and_mode_change_prints_the_mode_line_before_the_diff()
    {
        var a = await Archive("a", ("c.yaml", "v: 1\n", RwR));
        var b = await Archive("b", ("c.yaml", "v: 2\n", Rw));
        var change = ConfigDiffer.Compare(a, b).Single();

        change.Status.Should().Be("modified");
        ConfigDiffReport.Text("a", "b", [change]).Should().Be(Lines("diff config a b", "mode changed c.yaml: 0644 -> 0600", "--- a/c.yaml", "+++ b/c.yaml", "@@ -1 +1 @@", "-v: 1", "+v: 2"));
    }

    [Fact]
    public async Task A_binary_file_is_reported_as_differing_without_a_diff()
    {
        var a = await Archive("a", ("blob.bin", new byte[] { 1, 0, 2 }, Rw));
        var b = await Archive("b", ("blob.bin", new byte[] { 1, 0, 3 }, Rw));
        var invalidUtf8 = await Archive("b", ("blob.bin", new byte[] { 0xC3, 0x28 }, Rw));

        var change = ConfigDiffer.Compare(a, b).Single();
        change.Should().Match<ConfigFileChange>(c => c.Binary && c.Diff == null && c.Status == "modified");
        ConfigDiffReport.Text("a", "b", [change]).Should().Be("diff config a b\nbinary files a/blob.bin and b/blob.bin differ\n");
        ConfigDiffer.Compare(a, invalidUtf8).Single().Binary.Should().BeTrue("invalid UTF-8 is not text either");

        var added = ConfigDiffer.Compare(await Archive("a"), b).Single();
        ConfigDiffReport.Text("a", "b", [added]).Should().EndWith("binary files /dev/null and b/blob.bin differ\n");
    }

    [Fact]
    public async Task A_missing_final_newline_is_marked_after_the_line_that_lacks_it()
    {
        var change = (await Compare("a\nb", "a\nc")).Single();
        change.Diff.Should().Be(Lines("--- a/config.yaml", "+++ b/config.yaml", "@@ -1,2 +1,2 @@", " a", "-b", "\\ No newline at end of file", "+c", "\\ No newline at end of file"));

        var added = (await Compare(null, "x\ny")).Single();
        added.Diff.Should().EndWith(Lines("@@ -0,0 +1,2 @@", "+x", "+y", "\\ No newline at end of file"));
    }

    [Fact]
    public async Task Only_adding_the_final_newline_is_a_change_of_the_last_line()
    {
        // diff -u: the last line differs by its terminator, so it is removed and added again.
        var change = (await Compare("a\nb", "a\nb\n")).Single();
        change.Diff.Should().Be(Lines("--- a/config.yaml", "+++ b/config.yaml", "@@ -1,2 +1,2 @@", " a", "-b", "\\ No newline at end of file", "+b"));
        (change.LinesAdded, change.LinesRemoved).Should().Be((1, 1));
    }

    [Fact]
    public async Task Appending_after_a_last_line_without_newline_changes_that_line()
    {
        var change = (await Compare("a\nb", "a\nb\nc\n")).Single();
        change.Diff.Should().Be(Lines("--- a/config.yaml", "+++ b/config.yaml", "@@ -1,2 +1,3 @@", " a", "-b", "\\ No newline at end of file", "+b", "+c"));
    }

    [Fact]
    public async Task Identical_trees_have_no_changes_and_say_so()
    {
        var a = await Archive("A", ("x", "1\n", Rw), ("y", "2\n", Rw));
        var b = await Archive("B", ("y", "2\n", Rw), ("x", "1\n", Rw));

        var changes = ConfigDiffer.Compare(a, b);

        changes.Should().BeEmpty();
        ConfigDiffReport.Text("A", "B", changes).Should().Be("no differences between A and B\n");
        ConfigDiffReport.Stat("A", "B", changes).Should().Be("no differences between A and B\n");
        using var json = JsonDocument.Parse(ConfigDiffReport.Json(("A", "local"), ("B", "local"), changes));
        json.RootElement.GetProperty("identical").GetBoolean().Should().BeTrue();
        json.RootElement.GetProperty("changes").GetArrayLength().Should().Be(0);
    }

    private static async Task<IReadOnlyList<ConfigFileChange>> Mixed()
    {
        var a = await Archive("A",
            ("config.yaml", Ten, RwR),
            (".env", "K=v\n", RwR),
            ("old.yaml", "gone: 1\ngone: 2\n", RwR),
            ("blob.bin", new byte[] { 0, 1 }, Rw));
        var b = await Archive("B",
            ("config.yaml", Ten.Replace("l5\n", "L5\nextra\n", StringComparison.Ordinal), RwR),
            (".env", "K=v\n", Rw),
            ("strategies/new.yaml", "n: 1\n", RwR),
            ("blob.bin", new byte[] { 0, 2 }, Rw));
        return ConfigDiffer.Compare(a, b);
    }

    [Fact]
    public async Task Stat_is_one_line_per_path_in_path_order_and_the_totals()
    {
        var changes = await Mixed();

        changes.Select(c => c.Path).Should().Equal(".env", "blob.bin", "config.yaml", "old.yaml", "strategies/new.yaml");
        ConfigDiffReport.Stat("A", "B", changes).Should().Be(Lines(
            "diff config A B",
            " .env                | mode     0644 -> 0600",
            " blob.bin            | modified binary",
            " config.yaml         | modified +2 -1",
            " old.yaml            | removed  +0 -2",
            " strategies/new.yaml | added    +1 -0",
            " 5 paths changed (1 added, 1 removed, 2 modified, 1 mode), 3 insertions(+), 3 deletions(-)"));
    }

    [Fact]
    public async Task Json_has_the_documented_shape_with_octal_modes_and_null_absent_sides()
    {
        var changes = await Mixed();

        using var json = JsonDocument.Parse(ConfigDiffReport.Json(("A", "local"), ("B", "s3"), changes));
        var root = json.RootElement;

        root.EnumerateObject().Select(p => p.Name).Should().Equal("a", "b", "identical", "summary", "changes");
        root.GetProperty("a").GetProperty("name").GetString().Should().Be("A");
        root.GetProperty("b").GetProperty("source").GetString().Should().Be("s3");
        root.GetProperty("identical").GetBoolean().Should().BeFalse();
        var summary = root.GetProperty("summary");
        summary.EnumerateObject().Select(p => (p.Name, p.Value.GetInt32())).Should().Equal(
            ("paths", 5), ("added", 1), ("removed", 1), ("modified", 2), ("mode", 1), ("type", 0), ("linesAdded", 3), ("linesRemoved", 3));

        var items = root.GetProperty("changes").EnumerateArray().ToDictionary(e => e.GetProperty("path").GetString()!);
        items.Keys.Should().Equal(".env", "blob.bin", "config.yaml", "old.yaml", "strategies/new.yaml");
        items[".env"].EnumerateObject().Select(p => p.Name).Should().Equal(
            "path", "status", "type", "oldMode", "newMode", "oldSize", "newSize", "binary", "tooLarge", "linesAdded", "linesRemoved", "diff");
        items[".env"].GetProperty("oldMode").GetString().Should().Be("0644");
        items[".env"].GetProperty("newMode").GetString().Should().Be("0600");
        items[".env"].GetProperty("diff").ValueKind.Should().Be(JsonValueKind.Null);
        items["blob.bin"].GetProperty("binary").GetBoolean().Should().BeTrue();
        items["config.yaml"].GetProperty("diff").GetString().Should().StartWith("--- a/config.yaml\n+++ b/config.yaml\n@@ -2,7 +2,8 @@\n");
        items["old.yaml"].GetProperty("newMode").ValueKind.Should().Be(JsonValueKind.Null);
        items["old.yaml"].GetProperty("newSize").ValueKind.Should().Be(JsonValueKind.Null);
        items["old.yaml"].GetProperty("oldSize").GetInt64().Should().Be(16);
        items["strategies/new.yaml"].GetProperty("oldMode").ValueKind.Should().Be(JsonValueKind.Null);
        items["strategies/new.yaml"].GetProperty("status").GetString().Should().Be("added");
    }

    [Fact]
    public async Task A_file_over_the_content_limit_is_compared_by_hash_and_not_shown()
    {
        var big = new string('x', (int)ConfigTree.ContentLimit) + "\n";
        var change = (await Compare(big, big.Replace("x\n", "y\n", StringComparison.Ordinal))).Single();

        change.Should().Match<ConfigFileChange>(c => c.TooLarge && c.Diff == null && c.Status == "modified");
        ConfigDiffReport.Text("a", "b", [change]).Should().Contain("files a/config.yaml and b/config.yaml differ (over 1 MiB: compared by SHA-256, not shown)");
        ConfigDiffReport.Stat("a", "b", [change]).Should().Contain("| modified over 1 MiB");
    }

    [Fact]
    public async Task An_archive_entry_escaping_the_root_or_a_corrupt_stream_is_one_integrity_error()
    {
        var escape = async () => await Archive("config_x.tar.gz", ("../etc/passwd", "x\n", Rw));
        (await escape.Should().ThrowAsync<RestoreIntegrityException>()).Which.Message.Should().Contain("config_x.tar.gz");

        var garbage = async () => await ConfigTree.ReadArchiveAsync(new MemoryStream([0x1f, 0x8b, 8, 0, 1, 2, 3]), "config_y.tar.gz", CancellationToken.None);
        (await garbage.Should().ThrowAsync<RestoreIntegrityException>()).Which.Message.Should().StartWith("config_y.tar.gz: ");
    }
}
