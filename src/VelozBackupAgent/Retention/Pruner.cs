using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Retention;

/// <summary>One artifact retention deleted (or, in a dry run, would delete).</summary>
public sealed record PruneAction(string Kind, string Target, string Name, long Size, DateTimeOffset? Time);

/// <summary>What a prune did: deletions, refusals (nothing deleted for that kind and store, and why), errors.</summary>
public sealed record PruneReport(bool DryRun, IReadOnlyList<PruneAction> Deleted, IReadOnlyList<string> Refusals, IReadOnlyList<string> Errors)
{
    /// <summary>Copies retention would have deleted but the store still locks (S3 Object Lock): kept, oldest lock first.</summary>
    public IReadOnlyList<LockedCopy> Locked { get; init; } = [];
}

/// <summary>
/// Applies <see cref="RetentionPolicy"/> to every kind in every store (local and S3). Holds the kind's lock
/// while it works, so it never deletes while a backup (or restore) of that kind runs; a kind whose lock is
/// busy is skipped this time. Remembers when it last ran (<c>.state/last-prune</c>) to notice a clock that
/// went backwards. Each deletion is logged and raised as <see cref="Deleted"/>.
/// </summary>
public sealed partial class Pruner
{
    private readonly BackupOptions _options;
    private readonly IReadOnlyList<IArtifactStore> _stores;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Func<IArtifactStore, CatalogEntry, CancellationToken, Task<WalManifestLinks?>> _manifestSegments;

    /// <param name="options">Retention per kind and the state directory.</param>
    /// <param name="stores">The local store and, when enabled, S3.</param>
    /// <param name="manifestSegments">Reads the segment names a WAL manifest lists (and a delta's parent); null when it cannot be read.</param>
    /// <param name="timeProvider">The clock.</param>
    /// <param name="logger">Where deletions and refusals are logged.</param>
    public Pruner(
        BackupOptions options,
        IEnumerable<IArtifactStore> stores,
        Func<IArtifactStore, CatalogEntry, CancellationToken, Task<WalManifestLinks?>> manifestSegments,
        TimeProvider? timeProvider = null,
        ILogger<Pruner>? logger = null)
    {
        _options = options;
        _stores = [.. stores];
        _manifestSegments = manifestSegments;
        _time = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger<Pruner>.Instance;
    }

    /// <summary>Raised for every artifact deleted (not in a dry run).</summary>
    public event EventHandler<PruneAction>? Deleted;

    private string LastPrunePath => Path.Combine(_options.StateDirectory, "last-prune");

    public async Task<PruneReport> PruneAsync(bool dryRun, CancellationToken cancellationToken = default)
    {
        var now = _time.GetUtcNow();
        var lastPrune = ReadLastPrune();
        var deleted = new List<PruneAction>();
        var refusals = new List<string>();
        var errors = new List<string>();
        var locked = new List<LockedCopy>();
        foreach (var kind in BackupKinds.All)
        {
            var retention = RetentionOf(kind);
            using var kindLock = KindLock.TryAcquire(_options.StateDirectory, kind, out var holder);
            if (kindLock is null)
            {
                refusals.Add($"{kind}: skipped, a backup or restore of {kind} is running" + (holder is int pid ? $" (pid {pid})" : ""));
                continue;
            }

            foreach (var store in _stores)
            {
                try
                {
                    if (kind == BackupKinds.Pitr)
                    {
                        // Checksums are not needed to decide, and a WAL archive holds many thousand segments.
                        var pitrEntries = await BackupCatalog.ListWithoutChecksumsAsync(store, kind, cancellationToken).ConfigureAwait(false);
                        var bases = await ReadBaseInfosAsync(store, pitrEntries, cancellationToken).ConfigureAwait(false);
                        var segmentSize = bases.Values.FirstOrDefault(b => b is not null)?.WalSegmentSize ?? 16L * 1024 * 1024;
                        var pitrDecision = await RespectLocksAsync(store, now, locked, keep => Pitr.PitrRetention.Decide(
                            pitrEntries, retention, now, lastPrune, e => bases.GetValueOrDefault(e.Name), segmentSize, keep), cancellationToken).ConfigureAwait(false);
                        await ApplyAsync(kind, store, retention, pitrDecision, dryRun, deleted, refusals, cancellationToken).ConfigureAwait(false);
                        continue;
                    }

                    var entries = await BackupCatalog.ListAsync(store, kind, cancellationToken).ConfigureAwait(false);
                    var cache = new Dictionary<string, WalManifestLinks?>(StringComparer.Ordinal);
                    if (kind == BackupKinds.Wal)
                    {
                        foreach (var manifest in entries.Where(e => e.Name.StartsWith(Scheduling.BackupSchedule.WalManifestPrefix + "_", StringComparison.Ordinal)))
                        {
                            cache[manifest.Name] = await _manifestSegments(store, manifest, cancellationToken).ConfigureAwait(false);
                        }
                    }

                    var decision = await RespectLocksAsync(store, now, locked, keep => RetentionPolicy.Decide(
                        entries, retention, now, lastPrune, keep: keep, manifestLinks: m => cache.GetValueOrDefault(m.Name)), cancellationToken).ConfigureAwait(false);
                    await ApplyAsync(kind, store, retention, decision, dryRun, deleted, refusals, cancellationToken).ConfigureAwait(false);
                }
                catch (StoreException ex)
                {
                    errors.Add($"{kind}/{store.Target}: {ex.Message}");
                    Log.Failed(_logger, kind, store.Target, ex.Message);
                }
            }
        }

        if (!dryRun && (lastPrune is null || now > lastPrune))
        {
            WriteLastPrune(now);
        }

        return new PruneReport(dryRun, deleted, refusals, errors) { Locked = [.. locked.OrderBy(l => l.Until)] };
    }

    /// <summary>The decision with every copy the store still locks kept (<see cref="LockedCopies"/>); those are logged and reported.</summary>
    private async Task<RetentionDecision> RespectLocksAsync(IArtifactStore store, DateTimeOffset now, List<LockedCopy> locked,
        Func<Func<CatalogEntry, bool>?, RetentionDecision> decide, CancellationToken cancellationToken)
    {
        var (decision, kept) = await LockedCopies.RespectAsync(decide(null), keep => decide(keep),
            e => store.LockedUntilAsync(e.Kind, e.Name, cancellationToken), now).ConfigureAwait(false);
        foreach (var (entry, until) in kept)
        {
            locked.Add(new LockedCopy(entry.Kind, store.Target, entry.Name, until));
            Log.Locked(_logger, entry.Kind, store.Target, entry.Name, until);
        }

        return decision;
    }

    private async Task ApplyAsync(string kind, IArtifactStore store, TimeSpan retention, RetentionDecision decision, bool dryRun,
        List<PruneAction> deleted, List<string> refusals, CancellationToken cancellationToken)
    {
        if (decision.Refused is not null)
        {
            refusals.Add($"{kind}/{store.Target}: nothing deleted: {decision.Refused}");
            Log.Refused(_logger, kind, store.Target, decision.Refused);
            return;
        }

        foreach (var entry in decision.Delete)
        {
            var action = new PruneAction(kind, store.Target, entry.Name, entry.Size, entry.Time);
            if (!dryRun)
            {
                await store.DeleteAsync(kind, entry.Name, cancellationToken).ConfigureAwait(false);
                if (kind == BackupKinds.Pitr && entry.Time is null)
                {
                    // WAL has no age of its own: it goes when no kept base backup needs it (or a whole segment replaced its pieces).
                    Log.DeletedWal(_logger, kind, store.Target, entry.Name, entry.Size);
                }
                else
                {
                    Log.DeletedArtifact(_logger, kind, store.Target, entry.Name, entry.Size, retention.TotalDays);
                }

                Deleted?.Invoke(this, action);
            }

            deleted.Add(action);
        }
    }

    /// <summary>The metadata of every PITR base backup in the listing; null for one that cannot be read (retention then keeps all WAL).</summary>
    private static async Task<Dictionary<string, Pitr.BaseBackupInfo?>> ReadBaseInfosAsync(IArtifactStore store, IReadOnlyList<CatalogEntry> entries, CancellationToken cancellationToken)
    {
        var infos = new Dictionary<string, Pitr.BaseBackupInfo?>(StringComparer.Ordinal);
        foreach (var entry in entries.Where(e => Pitr.PitrArtifact.Classify(e.Name)?.Type == Pitr.PitrArtifactType.BaseInfo))
        {
            try
            {
                var stream = await store.OpenReadAsync(BackupKinds.Pitr, entry.Name, cancellationToken).ConfigureAwait(false);
                await using (stream.ConfigureAwait(false))
                {
                    infos[entry.Name] = await Pitr.BaseBackupInfo.ReadAsync(stream, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is StoreException or FormatException or IOException)
            {
                infos[entry.Name] = null;
            }
        }

        return infos;
    }

    private TimeSpan RetentionOf(string kind) => _options.Kind(kind).Retention;

    private DateTimeOffset? ReadLastPrune()
    {
        try
        {
            return DateTimeOffset.TryParse(File.ReadAllText(LastPrunePath).Trim(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private void WriteLastPrune(DateTimeOffset now)
    {
        PrivateFiles.CreateDirectory(_options.StateDirectory);
        PrivateFiles.ReplaceAtomically(LastPrunePath, now.ToString("O", CultureInfo.InvariantCulture) + "\n");
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Retention.DeletedArtifact, LogLevel.Information, "retention deleted {Kind}/{Name} from {Target} ({Bytes} bytes, older than {RetentionDays} days)")]
        public static partial void DeletedArtifact(ILogger logger, string kind, string target, string name, long bytes, double retentionDays);

        [LoggerMessage(LogEvents.Retention.DeletedWal, LogLevel.Information, "retention deleted {Kind}/{Name} from {Target} ({Bytes} bytes): no kept base backup needs it, or its whole segment is stored")]
        public static partial void DeletedWal(ILogger logger, string kind, string target, string name, long bytes);

        [LoggerMessage(LogEvents.Retention.Refused, LogLevel.Warning, "retention refused to delete anything of {Kind} in {Target}: {Reason}")]
        public static partial void Refused(ILogger logger, string kind, string target, string reason);

        [LoggerMessage(LogEvents.Retention.Locked, LogLevel.Information, "retention kept {Kind}/{Name} in {Target}: it is under S3 Object Lock until {Until:u}")]
        public static partial void Locked(ILogger logger, string kind, string target, string name, DateTimeOffset until);

        [LoggerMessage(LogEvents.Retention.Failed, LogLevel.Error, "retention of {Kind} in {Target} failed: {Reason}")]
        public static partial void Failed(ILogger logger, string kind, string target, string reason);
    }
}
