using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using Quartz;

namespace VelozBackupAgent.Configuration;

/// <summary>
/// Checks the whole <c>Backup</c> section at start-up and reports every problem at once, each named by
/// its configuration key (<c>Backup:LocalRoot is not writable: /backup</c>), so a bad appsettings stops
/// the daemon before it does anything. Unknown keys are problems too: a misspelt key would otherwise be
/// ignored silently and its default used. It is called by <see cref="BackupConfiguration.Load"/>, the one path the
/// daemon and every CLI verb take, after the values that do not convert have been collected, so all problems come out
/// in one message. It is not an <c>IValidateOptions</c> registered with <c>ValidateOnStart</c>: the options are loaded
/// before any host exists (CLI verbs have none), and a second, host-only path would report the same problems twice.
/// </summary>
internal static partial class BackupOptionsValidator
{
    /// <summary>Every problem found, one sentence each, in a stable order.</summary>
    public static List<string> Collect(BackupOptions o, IConfiguration? configuration)
    {
        var p = new List<string>();
        if (configuration is not null)
        {
            p.AddRange(UnknownKeys(configuration.GetSection(BackupOptions.SectionName), typeof(BackupOptions)));
        }

        const string B = BackupOptions.SectionName;
        if (!NodeNameRegex().IsMatch(o.NodeName ?? ""))
        {
            p.Add($"{B}:{nameof(o.NodeName)} must be 1-63 letters, digits, '.', '-' or '_': '{o.NodeName}'");
        }

        CheckLocalRoot(o.LocalRoot, p);
        CheckPositive($"{B}:{nameof(o.StopGrace)}", o.StopGrace, p);
        CheckCron($"{B}:{nameof(o.PruneSchedule)}", o.PruneSchedule, p);
        if (o.FreshnessGrace < TimeSpan.Zero)
        {
            p.Add($"{B}:{nameof(o.FreshnessGrace)} must not be negative: {o.FreshnessGrace}");
        }

        CheckCron($"{B}:{nameof(o.Verify)}:{nameof(o.Verify.DrillSchedule)}", o.Verify.DrillSchedule, p);
        CheckPositive($"{B}:{nameof(o.Verify)}:{nameof(o.Verify.RtoSingleNode)}", o.Verify.RtoSingleNode, p);
        CheckPositive($"{B}:{nameof(o.Verify)}:{nameof(o.Verify.RtoDatabase)}", o.Verify.RtoDatabase, p);
        CheckPositive($"{B}:{nameof(o.Verify)}:{nameof(o.Verify.RtoSiteFailure)}", o.Verify.RtoSiteFailure, p);
        CheckPositive($"{B}:{nameof(o.Verify)}:{nameof(o.Verify.S3MaxLag)}", o.Verify.S3MaxLag, p);

        CheckKind($"{B}:{nameof(o.Wal)}", o.Wal, p);
        CheckAbsolute($"{B}:{nameof(o.Wal)}:{nameof(o.Wal.Directory)}", o.Wal.Directory, p);
        CheckPlainFileName($"{B}:{nameof(o.Wal)}:{nameof(o.Wal.ActiveFile)}", o.Wal.ActiveFile, p);
        if (!string.IsNullOrWhiteSpace(o.Wal.ActiveFile) && o.Wal.ActiveFile.IndexOfAny(['/', '\\']) < 0 && o.Wal.ActiveFile is not ("." or "..")
            && !ActiveFileRegex().IsMatch(o.Wal.ActiveFile))
        {
            // Its snapshots are stored as <stem>_YYYYMMDD_HHMMSS<ext>, which must be a valid artifact name.
            p.Add($"{B}:{nameof(o.Wal)}:{nameof(o.Wal.ActiveFile)} must be letters, digits, '.', '-' and '_' only, not starting with '.': '{o.Wal.ActiveFile}'");
        }
        if (string.IsNullOrWhiteSpace(o.Wal.SegmentPattern) || o.Wal.SegmentPattern.Contains('/', StringComparison.Ordinal))
        {
            p.Add($"{B}:{nameof(o.Wal)}:{nameof(o.Wal.SegmentPattern)} must be a file-name glob such as 'orders_*.wal': '{o.Wal.SegmentPattern}'");
        }

        if (o.Wal.SettleTime < TimeSpan.Zero || o.Wal.SettleTime > TimeSpan.FromMinutes(10))
        {
            p.Add($"{B}:{nameof(o.Wal)}:{nameof(o.Wal.SettleTime)} must be between 00:00:00 and 00:10:00: {o.Wal.SettleTime}");
        }

        if (o.Wal.FullManifestInterval is < 1 or > 1000)
        {
            p.Add(string.Create(CultureInfo.InvariantCulture, $"{B}:{nameof(o.Wal)}:{nameof(o.Wal.FullManifestInterval)} must be between 1 and 1000: {o.Wal.FullManifestInterval}"));
        }

        CheckKind($"{B}:{nameof(o.Config)}", o.Config, p);
        CheckAbsolute($"{B}:{nameof(o.Config)}:{nameof(o.Config.Root)}", o.Config.Root, p);
        if (o.Config.Enabled && o.Config.Include.Count == 0)
        {
            p.Add($"{B}:{nameof(o.Config)}:{nameof(o.Config.Include)} is empty: list the files to back up, e.g. [\"config.yaml\", \"strategies/*.yaml\"]");
        }

        CheckGlobs($"{B}:{nameof(o.Config)}:{nameof(o.Config.Include)}", o.Config.Include, p);
        CheckGlobs($"{B}:{nameof(o.Config)}:{nameof(o.Config.Exclude)}", o.Config.Exclude, p);
        CheckGitRepository(o, p);

        CheckKind($"{B}:{nameof(o.Database)}", o.Database, p);
        CheckDatabase(o.Database, p, o.Pitr.Enabled);

        CheckKind($"{B}:{nameof(o.Secrets)}", o.Secrets, p);
        if (o.Secrets.Commands.Count == 0 || !string.IsNullOrEmpty(o.Secrets.Directory))
        {
            // With commands the directory may be left empty (only the commands' output is backed up).
            CheckAbsolute($"{B}:{nameof(o.Secrets)}:{nameof(o.Secrets.Directory)}", o.Secrets.Directory, p);
        }

        CheckSecretCommands(o.Secrets, p);
        CheckSecrets(o.Secrets, p);

        CheckKind($"{B}:{nameof(o.Pitr)}", o.Pitr, p, nameof(o.Pitr.BaseSchedule));
        CheckPitr(o, p);
        CheckCluster(o, p);

        CheckS3(o, p);
        CheckS3Encryption(o, p);
        CheckPositive($"{B}:{nameof(o.Replication)}:{nameof(o.Replication.ReconcileInterval)}", o.Replication.ReconcileInterval, p);
        CheckPositive($"{B}:{nameof(o.Replication)}:{nameof(o.Replication.InitialBackoff)}", o.Replication.InitialBackoff, p);
        if (o.Replication.MaxBackoff < o.Replication.InitialBackoff)
        {
            p.Add($"{B}:{nameof(o.Replication)}:{nameof(o.Replication.MaxBackoff)} must not be shorter than {nameof(o.Replication.InitialBackoff)}");
        }

        CheckPositive($"{B}:{nameof(o.Restore)}:{nameof(o.Restore.HealthTimeout)}", o.Restore.HealthTimeout, p);
        if (o.Restore.Jobs is < 1 or > 32)
        {
            p.Add($"{B}:{nameof(o.Restore)}:{nameof(o.Restore.Jobs)} must be between 1 and 32: {o.Restore.Jobs}");
        }

        if (o.Restore.Owner is { } owner && !OwnerRegex().IsMatch(owner))
        {
            p.Add($"{B}:{nameof(o.Restore)}:{nameof(o.Restore.Owner)} must be 'user' or 'user:group': '{owner}'");
        }
        if (!o.Restore.HealthUrl.IsAbsoluteUri || o.Restore.HealthUrl.Scheme is not ("http" or "https"))
        {
            p.Add($"{B}:{nameof(o.Restore)}:{nameof(o.Restore.HealthUrl)} must be an absolute http(s) URL: {o.Restore.HealthUrl}");
        }

        if (!o.Http.Url.IsAbsoluteUri || o.Http.Url.Scheme != "http")
        {
            p.Add($"{B}:{nameof(o.Http)}:{nameof(o.Http.Url)} must be an absolute http URL such as http://127.0.0.1:9464: {o.Http.Url}");
        }
        else if (o.Http.Url.HostNameType is not (UriHostNameType.IPv4 or UriHostNameType.IPv6)
                 && !string.Equals(o.Http.Url.Host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            // A host name would make the listener bind every interface: the address must say where it listens.
            p.Add($"{B}:{nameof(o.Http)}:{nameof(o.Http.Url)} must name an IP address or localhost (0.0.0.0 for every interface), not a host name: {o.Http.Url}");
        }
        else if (o.Http.Url.AbsolutePath != "/" || o.Http.Url.Query.Length > 0)
        {
            p.Add($"{B}:{nameof(o.Http)}:{nameof(o.Http.Url)} must not have a path: /metrics and /health are served at its root: {o.Http.Url}");
        }

        if (!Enum.TryParse<Microsoft.Extensions.Logging.LogLevel>(o.Log.Level, ignoreCase: true, out _) && !IsSerilogLevel(o.Log.Level))
        {
            p.Add($"{B}:{nameof(o.Log)}:{nameof(o.Log.Level)} must be one of Verbose, Debug, Information, Warning, Error: '{o.Log.Level}'");
        }

        return p;
    }

    private static void CheckLocalRoot(string root, List<string> p)
    {
        const string Key = $"{BackupOptions.SectionName}:{nameof(BackupOptions.LocalRoot)}";
        if (string.IsNullOrWhiteSpace(root) || !Path.IsPathFullyQualified(root))
        {
            p.Add($"{Key} must be an absolute path: '{root}'");
            return;
        }

        if (File.Exists(root))
        {
            p.Add($"{Key} is not a directory: {root} is a file (point it at the backup directory, mode 0700, owned by the agent's user)");
            return;
        }

        if (!Directory.Exists(root))
        {
            p.Add($"{Key} does not exist: {root} (create it, mode 0700, owned by the agent's user)");
            return;
        }

        // The only reliable test of writability is to write: permissions, read-only mounts and ACLs all count.
        var probe = Path.Combine(root, string.Create(CultureInfo.InvariantCulture, $".write-probe.{Environment.ProcessId}.tmp"));
        try
        {
            using (Storage.Local.PrivateFiles.Open(probe, FileMode.CreateNew, options: FileOptions.DeleteOnClose, bufferSize: 1))
            {
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            p.Add($"{Key} is not writable: {root} ({FirstLine(ex.Message)})");
        }
    }

    private static void CheckKind(string key, KindOptions kind, List<string> p, string scheduleKey = nameof(KindOptions.Schedule))
    {
        CheckCron($"{key}:{scheduleKey}", kind.Schedule, p);
        CheckPositive($"{key}:{nameof(kind.Retention)}", kind.Retention, p);
        CheckPositive($"{key}:{nameof(kind.FreshnessObjective)}", kind.FreshnessObjective, p);
        if (kind.MaxRunDuration < TimeSpan.FromMinutes(1) || kind.MaxRunDuration > TimeSpan.FromDays(7))
        {
            p.Add($"{key}:{nameof(kind.MaxRunDuration)} must be between 00:01:00 and 7.00:00:00: {kind.MaxRunDuration}");
        }
    }

    private static void CheckCron(string key, string? expression, List<string> p)
    {
        try
        {
            _ = new CronExpression(expression ?? "");
        }
        catch (FormatException ex)
        {
            p.Add($"{key} is not a valid Quartz cron expression '{expression}': {FirstLine(ex.Message)} (fields: second minute hour day-of-month month day-of-week, e.g. \"0 0/5 * * * ?\")");
        }
    }

    private static void CheckDatabase(DatabaseOptions db, List<string> p, bool pitrEnabled)
    {
        const string Key = $"{BackupOptions.SectionName}:{nameof(BackupOptions.Database)}";
        // PITR connects with the same connection string, so it must be usable whenever either kind is on.
        if (db.Enabled || pitrEnabled)
        {
            try
            {
                // The same parse the source does; its messages name the key and never echo the string (it may hold a password).
                _ = Sources.Database.PgConnectionInfo.Parse(db.ConnectionString, Environment.GetEnvironmentVariable);
            }
            catch (Sources.BackupSourceException ex)
            {
                p.Add(ex.Message);
            }
        }

        if (db.BinDirectory is { Length: > 0 } bin && !Directory.Exists(bin))
        {
            p.Add($"{Key}:{nameof(db.BinDirectory)} does not exist: {bin}");
        }

        if (db.LockWaitTimeout < TimeSpan.Zero)
        {
            p.Add($"{Key}:{nameof(db.LockWaitTimeout)} must be a duration such as 00:05:00, or 00:00:00 to wait for ever: {db.LockWaitTimeout}");
        }

        if (db.S3OverlapBufferMiB is < 0 or > 1024)
        {
            p.Add($"{Key}:{nameof(db.S3OverlapBufferMiB)} must be between 0 (off) and 1024: {db.S3OverlapBufferMiB}");
        }
    }

    private static void CheckPitr(BackupOptions o, List<string> p)
    {
        const string Key = $"{BackupOptions.SectionName}:{nameof(BackupOptions.Pitr)}";
        var pitr = o.Pitr;
        CheckAbsolute($"{Key}:{nameof(pitr.DataDirectory)}", pitr.DataDirectory, p);
        if (!SlotRegex().IsMatch(pitr.Slot ?? ""))
        {
            p.Add($"{Key}:{nameof(pitr.Slot)} must be 1-63 lower-case letters, digits or '_' (a PostgreSQL replication slot name): '{pitr.Slot}'");
        }

        if (pitr.ShipPartialEvery < TimeSpan.FromSeconds(1) || pitr.ShipPartialEvery > TimeSpan.FromMinutes(10))
        {
            p.Add($"{Key}:{nameof(pitr.ShipPartialEvery)} must be between 00:00:01 and 00:10:00: {pitr.ShipPartialEvery}");
        }

        CheckPositive($"{Key}:{nameof(pitr.BaseFreshnessObjective)}", pitr.BaseFreshnessObjective, p);
        CheckPositive($"{Key}:{nameof(pitr.RecoveryTimeout)}", pitr.RecoveryTimeout, p);
        if (pitr.ServerLog is { Length: > 0 } log && !Path.IsPathFullyQualified(log))
        {
            p.Add($"{Key}:{nameof(pitr.ServerLog)} must be an absolute path: '{log}'");
        }
        if (pitr.Compression is not ("gzip" or "none"))
        {
            p.Add($"{Key}:{nameof(pitr.Compression)} must be gzip or none: '{pitr.Compression}'");
        }

        if (pitr.MaxRetainedWalMiB < 16)
        {
            p.Add($"{Key}:{nameof(pitr.MaxRetainedWalMiB)} must be at least 16 (one WAL segment): {pitr.MaxRetainedWalMiB}");
        }
    }

    private static void CheckSecrets(SecretsOptions secrets, List<string> p)
    {
        const string Key = $"{BackupOptions.SectionName}:{nameof(BackupOptions.Secrets)}";

        // An empty recipient list is refused by the secrets job itself, with its own line: failing start-up
        // here would stop every other kind's backups too.
        for (var i = 0; i < secrets.Recipients.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(secrets.Recipients[i]))
            {
                p.Add($"{Key}:{nameof(secrets.Recipients)}:{i} is blank: name a key by fingerprint, key id or e-mail address");
            }
        }

        if (secrets.GnupgHome is { } home && home.Length > 0 && !Path.IsPathFullyQualified(home))
        {
            p.Add($"{Key}:{nameof(secrets.GnupgHome)} must be an absolute path: '{home}'");
        }

        if (string.IsNullOrWhiteSpace(secrets.GpgPath) || (secrets.GpgPath.Contains('/', StringComparison.Ordinal) && !Path.IsPathFullyQualified(secrets.GpgPath)))
        {
            p.Add($"{Key}:{nameof(secrets.GpgPath)} must be a program name such as 'gpg' or an absolute path: '{secrets.GpgPath}'");
        }
    }

    private static void CheckSecretCommands(SecretsOptions secrets, List<string> p)
    {
        const string Key = $"{BackupOptions.SectionName}:{nameof(BackupOptions.Secrets)}:{nameof(SecretsOptions.Commands)}";
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < secrets.Commands.Count; i++)
        {
            var c = secrets.Commands[i];
            if (c is null)
            {
                p.Add($"{Key}:{i} is empty: give it a Name and a Command");
                continue;
            }

            if (!SecretCommandNameRegex().IsMatch(c.Name ?? ""))
            {
                p.Add($"{Key}:{i}:{nameof(c.Name)} must be 1-64 letters, digits, '.', '-' or '_', not starting with '.': '{c.Name}'");
            }
            else if (!names.Add(c.Name!))
            {
                p.Add($"{Key}:{i}:{nameof(c.Name)} '{c.Name}' is used by another command: names must be unique (they are file names in the archive)");
            }

            if (string.IsNullOrWhiteSpace(c.Command) || (c.Command.Contains('/', StringComparison.Ordinal) && !Path.IsPathFullyQualified(c.Command)))
            {
                p.Add($"{Key}:{i}:{nameof(c.Command)} must be a program name such as 'vault' or an absolute path: '{c.Command}'");
            }

            if (c.Timeout < TimeSpan.FromSeconds(1) || c.Timeout > TimeSpan.FromHours(1))
            {
                p.Add($"{Key}:{i}:{nameof(c.Timeout)} must be between 00:00:01 and 01:00:00: {c.Timeout}");
            }

            for (var j = 0; j < c.Environment.Count; j++)
            {
                if (!EnvironmentNameRegex().IsMatch(c.Environment[j] ?? ""))
                {
                    p.Add($"{Key}:{i}:{nameof(c.Environment)}:{j} must be an environment variable name such as VAULT_TOKEN: '{c.Environment[j]}'");
                }
            }
        }

        if (secrets.CommandPollInterval != TimeSpan.Zero && secrets.CommandPollInterval < TimeSpan.FromMinutes(1))
        {
            p.Add($"{BackupOptions.SectionName}:{nameof(BackupOptions.Secrets)}:{nameof(SecretsOptions.CommandPollInterval)} must be 00:00:00 (off) or at least 00:01:00: {secrets.CommandPollInterval}");
        }
    }

    [GeneratedRegex("^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex SecretCommandNameRegex();

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
    private static partial Regex EnvironmentNameRegex();

    private static void CheckS3Encryption(BackupOptions o, List<string> p)
    {
        const string B = BackupOptions.SectionName;

        // Start-up, not the first upload, is where a replica that would receive plaintext (or nothing) is refused.
        if (o.S3.Enabled && o.S3.Encrypt && o.Secrets.Recipients.All(string.IsNullOrWhiteSpace))
        {
            p.Add($"{B}:{nameof(o.S3)}:{nameof(o.S3.Encrypt)} is on (the default) but {B}:{nameof(o.Secrets)}:{nameof(o.Secrets.Recipients)} is empty: "
                  + $"name the gpg key(s) the S3 copies are encrypted to, or set {B}:{nameof(o.S3)}:{nameof(o.S3.Encrypt)} to false to upload them unencrypted");
        }
    }

    private static void CheckS3(BackupOptions o, List<string> p)
    {
        const string Key = $"{BackupOptions.SectionName}:{nameof(BackupOptions.S3)}";
        var s3 = o.S3;
        if (!s3.Enabled)
        {
            return;
        }

        var protection = Storage.S3.S3ObjectProtection.Problems(s3.ServerSideEncryption, s3.KmsKeyId, s3.StorageClass, s3.ObjectLockMode, s3.ObjectLockDays);
        p.AddRange(protection);
        if (protection.Count == 0 && s3.ObjectLockDays > 0)
        {
            // Retention shorter than the lock could never be honoured in S3: every copy would outlive it, skipped by each prune.
            foreach (var kind in BackupKinds.All)
            {
                var retention = o.Kind(kind).Retention;
                if (retention > TimeSpan.Zero && retention < TimeSpan.FromDays(s3.ObjectLockDays))
                {
                    p.Add(string.Create(CultureInfo.InvariantCulture,
                        $"{BackupOptions.SectionName}:{KindSection(kind)}:{nameof(KindOptions.Retention)} {retention} is shorter than {Key}:{nameof(s3.ObjectLockDays)} {s3.ObjectLockDays}: S3 would keep every copy locked past it; raise the retention to at least {s3.ObjectLockDays}.00:00:00 or lower the lock"));
                }
            }
        }

        if (!BucketRegex().IsMatch(s3.Bucket ?? "") || s3.Bucket!.Contains("..", StringComparison.Ordinal))
        {
            p.Add($"{Key}:{nameof(s3.Bucket)} is not a valid bucket name (3-63 lower-case letters, digits, '.', '-'): '{s3.Bucket}'");
        }

        if (s3.ServiceUrl is { } url && (!url.IsAbsoluteUri || url.Scheme is not ("http" or "https")))
        {
            p.Add($"{Key}:{nameof(s3.ServiceUrl)} must be an absolute http(s) URL: {url}");
        }

        if (string.IsNullOrWhiteSpace(s3.Region))
        {
            p.Add($"{Key}:{nameof(s3.Region)} is empty");
        }

        if (s3.PartSizeMiB is < 5 or > 5120)
        {
            p.Add($"{Key}:{nameof(s3.PartSizeMiB)} must be between 5 and 5120: {s3.PartSizeMiB}");
        }

        if (s3.MaxRetries is < 0 or > 20)
        {
            p.Add($"{Key}:{nameof(s3.MaxRetries)} must be between 0 and 20: {s3.MaxRetries}");
        }
    }

    private static string KindSection(string kind) => kind switch
    {
        BackupKinds.Wal => nameof(BackupOptions.Wal),
        BackupKinds.Config => nameof(BackupOptions.Config),
        BackupKinds.Database => nameof(BackupOptions.Database),
        BackupKinds.Secrets => nameof(BackupOptions.Secrets),
        _ => nameof(BackupOptions.Pitr),
    };

    private static void CheckGitRepository(BackupOptions o, List<string> p)
    {
        const string B = BackupOptions.SectionName;
        const string Key = $"{B}:{nameof(o.Config)}:{nameof(o.Config.GitRepository)}";
        if (string.IsNullOrEmpty(o.Config.GitRepository))
        {
            return;
        }

        CheckAbsolute(Key, o.Config.GitRepository, p);
        if (!Path.IsPathFullyQualified(o.Config.GitRepository))
        {
            return;
        }

        // Inside the root it would be archived itself; inside the store or the secrets it would mix with them.
        foreach (var (what, other) in new[] { ($"{B}:{nameof(o.Config)}:{nameof(o.Config.Root)}", o.Config.Root), ($"{B}:{nameof(o.LocalRoot)}", o.LocalRoot), ($"{B}:{nameof(o.Secrets)}:{nameof(o.Secrets.Directory)}", o.Secrets.Directory) })
        {
            if (!string.IsNullOrEmpty(other) && Path.IsPathFullyQualified(other) && IsSameOrInside(o.Config.GitRepository, other))
            {
                p.Add($"{Key} must not be inside {what} ({other}): '{o.Config.GitRepository}'");
            }
        }
    }

    private static bool IsSameOrInside(string path, string directory)
    {
        var a = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        var d = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
        return a == d || a.StartsWith(d + Path.DirectorySeparatorChar, StringComparison.Ordinal);
    }

    private static void CheckAbsolute(string key, string path, List<string> p)
    {
        if (string.IsNullOrWhiteSpace(path) || !Path.IsPathFullyQualified(path))
        {
            p.Add($"{key} must be an absolute path: '{path}'");
        }
    }

    private static void CheckPlainFileName(string key, string name, List<string> p)
    {
        if (string.IsNullOrWhiteSpace(name) || name.IndexOfAny(['/', '\\']) >= 0 || name is "." or "..")
        {
            p.Add($"{key} must be a plain file name: '{name}'");
        }
    }

    private static void CheckGlobs(string key, IList<string> globs, List<string> p)
    {
        for (var i = 0; i < globs.Count; i++)
        {
            var g = globs[i];
            if (string.IsNullOrWhiteSpace(g) || Path.IsPathRooted(g) || g.Split('/').Contains(".."))
            {
                p.Add($"{key}:{i} must be a glob relative to the root, without '..': '{g}'");
            }
        }
    }

    private static void CheckCluster(BackupOptions o, List<string> p)
    {
        const string C = BackupOptions.SectionName + ":" + nameof(BackupOptions.Cluster);
        var c = o.Cluster;
        if (!SchemaRegex().IsMatch(c.Schema ?? ""))
        {
            p.Add($"{C}:{nameof(c.Schema)} must be a lower-case PostgreSQL name (letters, digits, '_', at most 63, not starting with a digit or 'pg_'): '{c.Schema}'");
        }

        if (c.CheckinInterval < TimeSpan.FromSeconds(1) || c.CheckinInterval > TimeSpan.FromMinutes(5))
        {
            p.Add($"{C}:{nameof(c.CheckinInterval)} must be between 00:00:01 and 00:05:00: {c.CheckinInterval}");
        }
        else if (c.CheckinMisfireThreshold < 2 * c.CheckinInterval)
        {
            p.Add($"{C}:{nameof(c.CheckinMisfireThreshold)} must be at least twice {nameof(c.CheckinInterval)} ({2 * c.CheckinInterval}), or a node that is merely late is taken for dead: {c.CheckinMisfireThreshold}");
        }

        if (c.MaxClockSkew <= TimeSpan.Zero)
        {
            p.Add($"{C}:{nameof(c.MaxClockSkew)} must be positive: {c.MaxClockSkew}");
        }

        if (!Storage.S3.S3StoreOptions.IsValidPrefix(c.SharedPrefix))
        {
            p.Add($"{C}:{nameof(c.SharedPrefix)} must be a non-empty S3 key prefix of letters, digits, '.', '-', '_' and inner '/': '{c.SharedPrefix}'");
        }
        else if (c.Enabled && string.Equals(c.SharedPrefix, o.NodeName, StringComparison.Ordinal))
        {
            p.Add($"{C}:{nameof(c.SharedPrefix)} '{c.SharedPrefix}' is this node's {BackupOptions.SectionName}:{nameof(o.NodeName)}: the kinds of all nodes and this node's own would mix under one prefix; give the node another name");
        }

        if (c.Enabled && !o.Database.Enabled && !o.Pitr.Enabled)
        {
            p.Add($"{C}:{nameof(c.Enabled)} needs the database: the cluster's job store is in it (set {BackupOptions.SectionName}:Database:Enabled or {BackupOptions.SectionName}:Pitr:Enabled)");
        }
    }

    private static void CheckPositive(string key, TimeSpan value, List<string> p)
    {
        if (value <= TimeSpan.Zero)
        {
            p.Add($"{key} must be a positive duration such as 7.00:00:00: {value}");
        }
    }

    /// <summary>Keys under <paramref name="section"/> that no property of <paramref name="type"/> binds.</summary>
    internal static IEnumerable<string> UnknownKeys(IConfigurationSection section, Type type)
    {
        var properties = type.GetProperties().Where(pr => (pr.CanWrite || IsList(pr.PropertyType)) && !pr.IsDefined(typeof(NotAKeyAttribute), inherit: true))
            .ToDictionary(pr => pr.Name, StringComparer.OrdinalIgnoreCase);
        foreach (var child in section.GetChildren())
        {
            if (!properties.TryGetValue(child.Key, out var property))
            {
                var hint = Closest(child.Key, properties.Keys);
                yield return hint is null
                    ? $"{child.Path} is not a known setting"
                    : $"{child.Path} is not a known setting (did you mean {section.Path}:{hint}?)";
                continue;
            }

            var t = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            if (IsList(t))
            {
                // A list of objects (Secrets:Commands): each item's keys are checked like a section's.
                var item = t.GetGenericArguments()[0];
                if (!IsScalar(Nullable.GetUnderlyingType(item) ?? item))
                {
                    foreach (var unknown in child.GetChildren().SelectMany(element => UnknownKeys(element, item)))
                    {
                        yield return unknown;
                    }
                }

                continue;
            }

            if (IsScalar(t))
            {
                continue;
            }

            foreach (var unknown in UnknownKeys(child, t))
            {
                yield return unknown;
            }
        }
    }

    private static bool IsList(Type t) => t.IsGenericType && t.GetGenericTypeDefinition() == typeof(IList<>);

    private static bool IsScalar(Type t) => t.IsPrimitive || t.IsEnum || t == typeof(string) || t == typeof(TimeSpan) || t == typeof(Uri) || t == typeof(decimal);

    private static string? Closest(string key, IEnumerable<string> candidates)
    {
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var c in candidates)
        {
            var d = Distance(key.ToUpperInvariant(), c.ToUpperInvariant());
            if (d < bestDistance)
            {
                (best, bestDistance) = (c, d);
            }
        }

        return bestDistance <= Math.Max(2, key.Length / 3) ? best : null;
    }

    private static int Distance(string a, string b) => Suggestions.Distance(a, b);

    private static bool IsSerilogLevel(string level) =>
        level is not null && new[] { "Verbose", "Debug", "Information", "Warning", "Error", "Fatal" }.Contains(level, StringComparer.OrdinalIgnoreCase);

    private static string FirstLine(string message) => message.Split('\n')[0].Trim();

    [GeneratedRegex("^[A-Za-z0-9._-]{1,63}$")]
    private static partial Regex NodeNameRegex();

    [GeneratedRegex(@"^[a-z_][a-z0-9_.-]*[$]?(:[a-z_][a-z0-9_.-]*[$]?)?$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex OwnerRegex();

    [GeneratedRegex("^[a-z0-9_]{1,63}$")]
    private static partial Regex SlotRegex();

    [GeneratedRegex("^(?!pg_)[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex SchemaRegex();

    [GeneratedRegex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    private static partial Regex BucketRegex();

    [GeneratedRegex("^[A-Za-z0-9_-][A-Za-z0-9._-]{0,150}$")]
    private static partial Regex ActiveFileRegex();
}
