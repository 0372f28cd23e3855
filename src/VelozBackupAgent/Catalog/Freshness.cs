using VelozBackupAgent.Configuration;

namespace VelozBackupAgent.Catalog;

/// <summary>How fresh one kind's newest successful backup is, against its objective.</summary>
/// <param name="Kind">wal, config, database or secrets.</param>
/// <param name="LastSuccess">When the newest successful backup was taken; null when there is none.</param>
/// <param name="Objective">The kind's <see cref="KindOptions.FreshnessObjective"/>.</param>
/// <param name="Age">Now minus <paramref name="LastSuccess"/> (never negative); null when there is none.</param>
/// <param name="Stale">True when there is no backup, or it is older than the objective plus the grace and no run that started on time is still within its bound.</param>
public sealed record FreshnessStatus(string Kind, DateTimeOffset? LastSuccess, TimeSpan Objective, TimeSpan? Age, bool Stale)
{
    /// <summary>When the run of the kind in progress started (any process); null when none runs.</summary>
    public DateTimeOffset? RunningSince { get; init; }

    /// <summary>
    /// True when the newest backup alone is past the objective, but a run that started on time is in progress and
    /// younger than its bound (<see cref="KindOptions.MaxRunDuration"/>): the kind counts as fresh meanwhile.
    /// </summary>
    public bool KeptFreshByRun { get; init; }

    /// <summary>How long the run in progress has been going (never negative); null when none runs.</summary>
    public TimeSpan? RunningFor { get; init; }

    /// <summary>The bound a run in progress is held to (<see cref="KindOptions.MaxRunDuration"/>); null when not given.</summary>
    public TimeSpan? MaxRun { get; init; }

    /// <summary>True when a run in progress has been going longer than its bound: it is hung, or the bound is too short.</summary>
    public bool RunOverdue { get; init; }

    /// <summary>
    /// With Backup:Cluster, for a database-wide kind: the node whose backup <see cref="LastSuccess"/> is (this node or
    /// another); null otherwise.
    /// </summary>
    public string? Node { get; init; }

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
    /// <para>
    /// A run in progress (<paramref name="runningSince"/>) keeps an existing backup's kind fresh while the newest
    /// backup alone would be stale, when the run started on time (no later than the moment the newest backup went
    /// stale: last success + objective + grace) and has been running at most <paramref name="maxRun"/>. A daily dump
    /// that takes 40 minutes is then never reported stale while it runs, and a hung one still is, once past its bound.
    /// With no backup at all a run does not help: there is still nothing to restore.
    /// </para>
    /// </summary>
    public static FreshnessStatus Evaluate(string kind, DateTimeOffset? lastSuccess, TimeSpan objective, TimeSpan grace, DateTimeOffset now,
        DateTimeOffset? runningSince = null, TimeSpan? maxRun = null)
    {
        TimeSpan? runningFor = runningSince is { } since ? (now > since ? now - since : TimeSpan.Zero) : null;
        var runOverdue = runningFor is { } going && maxRun is { } bound && going > bound;
        var template = new FreshnessStatus(kind, null, objective, null, Stale: true)
        {
            RunningSince = runningSince, RunningFor = runningFor, MaxRun = maxRun, RunOverdue = runOverdue,
        };
        if (lastSuccess is not { } last)
        {
            return template;
        }

        var age = now > last ? now - last : TimeSpan.Zero;
        var stale = age > objective + grace;
        var kept = stale && runningSince is { } start && start <= last + objective + grace && !runOverdue;
        return template with { LastSuccess = last, Age = age, Stale = stale && !kept, KeptFreshByRun = kept };
    }

    /// <summary>
    /// <see cref="Evaluate(string, DateTimeOffset?, TimeSpan, TimeSpan, DateTimeOffset, DateTimeOffset?, TimeSpan?)"/> with the
    /// kind's configured objective, grace and <see cref="KindOptions.MaxRunDuration"/>.
    /// </summary>
    public static FreshnessStatus Evaluate(BackupOptions options, string kind, DateTimeOffset? lastSuccess, DateTimeOffset now, DateTimeOffset? runningSince = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var kindOptions = options.Kind(kind);
        return Evaluate(kind, lastSuccess, kindOptions.FreshnessObjective, options.FreshnessGrace, now, runningSince, kindOptions.MaxRunDuration);
    }
}
