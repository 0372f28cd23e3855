using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Restore;

/// <summary>
/// The runbook's service steps around a restore: <c>Backup:Restore:StopCommand</c> before, <c>StartCommand</c>
/// after, then wait until <c>HealthUrl</c> answers 2xx within <c>HealthTimeout</c>. Commands run through
/// <c>/bin/sh -c</c> (they are the operator's own configuration, e.g. <c>systemctl stop veloz</c>); an empty
/// command is skipped.
/// </summary>
public sealed partial class ServiceControl
{
    private const string Key = $"{BackupOptions.SectionName}:{nameof(BackupOptions.Restore)}";
    private readonly RestoreOptions _options;
    private readonly ILogger _logger;

    public ServiceControl(RestoreOptions options, ILogger logger)
    {
        _options = options;
        _logger = logger;
    }

    /// <summary>Runs the stop command; a failure stops the restore before anything was touched.</summary>
    public Task StopAsync(CancellationToken cancellationToken) => RunAsync(_options.StopCommand, nameof(RestoreOptions.StopCommand), cancellationToken);

    /// <summary>Runs the start command.</summary>
    public Task StartAsync(CancellationToken cancellationToken) => RunAsync(_options.StartCommand, nameof(RestoreOptions.StartCommand), cancellationToken);

    /// <summary>Polls the health URL (every 500 ms) until it answers 2xx; throws after HealthTimeout with the last answer.</summary>
    public async Task<TimeSpan> WaitHealthyAsync(CancellationToken cancellationToken)
    {
        var url = _options.HealthUrl;
        var clock = Stopwatch.StartNew();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var last = "no answer yet";
        while (true)
        {
            try
            {
                using var response = await http.GetAsync(url, cancellationToken).ConfigureAwait(false);
                if (response.IsSuccessStatusCode)
                {
                    Log.Healthy(_logger, url, clock.Elapsed.TotalSeconds);
                    return clock.Elapsed;
                }

                last = string.Create(CultureInfo.InvariantCulture, $"HTTP {(int)response.StatusCode}");
            }
            catch (HttpRequestException ex)
            {
                last = ex.Message;
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                last = "timed out";
            }

            if (clock.Elapsed >= _options.HealthTimeout)
            {
                throw new RestoreException($"VeloZ did not report healthy at {url} within {_options.HealthTimeout} ({Key}:HealthTimeout); last answer: {last}");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task RunAsync(string command, string key, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(command))
        {
            return;
        }

        var spec = OperatingSystem.IsWindows()
            ? new ChildProcessSpec("cmd.exe", ["/c", command], key) { Inherit = InheritedVariables.Service }
            : new ChildProcessSpec("/bin/sh", ["-c", command], key) { Inherit = InheritedVariables.Service };
        Log.Running(_logger, key, command);
        await using var child = ChildProcess.Start(spec, _logger);
        try
        {
            await child.ReadAllTextAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (BackupSourceException ex)
        {
            throw new RestoreException($"{Key}:{key} `{command}` failed: {ex.Message}", ex);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Restore.Running, LogLevel.Information, "running {Key}: {Command}")]
        public static partial void Running(ILogger logger, string key, string command);

        [LoggerMessage(LogEvents.Restore.Healthy, LogLevel.Information, "VeloZ healthy at {Url} after {Seconds:0.0} s")]
        public static partial void Healthy(ILogger logger, Uri url, double seconds);
    }
}
