using System.Diagnostics;
using System.Globalization;
using VelozBackupAgent.Host.Daemon;
using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Systemd;

/// <summary>
/// The notify protocol of the real daemon binary, with a real Unix datagram socket standing in for systemd,
/// and a real child process (gpg, through a wrapper that records its environment).
/// </summary>
public sealed class SystemdNotifyTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-systemd-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task Ready_then_watchdog_at_half_the_interval_then_stopping_and_children_never_see_the_socket()
    {
        using var notify = NotifySocket.AtPath();
        var records = Directory.CreateDirectory(Path.Combine(_root, "gpg-env")).FullName;
        var gpg = Path.Combine(_root, "gpg-recording");
        await File.WriteAllTextAsync(gpg, $"#!/bin/sh\nenv > \"{records}/env.$$\"\nexec gpg \"$@\"\n");
        File.SetUnixFileMode(gpg, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var secrets = Directory.CreateDirectory(Path.Combine(_root, "secrets")).FullName;
        await File.WriteAllTextAsync(Path.Combine(secrets, "exchange.key"), "not really a key");
        var store = Directory.CreateDirectory(Path.Combine(_root, "store")).FullName;

        var stdout = new List<string>();
        using var daemon = StartDaemon(
            [
                "run", $"--Backup:LocalRoot={store}",
                "--Backup:Wal:Enabled=false", "--Backup:Config:Enabled=false", "--Backup:Database:Enabled=false",
                $"--Backup:Secrets:Directory={secrets}", $"--Backup:Secrets:Recipients:0={TestEnvironment.GpgRecipient}",
                $"--Backup:Secrets:GnupgHome={TestEnvironment.GnupgHome}", $"--Backup:Secrets:GpgPath={gpg}",
            ],
            new Dictionary<string, string?>
            {
                ["NOTIFY_SOCKET"] = notify.Name,
                ["WATCHDOG_USEC"] = "4000000",
                ["JOURNAL_STREAM"] = "8:123456",
            },
            stdout);
        try
        {
            var ready = await notify.WaitForAsync(m => m.Any(x => x.Has("READY=1")), TimeSpan.FromSeconds(60), daemon);
            ready.Should().Contain(m => m.Has("READY=1"), "the daemon says READY=1 once the host and the scheduler run");
            ready.First(m => m.Has("READY=1")).Text.Should().MatchRegex("STATUS=running: backing up secrets on schedule");

            // The secrets kind never ran, so it runs at start-up: gpg is a real child of the daemon.
            var sidecars = Path.Combine(store, "secrets");
            await WaitUntilAsync(() => Directory.Exists(sidecars) && Directory.GetFiles(sidecars, "*.gpg.sha256").Length == 1, daemon);
            var environments = Directory.GetFiles(records);
            environments.Should().NotBeEmpty("the daemon ran gpg through the recording wrapper");
            foreach (var file in environments)
            {
                var environment = await File.ReadAllTextAsync(file);
                environment.Should().Contain("GNUPGHOME=", "the wrapper recorded the child's environment");
                environment.Should().NotContain("NOTIFY_SOCKET").And.NotContain("WATCHDOG_USEC").And.NotContain("WATCHDOG_PID");
            }

            var pings = await notify.WaitForAsync(m => m.Count(x => x.Has("WATCHDOG=1")) >= 5, TimeSpan.FromSeconds(60), daemon);
            var times = pings.Where(m => m.Has("WATCHDOG=1")).Select(m => m.At).ToList();
            times.Should().HaveCountGreaterThanOrEqualTo(5, "WATCHDOG=1 keeps coming while the scheduler runs");
            var gaps = times.Zip(times.Skip(1), (a, b) => (b - a).TotalSeconds).Order().ToList();
            var median = gaps[gaps.Count / 2];
            median.Should().BeInRange(1.0, 3.5, "WATCHDOG_USEC is 4 s, so a ping is due about every 2 s and always well inside 4 s");
        }
        finally
        {
            await StopAsync(daemon);
        }

        var all = await notify.WaitForAsync(m => m.Any(x => x.Has("STOPPING=1")), TimeSpan.FromSeconds(30));
        all.Should().Contain(m => m.Has("STOPPING=1"), "SIGTERM makes the daemon say STOPPING=1");
        daemon.ExitCode.Should().Be(0);

        // Journald-friendly console output: every line carries a syslog priority, no timestamp, no colour.
        string[] lines;
        lock (stdout)
        {
            lines = [.. stdout.Where(l => l.Length > 0)];
        }

        lines.Should().NotBeEmpty();
        lines.Should().OnlyContain(l => l.Length > 3 && l[0] == '<' && l[2] == '>' && l[1] >= '0' && l[1] <= '7', "journald reads <N> as the priority");
        lines.Should().Contain(l => l.StartsWith("<6>", StringComparison.Ordinal) && l.Contains("told systemd READY=1", StringComparison.Ordinal));
        lines.Should().NotContain(l => l.Contains('\u001b'), "no ANSI colours in the journal");
        lines.Should().NotContain(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^<\d>\[?\d\d:\d\d:\d\d"), "the journal has its own timestamps");
    }

    [Fact]
    public async Task An_abstract_socket_gets_ready_and_stopping_and_no_watchdog_ping_when_the_watchdog_is_off()
    {
        using var notify = NotifySocket.Abstract();
        var store = Directory.CreateDirectory(Path.Combine(_root, "store")).FullName;
        using var daemon = StartDaemon(
            [
                "run", $"--Backup:LocalRoot={store}",
                "--Backup:Wal:Enabled=false", "--Backup:Config:Enabled=false", "--Backup:Database:Enabled=false", "--Backup:Secrets:Enabled=false",
            ],
            new Dictionary<string, string?> { ["NOTIFY_SOCKET"] = notify.Name, ["WATCHDOG_USEC"] = null, ["WATCHDOG_PID"] = null },
            stdout: null);
        try
        {
            var ready = await notify.WaitForAsync(m => m.Any(x => x.Has("READY=1")), TimeSpan.FromSeconds(60), daemon);
            ready.Should().Contain(m => m.Has("READY=1"));
            ready.First(m => m.Has("READY=1")).Text.Should().Contain("STATUS=running: backing up nothing");
        }
        finally
        {
            await StopAsync(daemon);
        }

        var all = await notify.WaitForAsync(m => m.Any(x => x.Has("STOPPING=1")), TimeSpan.FromSeconds(30));
        all.Should().Contain(m => m.Has("STOPPING=1"));
        all.Should().NotContain(m => m.Has("WATCHDOG=1"), "without WATCHDOG_USEC there is no watchdog to feed");
        daemon.ExitCode.Should().Be(0);
    }

    [Theory]
    [InlineData("/run/systemd/notify", "30000000", null, 30.0)]
    [InlineData("@/org/freedesktop/systemd1/notify/123", "30000000", "4242", 30.0)]
    [InlineData("/run/systemd/notify", "30000000", "1", null)]
    [InlineData("/run/systemd/notify", "0", null, null)]
    [InlineData("/run/systemd/notify", "soon", null, null)]
    [InlineData("/run/systemd/notify", null, null, null)]
    public void The_watchdog_is_ours_only_when_WATCHDOG_PID_is_absent_or_names_us(string socket, string? usec, string? pid, double? seconds)
    {
        var parsed = SystemdNotifier.Parse(socket, usec, pid, processId: 4242);

        parsed.Should().NotBeNull();
        parsed!.Value.Socket.Should().Be(socket);
        parsed.Value.Watchdog.Should().Be(seconds is null ? null : TimeSpan.FromSeconds(seconds.Value));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("@")]
    [InlineData("relative/notify")]
    public void No_usable_socket_means_no_notifier(string? socket) =>
        SystemdNotifier.Parse(socket, "30000000", null, 1).Should().BeNull();

    [Fact]
    public void Journal_lines_carry_the_syslog_priority_on_every_line_of_a_stack_trace()
    {
        var formatter = new JournalFormatter();
        var template = new Serilog.Parsing.MessageTemplateParser().Parse("backup {Kind} failed");
        Exception error;
        try
        {
            throw new InvalidOperationException("disk on fire");
        }
        catch (InvalidOperationException ex)
        {
            error = ex;
        }

        var logEvent = new Serilog.Events.LogEvent(TimeProvider.System.GetUtcNow(), Serilog.Events.LogEventLevel.Error, error, template,
            [new Serilog.Events.LogEventProperty("Kind", new Serilog.Events.ScalarValue("wal"))]);
        using var output = new StringWriter(CultureInfo.InvariantCulture);

        formatter.Format(logEvent, output);

        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines[0].Should().Be("<3>backup wal failed");
        lines.Should().HaveCountGreaterThan(2).And.OnlyContain(l => l.StartsWith("<3>", StringComparison.Ordinal));
        lines.Should().Contain(l => l.Contains("disk on fire", StringComparison.Ordinal));
        JournalFormatter.Priority(Serilog.Events.LogEventLevel.Warning).Should().Be(4);
        JournalFormatter.Priority(Serilog.Events.LogEventLevel.Information).Should().Be(6);
        JournalFormatter.Priority(Serilog.Events.LogEventLevel.Debug).Should().Be(7);
    }

    /// <summary>Starts the real daemon with a free loopback HTTP port, collecting stdout lines when asked.</summary>
    internal static Process StartDaemon(IEnumerable<string> args, IDictionary<string, string?> env, List<string>? stdout)
    {
        var environment = new Dictionary<string, string?>(env) { ["Backup__Log__File"] = "", ["VELOZ_BACKUP_CONFIG"] = null };
        var (file, prefix) = VelozBackupBinary.Command;
        var process = ChildProcess.Start(file, [.. prefix, .. args, $"--Backup:Http:Url=http://127.0.0.1:{FreePort()}"], environment);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null && stdout is not null)
            {
                lock (stdout)
                {
                    stdout.Add(e.Data);
                }
            }
        };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    internal static int FreePort() => Infrastructure.TestPorts.Free();

    internal static async Task StopAsync(Process daemon)
    {
        if (!daemon.HasExited)
        {
            (await ChildProcess.RunAsync("kill", ["-TERM", daemon.Id.ToString(CultureInfo.InvariantCulture)])).ExitCode.Should().Be(0);
        }

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await daemon.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            daemon.Kill(entireProcessTree: true);
            throw new TimeoutException("the daemon did not stop within 60 s of SIGTERM");
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, Process daemon)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition() && deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            daemon.HasExited.Should().BeFalse("the daemon must keep running");
            await Task.Delay(100);
        }

        condition().Should().BeTrue("the condition holds within 60 s");
    }
}
