using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Quartz;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Cluster;
using VelozBackupAgent.Host.Cli;
using VelozBackupAgent.Scheduling;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Host.Daemon;

/// <summary>
/// <c>Backup:Cluster:Enabled</c>: a second, named Quartz scheduler whose job store is the shared PostgreSQL (Quartz's
/// clustered AdoJobStore, its <c>qrtz_*</c> tables provisioned by Quartz itself in <c>Backup:Cluster:Schema</c>), holding
/// the database-wide jobs — the dump with its globals, the PITR base backup, the restore drill — so each fire runs on
/// exactly one node, a node's death hands the next fire to another, and a fire missed while every node was down runs
/// once when one is back (the cron trigger's misfire rule). The node-local kinds and the pruner stay in the default,
/// in-memory scheduler.
/// </summary>
internal static class ClusterScheduling
{
    public const string SchedulerName = "veloz-cluster";
    public const string DrillJobName = "drill";

    /// <summary>The kinds that back up the shared database, and so run once per cluster rather than once per node.</summary>
    public static bool IsDatabaseWide(string kind) => kind is BackupKinds.Database or BackupKinds.Pitr;

    /// <summary>
    /// Registers what must run before anything else of the daemon starts: the cluster's schema and this node's name
    /// (<see cref="ClusterNodeLock"/>). A second agent with the same Backup:NodeName stops there, before it touches its
    /// local store, binds a scheduler or streams WAL.
    /// </summary>
    public static ClusterDatabase AddStartGate(IServiceCollection services, AgentContext agent)
    {
        var cluster = new ClusterDatabase(agent.Options);
        services.AddSingleton(cluster);
        services.AddSingleton<ClusterNodeLock>();
        services.AddHostedService<ClusterSchemaService>();
        return cluster;
    }

    public static void AddTo(IServiceCollection services, AgentContext agent, ClusterDatabase cluster)
    {
        var options = agent.Options.Cluster;
        services.AddSingleton<ClusterState>();
        services.AddSingleton(sp =>
        {
            var state = sp.GetRequiredService<ClusterState>();
            var streaming = agent.Options.Pitr.Enabled && agent.Options.Pitr.Streaming;
            return new ClusterMetrics(agent.Options.NodeName, () => state.View, () => state.SkewSeconds, () => state.DatabaseReachable, () => streaming && agent.Receiver.Standby);
        });

        services.AddTransient<ClusterBackupJob>();
        services.AddTransient<ClusterDrillJob>();
        services.AddTransient<DrillJob>();
        services.AddQuartz(SchedulerName, q =>
        {
            q.ConfigureScheduler(s => s.InstanceId = agent.Options.NodeName);
            q.UseTimeProvider(agent.Time);
            q.UseDefaultThreadPool(t => t.MaxConcurrency = 3);
            q.UsePersistentStore(s =>
            {
                s.UsePostgres(cluster.ConnectionString);
                s.ConfigureStore(o => o.TablePrefix = cluster.TablePrefix);
                s.UseClustering(c =>
                {
                    c.CheckinInterval = options.CheckinInterval;
                    c.CheckinMisfireThreshold = options.CheckinMisfireThreshold;
                });
                s.UseSystemTextJsonSerializer();
                s.ProvisionSchema();
            });
        });
    }

    /// <summary>
    /// Puts this node's schedule of the database-wide jobs into the shared store: a trigger already stored with the same
    /// cron expression is left as it is (its next fire, or a misfire waiting to be recovered, stands); a changed one is
    /// replaced. Every node must be configured with the same schedules: the last node to start wins.
    /// </summary>
    public static async Task ScheduleAsync(IScheduler scheduler, AgentContext agent, CancellationToken cancellationToken)
    {
        var jobs = BackupSchedule.From(agent.Options).Where(s => IsDatabaseWide(s.Kind) && agent.Runner.Has(s.Kind))
            .Select(s => (Name: s.Kind, Type: typeof(ClusterBackupJob), s.Expression, s.TimeZone)).ToList();
        if (agent.Options.Verify.DrillEnabled)
        {
            jobs.Add((DrillJobName, typeof(ClusterDrillJob), agent.Options.Verify.DrillSchedule, TimeZoneInfo.Local));
        }

        foreach (var (name, type, expression, timeZone) in jobs)
        {
            var key = new TriggerKey(name);
            var existing = await scheduler.GetTrigger(key, cancellationToken).ConfigureAwait(false);
            if (existing is ICronTrigger cron && cron.CronExpressionString == expression && cron.TimeZone.Id == timeZone.Id
                && await scheduler.Exists(new JobKey(name), cancellationToken).ConfigureAwait(false))
            {
                continue;
            }

            var job = type == typeof(ClusterDrillJob) ? Job<ClusterDrillJob>(name) : Job<ClusterBackupJob>(name);
            var trigger = TriggerBuilder.Create().WithIdentity(key).ForJob(job)
                .WithCronSchedule(expression, c => c.InTimeZone(timeZone).WithMisfireInstruction(CronTriggerMisfireInstruction.FireAndProceed)).Build();
            await scheduler.ScheduleJob(job, [trigger], ScheduleJobOptions.Replacing, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The trigger name of a kind's first run in a cluster that has none recorded.</summary>
    public const string FirstRunPrefix = "first-run-";

    /// <summary>A kind whose next scheduled fire is sooner than this gets no first run of its own.</summary>
    public static readonly TimeSpan FirstRunHorizon = TimeSpan.FromMinutes(1);

    /// <summary>
    /// A cluster with no successful run of a database-wide backup kind recorded and none running (a new cluster, or the
    /// first start after <c>Backup:Cluster</c> was turned on) takes one now, on one node, as a single agent takes a kind it
    /// has never backed up at start-up: a one-shot trigger under a fixed name, which only the first node to start stores
    /// (the others find it there, as long as it has not run). A cron fire missed while every node was down is not this:
    /// its trigger's misfire rule runs it once; nor is a kind whose next fire is due within <see cref="FirstRunHorizon"/>
    /// (it runs then anyway). Returns the kinds this node scheduled.
    /// </summary>
    public static async Task<IReadOnlyList<string>> ScheduleFirstRunsAsync(IScheduler scheduler, AgentContext agent, ClusterView view, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        ArgumentNullException.ThrowIfNull(agent);
        ArgumentNullException.ThrowIfNull(view);
        var scheduled = new List<string>();
        var now = agent.Time.GetUtcNow();
        foreach (var schedule in BackupSchedule.From(agent.Options).Where(s => IsDatabaseWide(s.Kind) && agent.Runner.Has(s.Kind)))
        {
            var kind = schedule.Kind;
            if (ClusterFreshness.LastSuccess(view, kind) is not null || ClusterFreshness.RunningSince(view, kind) is not null
                || schedule.NextAfter(now) is { } next && next - now < FirstRunHorizon || scheduled.Contains(kind))
            {
                continue;
            }

            var trigger = TriggerBuilder.Create().WithIdentity(FirstRunPrefix + kind).ForJob(new JobKey(kind)).StartNow()
                .WithSimpleSchedule(s => s.WithMisfireInstruction(SimpleTriggerMisfireInstruction.FireNow)).Build();
            try
            {
                await scheduler.ScheduleJob(trigger, default(ScheduleJobOptions), cancellationToken).ConfigureAwait(false);
                scheduled.Add(kind);
            }
            catch (ObjectAlreadyExistsException)
            {
                // Another node stored it first; it runs once, wherever.
            }
        }

        return scheduled;
    }

    // Recovery on: a fire whose node died mid-run runs again on a live node once the dead one misses its check-ins.
    private static IJobDetail Job<T>(string name)
        where T : IJob =>
        JobBuilder.Create<T>().WithIdentity(name).UsingJobData(BackupJob.KindKey, name)
            .RequestRecovery().StoreDurably().DisallowConcurrentExecution().Build();
}

/// <summary>This node's view of the cluster, kept by <see cref="ClusterCheckinService"/> for the metrics and <c>/health</c>.</summary>
internal sealed class ClusterState
{
    private ClusterView? _view;

    public ClusterView? View { get => Volatile.Read(ref _view); set => Volatile.Write(ref _view, value); }

    public double SkewSeconds { get; set; }

    public bool DatabaseReachable { get; set; }
}

/// <summary>
/// The daemon's first hosted service (before Quartz's: the schema must be there before the store starts): creates the
/// cluster schema and the agents' tables, and claims this node's name for the process's life. A database this node
/// cannot use, or a name another running agent holds, stops it with one line naming why.
/// </summary>
internal sealed partial class ClusterSchemaService(ClusterDatabase cluster, ClusterNodeLock nodeLock, AgentContext agent, ILogger<ClusterSchemaService> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        string? holder;
        try
        {
            await cluster.EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
            holder = await nodeLock.TryAcquireAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            var reason = cluster.Scrub(ex is PostgresException pg ? $"{pg.SqlState}: {pg.MessageText}" : ex.Message);
            throw new BackupSourceException($"cluster: node {agent.Options.NodeName} cannot use {cluster.Describe()} for the cluster's job store (Backup:Cluster): {reason}", ex);
        }

        if (holder is not null)
        {
            throw new BackupSourceException(DuplicateName(agent.Options.NodeName, cluster.Describe(), holder));
        }

        Log.Joined(logger, agent.Options.NodeName, cluster.Describe(), agent.Options.Cluster.Schema);
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await nodeLock.DisposeAsync().ConfigureAwait(false);

    /// <summary>The one line of a second agent with a name already in use.</summary>
    public static string DuplicateName(string node, string database, string holder) =>
        $"cluster: another agent already runs as node {node} against {database} ({holder}): every agent needs its own Backup:NodeName; stop that agent or give this one another name";

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Cluster.Joined, LogLevel.Information, "cluster: node {Node} joins the agents sharing {Database} (schema {Schema}); the dump, the base backup and the drill run on one node per fire")]
        public static partial void Joined(ILogger logger, string node, string database, string schema);
    }
}

/// <summary>A database-wide backup fired by the clustered scheduler: run here, and recorded in the node table's runs.</summary>
[DisallowConcurrentExecution]
internal sealed partial class ClusterBackupJob(BackupRunner runner, ClusterDatabase cluster, DaemonStopping stopping, AgentContext agent, ILogger<ClusterBackupJob> logger) : IJob
{
    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (stopping.Stopping)
        {
            return;
        }

        var kind = context.MergedJobDataMap.GetString(BackupJob.KindKey)!;
        if (!runner.Has(kind))
        {
            Log.NotEnabled(logger, kind, agent.Options.NodeName);
            return;
        }

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, context.CancellationToken, stopping.Abort);
        var started = agent.Time.GetUtcNow();
        await RecordAsync(kind, started, null, "running", null).ConfigureAwait(false);
        var first = context.Trigger.Key.Name.StartsWith(ClusterScheduling.FirstRunPrefix, StringComparison.Ordinal);
        var result = await runner.RunAsync(kind, context.Recovering || first ? BackupTrigger.MissedAtStartup : BackupTrigger.Scheduled, linked.Token).ConfigureAwait(false);
        // The dump, not its globals (which come first); a base backup's archive. The other nodes judge the kind by its name's time.
        var marking = result.Artifacts.FirstOrDefault(a => !(ArtifactName.TryParse(a.Name, out var prefix, out _, out _, out _) && prefix == Sources.Database.ClusterGlobals.Prefix));
        await RecordAsync(kind, started, agent.Time.GetUtcNow(), result.Outcome.ToString().ToLowerInvariant(), marking?.Name).ConfigureAwait(false);
    }

    private async Task RecordAsync(string kind, DateTimeOffset started, DateTimeOffset? finished, string outcome, string? artifact)
    {
        try
        {
            await cluster.RecordRunAsync(kind, started, finished, outcome, artifact, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            // The run itself does not depend on this record; status shows the previous one.
            Log.NotRecorded(logger, kind, cluster.Scrub(ex.Message));
        }
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Cluster.KindNotEnabled, LogLevel.Error, "cluster: a {Kind} fire came to node {Node}, which has that kind disabled: every node must have the same Backup:<Kind>:Enabled and schedules")]
        public static partial void NotEnabled(ILogger logger, string kind, string node);

        [LoggerMessage(LogEvents.Cluster.RunNotRecorded, LogLevel.Warning, "cluster: cannot record the {Kind} run in the cluster's tables ({Reason})")]
        public static partial void NotRecorded(ILogger logger, string kind, string reason);
    }
}

/// <summary>The restore drill, fired by the clustered scheduler on one node per fire.</summary>
[DisallowConcurrentExecution]
internal sealed class ClusterDrillJob(DrillJob drill) : IJob
{
    public ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default) => drill.Execute(context, cancellationToken);
}

/// <summary>
/// Every <c>CheckinInterval</c>: measures this node's clock against the server's (reported past
/// <c>Backup:Cluster:MaxClockSkew</c>: Quartz clustering needs the nodes within a second), records the check-in and
/// whether this node's receiver streams, and reads the cluster's view for the metrics. A database that cannot be reached
/// is logged once per change and tried again; the node goes on with its local kinds.
/// </summary>
internal sealed partial class ClusterCheckinService(
    ClusterDatabase cluster, ClusterNodeLock nodeLock, ClusterState state, ClusterMetrics metrics, Telemetry.BackupMetrics backupMetrics, AgentContext agent,
    IServiceProvider services, ILogger<ClusterCheckinService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        GC.KeepAlive(metrics); // created with the service, so its series exist from start-up
        var started = agent.Time.GetUtcNow();
        var options = agent.Options.Cluster;
        var scheduled = false;
        string? lastProblem = null;
        string? lastHolder = null;
        var skew = new ClockSkew(options.MaxClockSkew);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (!scheduled)
                {
                    var factory = services.GetRequiredKeyedService<ISchedulerFactory>(ClusterScheduling.SchedulerName);
                    var scheduler = await factory.GetScheduler(stoppingToken).ConfigureAwait(false);
                    await ClusterScheduling.ScheduleAsync(scheduler, agent, stoppingToken).ConfigureAwait(false);
                    foreach (var kind in await ClusterScheduling.ScheduleFirstRunsAsync(scheduler, agent, await cluster.ReadAsync(stoppingToken).ConfigureAwait(false), stoppingToken).ConfigureAwait(false))
                    {
                        Log.FirstRun(logger, kind);
                    }

                    scheduled = true;
                }

                // The name, again after a PostgreSQL restart dropped the lock's session; another agent may have taken it meanwhile.
                var holder = await nodeLock.KeepAsync(stoppingToken).ConfigureAwait(false);
                if (holder != lastHolder)
                {
                    if (holder is not null)
                    {
                        Log.NameTaken(logger, ClusterSchemaService.DuplicateName(agent.Options.NodeName, cluster.Describe(), holder));
                    }

                    lastHolder = holder;
                }

                var measured = await cluster.MeasureSkewAsync(agent.Time, stoppingToken).ConfigureAwait(false);
                state.SkewSeconds = measured;
                switch (skew.Observe(measured))
                {
                    case SkewChange.Began:
                        Log.ClockSkew(logger, agent.Options.NodeName, ClusterDatabase.FormatSkew(measured), options.MaxClockSkew.TotalSeconds);
                        break;
                    case SkewChange.Ended:
                        Log.ClockSkewGone(logger, agent.Options.NodeName, ClusterDatabase.FormatSkew(measured));
                        break;
                }

                var status = agent.Options.Pitr.Enabled && agent.Options.Pitr.Streaming ? agent.Receiver.Status : null;
                var receiver = status is { ReceiverUp: true };
                await cluster.CheckInAsync(started, measured, receiver, stoppingToken, receiver ? status!.RecoveryPoint : null, backupMetrics.OwnS3Dump(),
                    receiver ? status!.RecoveryPointS3 : null).ConfigureAwait(false);
                state.View = await cluster.ReadAsync(stoppingToken).ConfigureAwait(false);
                state.DatabaseReachable = true;
                if (lastProblem is not null)
                {
                    Log.Reconnected(logger, cluster.Describe());
                    lastProblem = null;
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or SchedulerException or InvalidOperationException)
            {
                state.DatabaseReachable = false;
                var problem = cluster.Scrub(ex is PostgresException pg ? $"{pg.SqlState}: {pg.MessageText}" : ex.Message);
                if (problem != lastProblem)
                {
                    Log.CheckinFailed(logger, cluster.Describe(), problem);
                    lastProblem = problem;
                }
            }

            try
            {
                await Task.Delay(options.CheckinInterval, agent.Time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        try
        {
            // Only while this process holds the name: the row is otherwise another agent's.
            if (nodeLock.Held)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await cluster.LeaveAsync(timeout.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or OperationCanceledException)
        {
            // The others see this node's check-ins stop instead.
        }
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Cluster.ClockSkew, LogLevel.Warning, "cluster: node {Node}'s clock is {Skew} off the database server's, more than {Max} s: Quartz clustering needs the nodes' clocks within a second (fix NTP on this node)")]
        public static partial void ClockSkew(ILogger logger, string node, string skew, double max);

        [LoggerMessage(LogEvents.Cluster.ClockSkewGone, LogLevel.Information, "cluster: node {Node}'s clock is back within bounds ({Skew} off the database server's)")]
        public static partial void ClockSkewGone(ILogger logger, string node, string skew);

        [LoggerMessage(LogEvents.Cluster.CheckinFailed, LogLevel.Warning, "cluster: cannot check in with {Database} ({Reason}); trying again, the node-local kinds go on")]
        public static partial void CheckinFailed(ILogger logger, string database, string reason);

        [LoggerMessage(LogEvents.Cluster.Reconnected, LogLevel.Information, "cluster: checked in with {Database} again")]
        public static partial void Reconnected(ILogger logger, string database);

        [LoggerMessage(LogEvents.Cluster.NameTaken, LogLevel.Critical, "{Problem} (taken while this agent's session was lost)")]
        public static partial void NameTaken(ILogger logger, string problem);

        [LoggerMessage(LogEvents.Cluster.FirstRun, LogLevel.Information, "cluster: no {Kind} backup of the cluster is recorded yet: one node takes one now, then the schedule")]
        public static partial void FirstRun(ILogger logger, string kind);
    }
}
