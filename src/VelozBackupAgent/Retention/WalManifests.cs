using System.Text.Json;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Retention;

/// <summary>Reads which sealed segments a stored WAL manifest lists (its <c>segments[].name</c>), verifying its checksum on the way.</summary>
public static class WalManifests
{
    /// <summary>The segment names, or null when the manifest cannot be read or parsed (retention then keeps every segment).</summary>
    public static async Task<IReadOnlyCollection<string>?> ReadSegmentNamesAsync(IArtifactStore store, CatalogEntry manifest, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(manifest);
        try
        {
            var stream = await store.OpenReadAsync(BackupKinds.Wal, manifest.Name, cancellationToken).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                using var document = await JsonDocument.ParseAsync(stream, cancellationToken: cancellationToken).ConfigureAwait(false);
                if (!document.RootElement.TryGetProperty("segments", out var segments) || segments.ValueKind != JsonValueKind.Array)
                {
                    return null;
                }

                var names = new List<string>();
                foreach (var segment in segments.EnumerateArray())
                {
                    if (segment.ValueKind != JsonValueKind.Object || !segment.TryGetProperty("name", out var name) || name.GetString() is not { } value)
                    {
                        return null;
                    }

                    names.Add(value);
                }

                return names;
            }
        }
        catch (Exception ex) when (ex is StoreException or JsonException or IOException)
        {
            return null;
        }
    }
}
