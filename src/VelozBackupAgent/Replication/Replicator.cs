using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Replication;

/// <summary>What is waiting for the replica: count, bytes and the age of the oldest entry.</summary>
public sealed record ReplicationBacklog(int Artifacts, long Bytes, DateTimeOffset? OldestEnqueuedAt)
{
    public static ReplicationBacklog Empty { get; } = new(0, 0, null);
}

/// <summary>The outcome of one pass over the queue.</summary>
/// <param name="Uploaded">Artifacts copied and verified.</param>
/// <param name="AlreadyPresent">Artifacts the replica already held with the same checksum.</param>
/// <param name="Failed">Artifacts that could not be copied (conflict or corruption); they stay queued.</param>
/// <param name="Backlog">What is left afterwards.</param>
public sealed record ReplicationPass(int Uploaded, int AlreadyPresent, int Failed, ReplicationBacklog Backlog);

/// <summary>An artifact that reached the replica, verified (raised for the metrics).</summary>
/// <param name="Kind">wal, config, database or secrets.</param>
/// <param name="Name">The artifact's name.</param>
/// <param name="Bytes">Its size.</param>
public sealed record ReplicatedArtifact(string Kind, string Name, long Bytes);

/// <summary>A queued artifact the replica refused: it holds other bytes under that name, or the copy did not verify.</summary>
/// <param name="Kind">wal, config, database or secrets.</param>
/// <param name="Name">The artifact's name; it stays queued.</param>
/// <param name="Reason">The store's one-line explanation.</param>
public sealed record ReplicationRefusal(string Kind, string Name, string Reason);

/// <summary>
/// Copies local artifacts to the replica through the durable <see cref="UploadQueue"/>. The local store
/// is primary: backups land there and are queued; this class drains the queue, verifying every copy
/// (the remote store checks size and checksum of what it stored against the local sidecar). While the
/// replica is unavailable it backs off (doubling, capped) and keeps the queue; when the replica returns
/// the backlog drains. A periodic reconciliation lists both stores and queues what the replica lacks.
/// </summary>
public sealed class Replicator : IDisposable
{
    private readonly LocalArtifactStore _local;
    private readonly IArtifactStore _remote;
    private readonly UploadQueue _queue;
    private readonly ReplicationOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly Lock _gate = new();
    private ReplicationBacklog _backlog = ReplicationBacklog.Empty;

    public Replicator(LocalArtifactStore local, IArtifactStore remote, UploadQueue queue, ReplicationOptions options, TimeProvider? timeProvider = null, ILogger<Replicator>? logger = null)
    {
        _local = local;
        _remote = remote;
        _queue = queue;
        _options = options;
        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>The replica's label (<c>s3</c>).</summary>
    public string Target => _remote.Target;

    /// <summary>The replica store, for a copy made while an artifact is written (<see cref="BackupRepository"/>).</summary>
    public IArtifactStore Remote => _remote;

    /// <summary>The backlog as of the last enqueue or pass.</summary>
    public ReplicationBacklog Backlog
    {
        get
        {
            lock (_gate)
            {
                return _backlog;
            }
        }
    }

    /// <summary>When the last artifact reached the replica, if any did since start.</summary>
    public DateTimeOffset? LastUploadAt { get; private set; }

    /// <summary>Null while the replica works; otherwise why the last attempt failed.</summary>
    public string? LastError { get; private set; }

    /// <summary>Raised for every artifact copied to the replica and verified, by the queue or while it was written.</summary>
    public event EventHandler<ReplicatedArtifact>? Uploaded;

    /// <summary>Raised when a copy is refused: a conflicting object under the same name, or bytes that did not verify.</summary>
    public event EventHandler<ReplicationRefusal>? Refused;

    /// <summary>Queues a freshly stored local artifact and wakes the drain loop. Never waits on the replica.</summary>
    public void Enqueue(string kind, string name)
    {
        _queue.Enqueue(kind, name);
        RefreshBacklog();
        Wake();
    }

    /// <summary>Records an artifact that reached the replica without the queue (copied while it was written).</summary>
    internal void Delivered(string kind, string name, long bytes, double seconds)
    {
        ReplicationLog.Uploaded(_logger, kind, name, _remote.Target, bytes, seconds);
        LastUploadAt = _time.GetUtcNow();
        Uploaded?.Invoke(this, new ReplicatedArtifact(kind, name, bytes));
    }

    /// <summary>Recomputes the backlog from the queue on disk (other processes may have queued too).</summary>
    public ReplicationBacklog RefreshBacklog()
    {
        long bytes = 0;
        var pending = _queue.Pending();
        foreach (var p in pending)
        {
            var file = new FileInfo(Path.Combine(_local.Root, p.Kind, p.Name));
            if (file.Exists)
            {
                bytes += file.Length;
            }
        }

        var backlog = new ReplicationBacklog(pending.Count, bytes, pending.Count > 0 ? pending[0].EnqueuedAt : null);
        lock (_gate)
        {
            _backlog = backlog;
        }

        return backlog;
    }

    /// <summary>
    /// Copies every queued artifact once. Throws <see cref="StoreException"/> when the replica itself
    /// fails (unreachable, missing bucket, refused credentials): the pass stops and the queue is kept.
    /// Problems of one artifact (a conflicting copy, a corrupt local file) are logged, counted and skipped.
    /// </summary>
    public async Task<ReplicationPass> DrainAsync(CancellationToken cancellationToken = default)
    {
        int uploaded = 0, present = 0, failed = 0;
        foreach (var item in _queue.Pending())
        {
            cancellationToken.ThrowIfCancellationRequested();
            var local = await _local.StatAsync(item.Kind, item.Name, cancellationToken);
            if (local is null)
            {
                // Pruned (or never completed) locally: there is nothing left to copy.
                ReplicationLog.LocalGone(_logger, item.Kind, item.Name);
                _queue.Complete(item.Kind, item.Name);
                continue;
            }

            try
            {
                var remote = await _remote.StatAsync(item.Kind, item.Name, cancellationToken);
                if (remote is not null && string.Equals(remote.Sha256, local.Sha256, StringComparison.Ordinal) && remote.Size == local.Size)
                {
                    present++;
                }
                else
                {
                    var started = Stopwatch.GetTimestamp();
                    await using (var source = await _local.OpenReadAsync(item.Kind, item.Name, cancellationToken))
                    {
                        await _remote.WriteAsync(item.Kind, item.Name, source, local.Sha256, cancellationToken);
                    }

                    ReplicationLog.Uploaded(_logger, item.Kind, item.Name, _remote.Target, local.Size, Stopwatch.GetElapsedTime(started).TotalSeconds);
                    uploaded++;
                    LastUploadAt = _time.GetUtcNow();
                    Uploaded?.Invoke(this, new ReplicatedArtifact(item.Kind, item.Name, local.Size));
                }

                _queue.Complete(item.Kind, item.Name);
                LastError = null;
            }
            catch (Exception ex) when (ex is ArtifactConflictException or ArtifactIntegrityException)
            {
                ReplicationLog.ItemFailed(_logger, item.Kind, item.Name, _remote.Target, ex.Message);
                Refused?.Invoke(this, new ReplicationRefusal(item.Kind, item.Name, ex.Message));
                failed++;
            }
            catch (StoreException ex)
            {
                LastError = ex.Message;
                RefreshBacklog();
                throw;
            }
        }

        return new ReplicationPass(uploaded, present, failed, RefreshBacklog());
    }

    /// <summary>Lists both stores for every kind and queues each local artifact the replica lacks. Returns how many were queued.</summary>
    public async Task<int> ReconcileAsync(CancellationToken cancellationToken = default)
    {
        var queued = 0;
        var alreadyQueued = _queue.Pending().Select(p => (p.Kind, p.Name)).ToHashSet();
        foreach (var kind in BackupKinds.All)
        {
            var remote = new Dictionary<string, ArtifactInfo>(StringComparer.Ordinal);
            await foreach (var a in _remote.ListAsync(kind, cancellationToken))
            {
                remote[a.Name] = a;
            }

            await foreach (var a in _local.ListAsync(kind, cancellationToken))
            {
                // An encrypted copy's listed size is the ciphertext's: only its presence can be compared cheaply.
                var missing = !remote.TryGetValue(a.Name, out var r) || (r.Size != a.Size && !r.Encrypted)
                              || (r.Sha256 is not null && a.Sha256 is not null && !string.Equals(r.Sha256, a.Sha256, StringComparison.Ordinal));
                if (missing && !alreadyQueued.Contains((kind, a.Name)))
                {
                    _queue.Enqueue(kind, a.Name);
                    queued++;
                }
            }
        }

        if (queued > 0)
        {
            ReplicationLog.Reconciled(_logger, queued, _remote.Target);
        }

        RefreshBacklog();
        return queued;
    }

    /// <summary>
    /// The daemon loop: reconcile at start and every <see cref="ReplicationOptions.ReconcileInterval"/>,
    /// drain whenever something is queued, back off while the replica is unavailable. Returns when
    /// <paramref name="cancellationToken"/> is cancelled.
    /// </summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var backoff = _options.InitialBackoff;
        var nextReconcile = _time.GetUtcNow();
        var unavailable = false;
        while (!cancellationToken.IsCancellationRequested)
        {
            TimeSpan wait;
            try
            {
                if (_time.GetUtcNow() >= nextReconcile)
                {
                    await ReconcileAsync(cancellationToken);
                    nextReconcile = _time.GetUtcNow() + _options.ReconcileInterval;
                }

                var pending = RefreshBacklog();
                if (unavailable && pending.Artifacts > 0)
                {
                    ReplicationLog.Available(_logger, _remote.Target, pending.Artifacts);
                }

                await DrainAsync(cancellationToken);
                unavailable = false;
                backoff = _options.InitialBackoff;
                wait = _options.ReconcileInterval < TimeSpan.FromMinutes(1) ? _options.ReconcileInterval : TimeSpan.FromMinutes(1);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (StoreException ex)
            {
                // From the queue on disk: at start-up the first call (reconciliation) fails before anything refreshed the
                // cached backlog, which then still says 0 while earlier runs left artifacts queued.
                var backlog = RefreshBacklog();
                ReplicationLog.Unavailable(_logger, _remote.Target, backlog.Artifacts, backlog.Bytes, backoff, ex.Message);
                LastError = ex.Message;
                unavailable = true;
                wait = backoff;
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, _options.MaxBackoff.Ticks));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                ReplicationLog.PassFailed(_logger, ex.Message);
                LastError = ex.Message;
                wait = backoff;
            }

            // While unavailable only the backoff wakes us: new work must not hammer a store that is down.
            await WaitAsync(wait, wakeOnEnqueue: !unavailable, cancellationToken);
        }
    }

    public void Dispose() => _wake.Dispose();

    private void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already signalled: one wake-up covers any number of enqueues.
        }
    }

    private async Task WaitAsync(TimeSpan delay, bool wakeOnEnqueue, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var delayTask = Task.Delay(delay, _time, timeout.Token);
        var tasks = wakeOnEnqueue ? new[] { delayTask, _wake.WaitAsync(timeout.Token) } : [delayTask];
        try
        {
            await Task.WhenAny(tasks);
        }
        finally
        {
            await timeout.CancelAsync();
        }

        // Swallow the cancellations of whichever task lost the race.
        await Task.WhenAll(tasks.Select(t => t.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default)));
    }
}
