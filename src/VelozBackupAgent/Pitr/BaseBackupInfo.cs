using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using VelozBackupAgent.Storage.Checksums;

namespace VelozBackupAgent.Pitr;

/// <summary>
/// A base backup's metadata, <c>base_…json</c>, written after its archive: what restore and verify need without opening
/// the archive. The JSON is camelCase; LSNs are <c>%X/%X</c> strings and the system identifier a decimal string (it
/// does not fit a JSON number safely). <see cref="Read"/> accepts only a complete, consistent document and throws
/// <see cref="FormatException"/> (one line) for anything else, however hostile.
/// </summary>
public sealed record BaseBackupInfo
{
    /// <summary>The format this code writes and reads.</summary>
    public const int CurrentFormat = 1;

    /// <summary>Larger than any real metadata file by far; a bigger one is not read into memory.</summary>
    public const int MaxBytes = 1024 * 1024;

    private static readonly string[] Compressions = ["gzip", "zstd", "none"];

    public required int Format { get; init; }

    /// <summary>The archive's name in the store.</summary>
    public required string Archive { get; init; }

    /// <summary>SHA-256 of the archive as stored (compressed), lower-case hex.</summary>
    public required string ArchiveSha256 { get; init; }

    public required long ArchiveBytes { get; init; }

    /// <summary>Bytes of the tar stream before compression.</summary>
    public required long TarBytes { get; init; }

    /// <summary>gzip, zstd or none; matches the archive's suffix.</summary>
    public required string Compression { get; init; }

    /// <summary>The cluster's system identifier, decimal.</summary>
    public required string SystemIdentifier { get; init; }

    public required string ServerVersion { get; init; }

    public required int ServerVersionNum { get; init; }

    /// <summary>The timeline the backup started on (backup_label's START TIMELINE).</summary>
    public required uint Timeline { get; init; }

    /// <summary>Where replay must begin (backup_label's START WAL LOCATION).</summary>
    public required string StartLsn { get; init; }

    /// <summary>The segment holding <see cref="StartLsn"/>.</summary>
    public required string StartWalFile { get; init; }

    /// <summary>Where replay must at least reach for the backup to be consistent (the manifest's last WAL range end).</summary>
    public required string StopLsn { get; init; }

    public required uint StopTimeline { get; init; }

    public required DateTimeOffset StartTime { get; init; }

    public required DateTimeOffset StopTime { get; init; }

    public required long WalSegmentSize { get; init; }

    /// <summary>SHA-256 of backup_manifest, when the backup has one.</summary>
    public string? ManifestSha256 { get; init; }

    /// <summary>backup_label's LABEL.</summary>
    public string? Label { get; init; }

    public required string PgBasebackupVersion { get; init; }

    /// <summary><see cref="StartLsn"/> parsed.</summary>
    [JsonIgnore]
    public Lsn Start => Lsn.Parse(StartLsn);

    /// <summary><see cref="StopLsn"/> parsed.</summary>
    [JsonIgnore]
    public Lsn Stop => Lsn.Parse(StopLsn);

    /// <summary><see cref="SystemIdentifier"/> parsed.</summary>
    [JsonIgnore]
    public ulong SystemIdentifierValue => ulong.Parse(SystemIdentifier, NumberStyles.None, CultureInfo.InvariantCulture);

    /// <summary>Reads and checks a document; <see cref="FormatException"/> for anything but a complete, consistent one.</summary>
    public static BaseBackupInfo Read(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = stream.Read(chunk)) > 0)
        {
            buffer.Write(chunk, 0, n);
            ThrowIfTooLarge(buffer.Length);
        }

        return Parse(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
    }

    /// <inheritdoc cref="Read"/>
    public static async Task<BaseBackupInfo> ReadAsync(Stream stream, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = await stream.ReadAsync(chunk, cancellationToken)) > 0)
        {
            buffer.Write(chunk, 0, n);
            ThrowIfTooLarge(buffer.Length);
        }

        return Parse(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
    }

    /// <inheritdoc cref="Read"/>
    public static BaseBackupInfo Parse(ReadOnlySpan<byte> utf8)
    {
        ThrowIfTooLarge(utf8.Length);
        if (utf8.StartsWith("\uFEFF"u8))
        {
            utf8 = utf8[3..];
        }

        BaseBackupInfo? info;
        try
        {
            info = JsonSerializer.Deserialize(utf8, BaseBackupJson.Info);
        }
        catch (JsonException ex)
        {
            throw new FormatException($"base backup info is not valid: {PitrText.OneLine(ex.Message)}", ex);
        }
        catch (Exception ex) when (ex is InvalidOperationException or NotSupportedException or ArgumentException or OverflowException)
        {
            throw new FormatException($"base backup info is not valid: {PitrText.OneLine(ex.Message)}", ex);
        }

        if (info is null)
        {
            throw new FormatException("base backup info is not valid: the document is null");
        }

        if (info.Problem() is { } problem)
        {
            throw new FormatException($"base backup info is not valid: {problem}");
        }

        return info;
    }

    /// <summary>Writes the document (UTF-8, indented, a final newline).</summary>
    public void Write(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        stream.Write(ToUtf8Bytes());
    }

    /// <summary>The document as UTF-8 bytes, after checking it; throws <see cref="FormatException"/> rather than write a document <see cref="Read"/> would refuse.</summary>
    public byte[] ToUtf8Bytes()
    {
        if (Problem() is { } problem)
        {
            throw new FormatException($"base backup info is not valid: {problem}");
        }

        return [.. JsonSerializer.SerializeToUtf8Bytes(this, BaseBackupJson.Info), (byte)'\n'];
    }

    /// <summary>The first inconsistency in the document, or null.</summary>
    public string? Problem()
    {
        if (Format != CurrentFormat)
        {
            return Invariant($"format {Format} is not supported (expected {CurrentFormat})");
        }

        if (PitrArtifact.Classify(Archive ?? "") is not { Type: PitrArtifactType.BaseArchive } archive)
        {
            return $"archive {PitrText.Quote(Archive)} is not a base archive name";
        }

        if (!Sha256Sidecar.IsSha256Hex(ArchiveSha256))
        {
            return $"archiveSha256 {PitrText.Quote(ArchiveSha256)} is not a lower-case SHA-256";
        }

        if (ArchiveBytes < 0 || TarBytes < 0)
        {
            return "archiveBytes and tarBytes cannot be negative";
        }

        if (!Compressions.Contains(Compression, StringComparer.Ordinal))
        {
            return $"compression {PitrText.Quote(Compression)} is not gzip, zstd or none";
        }

        if (PitrArtifact.CompressionOf(archive.BaseSuffix!) != Compression)
        {
            return $"compression {Compression} does not match the archive {Archive}";
        }

        if (!ulong.TryParse(SystemIdentifier, NumberStyles.None, CultureInfo.InvariantCulture, out var sysid) || sysid == 0)
        {
            return $"systemIdentifier {PitrText.Quote(SystemIdentifier)} is not a decimal system identifier";
        }

        if (string.IsNullOrWhiteSpace(ServerVersion) || ServerVersionNum <= 0 || string.IsNullOrWhiteSpace(PgBasebackupVersion))
        {
            return "serverVersion, serverVersionNum and pgBasebackupVersion are required";
        }

        return WalProblem() ?? TimeProblem();
    }

    private string? WalProblem()
    {
        if (!WalFileName.IsValidSegmentSize(WalSegmentSize))
        {
            return Invariant($"walSegmentSize {WalSegmentSize} is not a power of two from 1 MiB to 1 GiB");
        }

        if (Timeline == 0 || StopTimeline < Timeline)
        {
            return Invariant($"timeline {Timeline} and stopTimeline {StopTimeline} are not a timeline and a later or equal one");
        }

        if (!Lsn.TryParse(StartLsn, out var start))
        {
            return $"startLsn {PitrText.Quote(StartLsn)} is not an LSN";
        }

        if (!Lsn.TryParse(StopLsn, out var stop))
        {
            return $"stopLsn {PitrText.Quote(StopLsn)} is not an LSN";
        }

        if (stop < start)
        {
            return $"stopLsn {stop} is before startLsn {start}";
        }

        var expected = WalFileName.Containing(Timeline, start, WalSegmentSize).ToString();
        return string.Equals(StartWalFile, expected, StringComparison.Ordinal)
            ? null
            : $"startWalFile {PitrText.Quote(StartWalFile)} is not {expected}, the segment of timeline {Timeline} holding {start}";
    }

    private string? TimeProblem()
    {
        if (StartTime == default || StopTime == default)
        {
            return "startTime and stopTime are required";
        }

        return ManifestSha256 is not null && !Sha256Sidecar.IsSha256Hex(ManifestSha256)
            ? $"manifestSha256 {PitrText.Quote(ManifestSha256)} is not a lower-case SHA-256"
            : null;
    }

    private static void ThrowIfTooLarge(long length)
    {
        if (length > MaxBytes)
        {
            throw new FormatException(Invariant($"base backup info is not valid: more than {MaxBytes} bytes"));
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>Strict JSON options for <see cref="BaseBackupInfo"/>: shallow nesting, nulls only where the type allows, one value per property.</summary>
internal static class BaseBackupJson
{
    public static readonly System.Text.Json.Serialization.Metadata.JsonTypeInfo<BaseBackupInfo> Info = Create();

    private static System.Text.Json.Serialization.Metadata.JsonTypeInfo<BaseBackupInfo> Create()
    {
        var options = new JsonSerializerOptions(BaseBackupJsonContext.Default.Options)
        {
            MaxDepth = 8,
            RespectNullableAnnotations = true,
            AllowDuplicateProperties = false,
        };
        return (System.Text.Json.Serialization.Metadata.JsonTypeInfo<BaseBackupInfo>)options.GetTypeInfo(typeof(BaseBackupInfo));
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(BaseBackupInfo))]
internal sealed partial class BaseBackupJsonContext : JsonSerializerContext;
