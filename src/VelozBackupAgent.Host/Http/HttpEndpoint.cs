using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Quartz;
using VelozBackupAgent.Host.Cli;
using VelozBackupAgent.Telemetry;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Host.Http;

/// <summary>
/// The daemon's HTTP listener on <c>Backup:Http:Url</c> (loopback by default): <c>GET /metrics</c> (Prometheus text
/// format 0.0.4) and <c>GET /health</c> (200 healthy, 503 unhealthy, JSON). Kestrel, configured from code only:
/// no <c>ASPNETCORE_*</c> variable or appsettings key can move it to another address. If the address cannot be
/// bound (a port already in use) the daemon stops at start-up with one line naming <c>Backup:Http:Url</c>.
/// </summary>
internal sealed partial class HttpEndpoint(AgentContext agent, BackupMetrics metrics, ISchedulerFactory schedulers, ILogger<HttpEndpoint> logger) : IHostedService, IAsyncDisposable
{
    private static readonly byte[] NotFound = Encoding.UTF8.GetBytes("not found: try /metrics or /health\n");

    /// <summary>How long a request right after start-up waits for the first listing of the local store.</summary>
    private static readonly TimeSpan FirstListingWait = TimeSpan.FromSeconds(30);

    private WebApplication? _app;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var url = agent.Options.Http.Url;
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxConcurrentConnections = 64;
            kestrel.Limits.MaxRequestBodySize = 0;
            kestrel.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(10);
            if (string.Equals(url.Host, "localhost", StringComparison.OrdinalIgnoreCase))
            {
                kestrel.ListenLocalhost(url.Port);
            }
            else
            {
                kestrel.Listen(IPAddress.Parse(url.DnsSafeHost), url.Port);
            }
        });

        // Kestrel's own lines go to the agent's log, warnings and worse only. The inner host's start-up failure
        // is not logged twice: the line below and the daemon's host say it.
        builder.Logging.AddProvider(new ForwardingLoggerProvider(agent.LoggerFactory));
        builder.Logging.AddFilter((category, level) =>
            category?.StartsWith("Microsoft.Extensions.Hosting", StringComparison.Ordinal) != true
            && (level >= LogLevel.Warning || category?.StartsWith("Microsoft", StringComparison.Ordinal) != true));

        var app = builder.Build();
        app.Run(HandleAsync);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            var reason = Innermost(ex).Message.TrimEnd('.');
            Log.CannotListen(logger, url.ToString(), reason);
            // The reason is in the message; the socket's stack trace would only lengthen the journal.
            throw new IOException($"cannot listen on {url} (Backup:Http:Url): {reason}; stop whatever holds that address or set Backup:Http:Url to another one");
        }

        _app = app;
        Log.Listening(logger, url.ToString());
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is not null)
        {
            await _app.StopAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync().ConfigureAwait(false);
            _app = null;
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var response = context.Response;
        response.Headers.CacheControl = "no-store";
        if (!HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method))
        {
            response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            response.Headers.Allow = "GET, HEAD";
            return;
        }

        string body;
        if (request.Path.Value is "/metrics" or "/health")
        {
            await metrics.WhenLocalListedAsync(FirstListingWait, context.RequestAborted).ConfigureAwait(false);
        }

        switch (request.Path.Value)
        {
            case "/metrics":
                body = metrics.Scrape();
                response.ContentType = PrometheusTextFormat.ContentType;
                break;
            case "/health":
                var report = metrics.Health(await SchedulerStateAsync(context.RequestAborted).ConfigureAwait(false));
                response.StatusCode = report.StatusCode;
                response.ContentType = "application/json; charset=utf-8";
                body = report.ToJson();
                break;
            default:
                response.StatusCode = StatusCodes.Status404NotFound;
                response.ContentType = "text/plain; charset=utf-8";
                await response.Body.WriteAsync(NotFound, context.RequestAborted).ConfigureAwait(false);
                return;
        }

        var bytes = Encoding.UTF8.GetBytes(body);
        response.ContentLength = bytes.Length;
        if (!HttpMethods.IsHead(request.Method))
        {
            await response.Body.WriteAsync(bytes, context.RequestAborted).ConfigureAwait(false);
        }
    }

    private async Task<SchedulerState> SchedulerStateAsync(CancellationToken cancellationToken)
    {
        try
        {
            var scheduler = await schedulers.GetScheduler(cancellationToken).ConfigureAwait(false);
            return await scheduler.GetStatus(cancellationToken).ConfigureAwait(false) switch
            {
                SchedulerStatus.Created => SchedulerState.NotStarted,
                SchedulerStatus.Running => SchedulerState.Running,
                SchedulerStatus.Standby => SchedulerState.Standby,
                SchedulerStatus.ShuttingDown or SchedulerStatus.Shutdown => SchedulerState.ShutDown,
                _ => SchedulerState.Unknown,
            };
        }
        catch (SchedulerException)
        {
            return SchedulerState.Unknown;
        }
    }

    private static Exception Innermost(Exception ex)
    {
        while (ex.InnerException is not null)
        {
            ex = ex.InnerException;
        }

        return ex;
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Telemetry.Listening, LogLevel.Information, "metrics and health listening on {Url} (GET /metrics, GET /health)")]
        public static partial void Listening(ILogger logger, string url);

        [LoggerMessage(LogEvents.Telemetry.CannotListen, LogLevel.Critical, "cannot listen on {Url} (Backup:Http:Url): {Reason}")]
        public static partial void CannotListen(ILogger logger, string url, string reason);
    }

    /// <summary>Hands Kestrel's loggers out of the agent's logger factory (Serilog), so its warnings land in the agent's log.</summary>
    private sealed class ForwardingLoggerProvider(ILoggerFactory factory) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => factory.CreateLogger(categoryName);

        public void Dispose()
        {
            // The factory belongs to the agent.
        }
    }
}
