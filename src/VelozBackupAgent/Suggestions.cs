namespace VelozBackupAgent;

/// <summary>
/// "Did you mean …?" for what an operator typed: a verb, a kind, an option, a configuration key. Shared so that
/// every mistyped word gets the same kind of hint.
/// </summary>
internal static class Suggestions
{
    /// <summary>
    /// The candidate <paramref name="typed"/> most likely meant, or null when none is close: the same word in another
    /// case; else the one candidate it is a prefix of (<c>rest</c> → <c>restore</c>); else the nearest by edit distance
    /// (insertions, deletions, substitutions and swaps of two neighbours count one each) within
    /// <paramref name="maxDistance"/> (default: a third of the word, at least 1). Ties go to the earlier candidate.
    /// </summary>
    public static string? Closest(string typed, IEnumerable<string> candidates, int? maxDistance = null)
    {
        ArgumentNullException.ThrowIfNull(typed);
        ArgumentNullException.ThrowIfNull(candidates);
        var all = candidates.Distinct(StringComparer.Ordinal).ToList();
        if (typed.Length == 0 || all.Count == 0)
        {
            return null;
        }

        if (all.FirstOrDefault(c => string.Equals(c, typed, StringComparison.OrdinalIgnoreCase)) is { } same)
        {
            return same;
        }

        var prefixed = all.Where(c => c.StartsWith(typed, StringComparison.OrdinalIgnoreCase)).ToList();
        if (typed.TrimStart('-').Length >= 2 && prefixed.Count == 1)
        {
            return prefixed[0];
        }

        var limit = maxDistance ?? Math.Max(1, typed.TrimStart('-').Length / 3);
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var c in all)
        {
            var d = Distance(typed.ToUpperInvariant(), c.ToUpperInvariant());
            if (d < bestDistance)
            {
                (best, bestDistance) = (c, d);
            }
        }

        return bestDistance <= limit ? best : null;
    }

    /// <summary>Optimal string alignment distance: Levenshtein plus the swap of two neighbouring characters.</summary>
    public static int Distance(string a, string b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        // Three rows: the one before the previous is what a swap of two neighbours looks back to.
        var before = new int[b.Length + 1];
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        var current = new int[b.Length + 1];
        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                current[j] = Math.Min(Math.Min(previous[j] + 1, current[j - 1] + 1), previous[j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    current[j] = Math.Min(current[j], before[j - 2] + 1);
                }
            }

            (before, previous, current) = (previous, current, before);
        }

        return previous[b.Length];
    }
}
