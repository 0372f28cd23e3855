using VelozBackupAgent.Sources.Archives;
using VelozBackupAgent.Sources.Config;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Tests.Sources.Config;

public sealed class ConfigSelectionTests
{
    private static readonly string[] SeedIncludes = ["config.yaml", "strategies/*.yaml", "risk_limits.yaml", ".env"];

    private static ConfigSelection Seeds(params string[] exclude) =>
        new("/etc/veloz", SeedIncludes, exclude.Length == 0 ? ["**/*.secret"] : exclude, "/etc/veloz/secrets");

    [Theory]
    [InlineData("config.yaml", true)]
    [InlineData(".env", true)]
    [InlineData("risk_limits.yaml", true)]
    [InlineData("strategies/momentum.yaml", true)]
    [InlineData("strategies/.hidden.yaml", true)]
    [InlineData("strategies/nested/deep.yaml", false)]
    [InlineData("strategies/notes.txt", false)]
    [InlineData("Config.yaml", false)]
    [InlineData("other.yaml", false)]
    [InlineData("strategies/keys.secret", false)]
    public void The_seeds_globs_select_the_seeds_files(string path, bool archived) =>
        Seeds().Matches(path).Should().Be(archived);

    [Theory]
    [InlineData("api.secret")]
    [InlineData("strategies/exchange.SECRET")]
    [InlineData("vault.secret/token")]
    [InlineData("secrets")]
    [InlineData("secrets/binance.key")]
    [InlineData("secrets/nested/db.pass")]
    public void Secrets_are_never_selected_even_by_a_glob_that_matches_everything(string path)
    {
        var everything = new ConfigSelection("/etc/veloz", ["**/*", "*", "secrets/**"], [], "/etc/veloz/secrets");
        everything.Matches(path).Should().BeFalse();
        everything.IsAlwaysExcluded(path).Should().BeTrue();
    }

    [Fact]
    public void A_secrets_directory_spelt_differently_is_still_excluded()
    {
        var selection = new ConfigSelection("/etc/veloz/", ["**/*"], [], "/etc/veloz/./keys/../secrets/");
        selection.Matches("secrets/a").Should().BeFalse();
        selection.Matches("secretsx/a").Should().BeTrue();
    }

    [Fact]
    public void A_secrets_directory_outside_the_root_excludes_nothing_inside_it()
    {
        var selection = new ConfigSelection("/etc/veloz", ["**/*"], [], "/var/lib/veloz/secrets");
        selection.Matches("secrets/a").Should().BeTrue();
    }

    [Fact]
    public void Exclude_globs_apply()
    {
        var selection = new ConfigSelection("/etc/veloz", ["**/*.yaml"], ["strategies/old/**"], null);
        selection.Matches("strategies/a.yaml").Should().BeTrue();
        selection.Matches("strategies/old/a.yaml").Should().BeFalse();
    }

    [Theory]
    [InlineData("strategies", true)]
    [InlineData("secrets", false)]
    [InlineData("cache", false)]
    [InlineData("strategies/nested", false)]
    public void Only_directories_that_can_hold_a_match_are_read(string directory, bool read) =>
        Seeds().MayContainMatches(directory).Should().Be(read);

    [Fact]
    public void A_double_star_glob_reads_every_directory_but_the_secrets()
    {
        var selection = new ConfigSelection("/etc/veloz", ["**/*.yaml"], [], "/etc/veloz/secrets");
        selection.MayContainMatches("a/b/c").Should().BeTrue();
        selection.MayContainMatches("secrets").Should().BeFalse();
        selection.MayContainMatches("secrets/sub").Should().BeFalse();
        new ConfigSelection("/etc/veloz", ["env/**/app.yaml"], [], null).MayContainMatches("other").Should().BeFalse();
    }

    [Theory]
    [InlineData("/etc/veloz/config.yaml", true)]
    [InlineData("/etc/veloz/strategies", true)]
    [InlineData("/etc/veloz/strategies/new.yaml", true)]
    [InlineData("/etc/veloz/strategies/notes.txt", false)]
    [InlineData("/etc/veloz/secrets/api.key", false)]
    [InlineData("/etc/veloz/api.secret", false)]
    [InlineData("/etc/veloz/.config.yaml.swp", false)]
    [InlineData("/etc/veloz", false)]
    [InlineData("/etc/other/config.yaml", false)]
    public void Watcher_events_count_only_for_paths_that_can_change_the_backup(string path, bool relevant) =>
        Seeds().IsRelevant(path).Should().Be(relevant);

    [Fact]
    public void The_plan_keeps_walk_order_adds_parent_directories_and_reports_what_is_missing()
    {
        var walked = new[]
        {
            Entry("config.yaml", FileKind.Regular),
            Entry("strategies", FileKind.Directory),
            Entry("strategies/a.yaml", FileKind.Regular),
            Entry("strategies/b.yaml", FileKind.SymbolicLink, "../shared/b.yaml"),
            Entry("strategies/c.yaml", FileKind.SymbolicLink, "a.yaml"),
            Entry("strategies/fifo.yaml", FileKind.Other),
            Entry("strategies/notes.txt", FileKind.Regular),
            Entry("unrelated", FileKind.Directory),
        };

        var plan = Seeds().Plan(walked);

        plan.Entries.Select(e => e.RelativePath).Should().Equal("config.yaml", "strategies", "strategies/a.yaml", "strategies/b.yaml", "strategies/c.yaml");
        plan.FileCount.Should().Be(4);
        plan.UnmatchedIncludes.Should().Equal("risk_limits.yaml", ".env");
        plan.LinksNotContained.Should().ContainSingle().Which.Should().Be("/etc/veloz/strategies/b.yaml -> ../shared/b.yaml");
        plan.SkippedSpecial.Should().Equal("/etc/veloz/strategies/fifo.yaml");
    }

    [Fact]
    public void The_description_names_every_glob_and_the_fixed_exclusions() =>
        Seeds().Describe().Should().Be("Include [config.yaml, strategies/*.yaml, risk_limits.yaml, .env], Exclude [**/*.secret]; *.secret and /etc/veloz/secrets are always excluded");

    private static SourceEntry Entry(string relative, FileKind kind, string? link = null) =>
        new(relative, "/etc/veloz/" + relative, new FileStatus(kind, 0b110_100_100, 0, 0, 1, 0, 0, 1, (ulong)relative.GetHashCode(StringComparison.Ordinal)), link);
}
