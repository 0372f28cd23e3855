using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace VelozBackupAgent.IntegrationTests.Infrastructure;

/// <summary>
/// A loopback TCP relay in front of a real server that records the head (method, target, headers) of every HTTP/1.1
/// request passing through, byte for byte unchanged (so signatures still verify): for asserting what a client really
/// sent where the server does not echo it (s3rver ignores encryption and Object Lock headers). Bodies are relayed by
/// their Content-Length or chunked framing, never held.
/// </summary>
public sealed class RecordingProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly int _upstreamPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<RecordedRequest> _requests = new();
    private readonly ConcurrentBag<Task> _connections = [];
    private readonly Task _accepting;

    private RecordingProxy(int upstreamPort)
    {
        _upstreamPort = upstreamPort;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _accepting = AcceptAsync();
    }

    /// <summary>Starts relaying to <c>127.0.0.1:<paramref name="upstreamPort"/></c>.</summary>
    public static RecordingProxy Start(int upstreamPort) => new(upstreamPort);

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public string ServiceUrl => $"http://127.0.0.1:{Port}";

    /// <summary>Every request seen so far, in arrival order.</summary>
    public IReadOnlyList<RecordedRequest> Requests => [.. _requests];

    public void Clear() => _requests.Clear();

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await Task.WhenAll([_accepting, .. _connections]);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
            // Torn down on purpose.
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _connections.Add(RelayAsync(client));
        }
    }

    private async Task RelayAsync(TcpClient client)
    {
        using (client)
        using (var upstream = new TcpClient())
        {
            try
            {
                await upstream.ConnectAsync(IPAddress.Loopback, _upstreamPort, _stop.Token);
                var down = client.GetStream();
                var up = upstream.GetStream();
                var responses = up.CopyToAsync(down, _stop.Token);
                await ForwardRequestsAsync(new HeadReader(down), up, _stop.Token);
                upstream.Client.Shutdown(SocketShutdown.Send);
                await responses;
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
            {
                // The client or the server hung up.
            }
        }
    }

    private async Task ForwardRequestsAsync(HeadReader reader, NetworkStream up, CancellationToken cancellationToken)
    {
        while (true)
        {
            var head = await reader.ReadHeadAsync(cancellationToken);
            if (head is null)
            {
                return;
            }

            var text = Encoding.Latin1.GetString(head);
            var lines = text.Split("\r\n");
            var requestLine = lines[0].Split(' ');
            var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var line in lines.Skip(1).Where(l => l.Length > 0))
            {
                var colon = line.IndexOf(':', StringComparison.Ordinal);
                var name = line[..colon].Trim();
                var value = line[(colon + 1)..].Trim();
                headers[name] = headers.TryGetValue(name, out var earlier) ? earlier + "," + value : value;
            }

            _requests.Enqueue(new RecordedRequest(requestLine[0], requestLine[1], headers));
            await up.WriteAsync(head, cancellationToken);

            if (headers.TryGetValue("Transfer-Encoding", out var te) && te.Contains("chunked", StringComparison.OrdinalIgnoreCase))
            {
                await reader.RelayChunkedAsync(up, cancellationToken);
            }
            else if (headers.TryGetValue("Content-Length", out var length))
            {
                await reader.RelayAsync(up, long.Parse(length, CultureInfo.InvariantCulture), cancellationToken);
            }
        }
    }

    /// <summary>Reads a stream in request-sized steps: a head up to its blank line, then exactly the body's bytes.</summary>
    private sealed class HeadReader(Stream stream)
    {
        private readonly byte[] _buffer = new byte[64 * 1024];
        private int _start;
        private int _end;

        public async Task<byte[]?> ReadHeadAsync(CancellationToken cancellationToken)
        {
            var head = new List<byte>();
            while (true)
            {
                if (_start == _end && !await FillAsync(cancellationToken))
                {
                    return null;
                }

                head.Add(_buffer[_start++]);
                if (head.Count >= 4 && head[^1] == '\n' && head[^2] == '\r' && head[^3] == '\n' && head[^4] == '\r')
                {
                    return [.. head];
                }
            }
        }

        public async Task RelayAsync(Stream to, long count, CancellationToken cancellationToken)
        {
            while (count > 0)
            {
                if (_start == _end && !await FillAsync(cancellationToken))
                {
                    throw new IOException("the client hung up inside a request body");
                }

                var n = (int)Math.Min(count, _end - _start);
                await to.WriteAsync(_buffer.AsMemory(_start, n), cancellationToken);
                _start += n;
                count -= n;
            }
        }

        public async Task RelayChunkedAsync(Stream to, CancellationToken cancellationToken)
        {
            while (true)
            {
                var sizeLine = await ReadLineAsync(cancellationToken);
                await to.WriteAsync(sizeLine, cancellationToken);
                var size = long.Parse(Encoding.Latin1.GetString(sizeLine).Split(';')[0].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                if (size == 0)
                {
                    // Trailers (possibly none), up to the blank line.
                    while (true)
                    {
                        var trailer = await ReadLineAsync(cancellationToken);
                        await to.WriteAsync(trailer, cancellationToken);
                        if (trailer.Length == 2)
                        {
                            return;
                        }
                    }
                }

                await RelayAsync(to, size + 2, cancellationToken);
            }
        }

        private async Task<byte[]> ReadLineAsync(CancellationToken cancellationToken)
        {
            var line = new List<byte>();
            while (line.Count < 2 || line[^1] != '\n' || line[^2] != '\r')
            {
                if (_start == _end && !await FillAsync(cancellationToken))
                {
                    throw new IOException("the client hung up inside a chunked body");
                }

                line.Add(_buffer[_start++]);
            }

            return [.. line];
        }

        private async Task<bool> FillAsync(CancellationToken cancellationToken)
        {
            _start = 0;
            _end = await stream.ReadAsync(_buffer, cancellationToken);
            return _end > 0;
        }
    }
}

/// <summary>One request's head as it went over the wire.</summary>
/// <param name="Method">GET, PUT, POST, HEAD, DELETE.</param>
/// <param name="Target">Path and query, e.g. <c>/bucket/key?uploads</c>.</param>
/// <param name="Headers">Header values by name (case-insensitive); repeated headers joined with ','.</param>
public sealed record RecordedRequest(string Method, string Target, IReadOnlyDictionary<string, string> Headers)
{
    /// <summary>The key path without the query.</summary>
    public string Path => Uri.UnescapeDataString(Target.Split('?')[0]);

    public string? Header(string name) => Headers.TryGetValue(name, out var v) ? v : null;
}
