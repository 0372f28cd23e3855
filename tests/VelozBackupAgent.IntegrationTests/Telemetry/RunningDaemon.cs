using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Telemetry;

/// <summary>
/// The real <c>veloz-backup run</c> as a child process on a free loopback port, with its console drained (so a
/// full pipe never stalls it) and kept for failure messages; stopped with SIGTERM.
/// </summary>
internal sealed class RunningDaemon : IAsyncDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    private readonly Process _process;
    private readonly StringBuilder _console = new();
    private readonly HttpClient _http;

    private RunningDaemon(Process process, Uri url)
    {
        _process = process;
        Url = url;
        _http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(10) };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public Uri Url { get; }

    public string Console
    {
        get
        {
            lock (_console)
            {
                return _console.ToString();
            }
        }
    }

    /// <summary>A port nothing listens on right now.</summary>
    public static int FreePort() => Infrastructure.TestPorts.Free();

    /// <summary>Starts <c>veloz-backup run</c> with <paramref name="args"/> plus <c>--Backup:Http:Url</c> on <paramref name="port"/>.</summary>
    public static RunningDaemon Start(IEnumerable<string> args, int port, IDictionary<string, string?>? env = null)
    {
        var url = new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/");
        var process = VelozBackupBinary.Start(["run", .. args, $"--Backup:Http:Url={url}"], env);
        return new RunningDaemon(process, url);
    }

    /// <summary>GET <paramref name="path"/>; null while nothing answers yet.</summary>
    public async Task<(HttpStatusCode Status, string Body, string? ContentType)?> GetAsync(string path)
    {
        try
        {
            using var response = await _http.GetAsync(new Uri(path, UriKind.Relative));
            return (response.StatusCode, await response.Content.ReadAsStringAsync(), response.Content.Headers.ContentType?.ToString());
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    /// <summary>Polls until <paramref name="done"/> holds, failing with the daemon's console if it exits or the deadline passes.</summary>
    public async Task<T> WaitForAsync<T>(Func<Task<T?>> probe, Func<T, bool> done, string what)
        where T : class
    {
        var clock = Stopwatch.StartNew();
        T? last = null;
        while (clock.Elapsed < Deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"the daemon exited ({_process.ExitCode}) while waiting for {what}:\n{Console}");
            }

            last = await probe();
            if (last is not null && done(last))
            {
                return last;
            }

            await Task.Delay(200);
        }

        throw new TimeoutException($"no {what} within {Deadline.TotalSeconds} s; last: {last}\n{Console}");
    }

    /// <summary>The next successful scrape of <c>/metrics</c>.</summary>
    public async Task<string> ScrapeAsync()
    {
        var r = await WaitForAsync(async () => await GetAsync("/metrics") is { } g ? new Reply(g.Status, g.Body) : null, r => r.Status == HttpStatusCode.OK, "/metrics answer");
        return r.Body;
    }

    /// <summary>SIGTERM, then the exit code.</summary>
    public async Task<int> StopAsync()
    {
        if (!_process.HasExited)
        {
            (await ChildProcess.RunAsync("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)])).ExitCode.Should().Be(0);
        }

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    /// <summary>The agent's process id.</summary>
    public int ProcessId => _process.Id;

    /// <summary>The exit code, once it has exited.</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>Whether the agent's process has exited.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>SIGKILL to the agent and every process it started (a node that dies: its pg_receivewal dies with it).</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await _process.WaitForExitAsync(cts.Token);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _http.Dispose();
        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_console)
            {
                _console.AppendLine(line);
            }
        }
    }

    /// <summary>An HTTP answer, as a reference type for <see cref="WaitForAsync{T}"/>.</summary>
    public sealed record Reply(HttpStatusCode Status, string Body);
}
