using VelozBackupAgent.Configuration;

namespace VelozBackupAgent.Catalog;

/// <summary>How fresh one kind's newest successful backup is, against its objective.</summary>
/// <param name="Kind">wal, config, database or secrets.</param>
/// <param name="LastSuccess">When the newest successful backup was taken; null when there is none.</param>
/// <param name="Objective">The kind's <see cref="KindOptions.FreshnessObjective"/>.</param>
/// <param name="Age">Now minus <paramref name="LastSuccess"/> (never negative); null when there is none.</param>
/// <param name="Stale">True when there is no backup, or it is older than the objective plus the grace.</param>
public sealed record FreshnessStatus(string Kind, DateTimeOffset? LastSuccess, TimeSpan Objective, TimeSpan? Age, bool Stale)
{
    /// <summary>How far past its objective the kind is (zero when within it); null when there is no backup.</summary>
    public TimeSpan? Overdue => Age is { } a ? (a > Objective ? a - Objective : TimeSpan.Zero) : null;
}

/// <summary>The one freshness rule that <c>/health</c>, <c>verify</c> and the metrics share.</summary>
public static class Freshness
{
    /// <summary>
    /// Judges <paramref name="lastSuccess"/> at <paramref name="now"/>: stale when missing or older than
    /// <paramref name="objective"/> + <paramref name="grace"/>. A last success in the future (clock stepped
    /// back) counts as age zero, not as stale.
    /// </summary>
    public static FreshnessStatus Evaluate(string kind, DateTimeOffset? lastSuccess, TimeSpan objective, TimeSpan grace, DateTimeOffset now)
    {
        if (lastSuccess is not { } last)
        {
            return new FreshnessStatus(kind, null, objective, null, Stale: true);
        }

        var age = now > last ? now - last : TimeSpan.Zero;
        return new FreshnessStatus(kind, last, objective, age, age > objective + grace);
    }

    /// <summary><see cref="Evaluate(string, DateTimeOffset?, TimeSpan, TimeSpan, DateTimeOffset)"/> with the kind's configured objective and grace.</summary>
    public static FreshnessStatus Evaluate(BackupOptions options, string kind, DateTimeOffset? lastSuccess, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(options);
        return Evaluate(kind, lastSuccess, options.Kind(kind).FreshnessObjective, options.FreshnessGrace, now);
    }
}
