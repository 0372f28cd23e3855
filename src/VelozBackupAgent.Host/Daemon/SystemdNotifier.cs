using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace VelozBackupAgent.Host.Daemon;

/// <summary>
/// The service manager's notify protocol (sd_notify(3)) without libsystemd: one datagram per state change
/// (<c>READY=1</c>, <c>STOPPING=1</c>, <c>WATCHDOG=1</c>, <c>STATUS=…</c>) sent to the Unix socket named
/// by <c>$NOTIFY_SOCKET</c> — a path, or an abstract name written with a leading <c>@</c>.
/// </summary>
/// <remarks>
/// <see cref="FromEnvironment"/> takes <c>NOTIFY_SOCKET</c>, <c>WATCHDOG_USEC</c> and <c>WATCHDOG_PID</c>
/// out of the process environment as it reads them, so no child (pg_dump, gpg, a restore command) inherits
/// them: with <c>NotifyAccess=main</c> a child's message would be refused anyway, and a child that is itself
/// a notify-aware service must not talk to our service manager. .NET starts children from its managed copy
/// of the environment, which is what is edited here.
/// </remarks>
internal sealed class SystemdNotifier : IDisposable
{
    public const string SocketVariable = "NOTIFY_SOCKET";
    public const string WatchdogUsecVariable = "WATCHDOG_USEC";
    public const string WatchdogPidVariable = "WATCHDOG_PID";

    private readonly Socket _socket;
    private readonly UnixDomainSocketEndPoint _endPoint;
    private readonly Lock _sendLock = new();

    private SystemdNotifier(string socketName, TimeSpan? watchdogInterval)
    {
        SocketName = socketName;
        WatchdogInterval = watchdogInterval;
        // An abstract socket is "@name" in the variable and "\0name" on the wire (unix(7)).
        _endPoint = new UnixDomainSocketEndPoint(socketName[0] == '@' ? "\0" + socketName[1..] : socketName);
        // Never block the daemon on a service manager that is not reading: a lost datagram is logged, not waited for.
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { Blocking = false };
    }

    /// <summary>The socket as <c>$NOTIFY_SOCKET</c> named it.</summary>
    public string SocketName { get; }

    /// <summary><c>WatchdogSec</c> of the unit, or null when the watchdog is off or meant for another process.</summary>
    public TimeSpan? WatchdogInterval { get; }

    /// <summary>
    /// Reads the notify settings and removes them from this process's environment (so children never
    /// inherit them). Null when not started by a service manager that listens (or on Windows).
    /// </summary>
    public static SystemdNotifier? FromEnvironment(int processId)
    {
        var socket = Take(SocketVariable);
        var usec = Take(WatchdogUsecVariable);
        var pid = Take(WatchdogPidVariable);
        if (OperatingSystem.IsWindows())
        {
            return null;
        }

        var settings = Parse(socket, usec, pid, processId);
        return settings is null ? null : new SystemdNotifier(settings.Value.Socket, settings.Value.Watchdog);
    }

    /// <summary>
    /// The pure part of <see cref="FromEnvironment"/>: the socket name, and the watchdog interval when
    /// <c>WATCHDOG_USEC</c> is a positive number and <c>WATCHDOG_PID</c> is absent or names <paramref name="processId"/>.
    /// </summary>
    public static (string Socket, TimeSpan? Watchdog)? Parse(string? socket, string? watchdogUsec, string? watchdogPid, int processId)
    {
        if (string.IsNullOrEmpty(socket) || (socket[0] != '/' && socket[0] != '@') || socket.Length < 2)
        {
            return null;
        }

        TimeSpan? watchdog = null;
        if (long.TryParse(watchdogUsec, NumberStyles.None, CultureInfo.InvariantCulture, out var usec) && usec > 0
            && (string.IsNullOrEmpty(watchdogPid)
                || (int.TryParse(watchdogPid, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid == processId)))
        {
            watchdog = TimeSpan.FromMicroseconds(usec);
        }

        return (socket, watchdog);
    }

    /// <summary>Sends one message (e.g. <c>"READY=1\nSTATUS=running"</c>). Throws <see cref="SocketException"/> when it cannot.</summary>
    public void Send(string state)
    {
        var bytes = Encoding.UTF8.GetBytes(state);
        lock (_sendLock)
        {
            _socket.SendTo(bytes, SocketFlags.None, _endPoint);
        }
    }

    public void Dispose() => _socket.Dispose();

    private static string? Take(string name)
    {
        var value = Environment.GetEnvironmentVariable(name);
        if (value is not null)
        {
            Environment.SetEnvironmentVariable(name, null);
        }

        return value;
    }
}
