using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Wal;
using VelozBackupAgent.Storage.Checksums;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.IntegrationTests.Sources.Wal;

/// <summary>
/// A real WAL directory, a real local store and the real runner around a <see cref="WalSource"/>, composed
/// the way the daemon composes it, in a temp directory that is removed afterwards.
/// </summary>
internal sealed class WalTestBed : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-wal-").FullName;

    public WalTestBed(TimeSpan? settle = null, TimeProvider? time = null, Func<LocalArtifactStore, string, Replicator>? replicator = null)
    {
        WalDir = Path.Combine(_root, "wal");
        Directory.CreateDirectory(WalDir);
        Scratch = Path.Combine(_root, "scratch");
        Directory.CreateDirectory(Scratch);
        var localRoot = Path.Combine(_root, "backup");
        Directory.CreateDirectory(localRoot);
        Options = new BackupOptions { LocalRoot = localRoot, NodeName = "veloz-test" };
        Options.Wal.Directory = WalDir;
        Options.Wal.SettleTime = settle ?? TimeSpan.FromSeconds(2);
        Time = time ?? TimeProvider.System;
        Logs = new CapturedLogs();
        LoggerFactory = Microsoft.Extensions.Logging.LoggerFactory.Create(b => b.AddProvider(Logs).SetMinimumLevel(LogLevel.Trace));
        Local = new LocalArtifactStore(localRoot, Time);
        Replicator = replicator?.Invoke(Local, Options.StateDirectory);
        Repository = new BackupRepository(Local, Replicator);
        Source = NewSource();
        Runner = new BackupRunner([Source], Options.StateDirectory, Time);
    }

    public string WalDir { get; }

    /// <summary>For the test's own files (writer scripts, logs, restores): neither the WAL directory nor the store.</summary>
    public string Scratch { get; }
    public BackupOptions Options { get; }
    public TimeProvider Time { get; }
    public CapturedLogs Logs { get; }
    public ILoggerFactory LoggerFactory { get; }
    public LocalArtifactStore Local { get; }
    public BackupRepository Repository { get; }

    /// <summary>The replicator to S3, when the bed was made with one.</summary>
    public Replicator? Replicator { get; }
    public WalSource Source { get; private set; }
    public BackupRunner Runner { get; private set; }

    public string StoreDir => Path.Combine(Options.LocalRoot, "wal");
    public string IndexPath => Path.Combine(Options.StateDirectory, "wal-index.json");
    public string ActivePath => Path.Combine(WalDir, "orders_current.wal");

    public static string Segment(long number) => $"orders_{number:D16}.wal";

    /// <summary>A new source and runner on the same directories, as after a restart of the agent.</summary>
    public void Restart()
    {
        Source = NewSource();
        Runner = new BackupRunner([Source], Options.StateDirectory, Time);
    }

    public Task<BackupRunResult> SyncAsync(BackupTrigger trigger = BackupTrigger.Scheduled) => Runner.RunAsync("wal", trigger);

    /// <summary>Writes a sealed segment last written <paramref name="age"/> ago (a minute by default: settled).</summary>
    public byte[] WriteSegment(long number, int size = 4096, TimeSpan? age = null, byte[]? content = null)
    {
        content ??= RandomNumberGenerator.GetBytes(size);
        var path = Path.Combine(WalDir, Segment(number));
        File.WriteAllBytes(path, content);
        Age(path, age ?? TimeSpan.FromMinutes(1));
        return content;
    }

    public void Age(string path, TimeSpan age) => File.SetLastWriteTimeUtc(path, Time.GetUtcNow().UtcDateTime - age);

    public byte[] Stored(string name) => File.ReadAllBytes(Path.Combine(StoreDir, name));

    public string StoredSha(string name) => Sha256Sidecar.Parse(File.ReadAllText(Path.Combine(StoreDir, name + ".sha256")), name);

    /// <summary>Complete artifacts in the store (data file with its sidecar).</summary>
    public IReadOnlyList<string> StoredNames()
    {
        if (!Directory.Exists(StoreDir))
        {
            return [];
        }

        var all = Directory.GetFiles(StoreDir).Select(Path.GetFileName).ToHashSet()!;
        return [.. all.Where(n => !n!.EndsWith(".sha256", StringComparison.Ordinal) && !n.StartsWith('.') && all.Contains(n + ".sha256")).Order(StringComparer.Ordinal)!];
    }

    /// <summary>Snapshots of the active file, oldest first (by the time and sequence in the name).</summary>
    public IReadOnlyList<string> Snapshots() => Timed("orders_current_");

    /// <summary>Manifests, oldest first (by the time and sequence in the name).</summary>
    public IReadOnlyList<string> Manifests() => Timed("wal-manifest_");

    /// <summary>The manifest as its sync recorded the directory: a delta resolved through its chain (every segment listed).</summary>
    public async Task<WalManifest> ManifestAsync(string name)
    {
        var raw = await RawManifestAsync(name);
        return await WalManifestChain.ResolveAsync(name, raw, (n, _) =>
            Task.FromResult<Stream?>(File.Exists(Path.Combine(StoreDir, n)) ? File.OpenRead(Path.Combine(StoreDir, n)) : null), "local", CancellationToken.None);
    }

    /// <summary>The manifest as written (a delta lists only its changes).</summary>
    public async Task<WalManifest> RawManifestAsync(string name)
    {
        await using var stream = File.OpenRead(Path.Combine(StoreDir, name));
        return await WalManifest.ReadAsync(stream);
    }

    private List<string> Timed(string prefix) =>
    [
        .. StoredNames().Where(n => n.StartsWith(prefix, StringComparison.Ordinal))
            .Select(n => (Name: n, Parsed: ArtifactName.TryParse(n, out _, out var time, out var sequence, out _) ? (time, sequence) : throw new InvalidOperationException(n)))
            .OrderBy(x => x.Parsed).Select(x => x.Name),
    ];

    public static string Sha(byte[] content) => Convert.ToHexStringLower(SHA256.HashData(content));

    public void Dispose()
    {
        LoggerFactory.Dispose();
        foreach (var file in Directory.EnumerateFiles(_root, "*", SearchOption.AllDirectories))
        {
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        Directory.Delete(_root, recursive: true);
    }

    private WalSource NewSource() => new(Options, Repository, Time, LoggerFactory);
}

/// <summary>One captured log line.</summary>
internal sealed record LogLine(LogLevel Level, int EventId, string Category, string Message);

/// <summary>Keeps every log line, so tests can check what an operator would see.</summary>
internal sealed class CapturedLogs : ILoggerProvider
{
    private readonly ConcurrentQueue<LogLine> _lines = new();

    public IReadOnlyList<LogLine> Lines => [.. _lines];

    public IReadOnlyList<LogLine> WithEvent(int eventId) => [.. _lines.Where(l => l.EventId == eventId)];

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<LogLine> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue(new LogLine(logLevel, eventId.Id, category, formatter(state, exception)));
    }
}
