namespace VelozBackupAgent.Tests;

public sealed class SuggestionsTests
{
    private static readonly string[] Verbs = ["run", "backup", "prune", "list", "status", "replicate", "import", "restore", "verify", "diff", "pg-wal-push", "pg-wal-get"];
    private static readonly string[] Kinds = ["secrets", "config", "database", "pitr", "wal"];

    [Theory]
    [InlineData("restor", "restore")]      // a letter short
    [InlineData("resotre", "restore")]     // two neighbours swapped
    [InlineData("Restore", "restore")]     // case
    [InlineData("stauts", "status")]
    [InlineData("lst", "list")]
    [InlineData("verfy", "verify")]
    [InlineData("imprt", "import")]
    [InlineData("pg-wal-pus", "pg-wal-push")]
    [InlineData("rep", "replicate")]       // the one verb it begins
    public void A_mistyped_verb_finds_the_verb(string typed, string meant) =>
        Suggestions.Closest(typed, Verbs).Should().Be(meant);

    [Theory]
    [InlineData("databse", "database")]
    [InlineData("secret", "secrets")]
    [InlineData("cofnig", "config")]
    [InlineData("WAL", "wal")]
    public void A_mistyped_kind_finds_the_kind(string typed, string meant) =>
        Suggestions.Closest(typed, Kinds).Should().Be(meant);

    [Theory]
    [InlineData("frobnicate")]
    [InlineData("xyz")]
    [InlineData("")]
    [InlineData("r")]                      // begins several verbs and is one letter: no guess
    public void A_word_near_nothing_gets_no_guess(string typed) =>
        Suggestions.Closest(typed, Verbs).Should().BeNull();

    [Fact]
    public void A_prefix_of_several_goes_by_distance_not_by_the_first()
    {
        // "re" begins replicate and restore: neither is within one edit, so no guess rather than a wrong one.
        Suggestions.Closest("re", Verbs).Should().BeNull();
        // "pg-wal" begins both pg-wal-push and pg-wal-get; neither is close enough.
        Suggestions.Closest("pg-wal", Verbs).Should().BeNull();
    }

    [Fact]
    public void Options_are_matched_on_the_word_after_the_dashes()
    {
        Suggestions.Closest("--jsn", ["--json", "--target", "--help"]).Should().Be("--json");
        Suggestions.Closest("--dryrun", ["--dry-run", "--help"]).Should().Be("--dry-run");
        Suggestions.Closest("--verbos", ["--verbose", "--config"]).Should().Be("--verbose");
    }

    [Fact]
    public void A_bigger_limit_takes_a_farther_word()
    {
        Suggestions.Closest("rstre", Verbs).Should().BeNull();
        Suggestions.Closest("rstre", Verbs, maxDistance: 2).Should().Be("restore");
    }

    [Theory]
    [InlineData("", "", 0)]
    [InlineData("abc", "", 3)]
    [InlineData("", "abc", 3)]
    [InlineData("kitten", "sitting", 3)]
    [InlineData("ab", "ba", 1)]            // a swap is one edit (Levenshtein alone says 2)
    [InlineData("restore", "resotre", 1)]
    [InlineData("database", "databse", 1)]
    [InlineData("ca", "abc", 3)]           // optimal string alignment: no edit of a swapped pair again
    public void Distance_counts_insertions_deletions_substitutions_and_swaps(string a, string b, int distance)
    {
        Suggestions.Distance(a, b).Should().Be(distance);
        Suggestions.Distance(b, a).Should().Be(distance);
    }
}
