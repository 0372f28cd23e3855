using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.IntegrationTests.Sources.Archives;

/// <summary>Keeps every log line (rendered message and exception text) so tests can search them.</summary>
public sealed class CapturedLogs : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyList<string> Lines => [.. _lines];

    public ILoggerFactory Factory() => LoggerFactory.Create(b => b.AddProvider(this).SetMinimumLevel(LogLevel.Trace));

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(CapturedLogs owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner._lines.Enqueue($"{logLevel} {category}: {formatter(state, exception)} {exception}");
    }
}

/// <summary>A temp directory with a source tree and a local backup root, and the options and repository over them.</summary>
public sealed class SourceWorkspace : IDisposable
{
    public SourceWorkspace(string prefix)
    {
        Directory = System.IO.Directory.CreateTempSubdirectory(prefix).FullName;
        Source = Path.Combine(Directory, "source");
        BackupRoot = Path.Combine(Directory, "backup");
        System.IO.Directory.CreateDirectory(Source);
        System.IO.Directory.CreateDirectory(BackupRoot);
        Options = new BackupOptions { LocalRoot = BackupRoot };
        Repository = new BackupRepository(new LocalArtifactStore(BackupRoot));
    }

    public string Directory { get; }

    public string Source { get; }

    public string BackupRoot { get; }

    public BackupOptions Options { get; }

    public BackupRepository Repository { get; }

    public CapturedLogs Logs { get; } = new();

    /// <summary>Writes a file under the source tree (parents created) with a mode, returning its path.</summary>
    public string Write(string relative, string content, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead)
    {
        var path = Path.Combine(Source, relative);
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        File.SetUnixFileMode(path, mode);
        return path;
    }

    /// <summary>Every file in the kind's store directory (artifacts, sidecars, and anything a failed write left).</summary>
    public string[] StoredFiles(string kind)
    {
        var dir = Path.Combine(BackupRoot, kind);
        return System.IO.Directory.Exists(dir) ? [.. System.IO.Directory.GetFiles(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal)!] : [];
    }

    /// <summary>Only complete artifacts (those with their sidecar; no temporary files), in ordinal name order.</summary>
    public string[] Artifacts(string kind)
    {
        var files = StoredFiles(kind);
        return [.. files.Where(f => !f.StartsWith('.') && !f.EndsWith(".sha256", StringComparison.Ordinal) && files.Contains(f + ".sha256"))];
    }

    public string PathOf(string kind, string name) => Path.Combine(BackupRoot, kind, name);

    public void Dispose()
    {
        if (System.IO.Directory.Exists(Directory))
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }
}

/// <summary>The real tar and friends.</summary>
public static class Tools
{
    public static async Task<string[]> TarListAsync(string archive, params string[] extra)
    {
        var r = await ChildProcess.RunAsync("tar", ["-tzf", archive, .. extra]);
        r.ExitCode.Should().Be(0, r.StdErr);
        return r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    public static async Task<string> TarVerboseAsync(string archive)
    {
        var r = await ChildProcess.RunAsync("tar", ["--numeric-owner", "--full-time", "-tvzf", archive]);
        r.ExitCode.Should().Be(0, r.StdErr);
        return r.StdOut;
    }

    public static async Task TarExtractAsync(string archive, string into)
    {
        Directory.CreateDirectory(into);
        var r = await ChildProcess.RunAsync("tar", ["-xzf", archive, "-C", into]);
        r.ExitCode.Should().Be(0, r.StdErr);
    }

    public static async Task<string> StatAsync(string path, string format)
    {
        var r = await ChildProcess.RunAsync("stat", ["-c", format, path]);
        r.ExitCode.Should().Be(0, r.StdErr);
        return r.StdOut.Trim();
    }

    public static async Task RunAsync(string file, params string[] args)
    {
        var r = await ChildProcess.RunAsync(file, args);
        r.ExitCode.Should().Be(0, $"{file} {string.Join(' ', args)}: {r.StdErr}");
    }

    /// <summary>Polls <paramref name="condition"/> every 50 ms until it holds or <paramref name="within"/> passes.</summary>
    public static async Task<bool> EventuallyAsync(Func<bool> condition, TimeSpan within)
    {
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        while (deadline.Elapsed < within)
        {
            if (condition())
            {
                return true;
            }

            await Task.Delay(50);
        }

        return condition();
    }
}

/// <summary>
/// Makes a file unreadable for this process. chmod 000 does not stop root, so as root (CI) a write-only
/// sysfs attribute, which the kernel refuses to open for reading even to root, is bind-mounted over it.
/// </summary>
public sealed class UnreadableFile : IAsyncDisposable
{
    private readonly string _path;
    private readonly bool _mounted;

    private UnreadableFile(string path, bool mounted)
    {
        _path = path;
        _mounted = mounted;
    }

    public static async Task<UnreadableFile> MakeAsync(string path)
    {
        if (Environment.UserName != "root")
        {
            File.SetUnixFileMode(path, UnixFileMode.None);
            return new UnreadableFile(path, mounted: false);
        }

        var writeOnly = Directory.EnumerateDirectories("/sys/bus").Select(d => Path.Combine(d, "uevent"))
            .FirstOrDefault(f => File.Exists(f) && File.GetUnixFileMode(f) == UnixFileMode.UserWrite)
            ?? throw new InvalidOperationException("no write-only sysfs attribute (/sys/bus/*/uevent) to make an unreadable file for root");
        await Tools.RunAsync("mount", "--bind", writeOnly, path);
        return new UnreadableFile(path, mounted: true);
    }

    public async ValueTask DisposeAsync()
    {
        if (_mounted)
        {
            await Tools.RunAsync("umount", _path);
        }
        else
        {
            File.SetUnixFileMode(_path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }
}
