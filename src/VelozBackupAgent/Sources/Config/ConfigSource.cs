using Microsoft.Extensions.Logging;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Restore;
using VelozBackupAgent.Sources.Archives;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Sources.Config;

/// <summary>
/// The configuration kind: the files under <c>Backup:Config:Root</c> matched by <c>Include</c>/<c>Exclude</c>
/// (never <c>*.secret</c>, never the secrets directory) as one streamed <c>config_YYYYMMDD_HHMMSS.tar.gz</c>
/// with paths relative to the root, so <c>tar -xzf config_….tar.gz -C /etc/veloz</c> restores it.
/// Scheduled, missed and manual runs always write an archive; a change-triggered run writes only when the
/// tree differs (paths, types, bytes, permission bits, owners, link targets) from the newest stored archive,
/// read back and compared entry by entry. Comparing with the archive itself, not a remembered hash, stays
/// right across restarts, after retention pruned the newest one, and when a stored archive no longer matches
/// its checksum (it then counts as different and a fresh one is written).
/// </summary>
public sealed partial class ConfigSource : IWatchableSource
{
    private const string Prefix = "config";
    private const string Suffix = ".tar.gz";
    private const int Attempts = 3;

    private readonly BackupOptions _options;
    private readonly BackupRepository _repository;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public ConfigSource(BackupOptions options, BackupRepository repository, TimeProvider time, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(repository);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _options = options;
        _repository = repository;
        _time = time;
        _logger = loggerFactory.CreateLogger<ConfigSource>();
    }

    /// <inheritdoc />
    public string Kind => BackupKinds.Config;

    /// <inheritdoc />
    public async Task<BackupOutput> RunAsync(BackupTrigger trigger, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var plan = Scan();
            try
            {
                string? reason = null;
                if (trigger == BackupTrigger.Change)
                {
                    var (same, difference) = await CompareWithNewestAsync(plan, cancellationToken).ConfigureAwait(false);
                    if (same is not null)
                    {
                        return BackupOutput.Nothing($"unchanged since {same}");
                    }

                    reason = difference;
                }

                var name = await ArtifactNameAllocator.AllocateAsync(_repository.Local, Kind, Prefix, Suffix, _time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
                var owners = OwnerNames.Load();
                ArtifactInfo info;
                await using (var archive = ProducerStream.Start((stream, ct) => TarGzArchive.WriteAsync(stream, plan.Entries, owners, ct), cancellationToken))
                {
                    info = await _repository.StoreAsync(Kind, name, archive, cancellationToken: cancellationToken).ConfigureAwait(false);
                }

                var mirrored = await MirrorAsync(info, cancellationToken).ConfigureAwait(false);
                return new BackupOutput([info], Detail(plan, reason) + mirrored);
            }
            catch (SourceChangedException ex) when (attempt < Attempts)
            {
                Log.Retrying(_logger, ex.Message, attempt);
            }
            catch (SourceChangedException ex)
            {
                throw new BackupSourceException($"{ex.Message} on {Attempts} attempts in a row; the next run tries again", ex);
            }
        }
    }

    /// <inheritdoc />
    public Task WatchAsync(Func<CancellationToken, Task> changed, CancellationToken cancellationToken)
    {
        var selection = Selection();
        var watcher = new DebouncedWatcher(selection.Root, _time, _logger)
        {
            IncludeSubdirectories = true,
            Relevant = selection.IsRelevant,
        };
        return watcher.RunAsync(changed, cancellationToken);
    }

    private ConfigSelection Selection() =>
        new(_options.Config.Root, _options.Config.Include, _options.Config.Exclude, _options.Secrets.Directory);

    /// <summary>Lists what the archive will contain; every problem is one line naming the key or path.</summary>
    private ConfigPlan Scan()
    {
        const string RootKey = $"{BackupOptions.SectionName}:{nameof(BackupOptions.Config)}:{nameof(ConfigBackupOptions.Root)}";
        var root = _options.Config.Root;
        if (!Directory.Exists(root))
        {
            throw new BackupSourceException(File.Exists(root) ? $"{RootKey} is not a directory: {root}" : $"{RootKey} does not exist: {root}");
        }

        var selection = Selection();

        // The same directory reached by another path (a bind mount, a differently spelt setting) is still secrets.
        FileStatus? secrets = selection.SecretsDirectory is { } s ? SafeStat(s) : null;
        var walked = SourceTree.Walk(root, e => selection.Keep(e) && !(e.Kind == FileKind.Directory && secrets is { } d && e.Status.SameInode(d)));
        var plan = selection.Plan(walked);
        if (plan.FileCount == 0)
        {
            throw new BackupSourceException(
                $"{BackupOptions.SectionName}:{nameof(BackupOptions.Config)}:{nameof(ConfigBackupOptions.Include)} matched no file under {selection.Root} ({selection.Describe()}): refusing to store an empty configuration backup");
        }

        foreach (var glob in plan.UnmatchedIncludes)
        {
            Log.IncludeMatchedNothing(_logger, glob, selection.Root);
        }

        foreach (var link in plan.LinksNotContained)
        {
            Log.LinkTargetNotContained(_logger, link);
        }

        foreach (var special in plan.SkippedSpecial)
        {
            Log.SpecialFileSkipped(_logger, special);
        }

        return plan;
    }

    private static FileStatus? SafeStat(string path)
    {
        try
        {
            return FileStatus.TryStat(path, followLinks: true);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>(name of the newest archive when it holds exactly this tree, else null; what differs, if known).</summary>
    private async Task<(string? Same, string? Difference)> CompareWithNewestAsync(ConfigPlan plan, CancellationToken cancellationToken)
    {
        var newest = (await BackupCatalog.ListAsync(_repository.Local, Kind, cancellationToken).ConfigureAwait(false))
            .FirstOrDefault(e => e.Time is not null && e.Name.StartsWith(Prefix + "_", StringComparison.Ordinal) && e.Name.EndsWith(Suffix, StringComparison.Ordinal));
        if (newest is null)
        {
            return (null, "no earlier configuration backup");
        }

        try
        {
            await using var stored = await _repository.Local.OpenReadAsync(Kind, newest.Name, cancellationToken).ConfigureAwait(false);
            var difference = await TarGzArchive.FirstDifferenceAsync(stored, plan.Entries, cancellationToken).ConfigureAwait(false);
            return difference is null ? (newest.Name, null) : (null, difference);
        }
        catch (Exception ex) when (ex is StoreException or IOException or InvalidDataException or FormatException)
        {
            Log.NewestUnreadable(_logger, newest.Name, ex.Message);
            return (null, $"{newest.Name} could not be read back");
        }
    }

    /// <summary>
    /// Commits the stored archive to Backup:Config:GitRepository (a repository without commits first gets every
    /// stored archive, oldest first). The archive is already stored: a mirror that fails is a warning and a
    /// note in the run's detail, and the next archive commits the whole tree again, so the mirror catches up.
    /// </summary>
    private async Task<string> MirrorAsync(ArtifactInfo stored, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(_options.Config.GitRepository))
        {
            return "";
        }

        var mirror = new ConfigGitMirror(_options.Config.GitRepository, _logger);
        try
        {
            var empty = await mirror.EnsureRepositoryAsync(cancellationToken).ConfigureAwait(false);
            // Only a mirror without commits needs the store's listing (to be filled oldest first); otherwise the
            // archive just stored is the one to commit, and its time is in its name.
            var archives = empty
                ? (await BackupCatalog.ListAsync(_repository.Local, Kind, cancellationToken).ConfigureAwait(false))
                    .Where(e => e.Time is not null && e.Name.StartsWith(Prefix + "_", StringComparison.Ordinal) && e.Name.EndsWith(Suffix, StringComparison.Ordinal))
                    .Reverse()
                    .ToList()
                : [.. new[] { BackupCatalog.ToEntry(stored, "local") }.Where(e => e.Time is not null)];
            string? last = null;
            var commits = 0;
            foreach (var archive in archives)
            {
                try
                {
                    await using var input = await _repository.Local.OpenReadAsync(Kind, archive.Name, cancellationToken).ConfigureAwait(false);
                    if (await mirror.CommitAsync(archive.Name, archive.Time!.Value, input, cancellationToken).ConfigureAwait(false) is { } subject)
                    {
                        last = subject;
                        commits++;
                    }
                }
                catch (Exception ex) when (archive.Name != stored.Name && (IsUnreadable(ex) || IsUnreadable(ex.InnerException)))
                {
                    // Filling a new mirror: one unreadable old archive must not keep the rest out.
                    Log.GitMirrorSkipped(_logger, archive.Name, ex.Message);
                }
            }

            return last is null ? "; git mirror unchanged" : commits > 1 ? $"; git mirror filled with {commits} commits, last {last}" : $"; git: {last}";
        }
        catch (Exception ex) when (ex is BackupSourceException or StoreException or RestoreIntegrityException or IOException or UnauthorizedAccessException)
        {
            Log.GitMirrorFailed(_logger, _options.Config.GitRepository, stored.Name, ex.Message);
            return $"; git mirror failed: {ex.Message}";
        }
    }

    /// <summary>The archive itself could not be read (checksum, gzip, tar), as opposed to git failing.</summary>
    private static bool IsUnreadable(Exception? ex) => ex is StoreException or RestoreIntegrityException or IOException;

    private static string Detail(ConfigPlan plan, string? reason)
    {
        var detail = $"{plan.FileCount} file(s)";
        if (reason is not null)
        {
            detail += $"; {reason}";
        }

        if (plan.UnmatchedIncludes.Count > 0)
        {
            detail += $"; nothing matched {string.Join(", ", plan.UnmatchedIncludes)}";
        }

        return detail;
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Config.IncludeMatchedNothing, LogLevel.Warning, "config: Include glob {Glob} matched no file under {Root}")]
        public static partial void IncludeMatchedNothing(ILogger logger, string glob, string root);

        [LoggerMessage(LogEvents.Config.LinkTargetNotContained, LogLevel.Warning, "config: symbolic link {Link} is stored as a link; its target is not in the backup (outside the root or not included)")]
        public static partial void LinkTargetNotContained(ILogger logger, string link);

        [LoggerMessage(LogEvents.Config.SpecialFileSkipped, LogLevel.Warning, "config: {Path} is a FIFO, socket or device; not archived")]
        public static partial void SpecialFileSkipped(ILogger logger, string path);

        [LoggerMessage(LogEvents.Config.NewestUnreadable, LogLevel.Warning, "config: the newest backup {Name} cannot be read back ({Reason}); writing a new one")]
        public static partial void NewestUnreadable(ILogger logger, string name, string reason);

        [LoggerMessage(LogEvents.Config.GitMirrorFailed, LogLevel.Warning, "config: the git mirror {Repository} did not take {Artifact} ({Reason}); the archive is stored, the next configuration backup commits the whole tree again")]
        public static partial void GitMirrorFailed(ILogger logger, string repository, string artifact, string reason);

        [LoggerMessage(LogEvents.Config.GitMirrorSkipped, LogLevel.Warning, "config: filling the git mirror, {Artifact} cannot be read ({Reason}); left out")]
        public static partial void GitMirrorSkipped(ILogger logger, string artifact, string reason);

        [LoggerMessage(LogEvents.Config.Retrying, LogLevel.Information, "config: {Reason} (attempt {Attempt}); archiving again from a fresh listing")]
        public static partial void Retrying(ILogger logger, string reason, int attempt);
    }
}
