using VelozBackupAgent.Catalog;

namespace VelozBackupAgent.Retention;

/// <summary>What retention decided for one kind in one store.</summary>
/// <param name="Delete">Artifacts to delete, in the order to delete them (WAL segments before the manifests that list them,
/// WAL manifests newest first so a delta goes before its parent).</param>
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
/// read (or a delta manifest's chain cannot be followed), stays. What a delta manifest lists is its parent's list
/// with its changes applied.</item>
/// <item>A kept WAL delta manifest keeps its parent, and so on back to the full manifest its chain starts at, whatever
/// their age: a restore to any kept sync needs the whole chain.</item>
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
    /// <param name="manifestLinks">
    /// For the WAL: what a manifest lists and, for a delta, its parent (null result = unreadable); used instead of
    /// <paramref name="manifestSegments"/> when given.
    /// </param>
    public static RetentionDecision Decide(
        IReadOnlyList<CatalogEntry> entries,
        TimeSpan retention,
        DateTimeOffset now,
        DateTimeOffset? lastPruneAt = null,
        Func<CatalogEntry, IReadOnlyCollection<string>?>? manifestSegments = null,
        Func<CatalogEntry, bool>? keep = null,
        Func<CatalogEntry, WalManifestLinks?>? manifestLinks = null)
    {
        keep ??= _ => false;
        if (manifestLinks is null && manifestSegments is not null)
        {
            manifestLinks = m => manifestSegments(m) is { } listed ? WalManifestLinks.Full(listed) : null;
        }

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
        if (manifestLinks is not null && manifests.Count > 0)
        {
            var links = new Dictionary<string, WalManifestLinks?>(StringComparer.Ordinal);
            var byName = new Dictionary<string, CatalogEntry>(StringComparer.Ordinal);
            foreach (var manifest in manifests)
            {
                links[manifest.Name] = manifestLinks(manifest);
                byName[manifest.Name] = manifest;
            }

            var deleting = KeepChains(deleteTimed.Where(IsManifest).ToHashSet(), manifests, links, byName);
            deleteTimed.RemoveAll(e => IsManifest(e) && !deleting.Contains(e));
            if (ListedSegments(manifests, links, deleting) is var (listedByDeleted, listedBySurvivors))
            {
                deleteSegments.AddRange(entries
                    .Where(e => e.Time is null && BackupCatalog.WalSegmentNumber(e.Name) is not null)
                    .Where(e => listedByDeleted.Contains(e.Name) && !listedBySurvivors.Contains(e.Name) && !keep(e))
                    .OrderBy(e => e.Sequence));
            }
        }

        // A dump's globals go with it, right after it (DumpCompanions).
        deleteTimed.AddRange(DumpCompanions.ToDelete(companions, rest, deleteTimed.ToHashSet(), cutoff).Where(e => !keep(e)));

        // Segments first: a prune interrupted half-way leaves manifests that still explain what is stored. Then the
        // oldest of everything else, except manifests: those go newest first, a delta before its parent, so a prune
        // stopped at any point never leaves a delta whose parent it already deleted (verify would fail it until the
        // next prune).
        return new RetentionDecision(
            [.. deleteSegments, .. deleteTimed.Where(e => !IsManifest(e)).OrderBy(e => e.Time), .. deleteTimed.Where(IsManifest).OrderByDescending(e => e.Time)],
            null);
    }

    /// <summary>The manifests to delete, less every ancestor of a manifest that stays (its chain back to a full manifest).</summary>
    private static HashSet<CatalogEntry> KeepChains(HashSet<CatalogEntry> deleting, List<CatalogEntry> manifests,
        Dictionary<string, WalManifestLinks?> links, Dictionary<string, CatalogEntry> byName)
    {
        foreach (var survivor in manifests.Where(m => !deleting.Contains(m)))
        {
            var parent = links[survivor.Name]?.Parent;
            for (var steps = 0; parent is not null && steps < manifests.Count && byName.TryGetValue(parent, out var entry); steps++)
            {
                if (!deleting.Remove(entry))
                {
                    break; // it stays anyway, and keeps its own chain
                }

                parent = links[parent]?.Parent;
            }
        }

        return deleting;
    }

    /// <summary>
    /// Which segments the manifests being deleted list, and which the survivors do; a delta lists its parent's set with its
    /// changes. Null when a manifest cannot be read or a delta's parent is not there (then every segment stays). Walks the
    /// manifests oldest first, handing a parent's set on to its only child rather than copying it, so a week of
    /// deltas costs about one set of names, not one per sync.
    /// </summary>
    private static (HashSet<string> Deleted, HashSet<string> Survivors)? ListedSegments(List<CatalogEntry> manifests,
        Dictionary<string, WalManifestLinks?> links, HashSet<CatalogEntry> deleting)
    {
        var children = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var l in links.Values)
        {
            if (l is null)
            {
                return null;
            }

            if (l.Parent is { } p)
            {
                children[p] = children.GetValueOrDefault(p) + 1;
            }
        }

        var listedByDeleted = new HashSet<string>(StringComparer.Ordinal);
        var listedBySurvivors = new HashSet<string>(StringComparer.Ordinal);
        var live = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var manifest in manifests.OrderBy(e => e, Comparer<CatalogEntry>.Create(BackupCatalog.NewestFirst)).Reverse())
        {
            var l = links[manifest.Name]!;
            HashSet<string> set;
            if (l.Parent is null)
            {
                set = new HashSet<string>(l.Listed, StringComparer.Ordinal);
            }
            else if (live.TryGetValue(l.Parent, out var parentSet))
            {
                if (--children[l.Parent] == 0)
                {
                    live.Remove(l.Parent);
                    set = parentSet;
                }
                else
                {
                    set = new HashSet<string>(parentSet, StringComparer.Ordinal);
                }

                set.ExceptWith(l.Removed);
                set.UnionWith(l.Listed);
            }
            else
            {
                // Its parent is gone, unreadable, or not older than it: what it lists cannot be known.
                return null;
            }

            (deleting.Contains(manifest) ? listedByDeleted : listedBySurvivors).UnionWith(set);
            if (children.GetValueOrDefault(manifest.Name) > 0)
            {
                live[manifest.Name] = set;
            }
        }

        return (listedByDeleted, listedBySurvivors);
    }

    private static bool IsManifest(CatalogEntry e) =>
        e.Time is not null && e.Name.StartsWith(Scheduling.BackupSchedule.WalManifestPrefix + "_", StringComparison.Ordinal);
}
