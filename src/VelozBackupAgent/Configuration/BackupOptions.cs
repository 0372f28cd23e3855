namespace VelozBackupAgent.Configuration;

/// <summary>
/// The <c>Backup</c> section of appsettings.json: the public configuration contract. Every key can be
/// overridden from the environment (<c>Backup__Wal__Directory=/x</c>) or the command line
/// (<c>--Backup:Wal:Directory=/x</c>). Defaults are the seeds' paths, schedules and retention periods.
/// </summary>
public sealed class BackupOptions
{
    public const string SectionName = "Backup";

    /// <summary>This node's name; S3 keys live under <c>&lt;NodeName&gt;/&lt;kind&gt;/</c>. Default <c>veloz-1</c>.</summary>
    public string NodeName { get; set; } = "veloz-1";

    /// <summary>The primary store, laid out as <c>&lt;LocalRoot&gt;/{wal,config,database,secrets}</c>. Default <c>/backup</c>.</summary>
    public string LocalRoot { get; set; } = "/backup";

    public WalOptions Wal { get; set; } = new();
    public ConfigBackupOptions Config { get; set; } = new();
    public DatabaseOptions Database { get; set; } = new();
    public SecretsOptions Secrets { get; set; } = new();
    public S3Options S3 { get; set; } = new();
    public ReplicationOptions Replication { get; set; } = new();
    public RestoreOptions Restore { get; set; } = new();
    public HttpOptions Http { get; set; } = new();
    public LogOptions Log { get; set; } = new();

    /// <summary>Where the agent keeps its own state (upload queue, indexes): <c>&lt;LocalRoot&gt;/.state</c>.</summary>
    public string StateDirectory => Path.Combine(LocalRoot, ".state");
}

/// <summary>Settings every backup kind has.</summary>
public abstract class KindOptions
{
    /// <summary>Whether the kind is backed up at all. Default true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Quartz cron expression (seconds first) for the scheduled run.</summary>
    public abstract string Schedule { get; set; }

    /// <summary>How long artifacts are kept (the newest is always kept).</summary>
    public abstract TimeSpan Retention { get; set; }
}

/// <summary><c>Backup:Wal</c>: the order write-ahead log.</summary>
public sealed class WalOptions : KindOptions
{
    /// <summary>The WAL directory VeloZ writes. Default <c>/var/lib/veloz/wal</c>.</summary>
    public string Directory { get; set; } = "/var/lib/veloz/wal";

    /// <summary>File-name glob of sealed segments (stored once each, under their own name). Default <c>orders_*.wal</c>.</summary>
    public string SegmentPattern { get; set; } = "orders_*.wal";

    /// <summary>The file VeloZ appends to; snapshotted as <c>orders_current_YYYYMMDD_HHMMSS.wal</c>. Default <c>orders_current.wal</c>.</summary>
    public string ActiveFile { get; set; } = "orders_current.wal";

    /// <summary>
    /// How long a file must go unwritten (by its modification time) before it is read, so a segment still being
    /// written or copied in is never stored half-done; the watcher also snapshots the active file only once its
    /// writes have paused this long. Between 0 and 10 minutes. Default 2 s.
    /// </summary>
    public TimeSpan SettleTime { get; set; } = TimeSpan.FromSeconds(2);

    public override string Schedule { get; set; } = "0 0/5 * * * ?";
    public override TimeSpan Retention { get; set; } = TimeSpan.FromDays(7);
}

/// <summary><c>Backup:Config</c>: VeloZ configuration files.</summary>
public sealed class ConfigBackupOptions : KindOptions
{
    public string Root { get; set; } = "/etc/veloz";

    /// <summary>Globs relative to <see cref="Root"/>. Empty in code: appsettings.json supplies the seeds' list.</summary>
    public IList<string> Include { get; } = [];

    /// <summary>Globs relative to <see cref="Root"/> never archived; <c>*.secret</c> is excluded whatever this says.</summary>
    public IList<string> Exclude { get; } = [];

    public override string Schedule { get; set; } = "0 0 0/6 * * ?";
    public override TimeSpan Retention { get; set; } = TimeSpan.FromDays(30);
}

/// <summary><c>Backup:Database</c>: the PostgreSQL database.</summary>
public sealed class DatabaseOptions : KindOptions
{
    /// <summary>Npgsql-style connection string; a password here is handed to pg_dump through the environment only.</summary>
    public string ConnectionString { get; set; } = "Host=localhost;Database=veloz;Username=veloz";

    /// <summary>Directory holding pg_dump and pg_restore; null finds them on PATH.</summary>
    public string? BinDirectory { get; set; }

    public override string Schedule { get; set; } = "0 0 2 * * ?";
    public override TimeSpan Retention { get; set; } = TimeSpan.FromDays(30);
}

/// <summary><c>Backup:Secrets</c>: the secrets directory, GPG-encrypted.</summary>
public sealed class SecretsOptions : KindOptions
{
    public string Directory { get; set; } = "/etc/veloz/secrets";

    /// <summary>GPG recipients (key ids, fingerprints or e-mail addresses); empty in code, the secrets job refuses to run without one.</summary>
    public IList<string> Recipients { get; } = [];

    /// <summary>GNUPGHOME for gpg; null uses gpg's default for the agent's user.</summary>
    public string? GnupgHome { get; set; }

    public override string Schedule { get; set; } = "0 30 2 * * ?";
    public override TimeSpan Retention { get; set; } = TimeSpan.FromDays(30);
}

/// <summary><c>Backup:S3</c>: the replica. Credentials come from the AWS default chain, never from here.</summary>
public sealed class S3Options
{
    public bool Enabled { get; set; }
    public string Bucket { get; set; } = "veloz-backups";

    /// <summary>Endpoint of an S3-compatible store; null means AWS.</summary>
    public Uri? ServiceUrl { get; set; }

    public string Region { get; set; } = "us-east-1";
    public bool ForcePathStyle { get; set; }

    /// <summary>aws-chunked signed payloads; must be false for s3rver and other stores that keep the framing as data.</summary>
    public bool ChunkedUpload { get; set; } = true;

    /// <summary>Multipart part size in MiB (5 to 5120); memory used per upload is about two parts. Default 16.</summary>
    public int PartSizeMiB { get; set; } = 16;

    /// <summary>Retries of a transient S3 error before the attempt counts as failed. Default 5.</summary>
    public int MaxRetries { get; set; } = 5;

    /// <summary>Compare each part's ETag with its MD5; turn off for SSE-KMS buckets. Default true.</summary>
    public bool VerifyEtag { get; set; } = true;
}

/// <summary><c>Backup:Replication</c>: the durable queue that copies local artifacts to S3.</summary>
public sealed class ReplicationOptions
{
    /// <summary>How often the full local-versus-S3 comparison runs (catches anything the queue missed). Default 1 h.</summary>
    public TimeSpan ReconcileInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>First wait after S3 was unavailable; doubles up to <see cref="MaxBackoff"/>. Default 5 s.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Longest wait between attempts while S3 is unavailable. Default 5 min.</summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromMinutes(5);
}

/// <summary><c>Backup:Restore</c>: how restores stop and start VeloZ.</summary>
public sealed class RestoreOptions
{
    public string StopCommand { get; set; } = "systemctl stop veloz";
    public string StartCommand { get; set; } = "systemctl start veloz";
    public Uri HealthUrl { get; set; } = new("http://localhost:8080/health");
    public TimeSpan HealthTimeout { get; set; } = TimeSpan.FromMinutes(2);
}

/// <summary><c>Backup:Http</c>: the metrics and health listener.</summary>
public sealed class HttpOptions
{
    /// <summary>Listen URL; loopback by default. Default <c>http://127.0.0.1:9464</c>.</summary>
    public Uri Url { get; set; } = new("http://127.0.0.1:9464");
}

/// <summary><c>Backup:Log</c>: the log file.</summary>
public sealed class LogOptions
{
    /// <summary>Rolling log file; empty disables the file sink. Default <c>/var/log/veloz/backup.log</c>.</summary>
    public string File { get; set; } = "/var/log/veloz/backup.log";

    /// <summary>Minimum level: Verbose, Debug, Information, Warning, Error. Default Information.</summary>
    public string Level { get; set; } = "Information";
}
