using VelozBackupAgent.Catalog;

namespace VelozBackupAgent.Retention;

/// <summary>What retention decided for one kind in one store.</summary>
/// <param name="Delete">Artifacts to delete, in the order to delete them (WAL segments before the manifests that list them).</param>
/// <param name="Refused">Why nothing may be deleted at all (e.g. the clock jumped backwards); null when the decision stands.</param>
public sealed record RetentionDecision(IReadOnlyList<CatalogEntry> Delete, string? Refused)
{
    public static RetentionDecision Refuse(string reason) => new([], reason);
}

/// <summary>
/// Retention as a pure function of a catalog and the clock. Rules, each a safety property the tests check
/// on random catalogs:
/// <list type="bullet">
/// <item>Age is the time in the artifact's name, never a file time. An artifact goes when it is older than the
/// kind's retention.</item>
/// <item>The newest artifact of each series (name prefix: <c>veloz</c>, <c>config</c>, <c>wal-manifest</c>,
/// <c>orders_current</c>…) is never deleted, however old: a stale backup beats no backup.</item>
/// <item>A dump's <c>globals_….sql.gpg</c> is no series: it goes exactly when its dump goes (<see cref="DumpCompanions"/>).</item>
/// <item>A sealed WAL segment (no time in its name) goes only when a manifest that is being deleted lists it
/// and no surviving manifest does; a segment no manifest mentions, or any segment when manifests could not be
/// read, stays.</item>
/// <item>Names the agent did not make stay.</item>
/// <item>Nothing is deleted when the clock looks wrong: earlier than the last prune, or earlier than an
/// artifact's own time (beyond a small tolerance).</item>
/// </list>
/// </summary>
public static class RetentionPolicy
{
    /// <summary>How far the clock may disagree (NTP steps, a second node) before retention refuses to act.</summary>
    public static readonly TimeSpan ClockTolerance = TimeSpan.FromMinutes(5);

    /// <param name="entries">One kind's artifacts in one store.</param>
    /// <param name="retention">The kind's <c>Retention</c>.</param>
    /// <param name="now">The clock now.</param>
    /// <param name="lastPruneAt">When a prune last ran (persisted), to notice a clock that went backwards.</param>
    /// <param name="manifestSegments">For the WAL: the segment names a manifest lists; null result = unreadable.</param>
    /// <param name="keep">
    /// Entries that must stay whatever their age (copies the store still locks): each counts as kept, so a kept manifest
    /// keeps its segments and a kept dump its globals. Keeping more never makes anything else go.
    /// </param>
    public static RetentionDecision Decide(
        IReadOnlyList<CatalogEntry> entries,
        TimeSpan retention,
        DateTimeOffset now,
        DateTimeOffset? lastPruneAt = null,
        Func<CatalogEntry, IReadOnlyCollection<string>?>? manifestSegments = null,
        Func<CatalogEntry, bool>? keep = null)
    {
        keep ??= _ => false;
        ArgumentNullException.ThrowIfNull(entries);
        if (retention <= TimeSpan.Zero)
        {
            return RetentionDecision.Refuse($"retention must be positive, not {retention}");
        }

        if (lastPruneAt is { } last && last - now > ClockTolerance)
        {
            return RetentionDecision.Refuse($"the clock went backwards: now {now:u}, last prune {last:u}");
        }

        if (entries.Where(e => e.Time is not null).MaxBy(e => e.Time) is { } future && future.Time!.Value - now > ClockTolerance)
        {
            return RetentionDecision.Refuse($"{future.Name} is from the future (now {now:u}): the clock looks wrong");
        }

        var cutoff = now - retention;
        var deleteTimed = new List<CatalogEntry>();
        var (companions, rest) = DumpCompanions.Split(entries);
        var series = rest.Where(e => e.Time is not null)
            .GroupBy(e => ArtifactName.TryParse(e.Name, out var prefix, out _, out _, out _) ? prefix : e.Name, StringComparer.Ordinal);
        foreach (var group in series)
        {
            var newestFirst = group.OrderBy(e => e, Comparer<CatalogEntry>.Create(BackupCatalog.NewestFirst)).ToList();
            deleteTimed.AddRange(newestFirst.Skip(1).Where(e => e.Time!.Value < cutoff && !keep(e)).Reverse());
        }

        var deleteSegments = new List<CatalogEntry>();
        var manifests = entries.Where(IsManifest).ToList();
        if (manifestSegments is not null && manifests.Count > 0)
        {
            var deleting = deleteTimed.Where(IsManifest).ToHashSet();
            var listedByDeleted = new HashSet<string>(StringComparer.Ordinal);
            var listedBySurvivors = new HashSet<string>(StringComparer.Ordinal);
            var readable = true;
            foreach (var manifest in manifests)
            {
                var listed = manifestSegments(manifest);
                if (listed is null)
                {
                    readable = false;
                    break;
                }

                (deleting.Contains(manifest) ? listedByDeleted : listedBySurvivors).UnionWith(listed);
            }

            if (readable)
            {
                deleteSegments.AddRange(entries
                    .Where(e => e.Time is null && BackupCatalog.WalSegmentNumber(e.Name) is not null)
                    .Where(e => listedByDeleted.Contains(e.Name) && !listedBySurvivors.Contains(e.Name) && !keep(e))
                    .OrderBy(e => e.Sequence));
            }
        }

        // A dump's globals go with it, right after it (DumpCompanions).
        deleteTimed.AddRange(DumpCompanions.ToDelete(companions, rest, deleteTimed.ToHashSet(), cutoff).Where(e => !keep(e)));

        // Segments first: a prune interrupted half-way leaves manifests that still explain what is stored.
        return new RetentionDecision([.. deleteSegments, .. deleteTimed.OrderBy(e => e.Time)], null);
    }

    private static bool IsManifest(CatalogEntry e) =>
        e.Time is not null && e.Name.StartsWith(Scheduling.BackupSchedule.WalManifestPrefix + "_", StringComparison.Ordinal);
}
