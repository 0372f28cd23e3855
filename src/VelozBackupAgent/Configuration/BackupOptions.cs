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

    /// <summary>
    /// After a stop request, how long a running backup may go on to finish before it is aborted (an aborted
    /// backup leaves no partial artifact). Default 20 s; systemd's TimeoutStopSec must be longer.
    /// </summary>
    public TimeSpan StopGrace { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Quartz cron expression of the retention pruner (each kind's <c>Retention</c>, local and S3). Default hourly at :15.</summary>
    public string PruneSchedule { get; set; } = "0 15 * * * ?";

    /// <summary>
    /// Slack added to every kind's <see cref="KindOptions.FreshnessObjective"/> before it counts as stale, so the
    /// seconds a scheduled run takes do not flap <c>/health</c>. Default 1 minute.
    /// </summary>
    public TimeSpan FreshnessGrace { get; set; } = TimeSpan.FromMinutes(1);

    public WalOptions Wal { get; set; } = new();
    public ConfigBackupOptions Config { get; set; } = new();
    public DatabaseOptions Database { get; set; } = new();
    public SecretsOptions Secrets { get; set; } = new();
    public PitrOptions Pitr { get; set; } = new();
    public S3Options S3 { get; set; } = new();
    public ReplicationOptions Replication { get; set; } = new();
    public RestoreOptions Restore { get; set; } = new();
    public VerifyOptions Verify { get; set; } = new();
    public HttpOptions Http { get; set; } = new();
    public LogOptions Log { get; set; } = new();
    public ClusterOptions Cluster { get; set; } = new();

    /// <summary>The settings of one kind (<see cref="BackupKinds"/>).</summary>
    public KindOptions Kind(string kind) => kind switch
    {
        BackupKinds.Wal => Wal,
        BackupKinds.Config => Config,
        BackupKinds.Database => Database,
        BackupKinds.Secrets => Secrets,
        BackupKinds.Pitr => Pitr,
        _ => throw new ArgumentException($"unknown kind '{kind}': use one of {string.Join(", ", BackupKinds.All)}", nameof(kind)),
    };

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

    /// <summary>
    /// How old the newest successful backup of the kind may be (the seeds' verification checklist): past it,
    /// plus <see cref="BackupOptions.FreshnessGrace"/>, <c>/health</c> and <c>verify</c> report the kind stale.
    /// </summary>
    public abstract TimeSpan FreshnessObjective { get; set; }

    /// <summary>
    /// How long a run in progress may take and still keep the kind fresh: while a run that started on time is
    /// younger than this, the kind is not reported stale even when its newest backup is past the objective (a daily
    /// dump that takes an hour); past it the run counts as hung (<c>/health</c>, <c>verify</c>, the
    /// <c>VelozBackupRunHung</c> alert). For pitr, the base backup's run. Between 1 minute and 7 days.
    /// </summary>
    public abstract TimeSpan MaxRunDuration { get; set; }
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

    /// <summary>
    /// Every how many syncs a full manifest (every segment) is written; the syncs between write delta manifests (what
    /// changed since the previous one). 1 writes only full manifests. Between 1 and 1000. Default 96 (8 hours at the
    /// default schedule).
    /// </summary>
    public int FullManifestInterval { get; set; } = 96;

    public override string Schedule { get; set; } = "0 0/5 * * * ?";
    public override TimeSpan Retention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Default 5 minutes (the runbook's RPO for the order WAL).</summary>
    public override TimeSpan FreshnessObjective { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Default 10 minutes.</summary>
    public override TimeSpan MaxRunDuration { get; set; } = TimeSpan.FromMinutes(10);
}

/// <summary><c>Backup:Config</c>: VeloZ configuration files, archived as <c>config_YYYYMMDD_HHMMSS.tar.gz</c>.</summary>
public sealed class ConfigBackupOptions : KindOptions
{
    /// <summary>The directory the globs are relative to; archive paths are relative to it too. Default <c>/etc/veloz</c>.</summary>
    public string Root { get; set; } = "/etc/veloz";

    /// <summary>
    /// Globs relative to <see cref="Root"/> (case-sensitive, <c>/</c>-separated, <c>**</c> for any depth).
    /// Empty in code: appsettings.json supplies the seeds' list (config.yaml, strategies/*.yaml, risk_limits.yaml, .env).
    /// </summary>
    public IList<string> Include { get; } = [];

    /// <summary>
    /// Globs relative to <see cref="Root"/> never archived. Whatever this says, <c>*.secret</c> files and
    /// everything inside <see cref="SecretsOptions.Directory"/> are never archived by this kind.
    /// </summary>
    public IList<string> Exclude { get; } = [];

    /// <summary>
    /// A local bare git repository (created with mode 0700 when missing) to which every new configuration
    /// archive is also committed, so <c>git -C DIR log -p</c> shows the history; null or empty (the default)
    /// turns it off. Must be absolute and outside <see cref="Root"/>, the local store and the secrets directory.
    /// </summary>
    public string? GitRepository { get; set; }

    /// <summary>Scheduled full run; changes are also picked up by a file watcher. Default every 6 hours.</summary>
    public override string Schedule { get; set; } = "0 0 0/6 * * ?";

    public override TimeSpan Retention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Default 6 hours.</summary>
    public override TimeSpan FreshnessObjective { get; set; } = TimeSpan.FromHours(6);

    /// <summary>Default 30 minutes.</summary>
    public override TimeSpan MaxRunDuration { get; set; } = TimeSpan.FromMinutes(30);
}

/// <summary><c>Backup:Database</c>: the PostgreSQL database, dumped with <c>pg_dump -Fc</c>.</summary>
public sealed class DatabaseOptions : KindOptions
{
    /// <summary>
    /// Npgsql-style connection string. pg_dump gets it as libpq environment variables (PGHOST, PGPORT, …); a
    /// password here is handed over through PGPASSWORD only, never on a command line. Without one, PGPASSWORD
    /// or PGPASSFILE (or <c>~/.pgpass</c>) of the agent's environment is used. Default
    /// <c>Host=localhost;Database=veloz;Username=veloz</c>.
    /// </summary>
    public string ConnectionString { get; set; } = "Host=localhost;Database=veloz;Username=veloz";

    /// <summary>Directory holding pg_dump and pg_restore (e.g. <c>/usr/lib/postgresql/15/bin</c>); null finds them on PATH.</summary>
    public string? BinDirectory { get; set; }

    /// <summary>
    /// How long pg_dump waits for a table lock (held by a migration, say) before the run fails, rather than
    /// hang unnoticed; <c>00:00:00</c> waits for ever. Default 5 minutes.
    /// </summary>
    public TimeSpan LockWaitTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// With S3 replication on, the dump is copied to S3 while it is written locally. This is how far (MiB)
    /// that copy may fall behind the dump before it is abandoned and the upload queue copies the finished
    /// dump instead; it is also the most memory the copy holds beyond its two multipart parts. 0 turns the
    /// overlapped copy off. Default 64, at most 1024.
    /// </summary>
    public int S3OverlapBufferMiB { get; set; } = 64;

    public override string Schedule { get; set; } = "0 0 2 * * ?";
    public override TimeSpan Retention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Default 24 hours.</summary>
    public override TimeSpan FreshnessObjective { get; set; } = TimeSpan.FromHours(24);

    /// <summary>Default 6 hours.</summary>
    public override TimeSpan MaxRunDuration { get; set; } = TimeSpan.FromHours(6);
}

/// <summary><c>Backup:Secrets</c>: the secrets directory, GPG-encrypted as <c>secrets_YYYYMMDD_HHMMSS.tar.gz.gpg</c>.</summary>
public sealed class SecretsOptions : KindOptions
{
    /// <summary>The directory backed up (recursively). Default <c>/etc/veloz/secrets</c>.</summary>
    public string Directory { get; set; } = "/etc/veloz/secrets";

    /// <summary>
    /// GPG recipients (fingerprints, key ids or e-mail addresses); every one must resolve to exactly one public
    /// key usable for encryption. Empty in code: the secrets job refuses to run without one.
    /// </summary>
    public IList<string> Recipients { get; } = [];

    /// <summary>GNUPGHOME for gpg; null uses gpg's default for the agent's user.</summary>
    public string? GnupgHome { get; set; }

    /// <summary>The gpg binary: a bare name looked up on PATH, or an absolute path. Default <c>gpg</c>.</summary>
    public string GpgPath { get; set; } = "gpg";

    /// <summary>
    /// Programs whose standard output is a secret to keep (e.g. <c>vault kv get -format=json secret/veloz</c>): each
    /// one's stdout goes into the same encrypted archive as <c>commands/&lt;Name&gt;.out</c>. Empty by default.
    /// </summary>
    public IList<SecretCommandOptions> Commands { get; } = [];

    /// <summary>
    /// How often the daemon runs <see cref="Commands"/> to see whether their output changed (a change-triggered run:
    /// it writes only when an output's salted hash differs from the last backup's). <c>00:00:00</c> turns the polling
    /// off (scheduled runs still include the commands). Default 15 minutes; at least 1 minute.
    /// </summary>
    public TimeSpan CommandPollInterval { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Scheduled full run; changes are also picked up by a file watcher. Default daily at 02:30.</summary>
    public override string Schedule { get; set; } = "0 30 2 * * ?";

    /// <summary>Default 24 hours.</summary>
    public override TimeSpan FreshnessObjective { get; set; } = TimeSpan.FromHours(24);

    /// <summary>Default 30 minutes.</summary>
    public override TimeSpan MaxRunDuration { get; set; } = TimeSpan.FromMinutes(30);

    public override TimeSpan Retention { get; set; } = TimeSpan.FromDays(30);
}

/// <summary>
/// One entry of <c>Backup:Secrets:Commands</c>: a program started without a shell, with the allow-listed environment
/// plus the variables named in <see cref="Environment"/>, killed (with its children) after <see cref="Timeout"/>.
/// </summary>
public sealed class SecretCommandOptions
{
    /// <summary>Names the output in the archive (<c>commands/&lt;Name&gt;.out</c>): letters, digits, '.', '-', '_'; unique.</summary>
    public string Name { get; set; } = "";

    /// <summary>The program: a bare name looked up on PATH, or an absolute path.</summary>
    public string Command { get; set; } = "";

    /// <summary>Each argument as the program sees it (no shell, no quoting).</summary>
    public IList<string> Arguments { get; } = [];

    /// <summary>Names of the agent's environment variables this command (and only this one) gets, e.g. <c>VAULT_ADDR</c>, <c>VAULT_TOKEN</c>.</summary>
    public IList<string> Environment { get; } = [];

    /// <summary>How long the command may run; past it the process tree is killed and the run fails. Default 1 minute, 1 second to 1 hour.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMinutes(1);
}

/// <summary>
/// <c>Backup:Pitr</c>: PostgreSQL point-in-time recovery. The daemon streams the server's WAL with
/// <c>pg_receivewal --slot &lt;Slot&gt; --synchronous</c> and stores every completed segment, every timeline history
/// file and, every <see cref="ShipPartialEvery"/>, what was received of the segment still being written; base backups
/// (<c>pg_basebackup</c>, streamed and compressed) run on <see cref="Schedule"/> (key <c>BaseSchedule</c>) and with
/// <c>backup pitr</c>. It connects with <see cref="DatabaseOptions.ConnectionString"/> as a replication connection.
/// </summary>
public sealed class PitrOptions : KindOptions
{
    /// <summary>Off by default: it needs the server set up for replication (see the README).</summary>
    public PitrOptions() => Enabled = false;

    /// <summary>The cluster's data directory (PGDATA), replaced by a live restore. Default <c>/var/lib/postgresql/15/main</c>.</summary>
    public string DataDirectory { get; set; } = "/var/lib/postgresql/15/main";

    /// <summary>
    /// Whether the daemon streams WAL with pg_receivewal through <see cref="Slot"/>. False for servers where WAL comes
    /// through <c>archive_command = 'veloz-backup pg-wal-push %p'</c> instead (no slot is then created: a slot nobody
    /// reads would keep WAL on the server for ever). Default true.
    /// </summary>
    public bool Streaming { get; set; } = true;

    /// <summary>The physical replication slot the receiver streams through (created when missing). Default <c>veloz_backup</c>.</summary>
    public string Slot { get; set; } = "veloz_backup";

    /// <summary>When base backups run (Quartz cron). Default daily at 01:00.</summary>
    public string BaseSchedule { get; set; } = "0 0 1 * * ?";

    /// <summary>The kind's schedule is <see cref="BaseSchedule"/>; <c>Backup:Pitr:Schedule</c> is not a key.</summary>
    [NotAKey]
    public override string Schedule
    {
        get => BaseSchedule;
        set => BaseSchedule = value;
    }

    /// <summary>How long base backups are kept (the newest always is); WAL is kept as long as a kept base needs it. Default 30 days.</summary>
    public override TimeSpan Retention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>
    /// How often what was received of the segment still being written is stored (only what is new), so a site
    /// failure loses seconds of committed transactions, not a 16 MiB segment. 1 s to 10 min. Default 5 s.
    /// </summary>
    public TimeSpan ShipPartialEvery { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Stops PostgreSQL itself for a live point-in-time restore. Default <c>systemctl stop postgresql</c>.</summary>
    public string StopCommand { get; set; } = "systemctl stop postgresql";

    /// <summary>Starts PostgreSQL after a live point-in-time restore. Default <c>systemctl start postgresql</c>.</summary>
    public string StartCommand { get; set; } = "systemctl start postgresql";

    /// <summary>
    /// How far behind the server the stored WAL may fall: the recovery point (the newest moment all of whose WAL is
    /// stored) may be at most this old. Default 5 minutes (the runbook's RPO for database corruption).
    /// </summary>
    public override TimeSpan FreshnessObjective { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Default 6 hours.</summary>
    public override TimeSpan MaxRunDuration { get; set; } = TimeSpan.FromHours(6);

    /// <summary>How old the newest base backup may be. Default 25 hours (the daily schedule plus a long run).</summary>
    public TimeSpan BaseFreshnessObjective { get; set; } = TimeSpan.FromHours(25);

    /// <summary>Compression of base backups: <c>gzip</c> (<c>tar -xzf</c> reads it) or <c>none</c> (plain tar). Default gzip.</summary>
    public string Compression { get; set; } = "gzip";

    /// <summary>How long a point-in-time restore waits for the server to replay WAL to the target and promote. Default 1 hour.</summary>
    public TimeSpan RecoveryTimeout { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// The server's log, read for the reason when PostgreSQL stops during a restore's recovery (e.g. "recovery ended
    /// before configured recovery target was reached"); null or missing: pg_controldata's state is reported instead.
    /// Default <c>/var/log/postgresql/postgresql-15-main.log</c> (Debian's).
    /// </summary>
    public string? ServerLog { get; set; } = "/var/log/postgresql/postgresql-15-main.log";

    /// <summary>
    /// How much WAL the slot may hold back on the server (receiver down or behind) before it is an alert; bound it on
    /// the server too with <c>max_slot_wal_keep_size</c>. Default 4096 MiB.
    /// </summary>
    public int MaxRetainedWalMiB { get; set; } = 4096;
}

/// <summary>Marks a property the binder can reach that is not a configuration key of its own (the validator reports it as unknown).</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class NotAKeyAttribute : Attribute;

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

    /// <summary>
    /// Server-side encryption asked for every object written: <c>none</c> (the bucket's default encryption applies),
    /// <c>AES256</c> (SSE-S3) or <c>aws:kms</c> (SSE-KMS; ETags are then not compared). Default <c>none</c>.
    /// </summary>
    public string ServerSideEncryption { get; set; } = "none";

    /// <summary>The KMS key id, ARN or alias for <c>aws:kms</c>; unset uses the account's <c>aws/s3</c> key. Only with <c>aws:kms</c>.</summary>
    public string? KmsKeyId { get; set; }

    /// <summary>Storage class of every object written (STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR); unset: STANDARD.</summary>
    public string? StorageClass { get; set; }

    /// <summary>Object Lock retention of every object written: <c>none</c> (default), <c>GOVERNANCE</c> or <c>COMPLIANCE</c>.</summary>
    public string ObjectLockMode { get; set; } = "none";

    /// <summary>Days each object written stays locked with <see cref="ObjectLockMode"/> (no kind's Retention may be shorter). Default 0.</summary>
    public int ObjectLockDays { get; set; }

    /// <summary>
    /// Encrypt every copy sent to S3 with gpg, to the keys of <c>Backup:Secrets:Recipients</c> (which must then name
    /// at least one key). Reads decrypt encrypted copies whatever this says. Default true.
    /// </summary>
    public bool Encrypt { get; set; } = true;
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

    /// <summary>
    /// Owner (<c>user</c> or <c>user:group</c>) given to restored secrets and WAL files when the agent runs as root,
    /// e.g. <c>veloz:veloz</c>; null keeps the owners the archive recorded (WAL: the WAL directory's owner).
    /// </summary>
    public string? Owner { get; set; }

    /// <summary>pg_restore parallel jobs for database restores (1 to 32). Default 2.</summary>
    public int Jobs { get; set; } = 2;
}

/// <summary><c>Backup:Verify</c>: the restore drill and the runbook's recovery time objectives.</summary>
public sealed class VerifyOptions
{
    /// <summary>Whether the daemon runs the restore drill (<c>verify --test-restore</c>) on <see cref="DrillSchedule"/>. Default true.</summary>
    public bool DrillEnabled { get; set; } = true;

    /// <summary>Quartz cron of the restore drill. Default monthly: 04:00 on the 1st.</summary>
    public string DrillSchedule { get; set; } = "0 0 4 1 * ?";

    /// <summary>RTO of a single node failure (runbook): the WAL test restore must fit in it. Default 5 minutes.</summary>
    public TimeSpan RtoSingleNode { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>RTO of database corruption (runbook): the database test restore must fit in it. Default 30 minutes.</summary>
    public TimeSpan RtoDatabase { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>RTO of a complete site failure (runbook): the whole test restore must fit in it. Default 4 hours.</summary>
    public TimeSpan RtoSiteFailure { get; set; } = TimeSpan.FromHours(4);

    /// <summary>
    /// How far the S3 copy may lag behind the local store before <c>verify</c> fails "S3 copy current": the oldest
    /// queued upload, and the newest local artifact of each kind missing in S3. Default 1 hour (the runbook's
    /// RPO for a region failure).
    /// </summary>
    public TimeSpan S3MaxLag { get; set; } = TimeSpan.FromHours(1);
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
