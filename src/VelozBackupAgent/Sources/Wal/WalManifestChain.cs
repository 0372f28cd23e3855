using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;

namespace VelozBackupAgent.Sources.Wal;

/// <summary>A delta manifest's chain cannot be followed: a parent is missing, has other bytes than recorded, or is not a manifest.</summary>
internal sealed class WalManifestChainException : Exception
{
    public WalManifestChainException() { }

    public WalManifestChainException(string message) : base(message) { }

    public WalManifestChainException(string message, Exception innerException) : base(message, innerException) { }

    public WalManifestChainException(string message, bool missing, Exception? innerException = null) : base(message, innerException) => Missing = missing;

    /// <summary>The parent is simply not in that store (another store may hold it); otherwise it is damaged or wrong.</summary>
    public bool Missing { get; }
}

/// <summary>The newest manifest as its writer left it, resolved to every segment: what the next delta is computed against.</summary>
/// <param name="Name">Its artifact name.</param>
/// <param name="Sha256">The SHA-256 of its bytes (the next delta records it).</param>
/// <param name="Depth">0 for a full manifest, else its delta depth.</param>
/// <param name="Segments">Every segment the directory held at its sync, by name.</param>
/// <param name="Chain">Itself, its parent, … back to the full manifest its chain starts at, each with the SHA-256 of its bytes.</param>
internal sealed record WalChainTip(string Name, string Sha256, int Depth, IReadOnlyDictionary<string, WalManifestSegment> Segments, IReadOnlyList<WalManifestParent> Chain)
{
    /// <summary><see cref="WalChainCache.SegmentsDigest"/> of <see cref="Segments"/> when already computed, else null.</summary>
    public string? SegmentsSha256 { get; init; }

    /// <summary>The tip <paramref name="resolved"/> (named <paramref name="name"/>, hashing <paramref name="sha256"/>) makes; <paramref name="parents"/>: its chain's other manifests, parent first.</summary>
    public static WalChainTip Of(string name, string sha256, WalManifest resolved, IEnumerable<WalManifestParent>? parents = null)
    {
        ArgumentNullException.ThrowIfNull(resolved);
        var segments = new Dictionary<string, WalManifestSegment>(resolved.Segments.Count, StringComparer.Ordinal);
        foreach (var s in resolved.Segments)
        {
            segments[s.Name] = s;
        }

        return new WalChainTip(name, sha256, resolved.IsDelta ? resolved.Depth : 0, segments, [new WalManifestParent(name, sha256), .. parents ?? []]);
    }
}

/// <summary>
/// Delta manifests (format version 2): a sync writes only what changed since the previous manifest — segments added or
/// changed, names removed — plus its own active snapshot, pending, conflicts, unreadable and modes, and names that
/// previous manifest (its parent) with the SHA-256 of its bytes. A full manifest (every segment, like version 1)
/// starts each chain: at the first sync, every <c>Backup:Wal:FullManifestInterval</c> syncs, whenever the parent
/// cannot be used, and when the delta would be large (more than a quarter of the segments, at least
/// <see cref="MinEntriesForFull"/> entries). Pure logic: reading a parent is a function it is handed.
/// </summary>
internal static class WalManifestChain
{
    /// <summary>No chain is followed further than this (the interval is at most this): a loop or a runaway chain is an error, not a hang.</summary>
    public const int MaxChainLength = 1000;

    /// <summary>Default <c>Backup:Wal:FullManifestInterval</c>: at the default 5-minute schedule, a full manifest every 8 hours.</summary>
    public const int DefaultFullInterval = 96;

    /// <summary>A delta with fewer entries than this is always written as a delta, whatever the directory's size.</summary>
    public const int MinEntriesForFull = 64;

    /// <summary>
    /// The manifest to write for a sync whose complete view is <paramref name="complete"/> (every segment in
    /// <see cref="WalManifest.Segments"/>): a delta against <paramref name="tip"/>, or a full manifest.
    /// </summary>
    public static WalManifest Next(WalManifest complete, WalChainTip? tip, int fullInterval)
    {
        ArgumentNullException.ThrowIfNull(complete);
        var full = complete with { Version = WalManifest.CurrentVersion, Type = WalManifest.FullType, Parent = null, Depth = 0, Added = null, Removed = null };
        if (tip is null || fullInterval <= 1 || tip.Depth + 1 >= fullInterval || tip.Depth + 1 >= MaxChainLength)
        {
            return full;
        }

        var added = new List<WalManifestSegment>();
        var kept = 0;
        foreach (var segment in complete.Segments)
        {
            if (tip.Segments.TryGetValue(segment.Name, out var before))
            {
                kept++;
                if (before == segment)
                {
                    continue;
                }
            }

            added.Add(segment);
        }

        var removed = new List<string>();
        if (kept < tip.Segments.Count)
        {
            // Only when something went: a no-op sync of many thousand segments builds no name set.
            var present = complete.Segments.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
            removed.AddRange(tip.Segments.Keys.Where(n => !present.Contains(n)).Order(StringComparer.Ordinal));
        }

        var entries = added.Count + removed.Count;
        if (entries >= MinEntriesForFull && entries * 4 > complete.Segments.Count)
        {
            return full;
        }

        return full with
        {
            Type = WalManifest.DeltaType,
            Parent = new WalManifestParent(tip.Name, tip.Sha256),
            Depth = tip.Depth + 1,
            Segments = [],
            Added = added,
            Removed = removed,
        };
    }

    /// <summary>
    /// <paramref name="delta"/> applied to its resolved parent: the same manifest with every segment the directory held at
    /// its sync in <see cref="WalManifest.Segments"/> (<see cref="WalManifest.Added"/> and <see cref="WalManifest.Removed"/> cleared).
    /// </summary>
    public static WalManifest Apply(WalManifest parent, WalManifest delta, string deltaName = "the delta")
    {
        ArgumentNullException.ThrowIfNull(parent);
        ArgumentNullException.ThrowIfNull(delta);
        var segments = new Dictionary<string, WalManifestSegment>(parent.Segments.Count + (delta.Added?.Count ?? 0), StringComparer.Ordinal);
        foreach (var s in parent.Segments)
        {
            segments[s.Name] = s;
        }

        foreach (var name in delta.Removed ?? [])
        {
            if (!segments.Remove(name))
            {
                throw new WalManifestChainException($"{deltaName} removes {name}, which its parent {delta.Parent?.Name} does not list: the chain is inconsistent", missing: false);
            }
        }

        foreach (var s in delta.Added ?? [])
        {
            segments[s.Name] = s;
        }

        var list = segments.Values.ToList();
        list.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return delta with { Segments = list, Added = null, Removed = null };
    }

    /// <summary>
    /// The manifest <paramref name="name"/> (already read as <paramref name="manifest"/>) resolved to every segment: a
    /// full one as it is; a delta by reading its parents back to a full manifest (each checked against the SHA-256 its
    /// child recorded) and applying the deltas in order. <paramref name="open"/> opens a parent by name, null when the
    /// store does not hold it; <paramref name="store"/> names that store in errors. <paramref name="parents"/>, when given,
    /// receives every parent followed (name and checked SHA-256), the nearest first.
    /// </summary>
    public static async Task<WalManifest> ResolveAsync(string name, WalManifest manifest, Func<string, CancellationToken, Task<Stream?>> open, string store, CancellationToken cancellationToken,
        ICollection<WalManifestParent>? parents = null)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(open);
        if (!manifest.IsDelta)
        {
            return manifest;
        }

        var chain = new List<(string Name, WalManifest Manifest)> { (name, manifest) };
        var seen = new HashSet<string>(StringComparer.Ordinal) { name };
        var current = (Name: name, Manifest: manifest);
        while (current.Manifest.IsDelta)
        {
            var link = current.Manifest.Parent!;
            if (chain.Count >= MaxChainLength)
            {
                throw new WalManifestChainException(string.Create(CultureInfo.InvariantCulture,
                    $"{name} is a delta manifest whose chain is longer than {MaxChainLength} manifests (at {current.Name}): refused"), missing: false);
            }

            if (!seen.Add(link.Name))
            {
                throw new WalManifestChainException($"{current.Name} names {link.Name} as its parent, which is already in its chain (a loop): refused", missing: false);
            }

            var parent = await ReadParentAsync(current.Name, link, open, store, cancellationToken).ConfigureAwait(false);
            parents?.Add(link);
            chain.Add((link.Name, parent));
            current = (link.Name, parent);
        }

        var resolved = chain[^1].Manifest;
        for (var i = chain.Count - 2; i >= 0; i--)
        {
            resolved = Apply(resolved, chain[i].Manifest, chain[i].Name);
        }

        return resolved;
    }

    /// <summary>Reads, hashes and parses a manifest from its bytes.</summary>
    public static async Task<(WalManifest Manifest, string Sha256)> ReadAsync(Stream input, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var buffer = new MemoryStream();
        await input.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
        var sha = Convert.ToHexStringLower(SHA256.HashData(buffer.GetBuffer().AsSpan(0, (int)buffer.Length)));
        buffer.Position = 0;
        var manifest = await WalManifest.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        return (manifest, sha);
    }

    private static async Task<WalManifest> ReadParentAsync(string child, WalManifestParent link, Func<string, CancellationToken, Task<Stream?>> open, string store, CancellationToken cancellationToken)
    {
        Stream? input;
        try
        {
            input = await open(link.Name, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not OutOfMemoryException)
        {
            throw new WalManifestChainException($"{child} is a delta of {link.Name}, which cannot be read from the {store} store: {ex.Message}", missing: false, ex);
        }

        if (input is null)
        {
            throw new WalManifestChainException($"{child} is a delta of {link.Name}, which the {store} store does not hold: the chain is broken", missing: true);
        }

        await using (input.ConfigureAwait(false))
        {
            WalManifest parent;
            string sha;
            try
            {
                (parent, sha) = await ReadAsync(input, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is JsonException or InvalidDataException)
            {
                throw new WalManifestChainException($"{child} is a delta of {link.Name}, which in the {store} store is not a WAL manifest: {ex.Message}", missing: false, ex);
            }
            catch (Exception ex) when (ex is not OperationCanceledException and not OutOfMemoryException)
            {
                throw new WalManifestChainException($"{child} is a delta of {link.Name}, which cannot be read from the {store} store: {ex.Message}", missing: false, ex);
            }

            if (!string.Equals(sha, link.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                throw new WalManifestChainException($"{child} is a delta of {link.Name} with sha256 {Short(link.Sha256)}, but the {store} store's {link.Name} has sha256 {Short(sha)} (changed or replaced): refused", missing: false);
            }

            return parent;
        }
    }

    private static string Short(string sha) => sha.Length > 12 ? sha[..12] + "…" : sha;
}
