using System.Text.Json;

namespace VelozBackupAgent.IntegrationTests.Restore;

/// <summary><c>diff config</c> through the real binary, between two real configuration backups of a changed directory.</summary>
public sealed class ConfigDiffCliTests
{
    [Fact]
    public async Task Diff_config_shows_the_modified_added_removed_and_chmodded_files_between_two_real_backups()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        (await bed.RunAsync("backup", "config")).ExitCode.Should().Be(0);
        var store = Path.Combine(bed.LocalRoot, "config");
        var first = Path.GetFileName(Directory.GetFiles(store, "config_*.tar.gz").Single());

        File.WriteAllText(Path.Combine(bed.ConfigRoot, "risk_limits.yaml"), "max_position: 20\nmax_drawdown: 0.05\n");
        File.WriteAllText(Path.Combine(bed.ConfigRoot, "strategies", "breakout.yaml"), "window: 5\n");
        File.Delete(Path.Combine(bed.ConfigRoot, "strategies", "momentum.yaml"));
        File.SetUnixFileMode(Path.Combine(bed.ConfigRoot, "config.yaml"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        // The second archive's name must carry a later second than the first (names are UTC to the second; a second
        // archive in the same second is named "-2", which the default "latest two" would pair with a third one).
        var firstStamp = first["config_".Length..("config_".Length + "yyyyMMdd_HHmmss".Length)];
        var deadline = TimeProvider.System.GetUtcNow().AddSeconds(10);
        while (string.CompareOrdinal(TimeProvider.System.GetUtcNow().UtcDateTime.ToString("yyyyMMdd_HHmmss", System.Globalization.CultureInfo.InvariantCulture), firstStamp) <= 0
               && TimeProvider.System.GetUtcNow() < deadline)
        {
            await Task.Delay(50);
        }

        (await bed.RunAsync("backup", "config")).ExitCode.Should().Be(0);
        var names = Directory.GetFiles(store, "config_*.tar.gz").Select(Path.GetFileName).ToList();
        names.Should().HaveCount(2);
        var name = names.Single(n => n != first)!;

        var second = name;

        var diff = await bed.RunAsync("diff", "config");
        diff.ExitCode.Should().Be(0, diff.StdErr);
        var lines = diff.StdOut.Split('\n');
        lines[0].Should().Be($"diff config {first} {second}");
        diff.StdOut.Should().Contain("mode changed config.yaml: 0644 -> 0600\n");
        diff.StdOut.Should().Contain("--- a/risk_limits.yaml\n+++ b/risk_limits.yaml\n@@ -1,2 +1,2 @@\n-max_position: 10\n+max_position: 20\n max_drawdown: 0.05\n");
        diff.StdOut.Should().Contain("added file strategies/breakout.yaml (mode 0644, 10 bytes)\n--- /dev/null\n+++ b/strategies/breakout.yaml\n@@ -0,0 +1 @@\n+window: 5\n");
        diff.StdOut.Should().Contain("removed file strategies/momentum.yaml (mode 0644, 26 bytes)\n--- a/strategies/momentum.yaml\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-window: 20\n-threshold: 0.7\n");
        diff.StdOut.Should().NotContain(".env").And.NotContain("mean_reversion");

        var stat = await bed.RunAsync("diff", "config", first, second, "--stat");
        stat.ExitCode.Should().Be(0, stat.StdErr);
        stat.StdOut.TrimEnd('\n').Split('\n')[^1].Should().Be(" 4 paths changed (1 added, 1 removed, 1 modified, 1 mode), 2 insertions(+), 3 deletions(-)");

        var json = await bed.RunAsync("diff", "config", first, second, "--json");
        json.ExitCode.Should().Be(0, json.StdErr);
        using (var doc = JsonDocument.Parse(json.StdOut))
        {
            doc.RootElement.GetProperty("identical").GetBoolean().Should().BeFalse();
            doc.RootElement.GetProperty("a").GetProperty("name").GetString().Should().Be(first);
            doc.RootElement.GetProperty("b").GetProperty("source").GetString().Should().Be("local");
            doc.RootElement.GetProperty("changes").EnumerateArray().Select(c => (c.GetProperty("path").GetString(), c.GetProperty("status").GetString()))
                .Should().Equal(("config.yaml", "mode"), ("risk_limits.yaml", "modified"), ("strategies/breakout.yaml", "added"), ("strategies/momentum.yaml", "removed"));
        }

        var same = await bed.RunAsync("diff", "config", second, second, "--json");
        same.ExitCode.Should().Be(0, same.StdErr);
        using (var doc = JsonDocument.Parse(same.StdOut))
        {
            doc.RootElement.GetProperty("identical").GetBoolean().Should().BeTrue();
        }

        var unknown = await bed.RunAsync("diff", "config", "config_20000101_000000.tar.gz", second);
        unknown.ExitCode.Should().Be(1);
        unknown.ErrorLines.Should().ContainSingle().Which.Should().Contain("config_20000101_000000.tar.gz");

        var notAName = await bed.RunAsync("diff", "config", "../etc/passwd", second);
        notAName.ExitCode.Should().NotBe(0);
        notAName.ErrorLines.Should().ContainSingle();

        RestoreTests.FlipByte(Path.Combine(store, first));
        var tampered = await bed.RunAsync("diff", "config", first, second);
        tampered.ExitCode.Should().Be(1);
        tampered.StdOut.Should().BeEmpty();
        tampered.ErrorLines.Should().ContainSingle().Which.Should().Contain(first).And.Contain("refusing to compare it").And.NotContain("restore from");
    }
}
