using System.Net;
using System.Net.Sockets;

namespace VelozBackupAgent.IntegrationTests.Infrastructure;

/// <summary>
/// Loopback ports for the servers and agents a test starts. Not the kernel's "any free port" (bind to 0): that one is
/// from the ephemeral range, which every outgoing connection of every process on the machine also draws from, so
/// between handing it out and the server binding it an S3 or PostgreSQL client could take it as its local port
/// ("Address already in use" in CI). These come from below that range (20000–32767), each handed out once per test
/// run, from a random start (two test runs on one machine), and only when nothing listens there now.
/// </summary>
internal static class TestPorts
{
    private const int First = 20000;
    private const int Count = 32767 - First + 1;
    private static readonly object Gate = new();
    private static int _next = Random.Shared.Next(Count);
    private static int _handedOut;

    public static int Free()
    {
        lock (Gate)
        {
            while (_handedOut < Count)
            {
                var port = First + _next;
                _next = (_next + 1) % Count;
                _handedOut++;
                try
                {
                    using var probe = new TcpListener(IPAddress.Loopback, port);
                    probe.Start();
                    return port;
                }
                catch (SocketException)
                {
                    // Something listens there: the next one.
                }
            }

            throw new InvalidOperationException($"no free loopback port left in {First}–{First + Count - 1} for this test run");
        }
    }
}
