using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Host.Cli;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Host.Daemon;

/// <summary>Start-up housekeeping: clear what interrupted writes left behind before anything new is written.</summary>
internal sealed class StartupService(AgentContext agent) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var removed = agent.Local.RemoveInterruptedWrites();

        // Read from the queue on disk: what earlier runs and one-shot commands queued, not this process's (empty) count.
        var queued = agent.Replicator?.RefreshBacklog() ?? Replication.ReplicationBacklog.Empty;
        DaemonLog.Started(agent.LoggerFactory.CreateLogger("veloz-backup"), agent.Options.NodeName, agent.Local.Root,
            agent.Options.S3.Enabled ? agent.Options.S3.Bucket : "(disabled)", agent.ConfigPath ?? "(defaults)", removed, queued.Artifacts, queued.Bytes);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Drains the S3 upload queue for as long as the daemon runs.</summary>
internal sealed class ReplicationService(AgentContext agent) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => agent.Replicator!.RunAsync(stoppingToken);
}

/// <summary>Streams PostgreSQL's WAL for point-in-time recovery for as long as the daemon runs (Backup:Pitr with Streaming).</summary>
internal sealed class PitrReceiverService(AgentContext agent) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => agent.Receiver.RunAsync(stoppingToken);
}

internal static partial class DaemonLog
{
    [LoggerMessage(LogEvents.Daemon.Started, LogLevel.Information, "veloz-backup started: node {Node}, local store {Root}, S3 bucket {Bucket}, configuration {Config}; {Removed} interrupted writes cleaned up; {Queued} artifacts ({QueuedBytes} bytes) wait in the S3 upload queue")]
    public static partial void Started(ILogger logger, string node, string root, string bucket, string config, int removed, int queued, long queuedBytes);
}
