using System.Text.Json;
using System.Text.Json.Serialization;
using VelozBackupAgent.Storage.Checksums;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Sources.Wal;

/// <summary>What the store holds under a segment's name when it differs from the source (a conflict).</summary>
/// <param name="Size">Size of the stored copy.</param>
/// <param name="Sha256">Its recorded checksum; null when its sidecar could not be read.</param>
internal sealed record WalStoredCopy(long Size, string? Sha256);

/// <summary>
/// What is known of one source segment: its size and mtime when last examined, the SHA-256 of those bytes
/// (null only for a conflict found by size alone), and, only when the store holds something else under its
/// name, that stored copy. Without <see cref="Stored"/>, the store holds exactly these bytes.
/// </summary>
/// <param name="Size">Source size when examined.</param>
/// <param name="Mtime">Source mtime when examined, UTC ticks.</param>
/// <param name="Sha256">SHA-256 of the source bytes when examined, if they were read or are known from the store.</param>
/// <param name="Stored">The differing stored copy, for a conflict; null when the store holds these very bytes.</param>
internal sealed record WalIndexEntry(long Size, long Mtime, string? Sha256, WalStoredCopy? Stored = null)
{
    [JsonIgnore]
    public bool IsConflict => Stored is not null;

    [JsonIgnore]
    public WalFileState State => new(Size, Mtime);
}

/// <summary>The newest snapshot of the active file: which artifact, and the file's size and mtime it was taken at.</summary>
/// <param name="Artifact">The snapshot's artifact name.</param>
/// <param name="Size">Bytes in the snapshot (the file's length when it was taken).</param>
/// <param name="Mtime">The file's mtime then, UTC ticks; 0 when unknown (index rebuilt from the store).</param>
/// <param name="Sha256">The snapshot's checksum.</param>
internal sealed record WalActiveEntry(string Artifact, long Size, long Mtime, string Sha256)
{
    [JsonIgnore]
    public WalFileState State => new(Size, Mtime);
}

/// <summary>
/// The WAL source's memory between runs, so that a sync with nothing new reads nothing: per segment the
/// size, mtime and checksum last seen (trusted only while size and mtime still match), and the active
/// file's last snapshot. It is a cache: losing it costs one stat and one sidecar read per segment, never a
/// re-hash of stored data (see <see cref="WalSource"/>).
/// </summary>
internal sealed class WalIndex
{
    public WalIndex(string directory) => Directory = directory;

    /// <summary>The WAL directory this index describes; an index of another directory is not used.</summary>
    public string Directory { get; }

    public Dictionary<string, WalIndexEntry> Segments { get; } = new(StringComparer.Ordinal);

    public WalActiveEntry? Active { get; private set; }

    /// <summary>Bumped on every change; the file is written and the watcher's view refreshed only when it moved.</summary>
    public long Version { get; private set; }

    /// <summary>
    /// Segments this process added to the index since the active file's current snapshot was taken (not saved): a
    /// shorter active file after new segments is a rotation, a shorter one without any is a truncation.
    /// </summary>
    public int SegmentsAddedSinceSnapshot { get; private set; }

    public void Set(string name, WalIndexEntry entry)
    {
        if (!Segments.TryGetValue(name, out var old))
        {
            SegmentsAddedSinceSnapshot++;
        }

        if (old != entry)
        {
            Segments[name] = entry;
            Version++;
        }
    }

    public void Remove(string name)
    {
        if (Segments.Remove(name))
        {
            Version++;
        }
    }

    public void SetActive(WalActiveEntry? active)
    {
        if (!string.Equals(Active?.Artifact, active?.Artifact, StringComparison.Ordinal))
        {
            SegmentsAddedSinceSnapshot = 0;
        }

        if (Active != active)
        {
            Active = active;
            Version++;
        }
    }

    /// <summary>Forces the next save (a fresh or rebuilt index).</summary>
    public void Touch() => Version++;
}

/// <summary>
/// <c>&lt;state&gt;/wal-index.json</c>: loaded once, written atomically (temporary file, fsync, rename, fsync of
/// the directory), mode 0600. A file that does not parse or describes another directory is reported and
/// rebuilt, never trusted.
/// </summary>
internal sealed class WalIndexFile
{
    private const int CurrentVersion = 1;

    private (long Length, long Mtime)? _lastIo;

    public WalIndexFile(string path) => Path = path;

    public string Path { get; }

    /// <summary>True when the file on disk is not the one this process last read or wrote (another process wrote it, or it was removed).</summary>
    public bool ChangedSinceLastIo() => Stat() != _lastIo;

    /// <summary>The index, or null with the reason (null reason: there is no index yet).</summary>
    public (WalIndex? Index, string? Problem) Load(string directory)
    {
        _lastIo = Stat();
        if (_lastIo is null)
        {
            return (null, null);
        }

        WalIndexDocument? document;
        try
        {
            using var stream = File.OpenRead(Path);
            document = JsonSerializer.Deserialize(stream, WalJsonContext.Default.WalIndexDocument);
        }
        catch (JsonException ex)
        {
            return (null, $"it is not valid JSON ({ex.Message})");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return (null, $"it cannot be read ({ex.Message})");
        }

        if (document is null || document.Version != CurrentVersion)
        {
            return (null, $"unknown format version {document?.Version}");
        }

        if (!string.Equals(document.Directory, directory, StringComparison.Ordinal))
        {
            return (null, $"it describes another directory ({document.Directory})");
        }

        var index = new WalIndex(directory);
        foreach (var (name, entry) in document.Segments ?? [])
        {
            if (entry is null || !WalNaming.IsStorable(name) || entry.Size < 0
                || (entry.Sha256 is not null && !Sha256Sidecar.IsSha256Hex(entry.Sha256))
                || (entry.Stored is { } s && (s.Size < 0 || (s.Sha256 is not null && !Sha256Sidecar.IsSha256Hex(s.Sha256))))
                || (entry.Stored is null && entry.Sha256 is null))
            {
                return (null, $"its entry for '{name}' is malformed");
            }

            index.Segments[name] = entry;
        }

        if (document.Active is { } a && (!WalNaming.IsStorable(a.Artifact) || a.Size < 0 || !Sha256Sidecar.IsSha256Hex(a.Sha256)))
        {
            return (null, "its active-file entry is malformed");
        }

        index.SetActive(document.Active);
        return (index, null);
    }

    public void Save(WalIndex index)
    {
        ArgumentNullException.ThrowIfNull(index);
        var directory = System.IO.Path.GetDirectoryName(Path)!;
        CreatePrivateDirectory(directory);
        var temp = Path + "." + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture) + ".tmp";
        try
        {
            using (var stream = PrivateFiles.Open(temp, FileMode.Create))
            {
                var document = new WalIndexDocument(CurrentVersion, index.Directory, index.Segments, index.Active);
                JsonSerializer.Serialize(stream, document, WalJsonContext.Default.WalIndexDocument);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, Path, overwrite: true);
            FileSync.FsyncDirectory(directory);
            _lastIo = Stat();
        }
        finally
        {
            File.Delete(temp);
        }
    }

    private (long, long)? Stat()
    {
        var info = new FileInfo(Path);
        return info.Exists ? (info.Length, info.LastWriteTimeUtc.Ticks) : null;
    }

    private static void CreatePrivateDirectory(string directory) => PrivateFiles.CreateDirectory(directory);
}

/// <summary>The index as written to disk.</summary>
/// <param name="Version">Format version, 1.</param>
/// <param name="Directory">The WAL directory described.</param>
/// <param name="Segments">Segment name → what is known of it.</param>
/// <param name="Active">The active file's newest snapshot.</param>
internal sealed record WalIndexDocument(int Version, string Directory, Dictionary<string, WalIndexEntry>? Segments, WalActiveEntry? Active);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(WalIndexDocument))]
[JsonSerializable(typeof(WalManifest))]
[JsonSerializable(typeof(WalManifestSegment))]
[JsonSerializable(typeof(WalManifestActive))]
[JsonSerializable(typeof(WalManifestPending))]
[JsonSerializable(typeof(WalManifestConflict))]
[JsonSerializable(typeof(WalManifestUnreadable))]
[JsonSerializable(typeof(WalManifestParent))]
[JsonSerializable(typeof(WalChainCacheDocument))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(DateTimeOffset))]
internal sealed partial class WalJsonContext : JsonSerializerContext;
