using System.Text;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Pitr;

/// <summary>A complete base backup: its metadata and its archive.</summary>
/// <param name="InfoName">The metadata artifact (<c>base_….json</c>).</param>
/// <param name="Time">The time in its name (when it started).</param>
/// <param name="Info">What the metadata says.</param>
/// <param name="ArchiveSize">The archive's size; null when the archive is missing (the base is then unusable).</param>
public sealed record PitrBase(string InfoName, DateTimeOffset Time, BaseBackupInfo Info, long? ArchiveSize);

/// <summary>
/// What one store holds of the <c>pitr</c> kind, read for verify, status and restores: the artifacts, the complete base
/// backups (newest first), and the WAL inventory with every timeline history parsed, so continuity can be checked
/// without reading a segment. Metadata or history files that cannot be read are <see cref="Problems"/>, never crashes.
/// </summary>
public sealed class PitrCatalog
{
    private const long DefaultSegmentSize = 16L * 1024 * 1024;

    private PitrCatalog(IArtifactStore store, IReadOnlyList<CatalogEntry> entries, IReadOnlyList<PitrBase> bases, WalInventory inventory, IReadOnlyList<string> problems)
    {
        Store = store;
        Entries = entries;
        Bases = bases;
        Inventory = inventory;
        Problems = problems;
    }

    public IArtifactStore Store { get; }

    public IReadOnlyList<CatalogEntry> Entries { get; }

    /// <summary>Complete base backups, newest first.</summary>
    public IReadOnlyList<PitrBase> Bases { get; }

    public WalInventory Inventory { get; }

    /// <summary>Unreadable metadata or history files, and bases whose archive is missing, one line each.</summary>
    public IReadOnlyList<string> Problems { get; }

    /// <summary>The segment size the bases record (16 MiB when there is none).</summary>
    public long SegmentSize => Inventory.SegmentSize;

    /// <summary>Lists <paramref name="store"/> and reads every base's metadata and every history file (small files).</summary>
    public static async Task<PitrCatalog> LoadAsync(IArtifactStore store, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        var entries = await BackupCatalog.ListWithoutChecksumsAsync(store, BackupKinds.Pitr, cancellationToken).ConfigureAwait(false);
        var names = entries.Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
        var problems = new List<string>();
        var bases = new List<PitrBase>();
        var histories = new Dictionary<uint, TimelineHistory>();
        foreach (var entry in entries)
        {
            var artifact = PitrArtifact.Classify(entry.Name);
            if (artifact is { Type: PitrArtifactType.BaseInfo } && entry.Time is { } time)
            {
                try
                {
                    var info = await ReadInfoAsync(store, entry.Name, cancellationToken).ConfigureAwait(false);
                    var archive = entries.FirstOrDefault(e => e.Name == info.Archive);
                    if (archive is null)
                    {
                        problems.Add($"{entry.Name}: its archive {info.Archive} is missing in {store.Target}");
                    }

                    bases.Add(new PitrBase(entry.Name, time, info, archive?.Size));
                }
                catch (Exception ex) when (ex is FormatException or StoreException or IOException)
                {
                    problems.Add($"{entry.Name}: unreadable ({ex.Message})");
                }
            }
            else if (artifact is { Type: PitrArtifactType.History })
            {
                try
                {
                    histories[artifact.Timeline] = TimelineHistory.Parse(artifact.Timeline, await ReadTextAsync(store, entry.Name, cancellationToken).ConfigureAwait(false));
                }
                catch (Exception ex) when (ex is FormatException or StoreException or IOException or DecoderFallbackException)
                {
                    problems.Add($"{entry.Name}: unreadable ({ex.Message})");
                }
            }
        }

        bases.Sort((a, b) => b.Time.CompareTo(a.Time) is var c and not 0 ? c : string.CompareOrdinal(b.InfoName, a.InfoName));
        var segmentSize = bases.Count > 0 ? bases[0].Info.WalSegmentSize : DefaultSegmentSize;
        return new PitrCatalog(store, entries, bases, new WalInventory(names, segmentSize, histories), problems);
    }

    /// <summary>Reads a base's metadata, verifying its checksum on the way.</summary>
    public static async Task<BaseBackupInfo> ReadInfoAsync(IArtifactStore store, string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        var stream = await store.OpenReadAsync(BackupKinds.Pitr, name, cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            return await BaseBackupInfo.ReadAsync(stream, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task<string> ReadTextAsync(IArtifactStore store, string name, CancellationToken cancellationToken)
    {
        var stream = await store.OpenReadAsync(BackupKinds.Pitr, name, cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            using var reader = new StreamReader(stream, new UTF8Encoding(false, throwOnInvalidBytes: true));
            var buffer = new char[1 << 20];
            var read = await reader.ReadBlockAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (read == buffer.Length)
            {
                throw new FormatException("larger than 1 MiB: not a timeline history file");
            }

            // Read to the end so the checksum is verified.
            _ = await reader.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
            return new string(buffer, 0, read);
        }
    }
}
