using System.Net;
using System.Net.Sockets;
using System.Text;

namespace VelozBackupAgent.IntegrationTests.Infrastructure;

/// <summary>
/// Stands in for VeloZ's <c>/health</c> endpoint: a real loopback HTTP server that answers 200 while
/// <see cref="Healthy"/> is true (e.g. while a start command's marker file says "started") and 503 otherwise.
/// </summary>
public sealed class HealthServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private int _requests;

    public HealthServer(Func<bool> healthy)
    {
        Healthy = healthy;
        _listener.Start();
        _loop = Task.Run(AcceptLoopAsync);
    }

    public Func<bool> Healthy { get; }

    public string Url => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/health";

    public int Requests => Volatile.Read(ref _requests);

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }

            _ = Task.Run(async () =>
            {
                using (client)
                {
                    var stream = client.GetStream();
                    var buffer = new byte[4096];
                    _ = await stream.ReadAsync(buffer);
                    Interlocked.Increment(ref _requests);
                    var ok = Healthy();
                    var body = ok ? "{\"status\":\"ok\"}" : "{\"status\":\"down\"}";
                    var head = ok ? "200 OK" : "503 Service Unavailable";
                    await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {head}\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}"));
                }
            });
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _loop;
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
    }
}
