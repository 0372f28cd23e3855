using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Database;

namespace VelozBackupAgent.Pitr;

/// <summary>Why streaming or a base backup failed, as a metric label (a small fixed set) with the line for the operator.</summary>
public enum PitrFailure
{
    /// <summary>No failure.</summary>
    None,

    /// <summary>The server cannot be reached, or refused the password.</summary>
    Connection,

    /// <summary>A setting of the server (wal_level, max_wal_senders, max_replication_slots) keeps it from streaming.</summary>
    ServerSettings,

    /// <summary>The role lacks REPLICATION.</summary>
    Privilege,

    /// <summary>pg_hba.conf has no replication entry for the agent.</summary>
    Hba,

    /// <summary>The slot is used by another process.</summary>
    SlotActive,

    /// <summary>The server recycled WAL the slot still needed (max_slot_wal_keep_size): a gap in the archive.</summary>
    SlotLost,

    /// <summary>pg_receivewal or pg_basebackup is not installed, or older than the server.</summary>
    Tools,

    /// <summary>The spool or the local store is full.</summary>
    DiskFull,

    /// <summary>The server is another cluster than the one whose WAL is stored.</summary>
    OtherCluster,

    /// <summary>A stored WAL file and a received one differ under one name.</summary>
    Conflict,

    /// <summary>Anything else (the message says what).</summary>
    Other,
}

/// <summary>
/// The PostgreSQL client programs PITR runs (<c>pg_receivewal</c>, <c>pg_basebackup</c>, <c>pg_verifybackup</c>,
/// <c>pg_ctl</c>), found in <c>Backup:Database:BinDirectory</c> or on PATH, their versions checked against the
/// server's, and their error lines turned into one line that says what to change.
/// </summary>
public sealed class PgTools
{
    private const string BinDirectoryKey = "Backup:Database:BinDirectory";
    private readonly DatabaseOptions _options;

    public PgTools(DatabaseOptions options) => _options = options;

    /// <summary>The path of <paramref name="tool"/> (a bare name is searched on PATH by the child-process layer).</summary>
    public string PathOf(string tool) =>
        string.IsNullOrWhiteSpace(_options.BinDirectory) ? tool : Path.Combine(_options.BinDirectory, tool);

    /// <summary>
    /// A program of the server package (pg_ctl, pg_waldump, pg_controldata, pg_verifybackup) for a cluster of major
    /// version <paramref name="major"/>: <c>Backup:Database:BinDirectory</c>, else Debian's
    /// <c>/usr/lib/postgresql/&lt;major&gt;/bin</c> when it has it, else the bare name (PATH).
    /// </summary>
    public string ServerToolPath(string tool, int major)
    {
        if (!string.IsNullOrWhiteSpace(_options.BinDirectory))
        {
            return Path.Combine(_options.BinDirectory, tool);
        }

        var debian = Path.Combine("/usr/lib/postgresql", major.ToString(System.Globalization.CultureInfo.InvariantCulture), "bin", tool);
        return File.Exists(debian) ? debian : tool;
    }

    /// <summary>How to get the tools, for "not found" messages.</summary>
    public string InstallHint(int? serverMajor = null) =>
        string.IsNullOrWhiteSpace(_options.BinDirectory)
            ? $"install the PostgreSQL {(serverMajor is { } m ? m.ToString(System.Globalization.CultureInfo.InvariantCulture) + " " : "")}client tools (e.g. postgresql-client-{serverMajor ?? 15}) or set {BinDirectoryKey}"
            : $"{BinDirectoryKey} is {_options.BinDirectory}; it must hold pg_receivewal, pg_basebackup and pg_verifybackup";

    /// <summary>
    /// The version of <paramref name="tool"/>; throws <see cref="BackupSourceException"/> when it is missing, or older
    /// than the server (<paramref name="serverMajor"/>), naming what to install.
    /// </summary>
    public async Task<PgVersion> CheckAsync(string tool, int serverMajor, ILogger logger, CancellationToken cancellationToken)
    {
        var path = PathOf(tool);
        await using var child = ChildProcess.Start(new ChildProcessSpec(path, ["--version"], tool) { Inherit = InheritedVariables.Libpq, InstallHint = InstallHint(serverMajor) }, logger);
        var output = await child.ReadAllTextAsync(cancellationToken);
        var version = DatabaseSource.ParseToolVersion(output)
            ?? throw new BackupSourceException($"{path} --version printed '{output.Split('\n')[0].Trim()}', not a PostgreSQL version: is it {tool}?");
        if (version.Major < serverMajor)
        {
            throw new BackupSourceException(
                $"{tool} {version.Text} ({path}) is older than the server (PostgreSQL {serverMajor}) and cannot stream from it: install postgresql-client-{serverMajor} and point {BinDirectoryKey} at its bin directory");
        }

        return version;
    }

    /// <summary>
    /// Reads what pg_receivewal or pg_basebackup printed on stderr and says what is wrong in one line, naming the
    /// setting to change; <paramref name="fallback"/> when nothing is recognised.
    /// </summary>
    public static (PitrFailure Failure, string Line) Explain(string stderr, string where, string user, string slot, string fallback)
    {
        var text = stderr ?? "";
        bool Has(string s) => text.Contains(s, StringComparison.OrdinalIgnoreCase);
        if (Has("no pg_hba.conf entry for replication connection"))
        {
            return (PitrFailure.Hba, $"pg_hba.conf of {where} has no replication entry for role {user}: add a line 'host replication {user} <agent address>/32 scram-sha-256' and reload PostgreSQL (SELECT pg_reload_conf())");
        }

        if (Has("must be superuser or replication role") || Has("permission denied to start WAL sender") || Has("REPLICATION attribute"))
        {
            return (PitrFailure.Privilege, $"role {user} may not stream WAL from {where}: as a superuser run ALTER ROLE {user} REPLICATION");
        }

        if (Has("is active for PID"))
        {
            return (PitrFailure.SlotActive, $"the replication slot {slot} on {where} is in use by another process ({Excerpt(text, "is active for PID")}): another receiver or a second agent streams through it; stop it, or give this agent its own Backup:Pitr:Slot");
        }

        if (Has("wal_level") || Has("exceeds max_wal_senders") || Has("max_replication_slots"))
        {
            return (PitrFailure.ServerSettings, $"{where} is not set up for streaming: {LastError(text)} (postgresql.conf: wal_level = replica, max_wal_senders >= 3, max_replication_slots >= 1; then restart PostgreSQL)");
        }

        if (Has("password authentication failed") || Has("no password supplied") || Has("fe_sendauth"))
        {
            return (PitrFailure.Connection, $"{where} refused the password of role {user} for a replication connection (Password in Backup:Database:ConnectionString, PGPASSWORD or PGPASSFILE)");
        }

        if (Has("No space left on device") || Has("Disk quota exceeded"))
        {
            return (PitrFailure.DiskFull, $"the disk is full: {LastError(text)}; nothing stored was harmed, streaming resumes from the slot once there is room");
        }

        if (Has("incompatible server version") || Has("unsupported server version"))
        {
            return (PitrFailure.Tools, $"{LastError(text)}: install the client tools of the server's major version and set Backup:Database:BinDirectory");
        }

        if (Has("could not connect") || Has("Connection refused") || Has("server closed the connection") || Has("could not receive data") || Has("connection to server"))
        {
            return (PitrFailure.Connection, $"{where}: {LastError(text)}");
        }

        return (PitrFailure.Other, text.Length == 0 ? fallback : $"{fallback}: {LastError(text)}");
    }

    /// <summary>The metric label of a failure.</summary>
    public static string Label(PitrFailure failure) => failure switch
    {
        PitrFailure.None => "none",
        PitrFailure.ServerSettings => "server_settings",
        PitrFailure.SlotActive => "slot_active",
        PitrFailure.SlotLost => "slot_lost",
        PitrFailure.DiskFull => "disk_full",
        PitrFailure.OtherCluster => "other_cluster",
        _ => failure.ToString().ToLowerInvariant(),
    };

    /// <summary>Every label <see cref="Label"/> can return, for series that exist from start-up.</summary>
    public static IReadOnlyList<string> Labels { get; } = [.. Enum.GetValues<PitrFailure>().Where(f => f != PitrFailure.None).Select(Label)];

    private static string LastError(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var error = lines.LastOrDefault(l => l.Contains("error", StringComparison.OrdinalIgnoreCase) || l.Contains("FATAL", StringComparison.Ordinal))
                    ?? lines.LastOrDefault() ?? "";
        // "pg_receivewal: error: ..." → the part after the tool's own prefix.
        var marker = error.IndexOf("error: ", StringComparison.Ordinal);
        return (marker >= 0 ? error[(marker + 7)..] : error).Trim();
    }

    private static string Excerpt(string text, string around)
    {
        var at = text.IndexOf(around, StringComparison.OrdinalIgnoreCase);
        if (at < 0)
        {
            return "";
        }

        var end = text.IndexOfAny(['\n', '\r'], at);
        return text[at..(end < 0 ? text.Length : end)].Trim().TrimEnd('.');
    }
}
