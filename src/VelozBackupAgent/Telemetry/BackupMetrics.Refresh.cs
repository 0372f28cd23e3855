using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Telemetry;

/// <summary>The store-inventory refresh: listings of the local store and S3 kind by kind into the inventory, at start-up and in a loop that follows what other processes change; the instruments read the inventory.</summary>
public sealed partial class BackupMetrics
{
    /// <summary>How often the local store is listed again (events keep it exact in between; this catches other processes).</summary>
    public static readonly TimeSpan LocalRefreshInterval = TimeSpan.FromMinutes(5);

    /// <summary>How often S3 is listed again: listings cost requests, and this process's uploads and deletions are tracked anyway.</summary>
    public static readonly TimeSpan RemoteRefreshInterval = TimeSpan.FromMinutes(15);

    /// <summary>How often the local folders are checked for changes made by other processes.</summary>
    public static readonly TimeSpan ChangeCheckInterval = TimeSpan.FromSeconds(15);

    /// <summary>A listing that takes longer than this is abandoned (the previous figures stay).</summary>
    private static readonly TimeSpan ListingTimeout = TimeSpan.FromMinutes(5);

    /// <summary>After a failed listing the next one comes this soon.</summary>
    private static readonly TimeSpan RetryAfterFailure = TimeSpan.FromMinutes(1);

    private readonly ConcurrentDictionary<string, bool> _listingFailed = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTime> _folderTimes = new(StringComparer.Ordinal);
    private readonly string _localRoot;
    private readonly TaskCompletionSource _localListed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Lists <paramref name="store"/> (one of this agent's) kind by kind into the inventory. Never throws for a
    /// store problem: it is logged once, and the previous figures stay. Returns false when a listing failed.
    /// </summary>
    public async Task<bool> RefreshAsync(IArtifactStore store, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        foreach (var kind in BackupKinds.All)
        {
            if (!await RefreshKindAsync(store, kind, cancellationToken).ConfigureAwait(false))
            {
                return false;
            }
        }

        if (_listingFailed.TryRemove(store.Target, out _))
        {
            Log.ListingRecovered(_logger, store.Target);
        }

        return true;
    }

    /// <summary>
    /// The first listing of the local store, at start-up. It runs beside the scheduler's start rather than before
    /// it (a WAL folder of 10,000 segments takes seconds to list); <see cref="WhenLocalListedAsync"/> lets the
    /// first scrape wait for it, so that after a restart it reports the catalog's figures, not zeros.
    /// </summary>
    public async Task ListLocalStoreAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await RefreshAsync(_stores[0], cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _localListed.TrySetResult();
        }
    }

    /// <summary>Waits until <see cref="ListLocalStoreAsync"/> finished, at most <paramref name="timeout"/>; then whatever is known is served.</summary>
    public async Task WhenLocalListedAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        try
        {
            await _localListed.Task.WaitAsync(timeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Serve what is known rather than nothing.
        }
    }

    /// <summary>
    /// Keeps the inventory in step with what other processes do (a <c>backup</c> or <c>prune</c> typed while the
    /// daemon runs), until cancelled: every <see cref="ChangeCheckInterval"/> the local configuration, database and
    /// secrets folders whose modification time moved are listed again (a few files each); the whole local store
    /// every <see cref="LocalRefreshInterval"/> (the WAL folder may hold many thousand segments, and this process's
    /// own WAL runs are tracked by their events); S3 at once and then every <see cref="RemoteRefreshInterval"/>,
    /// sooner after a failed listing.
    /// </summary>
    public Task RunRefreshLoopAsync(CancellationToken cancellationToken) =>

        // Two loops: a hanging S3 listing must not hold up the local checks.
        Task.WhenAll(_stores.Select(store => UntilCancelledAsync(
            store == _stores[0] ? LocalLoopAsync(store, cancellationToken) : RemoteLoopAsync(store, cancellationToken), cancellationToken)));

    private static async Task UntilCancelledAsync(Task loop, CancellationToken cancellationToken)
    {
        try
        {
            await loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    private async Task LocalLoopAsync(IArtifactStore local, CancellationToken cancellationToken)
    {
        var due = _time.GetUtcNow() + LocalRefreshInterval;
        while (await PauseAsync(ChangeCheckInterval, cancellationToken).ConfigureAwait(false))
        {
            if (due <= _time.GetUtcNow())
            {
                var ok = await RefreshAsync(local, cancellationToken).ConfigureAwait(false);
                due = _time.GetUtcNow() + (ok ? LocalRefreshInterval : RetryAfterFailure);
                continue;
            }

            // WAL folders hold many thousand files; this process's own WAL and PITR writes are tracked by their events.
            foreach (var kind in BackupKinds.All.Where(k => k is not (BackupKinds.Wal or BackupKinds.Pitr) && FolderChanged(k)))
            {
                await RefreshKindAsync(local, kind, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task RemoteLoopAsync(IArtifactStore remote, CancellationToken cancellationToken)
    {
        var wait = TimeSpan.Zero;
        while (await PauseAsync(wait, cancellationToken).ConfigureAwait(false))
        {
            wait = await RefreshAsync(remote, cancellationToken).ConfigureAwait(false) ? RemoteRefreshInterval : RetryAfterFailure;
        }
    }

    /// <summary>Waits; false once cancelled.</summary>
    private async Task<bool> PauseAsync(TimeSpan wait, CancellationToken cancellationToken)
    {
        try
        {
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, _time, cancellationToken).ConfigureAwait(false);
            }

            return !cancellationToken.IsCancellationRequested;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private async Task<bool> RefreshKindAsync(IArtifactStore store, string kind, CancellationToken cancellationToken)
    {
        var inventory = _inventories[store.Target];
        if (store == _stores[0])
        {
            // Taken before the listing: a change while it runs is seen by the next check.
            _folderTimes[kind] = FolderTime(kind);
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ListingTimeout);
        inventory.BeginListing(kind);
        try
        {
            // Counts, sizes and times only: reading 10,000 WAL sidecars every few minutes was most of the idle daemon's CPU.
            var entries = await BackupCatalog.ListWithoutChecksumsAsync(store, kind, timeout.Token).ConfigureAwait(false);
            inventory.CompleteListing(kind, entries);
            return true;
        }
        catch (Exception ex) when (ex is StoreException or IOException or UnauthorizedAccessException
                                   || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            inventory.AbandonListing(kind);
            var reason = ex is OperationCanceledException ? $"no answer within {ListingTimeout.TotalMinutes:0} minutes" : ex.Message;
            if (_listingFailed.TryAdd(store.Target, true))
            {
                Log.ListingFailed(_logger, store.Target, reason);
            }

            return false;
        }
        catch
        {
            inventory.AbandonListing(kind);
            throw;
        }
    }

    private bool FolderChanged(string kind) => _folderTimes.TryGetValue(kind, out var seen) && seen != FolderTime(kind);

    private DateTime FolderTime(string kind)
    {
        var folder = Path.Combine(_localRoot, kind);
        return Directory.Exists(folder) ? Directory.GetLastWriteTimeUtc(folder) : DateTime.MinValue;
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Telemetry.ListingFailed, LogLevel.Warning, "metrics: cannot list the {Target} store ({Reason}); its artifact counts and freshness stay as last known, trying again later")]
        public static partial void ListingFailed(ILogger logger, string target, string reason);

        [LoggerMessage(LogEvents.Telemetry.ListingRecovered, LogLevel.Information, "metrics: the {Target} store can be listed again")]
        public static partial void ListingRecovered(ILogger logger, string target);
    }
}
