using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Quartz;
using VelozBackupAgent.Host.Cli;
using VelozBackupAgent.Host.Http;
using VelozBackupAgent.Scheduling;

namespace VelozBackupAgent.Host.Daemon;

/// <summary>Composes <c>veloz-backup run</c>: Microsoft.Extensions.Hosting with Quartz cron jobs per kind, watchers, catch-up and replication.</summary>
internal static class DaemonHost
{
    public static IHost Build(AgentContext agent)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddSingleton(agent);
        builder.Services.AddSingleton(agent.Runner);
        builder.Services.AddSingleton(agent.LoggerFactory);
        builder.Services.AddSingleton(typeof(ILogger<>), typeof(Logger<>));
        builder.Services.AddSingleton<DaemonStopping>();

        // With Backup:Cluster:Enabled the database-wide jobs are the clustered scheduler's (ClusterScheduling), not this one's.
        var clustered = agent.Options.Cluster.Enabled;
        var cluster = clustered ? ClusterScheduling.AddStartGate(builder.Services, agent) : null;
        builder.Services.AddHostedService<StartupService>();
        builder.Services.AddMetricsAndHealth(agent);

        var schedules = BackupSchedule.From(agent.Options).Where(s => agent.Runner.Has(s.Kind) && !(clustered && ClusterScheduling.IsDatabaseWide(s.Kind))).ToList();
        builder.Services.AddQuartz(q =>
        {
            q.UseTimeProvider(agent.Time);
            foreach (var schedule in schedules)
            {
                q.ScheduleJob<BackupJob>(
                    trigger => trigger.WithIdentity(schedule.Kind)
                        .WithCronSchedule(schedule.Expression, cron => cron.InTimeZone(schedule.TimeZone))
                        .UsingJobData(BackupJob.KindKey, schedule.Kind),
                    job => job.WithIdentity(schedule.Kind).DisallowConcurrentExecution().UsingJobData(BackupJob.KindKey, schedule.Kind));
            }

            q.ScheduleJob<PruneJob>(
                trigger => trigger.WithIdentity("prune").WithCronSchedule(agent.Options.PruneSchedule, cron => cron.InTimeZone(TimeZoneInfo.Local)),
                job => job.WithIdentity("prune").DisallowConcurrentExecution());
            if (agent.Options.Verify.DrillEnabled && !clustered)
            {
                q.ScheduleJob<DrillJob>(
                    trigger => trigger.WithIdentity("drill").WithCronSchedule(agent.Options.Verify.DrillSchedule, cron => cron.InTimeZone(TimeZoneInfo.Local)),
                    job => job.WithIdentity("drill").DisallowConcurrentExecution());
            }
        });

        if (clustered)
        {
            ClusterScheduling.AddTo(builder.Services, agent, cluster!);
        }

        // Jobs still running at stop get StopGrace to finish, then are aborted; Quartz waits for them.
        builder.Services.AddQuartzHostedService(o => o.WaitForJobsToComplete = true);
        if (clustered)
        {
            builder.Services.AddHostedService<ClusterCheckinService>();
        }

        builder.Services.AddHostedService<CatchUpService>();
        builder.Services.AddHostedService<WatchService>();
        if (agent.Replicator is not null)
        {
            builder.Services.AddHostedService<ReplicationService>();
        }

        if (agent.Options.Pitr.Enabled && agent.Options.Pitr.Streaming)
        {
            builder.Services.AddHostedService<PitrReceiverService>();
        }

        // Under the Windows service control manager: its start/stop drive the host (a stop gives running backups
        // StopGrace, as SIGTERM does); in a console or on Linux this does nothing.
        builder.Services.AddWindowsService(o => o.ServiceName = WindowsService.Name);

        // systemd Type=notify: READY/STOPPING/WATCHDOG; also keeps NOTIFY_SOCKET away from child processes.
        SystemdNotifyService.AddTo(builder.Services, agent);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = agent.Options.StopGrace + TimeSpan.FromSeconds(15));
        return builder.Build();
    }
}
