using Quartz;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Scheduling;

/// <summary>
/// One kind's cron schedule and the catch-up rule: a fire missed while the agent was down runs once at
/// start-up. "Missed" means the schedule had a fire time after the newest artifact of the kind and before
/// now; a kind with no artifact at all has missed everything and runs too. The time of an artifact comes from
/// its name (UTC), so the rule survives restarts, copies and clock-free state. Cron fields are read in the
/// machine's local time zone, as the seeds' crontab lines are.
/// </summary>
public sealed class BackupSchedule
{
    /// <summary>The WAL's scheduled sync is marked by its manifest; snapshots from the watcher do not count.</summary>
    public const string WalManifestPrefix = "wal-manifest";

    /// <summary>A PITR base backup is marked by its metadata (<c>base_YYYYMMDD_HHMMSS.json</c>), written after its archive.</summary>
    public const string PitrBasePrefix = Pitr.PitrArtifact.BasePrefix;

    /// <summary>The suffix of a PITR base backup's metadata.</summary>
    public const string PitrBaseInfoSuffix = Pitr.PitrArtifact.BaseInfoSuffix;

    private readonly CronExpression _cron;

    public BackupSchedule(string kind, string cronExpression, TimeZoneInfo? timeZone = null)
    {
        Kind = kind;
        Expression = cronExpression;
        _cron = new CronExpression(cronExpression, timeZone ?? TimeZoneInfo.Local);
    }

    public string Kind { get; }

    public string Expression { get; }

    public TimeZoneInfo TimeZone => _cron.TimeZone;

    /// <summary>The schedules of every enabled kind, in <see cref="BackupKinds.All"/> order.</summary>
    public static IReadOnlyList<BackupSchedule> From(BackupOptions options, TimeZoneInfo? timeZone = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var kinds = new (string Kind, KindOptions Options)[]
        {
            (BackupKinds.Secrets, options.Secrets), (BackupKinds.Config, options.Config),
            (BackupKinds.Database, options.Database), (BackupKinds.Pitr, options.Pitr), (BackupKinds.Wal, options.Wal),
        };
        return [.. kinds.Where(k => k.Options.Enabled).Select(k => new BackupSchedule(k.Kind, k.Options.Schedule, timeZone))];
    }

    /// <summary>The next fire strictly after <paramref name="after"/>, or null when the expression never fires again.</summary>
    public DateTimeOffset? NextAfter(DateTimeOffset after) => _cron.GetNextValidTimeAfter(after);

    /// <summary>True when a fire fell between <paramref name="lastRun"/> (null: never ran) and <paramref name="now"/>.</summary>
    public bool Missed(DateTimeOffset? lastRun, DateTimeOffset now) =>
        lastRun is null || (NextAfter(lastRun.Value) is { } next && next <= now);

    /// <summary>
    /// The time of the newest artifact that marks a run of this kind, from the names in <paramref name="store"/>:
    /// for the WAL the newest manifest, for the others the newest timestamped artifact.
    /// </summary>
    public async Task<DateTimeOffset?> LastRunAsync(IArtifactStore store, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        DateTimeOffset? newest = null;
        await foreach (var artifact in store.ListAsync(Kind, cancellationToken).ConfigureAwait(false))
        {
            if (MarksRun(Kind, artifact.Name, out var time) && (newest is null || time > newest))
            {
                newest = time;
            }
        }

        return newest;
    }

    /// <summary>
    /// True when the artifact <paramref name="name"/> marks a completed run of <paramref name="kind"/>, with the
    /// run's time from the name: for the WAL only a manifest (segments and watcher snapshots do not), for PITR only a
    /// base backup's metadata (the streamed WAL is judged by the recovery point instead), for the other kinds every
    /// timestamped artifact. The catch-up rule and the freshness metrics share this.
    /// </summary>
    public static bool MarksRun(string kind, string name, out DateTimeOffset time)
    {
        if (!ArtifactName.TryParse(name, out var prefix, out time, out _, out var suffix))
        {
            return false;
        }

        return kind switch
        {
            BackupKinds.Wal => prefix == WalManifestPrefix,
            BackupKinds.Pitr => prefix == PitrBasePrefix && suffix == PitrBaseInfoSuffix,
            _ => true,
        };
    }
}
