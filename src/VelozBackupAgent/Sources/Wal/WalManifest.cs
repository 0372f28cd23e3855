using System.Globalization;
using System.Text;
using System.Text.Json;

namespace VelozBackupAgent.Sources.Wal;

/// <summary>A sealed segment as it was in the WAL directory, and as stored under the same name.</summary>
/// <param name="Name">File name, also the artifact name.</param>
/// <param name="Size">Bytes.</param>
/// <param name="Sha256">Checksum of the bytes (the stored artifact's sidecar says the same).</param>
internal sealed record WalManifestSegment(string Name, long Size, string Sha256);

/// <summary>The active file at the sync, as the snapshot artifact that holds exactly its bytes.</summary>
/// <param name="File">The active file's name in the WAL directory, e.g. <c>orders_current.wal</c>.</param>
/// <param name="Artifact">The snapshot artifact to restore it from.</param>
/// <param name="Size">Bytes.</param>
/// <param name="Sha256">Checksum of the snapshot.</param>
internal sealed record WalManifestActive(string File, string Artifact, long Size, string Sha256);

/// <summary>A segment present at the sync but not stored yet (still being written).</summary>
/// <param name="Name">File name.</param>
/// <param name="Size">Bytes at the sync.</param>
internal sealed record WalManifestPending(string Name, long Size);

/// <summary>A stored segment whose source now differs: the stored copy is kept; the source is suspect.</summary>
/// <param name="Name">File name.</param>
/// <param name="StoredSize">Size of the stored copy (the one to restore).</param>
/// <param name="StoredSha256">Checksum of the stored copy; null when its sidecar is damaged.</param>
/// <param name="SourceSize">Size of the source file now.</param>
/// <param name="SourceSha256">Checksum of the source now; null when the sizes already differ.</param>
internal sealed record WalManifestConflict(string Name, long StoredSize, string? StoredSha256, long SourceSize, string? SourceSha256);

/// <summary>A segment that could not be read, so it is not backed up.</summary>
/// <param name="Name">File name.</param>
/// <param name="Error">Why.</param>
internal sealed record WalManifestUnreadable(string Name, string Error);

/// <summary>The manifest a delta manifest applies to: its artifact name and the SHA-256 of its bytes.</summary>
/// <param name="Name">The parent's artifact name, e.g. <c>wal-manifest_20261123_101000.json</c>.</param>
/// <param name="Sha256">Checksum of the parent's bytes; a parent with other bytes is refused, never used.</param>
internal sealed record WalManifestParent(string Name, string Sha256);

/// <summary>
/// <c>wal-manifest_YYYYMMDD_HHMMSS.json</c>: which segments the WAL directory held at one sync (name, size,
/// SHA-256) and which snapshot holds the active file as it was then. Restoring every listed segment plus the
/// snapshot (renamed to <see cref="WalManifestActive.File"/>) recreates the directory as it was at that sync,
/// also after a segment was deleted from it later. Written with one segment per line, so that the segment
/// list can be turned into a <c>sha256sum -c</c> file with <c>jq</c>, or with <c>sed</c> where jq is missing.
/// </summary>
/// <param name="Format">Always <c>veloz-wal-manifest</c>.</param>
/// <param name="Version">Format version, 1.</param>
/// <param name="Node">Backup:NodeName of the agent that wrote it.</param>
/// <param name="CreatedAt">When the sync listed the directory (UTC).</param>
/// <param name="Trigger">Why the sync ran.</param>
/// <param name="Directory">The WAL directory listed.</param>
/// <param name="Active">The active file's snapshot; null when there was no active file.</param>
/// <param name="Segments">Sealed segments present and stored, by name.</param>
/// <param name="Pending">Segments present but still being written, not stored yet.</param>
/// <param name="Conflicts">Segments whose source differs from the stored copy.</param>
/// <param name="Unreadable">Segments present but unreadable, not stored.</param>
/// <param name="FileMode">Permission bits of the WAL files, octal (<c>0640</c>): the mode most of them had; a restore
/// gives it to every file. Null in manifests written before it was recorded (restored as 0640).</param>
/// <param name="DirectoryMode">Permission bits of the WAL directory, octal; null when not recorded.</param>
/// <param name="Type">Version 2: <c>full</c> (lists every segment, like version 1) or <c>delta</c> (lists only what changed
/// since <see cref="Parent"/>); null in version 1 (full).</param>
/// <param name="Parent">A delta's parent manifest; null for a full one.</param>
/// <param name="Depth">A delta's distance from the full manifest its chain starts at (1 for the first delta); 0 for a full one.</param>
/// <param name="Added">A delta's segments added or changed since its parent (name, size, SHA-256).</param>
/// <param name="Removed">A delta's segment names present in its parent and gone at this sync.</param>
internal sealed record WalManifest(
    string Format,
    int Version,
    string Node,
    DateTimeOffset CreatedAt,
    string Trigger,
    string Directory,
    WalManifestActive? Active,
    IReadOnlyList<WalManifestSegment> Segments,
    IReadOnlyList<WalManifestPending> Pending,
    IReadOnlyList<WalManifestConflict> Conflicts,
    IReadOnlyList<WalManifestUnreadable> Unreadable,
    string? FileMode = null,
    string? DirectoryMode = null,
    string? Type = null,
    WalManifestParent? Parent = null,
    int Depth = 0,
    IReadOnlyList<WalManifestSegment>? Added = null,
    IReadOnlyList<string>? Removed = null)
{
    public const string FormatName = "veloz-wal-manifest";

    /// <summary>The version written now (1 is still read).</summary>
    public const int CurrentVersion = 2;

    public const string FullType = "full";

    public const string DeltaType = "delta";

    /// <summary>Only what changed since <see cref="Parent"/>: <see cref="Segments"/> is empty, <see cref="Added"/> and <see cref="Removed"/> say the change.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool IsDelta => string.Equals(Type, DeltaType, StringComparison.Ordinal);

    /// <summary>Permission bits as the manifest writes them: four octal digits, e.g. <c>0640</c>.</summary>
    public static string FormatMode(UnixFileMode mode) => Convert.ToString((int)mode & 0x1FF, 8).PadLeft(4, '0');

    /// <summary>Reads a recorded mode back; null when absent or not an octal permission (only the rwx bits are kept).</summary>
    public static UnixFileMode? ParseMode(string? text)
    {
        if (string.IsNullOrEmpty(text) || text.Length > 4 || !text.All(c => c is >= '0' and <= '7'))
        {
            return null;
        }

        return (UnixFileMode)(Convert.ToInt32(text, 8) & 0x1FF);
    }

    /// <summary>Writes the manifest: the header fields, then every list with one item per line.</summary>
    public async Task WriteAsync(Stream output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(output);
        var writer = new StreamWriter(output, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), 64 * 1024, leaveOpen: true) { NewLine = "\n" };
        await using (writer.ConfigureAwait(false))
        {
            var ctx = WalJsonContext.Default;
            await writer.WriteLineAsync("{").ConfigureAwait(false);
            await writer.WriteLineAsync($"  \"format\": {Json(Format, ctx.String)},").ConfigureAwait(false);
            await writer.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"  \"version\": {Version},")).ConfigureAwait(false);
            if (Type is not null)
            {
                await writer.WriteLineAsync($"  \"type\": {Json(Type, ctx.String)},").ConfigureAwait(false);
            }

            if (Parent is not null)
            {
                await writer.WriteLineAsync($"  \"parent\": {Json(Parent, ctx.WalManifestParent)},").ConfigureAwait(false);
                await writer.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"  \"depth\": {Depth},")).ConfigureAwait(false);
            }

            await writer.WriteLineAsync($"  \"node\": {Json(Node, ctx.String)},").ConfigureAwait(false);
            await writer.WriteLineAsync($"  \"createdAt\": {Json(CreatedAt, ctx.DateTimeOffset)},").ConfigureAwait(false);
            await writer.WriteLineAsync($"  \"trigger\": {Json(Trigger, ctx.String)},").ConfigureAwait(false);
            await writer.WriteLineAsync($"  \"directory\": {Json(Directory, ctx.String)},").ConfigureAwait(false);
            if (FileMode is not null)
            {
                await writer.WriteLineAsync($"  \"fileMode\": {Json(FileMode, ctx.String)},").ConfigureAwait(false);
            }

            if (DirectoryMode is not null)
            {
                await writer.WriteLineAsync($"  \"directoryMode\": {Json(DirectoryMode, ctx.String)},").ConfigureAwait(false);
            }

            await writer.WriteLineAsync($"  \"active\": {(Active is null ? "null" : Json(Active, ctx.WalManifestActive))},").ConfigureAwait(false);
            if (IsDelta)
            {
                // Not "segments": a reader that predates deltas finds no segment list and refuses it, rather than take
                // the additions for the whole directory.
                await WriteListAsync(writer, "added", Added ?? [], ctx.WalManifestSegment, last: false, cancellationToken).ConfigureAwait(false);
                await WriteListAsync(writer, "removed", Removed ?? [], ctx.String, last: false, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await WriteListAsync(writer, "segments", Segments, ctx.WalManifestSegment, last: false, cancellationToken).ConfigureAwait(false);
            }

            await WriteListAsync(writer, "pending", Pending, ctx.WalManifestPending, last: false, cancellationToken).ConfigureAwait(false);
            await WriteListAsync(writer, "conflicts", Conflicts, ctx.WalManifestConflict, last: false, cancellationToken).ConfigureAwait(false);
            await WriteListAsync(writer, "unreadable", Unreadable, ctx.WalManifestUnreadable, last: true, cancellationToken).ConfigureAwait(false);
            await writer.WriteLineAsync("}").ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Reads a manifest (version 1, or version 2 full or delta) as it is written, a delta not applied (see
    /// <see cref="WalManifestChain"/>); throws <see cref="JsonException"/> or <see cref="InvalidDataException"/> when it is not one.
    /// </summary>
    public static async Task<WalManifest> ReadAsync(Stream input, CancellationToken cancellationToken = default)
    {
        var manifest = await JsonSerializer.DeserializeAsync(input, WalJsonContext.Default.WalManifest, cancellationToken).ConfigureAwait(false);
        if (manifest is null || manifest.Format != FormatName || manifest.Version is < 1 or > CurrentVersion)
        {
            throw new InvalidDataException($"not a {FormatName} version 1 or 2 document");
        }

        if (manifest.Version == 1 && manifest.Type is not null)
        {
            throw new InvalidDataException("a version 1 manifest has no type");
        }

        if (manifest.Version == 2 && manifest.Type is not (FullType or DeltaType))
        {
            throw new InvalidDataException($"type must be \"{FullType}\" or \"{DeltaType}\", not {(manifest.Type is null ? "missing" : $"\"{manifest.Type}\"")}");
        }

        if (manifest.IsDelta)
        {
            if (manifest.Parent is not { } parent || string.IsNullOrEmpty(parent.Name) || !VelozBackupAgent.Storage.Checksums.Sha256Sidecar.IsSha256Hex(parent.Sha256 ?? ""))
            {
                throw new InvalidDataException("a delta manifest must name its parent (name and sha256)");
            }

            if (manifest.Depth < 1)
            {
                throw new InvalidDataException("a delta manifest's depth must be at least 1");
            }

            if (manifest.Segments is { Count: > 0 })
            {
                throw new InvalidDataException("a delta manifest lists its changes under added/removed, not segments");
            }
        }
        else if (manifest.Segments is null || manifest.Parent is not null || manifest.Added is not null || manifest.Removed is not null)
        {
            throw new InvalidDataException("a full manifest lists segments and has no parent, added or removed");
        }

        return manifest with
        {
            Segments = manifest.Segments ?? [],
            Pending = manifest.Pending ?? [],
            Conflicts = manifest.Conflicts ?? [],
            Unreadable = manifest.Unreadable ?? [],
            Added = manifest.IsDelta ? manifest.Added ?? [] : null,
            Removed = manifest.IsDelta ? manifest.Removed ?? [] : null,
        };
    }

    private static async Task WriteListAsync<T>(StreamWriter writer, string property, IReadOnlyList<T> items, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, bool last, CancellationToken cancellationToken)
    {
        if (items.Count == 0)
        {
            await writer.WriteLineAsync($"  \"{property}\": []{(last ? "" : ",")}").ConfigureAwait(false);
            return;
        }

        await writer.WriteLineAsync($"  \"{property}\": [").ConfigureAwait(false);
        for (var i = 0; i < items.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            await writer.WriteLineAsync($"    {Json(items[i], type)}{(i < items.Count - 1 ? "," : "")}").ConfigureAwait(false);
        }

        await writer.WriteLineAsync($"  ]{(last ? "" : ",")}").ConfigureAwait(false);
    }

    private static string Json<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) => JsonSerializer.Serialize(value, type);
}
