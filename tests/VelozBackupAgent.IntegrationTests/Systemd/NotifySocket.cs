using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace VelozBackupAgent.IntegrationTests.Systemd;

/// <summary>A notify message as it arrived, with when (since the socket was bound).</summary>
public sealed record NotifyMessage(string Text, TimeSpan At)
{
    public bool Has(string assignment) => Text.Split('\n').Contains(assignment);
}

/// <summary>
/// A real Unix datagram socket standing in for systemd's notify socket: bound to a path, or to an abstract
/// name (<c>@name</c>), collecting every datagram the daemon sends.
/// </summary>
public sealed class NotifySocket : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<NotifyMessage> _messages = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Task _receiver;
    private readonly string? _directory;

    private NotifySocket(string name, string? directory)
    {
        Name = name;
        _directory = directory;
        _socket.Bind(new UnixDomainSocketEndPoint(name[0] == '@' ? "\0" + name[1..] : name));
        _receiver = Task.Run(ReceiveAsync);
    }

    /// <summary>What <c>NOTIFY_SOCKET</c> is set to.</summary>
    public string Name { get; }

    /// <summary>A socket file in a fresh short temp directory (sun_path holds 108 bytes).</summary>
    public static NotifySocket AtPath()
    {
        var directory = Directory.CreateTempSubdirectory("vz-notify-").FullName;
        return new NotifySocket(Path.Combine(directory, "notify"), directory);
    }

    /// <summary>A socket in the abstract namespace, as systemd's own <c>@/org/freedesktop/systemd1/notify/…</c>.</summary>
    public static NotifySocket Abstract() => new($"@veloz-notify-test-{Guid.NewGuid():N}", null);

    public IReadOnlyList<NotifyMessage> Messages
    {
        get
        {
            lock (_messages)
            {
                return [.. _messages];
            }
        }
    }

    /// <summary>Waits (polling, with a deadline) until <paramref name="done"/> holds for the messages received so far.</summary>
    public async Task<IReadOnlyList<NotifyMessage>> WaitForAsync(Func<IReadOnlyList<NotifyMessage>, bool> done, TimeSpan timeout, Process? mustKeepRunning = null)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            var messages = Messages;
            if (done(messages))
            {
                return messages;
            }

            if (mustKeepRunning is { HasExited: true })
            {
                break;
            }

            await Task.Delay(50);
        }

        return Messages;
    }

    private async Task ReceiveAsync()
    {
        var buffer = new byte[4096];
        while (!_stop.IsCancellationRequested)
        {
            int read;
            try
            {
                read = await _socket.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }

            lock (_messages)
            {
                _messages.Add(new NotifyMessage(Encoding.UTF8.GetString(buffer, 0, read), _clock.Elapsed));
            }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        try
        {
            _receiver.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }

        _socket.Dispose();
        _stop.Dispose();
        if (_directory is not null)
        {
            Directory.Delete(_directory, recursive: true);
        }
    }
}
