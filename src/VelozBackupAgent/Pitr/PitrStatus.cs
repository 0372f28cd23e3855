using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Pitr;

/// <summary>
/// What the WAL receiver knows now, for metrics, <c>/health</c>, <c>status</c> and <c>verify</c>. Positions are WAL
/// byte positions (LSNs); times are UTC. Written by the daemon to <c>.state/pitr/status.json</c> after every poll so a
/// CLI run can show it too.
/// </summary>
public sealed record PitrStatus
{
    /// <summary>pg_receivewal runs and streams.</summary>
    public bool ReceiverUp { get; init; }

    /// <summary>Since when it has been streaming (this run of it).</summary>
    public DateTimeOffset? UpSince { get; init; }

    /// <summary>Why it is not streaming (None while it is).</summary>
    public PitrFailure Failure { get; init; }

    /// <summary>The last problem, one line naming what to change.</summary>
    public string? LastError { get; init; }

    public DateTimeOffset? LastErrorAt { get; init; }

    /// <summary>How often pg_receivewal was started again after it stopped.</summary>
    public long Restarts { get; init; }

    /// <summary>The server's current WAL position at the last poll.</summary>
    public string? ServerLsn { get; init; }

    /// <summary>
    /// What the receiver has reported flushed, durable in the spool: the slot's restart_lsn (pg_stat_replication's
    /// flush_lsn would say the same, but shows its details to privileged roles only).
    /// </summary>
    public string? ReceivedLsn { get; init; }

    /// <summary>When the received position last moved (or was found level with the server's).</summary>
    public DateTimeOffset? LastReceivedAt { get; init; }

    /// <summary>How far the WAL stored locally reaches on the current timeline.</summary>
    public string? StoredLsn { get; init; }

    /// <summary>When a WAL file or piece was last stored locally.</summary>
    public DateTimeOffset? LastStoredAt { get; init; }

    /// <summary>How far the WAL in S3 reaches (everything up to here has been copied); null without S3.</summary>
    public string? StoredLsnS3 { get; init; }

    /// <summary>The newest moment all of whose WAL is stored locally: the recovery point a restore to "latest" reaches.</summary>
    public DateTimeOffset? RecoveryPoint { get; init; }

    /// <summary>The same for S3 (a restore after a site failure).</summary>
    public DateTimeOffset? RecoveryPointS3 { get; init; }

    /// <summary>Server position minus locally stored position, bytes (0 when caught up).</summary>
    public long LagBytes { get; init; }

    /// <summary>Server position minus the position in S3, bytes; null without S3.</summary>
    public long? LagBytesS3 { get; init; }

    /// <summary>WAL the slot keeps the server from recycling, bytes.</summary>
    public long SlotRetainedBytes { get; init; }

    /// <summary>The slot's wal_status (reserved, extended, unreserved, lost).</summary>
    public string? SlotWalStatus { get; init; }

    /// <summary>The timeline streamed.</summary>
    public uint Timeline { get; init; }

    /// <summary>The segment being received.</summary>
    public string? Segment { get; init; }

    /// <summary>The cluster's system identifier.</summary>
    public string? SystemIdentifier { get; init; }

    /// <summary>When the server was last polled.</summary>
    public DateTimeOffset? CheckedAt { get; init; }

    /// <summary>Failures by metric label, since the daemon started.</summary>
    public IReadOnlyDictionary<string, long> Failures { get; init; } = new Dictionary<string, long>();

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    /// <summary>Parses a position field (null when absent or unparsable).</summary>
    public static Lsn? Position(string? text) => Lsn.TryParse(text, out var lsn) ? lsn : null;

    /// <summary>Writes <paramref name="status"/> atomically to <paramref name="path"/> (0600).</summary>
    public static void Save(string path, PitrStatus status)
    {
        ArgumentNullException.ThrowIfNull(status);
        var temp = path + "." + Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + ".tmp";
        using (var file = PrivateFiles.Open(temp, FileMode.Create))
        {
            JsonSerializer.Serialize(file, status, Json);
        }

        File.Move(temp, path, overwrite: true);
    }

    /// <summary>The status the daemon last wrote, or null (no daemon ran with PITR, or the file is unreadable).</summary>
    public static PitrStatus? Load(string path)
    {
        try
        {
            using var file = File.OpenRead(path);
            return JsonSerializer.Deserialize<PitrStatus>(file, Json);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException or NotSupportedException)
        {
            return null;
        }
    }
}
