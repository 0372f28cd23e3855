using System.Text.Json;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Retention;

/// <summary>
/// What one stored WAL manifest says about segments, as retention needs it: a full manifest lists every segment
/// (<see cref="Listed"/>, no <see cref="Parent"/>); a delta manifest lists the segments added or changed since its
/// <see cref="Parent"/> and the names <see cref="Removed"/>.
/// </summary>
/// <param name="Listed">Segment names listed (a full manifest's segments, a delta's added).</param>
/// <param name="Removed">A delta's removed names; empty for a full manifest.</param>
/// <param name="Parent">A delta's parent manifest name; null for a full manifest.</param>
public sealed record WalManifestLinks(IReadOnlyCollection<string> Listed, IReadOnlyCollection<string> Removed, string? Parent)
{
    public static WalManifestLinks Full(IReadOnlyCollection<string> segments) => new(segments, [], null);
}

/// <summary>Reads which sealed segments a stored WAL manifest lists (and, for a delta, its parent), verifying its checksum on the way.</summary>
public static class WalManifests
{
    /// <summary>The manifest's segment names and parent, or null when it cannot be read or parsed (retention then keeps every segment).</summary>
    public static async Task<WalManifestLinks?> ReadSegmentNamesAsync(IArtifactStore store, CatalogEntry manifest, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(manifest);
        try
        {
            var stream = await store.OpenReadAsync(BackupKinds.Wal, manifest.Name, cancellationToken).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                using var document = await JsonDocument.ParseAsync(stream, cancellationToken: cancellationToken).ConfigureAwait(false);
                var root = document.RootElement;
                if (root.ValueKind != JsonValueKind.Object)
                {
                    return null;
                }

                var delta = root.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "delta";
                if (!delta)
                {
                    return Names(root, "segments", byName: true) is { } listed ? WalManifestLinks.Full(listed) : null;
                }

                if (!root.TryGetProperty("parent", out var parent) || parent.ValueKind != JsonValueKind.Object
                    || !parent.TryGetProperty("name", out var parentName) || parentName.ValueKind != JsonValueKind.String)
                {
                    return null;
                }

                return Names(root, "added", byName: true) is { } added && Names(root, "removed", byName: false) is { } removed
                    ? new WalManifestLinks(added, removed, parentName.GetString())
                    : null;
            }
        }
        catch (Exception ex) when (ex is StoreException or JsonException or IOException)
        {
            return null;
        }
    }

    private static List<string>? Names(JsonElement root, string property, bool byName)
    {
        if (!root.TryGetProperty(property, out var items) || items.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        var names = new List<string>();
        foreach (var item in items.EnumerateArray())
        {
            var value = byName
                ? item.ValueKind == JsonValueKind.Object && item.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String ? name.GetString() : null
                : item.ValueKind == JsonValueKind.String ? item.GetString() : null;
            if (value is null)
            {
                return null;
            }

            names.Add(value);
        }

        return names;
    }
}
