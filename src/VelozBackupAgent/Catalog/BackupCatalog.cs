using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Catalog;

/// <summary>One artifact as the catalog sees it.</summary>
/// <param name="Kind">wal, config, database or secrets.</param>
/// <param name="Target">The store: local or s3.</param>
/// <param name="Name">File name.</param>
/// <param name="Time">UTC time from the name; null for names without one (sealed WAL segments, foreign files).</param>
/// <param name="Sequence">Same-second sequence from the name (1 when absent), or a WAL segment's number.</param>
/// <param name="Size">Bytes.</param>
/// <param name="Sha256">Recorded checksum, when the store's listing carries it.</param>
public sealed record CatalogEntry(string Kind, string Target, string Name, DateTimeOffset? Time, long Sequence, long Size, string? Sha256);

/// <summary>Lists what exists per kind and target, newest first by the time in the name.</summary>
public static class BackupCatalog
{
    /// <summary>Every artifact of <paramref name="kind"/> in <paramref name="store"/>, newest first.</summary>
    public static Task<IReadOnlyList<CatalogEntry>> ListAsync(IArtifactStore store, string kind, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        return CollectAsync(store.ListAsync(kind, cancellationToken), store.Target);
    }

    /// <summary>Like <see cref="ListAsync"/> without the checksums that cost a read each (<see cref="IArtifactStore.ListWithoutChecksumsAsync"/>).</summary>
    public static Task<IReadOnlyList<CatalogEntry>> ListWithoutChecksumsAsync(IArtifactStore store, string kind, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        return CollectAsync(store.ListWithoutChecksumsAsync(kind, cancellationToken), store.Target);
    }

    private static async Task<IReadOnlyList<CatalogEntry>> CollectAsync(IAsyncEnumerable<ArtifactInfo> listing, string target)
    {
        var entries = new List<CatalogEntry>();
        await foreach (var a in listing.ConfigureAwait(false))
        {
            entries.Add(ToEntry(a, target));
        }

        entries.Sort(NewestFirst);
        return entries;
    }

    /// <summary>Makes a catalog entry from what a store reported.</summary>
    public static CatalogEntry ToEntry(ArtifactInfo a, string target)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (ArtifactName.TryParse(a.Name, out _, out var time, out var sequence, out _))
        {
            return new CatalogEntry(a.Kind, target, a.Name, time, sequence, a.Size, a.Sha256);
        }

        return new CatalogEntry(a.Kind, target, a.Name, null, WalSegmentNumber(a.Name) ?? 0, a.Size, a.Sha256);
    }

    /// <summary>
    /// Newest first: by the time in the name, then same-second sequence; entries without a time
    /// (WAL segments by number, highest first) come after all timed ones; the name breaks ties.
    /// </summary>
    public static int NewestFirst(CatalogEntry? x, CatalogEntry? y)
    {
        if (ReferenceEquals(x, y))
        {
            return 0;
        }

        if (x is null || y is null)
        {
            return x is null ? 1 : -1;
        }

        if (x.Time.HasValue != y.Time.HasValue)
        {
            return x.Time.HasValue ? -1 : 1;
        }

        var c = Nullable.Compare(y.Time, x.Time);
        if (c == 0)
        {
            c = y.Sequence.CompareTo(x.Sequence);
        }

        return c != 0 ? c : string.CompareOrdinal(y.Name, x.Name);
    }

    /// <summary>The number of a sealed segment <c>orders_&lt;16 digits&gt;.wal</c>, or null.</summary>
    public static long? WalSegmentNumber(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        const string Prefix = "orders_";
        const string Suffix = ".wal";
        if (name.Length == Prefix.Length + 16 + Suffix.Length && name.StartsWith(Prefix, StringComparison.Ordinal)
            && name.EndsWith(Suffix, StringComparison.Ordinal)
            && long.TryParse(name.AsSpan(Prefix.Length, 16), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n))
        {
            return n;
        }

        return null;
    }
}
