using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Quartz;
using VelozBackupAgent.Host.Cli;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Host.Daemon;

/// <summary>
/// Tells systemd (<c>Type=notify</c>) how the daemon is: <c>READY=1</c> once the host has started and the
/// Quartz scheduler runs, <c>WATCHDOG=1</c> every half <c>WatchdogSec</c> but only while the scheduler is
/// running (not in standby, not shutting down) — so a daemon whose scheduler died is restarted rather than
/// left looking alive — and <c>STOPPING=1</c> as soon as shutdown begins. A <c>STATUS=</c> line says why.
/// </summary>
internal sealed partial class SystemdNotifyService(
    SystemdNotifier notifier,
    ISchedulerFactory schedulers,
    IHostApplicationLifetime lifetime,
    AgentContext agent,
    ILogger<SystemdNotifyService> logger) : BackgroundService
{
    /// <summary>How long to wait after the host started for the scheduler to report running before giving up on READY=1.</summary>
    private static readonly TimeSpan SchedulerStartTimeout = TimeSpan.FromMinutes(2);

    private static readonly TimeSpan SchedulerPoll = TimeSpan.FromMilliseconds(50);

    private CancellationTokenRegistration _stopping;

    /// <summary>
    /// Registers the service when the process was started by a service manager that listens
    /// (<c>$NOTIFY_SOCKET</c>), and takes the notify variables out of the environment either way.
    /// </summary>
    public static void AddTo(IServiceCollection services, AgentContext agent)
    {
        ArgumentNullException.ThrowIfNull(agent);
        var notifier = SystemdNotifier.FromEnvironment(Environment.ProcessId);
        if (notifier is null)
        {
            return;
        }

        Log.Notifying(agent.LoggerFactory.CreateLogger<SystemdNotifyService>(), notifier.SocketName,
            notifier.WatchdogInterval is { } w ? $"every {(w / 2).TotalSeconds:0.###} s (WatchdogSec {w.TotalSeconds:0.###} s)" : "off");
        services.AddSingleton(notifier);
        services.AddHostedService<SystemdNotifyService>();
    }

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // For the whole life of the host, not just of ExecuteAsync (which ends early when there is no watchdog).
        _stopping = lifetime.ApplicationStopping.Register(() =>
            Send($"STOPPING=1\nSTATUS=stopping: running backups get {agent.Options.StopGrace.TotalSeconds:0} s to finish"));
        return base.StartAsync(cancellationToken);
    }

    public override void Dispose()
    {
        _stopping.Dispose();
        base.Dispose();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        {
            await started.Task.WaitAsync(stoppingToken).ConfigureAwait(false);
        }

        // Quartz starts its scheduler once the application has started (AwaitApplicationStarted): wait for it.
        var scheduler = await schedulers.GetScheduler(stoppingToken).ConfigureAwait(false);
        var waited = TimeSpan.Zero;
        while (scheduler.Status != SchedulerStatus.Running)
        {
            if (waited >= SchedulerStartTimeout || scheduler.Status is SchedulerStatus.ShuttingDown or SchedulerStatus.Shutdown)
            {
                Log.SchedulerNeverStarted(logger, scheduler.Status.ToString(), SchedulerStartTimeout.TotalSeconds);
                Send($"STATUS=the scheduler is {scheduler.Status}; not ready");
                return;
            }

            await Task.Delay(SchedulerPoll, agent.Time, stoppingToken).ConfigureAwait(false);
            waited += SchedulerPoll;
        }

        var kinds = string.Join(", ", agent.Runner.Sources.Select(s => s.Kind));
        var running = $"STATUS=running: backing up {(kinds.Length == 0 ? "nothing (every kind is disabled)" : kinds)} on schedule; node {agent.Options.NodeName}";
        if (Send("READY=1\n" + running))
        {
            Log.Ready(logger);
        }

        if (notifier.WatchdogInterval is not { } interval)
        {
            return;
        }

        await KeepWatchdogAsync(scheduler, interval / 2, running, stoppingToken).ConfigureAwait(false);
    }

    private async Task KeepWatchdogAsync(IScheduler scheduler, TimeSpan period, string runningStatus, CancellationToken stoppingToken)
    {
        Send("WATCHDOG=1");
        var withheld = false;
        using var timer = new PeriodicTimer(period, agent.Time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                var status = scheduler.Status;
                if (status == SchedulerStatus.Running)
                {
                    if (withheld)
                    {
                        withheld = false;
                        Log.WatchdogResumed(logger);
                        Send(runningStatus);
                    }

                    Send("WATCHDOG=1");
                }
                else if (!withheld)
                {
                    // No ping: if the scheduler does not come back within WatchdogSec, systemd restarts the agent.
                    withheld = true;
                    Log.WatchdogWithheld(logger, status.ToString());
                    Send($"STATUS=the scheduler is {status}: watchdog pings withheld");
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Host stopping: STOPPING=1 was already sent.
        }
    }

    private bool Send(string state)
    {
        try
        {
            notifier.Send(state);
            return true;
        }
        catch (SocketException ex)
        {
            Log.SendFailed(logger, state.Split('\n')[0], notifier.SocketName, ex.Message);
            return false;
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Systemd.Notifying, LogLevel.Information, "systemd notify socket {Socket}; watchdog pings {Watchdog}")]
        public static partial void Notifying(ILogger logger, string socket, string watchdog);

        [LoggerMessage(LogEvents.Systemd.Ready, LogLevel.Information, "told systemd READY=1: the host and the scheduler are running")]
        public static partial void Ready(ILogger logger);

        [LoggerMessage(LogEvents.Systemd.WatchdogWithheld, LogLevel.Error, "the scheduler is {Status} and not running: watchdog pings withheld, so systemd restarts the agent after WatchdogSec")]
        public static partial void WatchdogWithheld(ILogger logger, string status);

        [LoggerMessage(LogEvents.Systemd.WatchdogResumed, LogLevel.Information, "the scheduler runs again: watchdog pings resumed")]
        public static partial void WatchdogResumed(ILogger logger);

        [LoggerMessage(LogEvents.Systemd.SchedulerNeverStarted, LogLevel.Error, "the scheduler did not start (it is {Status} after up to {Seconds} s): READY=1 not sent")]
        public static partial void SchedulerNeverStarted(ILogger logger, string status, double seconds);

        [LoggerMessage(LogEvents.Systemd.SendFailed, LogLevel.Warning, "could not notify systemd ({State}) through {Socket}: {Reason}")]
        public static partial void SendFailed(ILogger logger, string state, string socket, string reason);
    }
}
