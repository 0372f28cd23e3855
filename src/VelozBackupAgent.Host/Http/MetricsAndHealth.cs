using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Host.Cli;
using VelozBackupAgent.Telemetry;

namespace VelozBackupAgent.Host.Http;

/// <summary>The daemon's metrics and its <c>/metrics</c> + <c>/health</c> listener, added to the host in one call.</summary>
internal static class MetricsAndHealth
{
    /// <summary>
    /// Registers <see cref="BackupMetrics"/> (a singleton other daemon parts may take, e.g. to
    /// <see cref="BackupMetrics.RecordIntegrityError"/>), the service that feeds it, and the HTTP listener on
    /// <c>Backup:Http:Url</c>. Add it before the scheduler: a listener that cannot bind stops the daemon before
    /// any backup starts.
    /// </summary>
    public static IServiceCollection AddMetricsAndHealth(this IServiceCollection services, AgentContext agent)
    {
        services.AddSingleton(_ => new BackupMetrics(agent.Options, agent.Local, agent.Remote, agent.Time, agent.LoggerFactory.CreateLogger<BackupMetrics>()));
        services.AddHostedService<MetricsService>();
        services.AddHostedService<HttpEndpoint>();
        return services;
    }
}

/// <summary>
/// Feeds <see cref="BackupMetrics"/>: subscribes to the runner, pruner and replicator before anything runs, lists
/// the local store in the background (the listener's first scrape waits for it, so the freshness series start
/// from the catalog, not from "never"), then keeps listing both stores on their cadence.
/// </summary>
internal sealed class MetricsService(AgentContext agent, BackupMetrics metrics, IServiceProvider services) : IHostedService, IDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private Task _loop = Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        metrics.Attach(agent.Runner, agent.Pruner, agent.Replicator);
        if (agent.Options.Pitr.Enabled)
        {
            metrics.AttachPitr(agent.WalArchive, agent.Options.Pitr.Streaming ? () => agent.Receiver.Status : null);
        }

        if (agent.Options.Cluster.Enabled)
        {
            // The database-wide kinds' freshness is the cluster's, whichever node did the work (ClusterFreshness).
            var state = services.GetRequiredService<Daemon.ClusterState>();
            metrics.AttachCluster(() => state.View, () => state.SkewSeconds);
        }
        _loop = Task.Run(
            async () =>
            {
                await metrics.ListLocalStoreAsync(_stopping.Token).ConfigureAwait(false);
                await metrics.RunRefreshLoopAsync(_stopping.Token).ConfigureAwait(false);
            },
            CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loop.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            // The first listing was cut short by the stop.
        }
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
    }
}
