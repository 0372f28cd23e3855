using System.Globalization;
using System.IO.Compression;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Scheduling;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Database;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Pitr;

/// <summary>
/// The <c>pitr</c> kind's scheduled run (<c>Backup:Pitr:BaseSchedule</c>) and <c>backup pitr</c>: a base backup,
/// <c>pg_basebackup -D - -Ft -X fetch -c fast</c> streamed from its stdout through gzip into the store as
/// <c>base_YYYYMMDD_HHMMSS.tar.gz</c> (one tar with the data directory, the WAL it needs to be consistent in
/// <c>pg_wal/</c>, and the backup manifest), hashed while it streams and never copied whole anywhere; then its
/// metadata <c>base_YYYYMMDD_HHMMSS.json</c> (start and stop LSN, timeline, times, system identifier), read from the
/// stream itself (<c>backup_label</c>, <c>global/pg_control</c>, the manifest's WAL ranges). A base counts only once
/// its metadata is stored; an archive that fails its checks is removed and never replicated.
/// </summary>
/// <remarks>
/// Before it starts, the replication slot is made to exist, so every WAL segment after the backup's start is kept on
/// the server until the receiver has stored it: a base backup is never without the WAL that follows it.
/// </remarks>
public sealed partial class BaseBackupSource : IBackupSource
{
    private const long MiB = 1024 * 1024;
    private readonly BackupOptions _options;
    private readonly BackupRepository _repository;
    private readonly WalArchive _archive;
    private readonly PgTools _tools;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ILogger _childLogger;

    public BaseBackupSource(BackupOptions options, BackupRepository repository, WalArchive archive, TimeProvider time, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _options = options;
        _repository = repository;
        _archive = archive;
        _tools = new PgTools(options.Database);
        _time = time;
        _logger = loggerFactory.CreateLogger<BaseBackupSource>();
        _childLogger = loggerFactory.CreateLogger("VelozBackupAgent.Pitr.PgBasebackup");
    }

    /// <inheritdoc />
    public string Kind => BackupKinds.Pitr;

    /// <summary>The metadata of the last base backup this process took.</summary>
    public BaseBackupInfo? LastBase { get; private set; }

    /// <summary>Takes one base backup, whatever the trigger.</summary>
    public async Task<BackupOutput> RunAsync(BackupTrigger trigger, CancellationToken cancellationToken)
    {
        var connection = PgConnectionInfo.Parse(_options.Database.ConnectionString, Environment.GetEnvironmentVariable);
        var server = new PgServer(connection);
        var facts = await server.ProbeAsync(cancellationToken);
        if (server.Problems(facts) is [var problem, ..])
        {
            throw new BackupSourceException(problem);
        }

        var tool = await _tools.CheckAsync("pg_basebackup", facts.Version.Major, _childLogger, cancellationToken);
        if (await _archive.CheckIdentityAsync(facts.SystemIdentifier, server.Describe(), cancellationToken) is { } otherCluster)
        {
            throw new BackupSourceException(otherCluster);
        }

        if (_options.Pitr.Streaming && await server.SlotAsync(_options.Pitr.Slot, cancellationToken) is null)
        {
            // Keep the WAL after this backup's start until the receiver stored it (it streams from the slot).
            await server.CreateSlotAsync(_options.Pitr.Slot, cancellationToken);
            Log.SlotCreated(_logger, _options.Pitr.Slot);
        }

        var gzip = _options.Pitr.Compression == "gzip";
        var startedAt = _time.GetUtcNow();
        var started = _time.GetTimestamp();
        var name = await ArtifactNameAllocator.AllocateAsync(_repository.Local, Kind, BackupSchedule.PitrBasePrefix, gzip ? ".tar.gz" : ".tar", startedAt, cancellationToken);
        var stem = name[..name.IndexOf(".tar", StringComparison.Ordinal)];
        var spec = new ChildProcessSpec(_tools.PathOf("pg_basebackup"),
            ["--pgdata=-", "--format=tar", "--wal-method=fetch", "--checkpoint=fast", "--no-password", "--label=veloz-backup " + stem], "pg_basebackup")
        {
            Environment = new Dictionary<string, string?>(connection.ChildEnvironment(), StringComparer.Ordinal) { ["PGAPPNAME"] = "veloz-backup-base" },
            Inherit = InheritedVariables.Libpq,
            InstallHint = _tools.InstallHint(facts.Version.Major),
        };

        Log.Starting(_logger, server.Describe(), facts.Version.Text, name);
        TarScanner? scanner = null;
        StoreResult stored;
        try
        {
            await using var child = ChildProcess.Start(spec, _childLogger);
            scanner = new TarScanner(child.Output);
            var tar = scanner;
            await using var content = gzip
                ? ProducerStream.Start(async (sink, ct) =>
                {
                    await using var compressor = new GZipStream(sink, CompressionLevel.Fastest, leaveOpen: true);
                    await tar.CopyToAsync(compressor, 1 << 20, ct);
                }, cancellationToken)
                : tar;
            stored = await _repository.StoreAsync(Kind, name, content, new ArtifactWriteOptions
            {
                Validate = (_, _) =>
                {
                    Check(tar.Result, name);
                    return Task.CompletedTask;
                },
                OverlapBufferBytes = _options.Database.S3OverlapBufferMiB * MiB,
            }, cancellationToken);
        }
        catch (BackupSourceException ex) when (ex.Message.Contains("can only write single tablespace", StringComparison.OrdinalIgnoreCase))
        {
            throw new BackupSourceException($"{server.Describe()} has tablespaces besides the default ones, which a streamed base backup (pg_basebackup -D - -Ft) cannot carry: move them into the default tablespace, or back the cluster up with the database kind only", ex);
        }
        catch (BackupSourceException ex) when (ex.Message.StartsWith("pg_basebackup", StringComparison.Ordinal))
        {
            var (_, line) = PgTools.Explain(ex.Message, server.Describe(), facts.User, _options.Pitr.Slot, "pg_basebackup failed");
            throw new BackupSourceException(line, ex);
        }

        var result = scanner.Result;
        var label = result.Label!;
        var range = result.WalRanges[^1];
        var info = new BaseBackupInfo
        {
            Format = 1,
            Archive = stored.Artifact.Name,
            ArchiveSha256 = stored.Artifact.Sha256!,
            ArchiveBytes = stored.Artifact.Size,
            TarBytes = result.TarBytes,
            Compression = gzip ? "gzip" : "none",
            SystemIdentifier = (result.SystemIdentifier ?? facts.SystemIdentifier).ToString(CultureInfo.InvariantCulture),
            ServerVersion = facts.Version.Text,
            ServerVersionNum = facts.VersionNum,
            Timeline = label.StartTimeline,
            StartLsn = label.StartLsn.ToString(),
            StartWalFile = label.StartWalFile.ToString(),
            StopLsn = range.End.ToString(),
            StopTimeline = range.Timeline,
            StartTime = startedAt,
            StopTime = _time.GetUtcNow(),
            WalSegmentSize = facts.SegmentSize,
            ManifestSha256 = result.ManifestSha256,
            Label = label.Label,
            PgBasebackupVersion = tool.Text,
        };

        var infoName = stem + BackupSchedule.PitrBaseInfoSuffix;
        await using (var json = new MemoryStream(info.ToUtf8Bytes()))
        {
            var infoArtifact = await _repository.StoreAsync(Kind, infoName, json, cancellationToken: cancellationToken);
            LastBase = info;
            Log.Stored(_logger, name, stored.Artifact.Size, result.TarBytes, info.StartLsn, info.StopLsn, info.Timeline, _time.GetElapsedTime(started).TotalSeconds);
            if (await _archive.IdentityAsync(cancellationToken) is null)
            {
                _archive.RememberIdentity(ulong.Parse(info.SystemIdentifier, CultureInfo.InvariantCulture));
            }

            var replica = stored.Replica switch
            {
                ReplicaOutcome.Uploaded => "; s3: copied during the backup, checksum verified",
                ReplicaOutcome.Queued => "; s3: queued",
                _ => "",
            };
            return new BackupOutput([stored.Artifact, infoArtifact], string.Create(CultureInfo.InvariantCulture,
                $"PostgreSQL {facts.Version.Text}, timeline {info.Timeline}, WAL {info.StartLsn} to {info.StopLsn}, tar {Bytes(result.TarBytes)} stored as {Bytes(stored.Artifact.Size)}{replica}"));
        }
    }

    /// <summary>A stored archive must be a whole base backup: label, manifest, WAL range, a proper end; otherwise it is discarded.</summary>
    internal static void Check(TarScanResult result, string name)
    {
        var problems = new List<string>(result.Problems);
        if (!result.Ended)
        {
            problems.Add("the tar stream ended early");
        }

        if (result.Label is null)
        {
            problems.Add("no backup_label in it");
        }

        if (result.ManifestSha256 is null)
        {
            problems.Add("no backup_manifest in it");
        }

        if (result.WalRanges.Count == 0)
        {
            problems.Add("no WAL range in its manifest");
        }

        if (problems.Count > 0)
        {
            throw new BackupSourceException($"the base backup {name} is not complete ({string.Join("; ", problems)}), so it was discarded");
        }
    }

    private static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):0.0} GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):0.0} MiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:0.0} KiB"),
    };

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Pitr.BaseBackupStarting, LogLevel.Information, "pitr: base backup of {Server} (PostgreSQL {Version}) into {Name}")]
        public static partial void Starting(ILogger logger, string server, string version, string name);

        [LoggerMessage(LogEvents.Pitr.BaseBackupStored, LogLevel.Information, "pitr: stored base backup {Name}: {Bytes} bytes ({TarBytes} uncompressed), WAL {StartLsn} to {StopLsn} on timeline {Timeline}, {Seconds:0.0} s")]
        public static partial void Stored(ILogger logger, string name, long bytes, long tarBytes, string startLsn, string stopLsn, uint timeline, double seconds);

        [LoggerMessage(LogEvents.Pitr.BaseBackupSlotCreated, LogLevel.Information, "pitr: created the replication slot {Slot} before the base backup, so the WAL after it is kept until it is streamed")]
        public static partial void SlotCreated(ILogger logger, string slot);
    }
}
