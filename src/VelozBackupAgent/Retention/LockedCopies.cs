using VelozBackupAgent.Catalog;

namespace VelozBackupAgent.Retention;

/// <summary>A copy retention would delete but the store still locks (S3 Object Lock), so it stays.</summary>
public sealed record LockedCopy(string Kind, string Target, string Name, DateTimeOffset Until);

/// <summary>
/// Retention that never deletes a copy the store still locks: every artifact a decision would delete is asked for its
/// lock date; one still locked is kept, and the decision is made again with it kept, so what depends on it stays too
/// (a kept WAL manifest keeps its segments, a kept dump its globals, a kept base backup its archive and WAL). Keeping
/// more never makes anything else go, so this ends within a few rounds, and everything finally deleted was asked.
/// </summary>
public static class LockedCopies
{
    /// <summary>Whether a lock until <paramref name="until"/> still holds at <paramref name="now"/>, allowing for clocks that disagree.</summary>
    public static bool IsLocked(DateTimeOffset until, DateTimeOffset now) => until + RetentionPolicy.ClockTolerance > now;

    /// <param name="decision">What retention decided with nothing kept.</param>
    /// <param name="decide">Decides again, keeping the entries the predicate names.</param>
    /// <param name="lockedUntil">The store's lock date of an entry; null when it is not locked.</param>
    /// <param name="now">The clock now.</param>
    public static async Task<(RetentionDecision Decision, IReadOnlyDictionary<CatalogEntry, DateTimeOffset> Locked)> RespectAsync(
        RetentionDecision decision,
        Func<Func<CatalogEntry, bool>, RetentionDecision> decide,
        Func<CatalogEntry, Task<DateTimeOffset?>> lockedUntil,
        DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(decision);
        ArgumentNullException.ThrowIfNull(decide);
        ArgumentNullException.ThrowIfNull(lockedUntil);
        var locked = new Dictionary<CatalogEntry, DateTimeOffset>();
        var asked = new HashSet<CatalogEntry>();
        while (decision.Refused is null)
        {
            var more = false;
            foreach (var entry in decision.Delete)
            {
                if (asked.Add(entry) && await lockedUntil(entry).ConfigureAwait(false) is { } until && IsLocked(until, now))
                {
                    locked[entry] = until;
                    more = true;
                }
            }

            if (!more)
            {
                break;
            }

            decision = decide(locked.ContainsKey);
        }

        return (decision, locked);
    }
}
