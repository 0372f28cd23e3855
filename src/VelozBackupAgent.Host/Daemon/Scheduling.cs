using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Quartz;
using VelozBackupAgent.Host.Cli;
using VelozBackupAgent.Scheduling;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Host.Daemon;

/// <summary>
/// The daemon's notion of "stop": when the host begins stopping, running backups get
/// <see cref="Configuration.BackupOptions.StopGrace"/> to finish; then <see cref="Abort"/> is cancelled and they
/// abort cleanly (no partial artifact). New runs are not started once stopping began.
/// </summary>
internal sealed class DaemonStopping : IDisposable
{
    private readonly CancellationTokenSource _abort = new();
    private readonly CancellationTokenRegistration _registration;

    public DaemonStopping(IHostApplicationLifetime lifetime, AgentContext agent)
    {
        _registration = lifetime.ApplicationStopping.Register(() =>
        {
            Stopping = true;
            _abort.CancelAfter(agent.Options.StopGrace);
        });
    }

    public bool Stopping { get; private set; }

    /// <summary>Cancelled <c>StopGrace</c> after the stop request.</summary>
    public CancellationToken Abort => _abort.Token;

    public void Dispose()
    {
        _registration.Dispose();
        _abort.Dispose();
    }
}

/// <summary>One scheduled fire of one kind. Quartz never runs two of the same kind at once.</summary>
[DisallowConcurrentExecution]
internal sealed class BackupJob(BackupRunner runner, DaemonStopping stopping) : IJob
{
    public const string KindKey = "kind";

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (stopping.Stopping)
        {
            return;
        }

        var kind = context.MergedJobDataMap.GetString(KindKey)!;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, context.CancellationToken, stopping.Abort);
        await runner.RunAsync(kind, BackupTrigger.Scheduled, linked.Token).ConfigureAwait(false);
    }
}

/// <summary>The scheduled retention pass (Backup:PruneSchedule).</summary>
[DisallowConcurrentExecution]
internal sealed class PruneJob(AgentContext agent, DaemonStopping stopping) : IJob
{
    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (stopping.Stopping)
        {
            return;
        }

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, context.CancellationToken, stopping.Abort);
        try
        {
            await agent.Pruner.PruneAsync(dryRun: false, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (linked.IsCancellationRequested)
        {
            // Stopping; whatever was deleted is logged, the rest waits for the next pass.
        }
    }
}

/// <summary>
/// At start-up, runs once every kind whose schedule fired while the agent was down (or that has no
/// artifact at all), judged by the time in the newest artifact's name. Kinds run in parallel; the runner
/// keeps each kind to one run at a time.
/// </summary>
internal sealed partial class CatchUpService(AgentContext agent, BackupRunner runner, DaemonStopping stopping, ILogger<CatchUpService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var now = agent.Time.GetUtcNow();
        var due = new List<Task>();
        // In a cluster the database-wide kinds are the clustered scheduler's: a fire missed while every node was down
        // runs once through the trigger's misfire rule, not once per node starting.
        foreach (var schedule in BackupSchedule.From(agent.Options).Where(s => runner.Has(s.Kind) && !(agent.Options.Cluster.Enabled && ClusterScheduling.IsDatabaseWide(s.Kind))))
        {
            // One line per kind at start-up: what on-call checks first when a backup "did not run".
            var next = schedule.NextAfter(now);
            Log.Scheduled(logger, schedule.Kind, schedule.Expression, schedule.TimeZone.Id, next?.ToString("u", System.Globalization.CultureInfo.InvariantCulture) ?? "never");

            DateTimeOffset? last;
            try
            {
                last = await schedule.LastRunAsync(agent.Local, stoppingToken).ConfigureAwait(false);
            }
            catch (Storage.StoreException ex)
            {
                Log.CannotJudge(logger, schedule.Kind, ex.Message);
                last = null;
            }

            if (schedule.Missed(last, now))
            {
                Log.CatchingUp(logger, schedule.Kind, last?.ToString("u", System.Globalization.CultureInfo.InvariantCulture) ?? "never", schedule.Expression);
                due.Add(runner.RunAsync(schedule.Kind, BackupTrigger.MissedAtStartup, stopping.Abort));
            }
        }

        await Task.WhenAll(due).ConfigureAwait(false);
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Daemon.CatchingUp, LogLevel.Information, "backup {Kind}: a scheduled run was missed (last run {LastRun}, schedule {Schedule}); running it now")]
        public static partial void CatchingUp(ILogger logger, string kind, string lastRun, string schedule);

        [LoggerMessage(LogEvents.Daemon.Scheduled, LogLevel.Information, "backup {Kind}: schedule {Schedule} ({TimeZone}), next run {Next}")]
        public static partial void Scheduled(ILogger logger, string kind, string schedule, string timeZone, string next);

        [LoggerMessage(LogEvents.Daemon.CannotJudge, LogLevel.Warning, "backup {Kind}: cannot read the local store to judge missed runs ({Reason}); running it now")]
        public static partial void CannotJudge(ILogger logger, string kind, string reason);
    }
}

/// <summary>Runs the file watchers of the sources that have them; each change becomes a change-triggered run.</summary>
internal sealed class WatchService(BackupRunner runner, DaemonStopping stopping) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var watchers = runner.Sources.OfType<IWatchableSource>()
            .Select(source => WatchAsync(source, stoppingToken));
        return Task.WhenAll(watchers);
    }

    private async Task WatchAsync(IWatchableSource source, CancellationToken stoppingToken)
    {
        try
        {
            await source.WatchAsync(
                async _ =>
                {
                    if (!stopping.Stopping)
                    {
                        await runner.RunAsync(source.Kind, BackupTrigger.Change, stopping.Abort).ConfigureAwait(false);
                    }
                },
                stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }
}
