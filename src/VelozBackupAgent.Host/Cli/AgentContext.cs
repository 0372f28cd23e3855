using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Serilog;
using Serilog.Events;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Restore;
using VelozBackupAgent.Retention;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Stores;

namespace VelozBackupAgent.Host.Cli;

/// <summary>
/// Everything a verb needs, composed once from configuration: options, logging, the local store, the
/// replica and the replicator. The daemon and every one-shot verb build it the same way, so they agree
/// on paths, names and checks.
/// </summary>
internal sealed class AgentContext : IAsyncDisposable
{
    /// <summary>Where appsettings.json is looked for when neither --config nor VELOZ_BACKUP_CONFIG names one.</summary>
    public const string SystemConfigPath = "/etc/veloz-backup/appsettings.json";

    private readonly Serilog.Core.Logger _serilog;
    private readonly List<IArtifactStore> _extraStores = [];
    private readonly TimeSpan _unreachableHold;
    private Pitr.WalReceiver? _receiver;

    private AgentContext(BackupOptions options, IConfiguration configuration, Serilog.Core.Logger serilog, string? configPath, bool daemon)
    {
        // A one-shot command gives S3 one chance: once found unreachable (after its retries), every later call in the
        // same command fails at once. The daemon keeps retrying on its own schedule (the replicator's backoff), so off.
        _unreachableHold = daemon ? TimeSpan.Zero : Timeout.InfiniteTimeSpan;
        Options = options;
        Configuration = configuration;
        ConfigPath = configPath;
        _serilog = serilog;
        // One factory for CLI verbs (no host) and the daemon alike, built before any host exists because the stores,
        // sources and runner are made here; so not Serilog.Extensions.Hosting, whose AddSerilog builds the logger
        // inside a host and would leave every CLI verb with a second set-up (decided for issue 17).
        LoggerFactory = Microsoft.Extensions.Logging.LoggerFactory.Create(b =>
        {
            b.AddSerilog(serilog, dispose: false).SetMinimumLevel(LogLevel.Trace);
            if (daemon)
            {
                Daemon.WindowsService.AddEventLog(b);
            }
        });
        Time = TimeProvider.System;
        Local = new LocalArtifactStore(options.LocalRoot, Time, LoggerFactory.CreateLogger<LocalArtifactStore>());
        Queue = new UploadQueue(options.StateDirectory);
        if (options.S3.Enabled)
        {
            Remote = StoreComposition.CreateS3(options, LoggerFactory, Time, _unreachableHold);
            Replicator = new Replicator(Local, Remote, Queue, options.Replication, Time, LoggerFactory.CreateLogger<Replicator>());
        }

        Repository = new BackupRepository(Local, Replicator);
        WalArchive = new Pitr.WalArchive(options, Repository, LoggerFactory.CreateLogger<Pitr.WalArchive>());
        Pruner = new Pruner(options, Stores, WalManifests.ReadSegmentNamesAsync, Time, LoggerFactory.CreateLogger<Pruner>());
        Runner = new BackupRunner(BackupSources.Create(options, Repository, Time, LoggerFactory, WalArchive), options.StateDirectory, Time, LoggerFactory.CreateLogger<BackupRunner>(), Local);
    }

    public BackupOptions Options { get; }
    public IConfiguration Configuration { get; }
    public string? ConfigPath { get; }
    public ILoggerFactory LoggerFactory { get; }
    public TimeProvider Time { get; }
    public LocalArtifactStore Local { get; }
    public IArtifactStore? Remote { get; }
    public UploadQueue Queue { get; }
    public Replicator? Replicator { get; }
    public BackupRepository Repository { get; }

    /// <summary>The PostgreSQL WAL in the store (kind pitr): what the receiver and pg-wal-push store through.</summary>
    public Pitr.WalArchive WalArchive { get; }

    /// <summary>The daemon's WAL receiver, made on first use (only the daemon runs it).</summary>
    public Pitr.WalReceiver Receiver => _receiver ??= new Pitr.WalReceiver(Options, WalArchive, Time, LoggerFactory);

    /// <summary>Applies retention to every kind in every store.</summary>
    public Pruner Pruner { get; }

    /// <summary>Runs the enabled backup kinds (one at a time per kind, across processes too).</summary>
    public BackupRunner Runner { get; }

    /// <summary>
    /// The restore procedures, reading from the local store, the configured S3 replica, or any other
    /// <c>s3://bucket/node</c> with Backup:S3's endpoint settings.
    /// </summary>
    public Restorer CreateRestorer(IProgress<TransferProgress>? progress = null)
    {
        var sources = new RestoreSources(Options, Local, Remote, (bucket, prefix) =>
        {
            var store = StoreComposition.CreateS3(Options, LoggerFactory, bucket, prefix, Time, _unreachableHold);
            _extraStores.Add(store);
            return store;
        }, progress);
        var baseBackup = Runner.Sources.OfType<Pitr.BaseBackupSource>().FirstOrDefault();
        return new Restorer(Options, sources, Time, LoggerFactory)
        {
            // Called while the restore holds the pitr lock, so directly rather than through the runner.
            FreshBaseBackup = baseBackup is null ? null : async ct => (await baseBackup.RunAsync(BackupTrigger.Manual, ct)).Detail ?? "",
        };
    }

    /// <summary>The verification checklist over this agent's stores.</summary>
    public Verification.Verifier CreateVerifier() =>
        new(Options, Local, Remote, Replicator, CreateRestorer(), Time, LoggerFactory.CreateLogger<Verification.Verifier>());

    /// <summary>The stores a verb may read: local first, then the replica when configured.</summary>
    public IEnumerable<IArtifactStore> Stores => Remote is null ? [Local] : [Local, Remote];

    /// <summary>
    /// Reads configuration (file, then environment, then <paramref name="overrides"/>), validates it and
    /// composes the agent. Throws <see cref="BackupConfigurationException"/> naming every wrong key.
    /// </summary>
    /// <param name="configPath">--config FILE, or null to search the usual places.</param>
    /// <param name="overrides">Command-line overrides such as <c>--Backup:LocalRoot=/x</c>.</param>
    /// <param name="daemon">True for <c>run</c>: logs go to the console at the configured level.</param>
    /// <param name="verbose">For one-shot verbs: log lines also go to stderr (otherwise only to the log file,
    /// so a failure prints exactly one line).</param>
    public static AgentContext Create(string? configPath, IReadOnlyList<string> overrides, bool daemon, bool verbose = false)
    {
        var path = ResolveConfigPath(configPath);
        var builder = new ConfigurationBuilder();
        if (path is not null)
        {
            builder.AddJsonFile(path, optional: false, reloadOnChange: false);
        }

        IConfigurationRoot configuration;
        try
        {
            configuration = builder.AddEnvironmentVariables().AddCommandLine(overrides.ToArray()).Build();
        }
        catch (InvalidDataException ex) when (path is not null)
        {
            // The JSON provider wraps the parser's error twice; the operator needs the file and the position.
            throw new BackupConfigurationException(ConfigFileProblem.Describe(path, ex), ex);
        }

        var options = BackupConfiguration.Load(configuration);
        var serilog = CreateSerilog(options.Log, daemon, verbose);
        return new AgentContext(options, configuration, serilog, path, daemon);
    }

    private static string? ResolveConfigPath(string? configPath)
    {
        if (configPath is not null)
        {
            return ConfigFileProblem.CheckReadable(configPath, "");
        }

        if (Environment.GetEnvironmentVariable("VELOZ_BACKUP_CONFIG") is { Length: > 0 } fromEnv)
        {
            return ConfigFileProblem.CheckReadable(fromEnv, " (from VELOZ_BACKUP_CONFIG)");
        }

        if (File.Exists(SystemConfigPath))
        {
            return ConfigFileProblem.CheckReadable(SystemConfigPath, "");
        }

        var beside = Path.Combine(AppContext.BaseDirectory, "appsettings.json");
        return File.Exists(beside) ? ConfigFileProblem.CheckReadable(beside, "") : null;
    }

    private static Serilog.Core.Logger CreateSerilog(LogOptions log, bool daemon, bool verbose)
    {
        var level = ParseLevel(log.Level);
        var config = new LoggerConfiguration().MinimumLevel.Is(level < LogEventLevel.Information ? level : LogEventLevel.Information);
        if (level >= LogEventLevel.Information)
        {
            // Quartz announces its own set-up (store, thread pool, meta-data) at Information on every start; the
            // agent logs what is scheduled itself. Its warnings and errors still come through; Debug shows all.
            config.MinimumLevel.Override("Quartz", LogEventLevel.Warning);
        }

        const string ConsoleTemplate = "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj}{NewLine}{Exception}";
        if (daemon)
        {
            // Under systemd the journal adds its own timestamps and takes the priority from a "<N>" prefix.
            if (Daemon.JournalFormatter.UnderJournal)
            {
                config.WriteTo.Console(new Daemon.JournalFormatter(), restrictedToMinimumLevel: level);
            }
            else
            {
                config.WriteTo.Console(restrictedToMinimumLevel: level, outputTemplate: ConsoleTemplate);
            }
        }
        else if (verbose)
        {
            // One-shot verbs print results on stdout; with --verbose the log lines go to stderr too.
            config.WriteTo.Console(restrictedToMinimumLevel: level, outputTemplate: ConsoleTemplate, standardErrorFromLevel: LogEventLevel.Verbose);
        }

        if (!string.IsNullOrWhiteSpace(log.File))
        {
            PrivateLogFile.CreateDirectoryOf(log.File);
            config.WriteTo.File(log.File, restrictedToMinimumLevel: level, rollingInterval: RollingInterval.Day,
                retainedFileCountLimit: 31, fileSizeLimitBytes: 100L * 1024 * 1024, rollOnFileSizeLimit: true,
                outputTemplate: "{Timestamp:yyyy-MM-ddTHH:mm:ss.fffzzz} [{Level:u3}] {Message:lj} {Properties:j}{NewLine}{Exception}",
                hooks: new PrivateLogFile());
        }

        return config.CreateLogger();
    }

    private static LogEventLevel ParseLevel(string level) => level.ToUpperInvariant() switch
    {
        "VERBOSE" or "TRACE" => LogEventLevel.Verbose,
        "DEBUG" => LogEventLevel.Debug,
        "WARNING" => LogEventLevel.Warning,
        "ERROR" => LogEventLevel.Error,
        "FATAL" or "CRITICAL" => LogEventLevel.Fatal,
        _ => LogEventLevel.Information,
    };

    public async ValueTask DisposeAsync()
    {
        Replicator?.Dispose();
        (Remote as IDisposable)?.Dispose();
        foreach (var store in _extraStores)
        {
            (store as IDisposable)?.Dispose();
        }

        LoggerFactory.Dispose();
        await _serilog.DisposeAsync();
    }
}

/// <summary>
/// The log file is 0600 (and a log directory the agent makes is 0700) whatever the umask: log lines name hosts,
/// paths and databases. Serilog opens each (rolled) file itself, with the default mode; this hook tightens it
/// through the open handle before the first line is written.
/// </summary>
internal sealed class PrivateLogFile : Serilog.Sinks.File.FileLifecycleHooks
{
    public override Stream OnFileOpened(string path, Stream underlyingStream, System.Text.Encoding encoding)
    {
        // The stream handed here is Serilog's wrapper (it counts bytes for the size limit), not the FileStream.
        if (!OperatingSystem.IsWindows())
        {
            try
            {
                if ((File.GetUnixFileMode(path) & ~PrivateFiles.FileMode) != 0)
                {
                    File.SetUnixFileMode(path, PrivateFiles.FileMode);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // A log file of another user that we may append to: its owner chose its mode.
            }
        }

        return underlyingStream;
    }

    /// <summary>Makes the log file's directory (0700) when it is missing; when that fails Serilog reports it, as before.</summary>
    public static void CreateDirectoryOf(string logFile)
    {
        try
        {
            if (Path.GetDirectoryName(Path.GetFullPath(logFile)) is { Length: > 0 } directory && !Directory.Exists(directory))
            {
                PrivateFiles.CreateDirectory(directory, tighten: false);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            // Logging never stops the agent: the file sink then writes nothing, as it did before.
        }
    }
}
