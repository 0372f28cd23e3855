using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Replication;

/// <summary>
/// Where backups are written: the local store first, then (when a replica is configured) a marker in
/// the durable upload queue. Writing never waits on the replica.
/// </summary>
public sealed class BackupRepository
{
    /// <summary>How long a store waits for an abandoned overlapped upload to clean up after itself (abort its multipart upload).</summary>
    private static readonly TimeSpan AbandonGrace = TimeSpan.FromSeconds(10);

    private readonly TimeProvider _time;

    public BackupRepository(LocalArtifactStore local, Replicator? replicator = null, TimeProvider? timeProvider = null)
    {
        Local = local;
        Replicator = replicator;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The primary store.</summary>
    public LocalArtifactStore Local { get; }

    /// <summary>The replicator, when S3 is enabled.</summary>
    public Replicator? Replicator { get; }

    /// <summary>
    /// False: nothing is copied to the replica while it is written (<see cref="ArtifactWriteOptions.OverlapBufferBytes"/> is
    /// ignored); every artifact only goes into the upload queue. <c>backup --no-upload</c> sets it. Default true.
    /// </summary>
    public bool CopyWhileWriting { get; set; } = true;

    /// <summary>
    /// Bytes stored so far of each dump and base backup (<c>storing KIND/NAME</c>), for a terminal's progress; null
    /// (the default, and always in the daemon) reports nothing.
    /// </summary>
    public IProgress<Restore.TransferProgress>? Progress { get; set; }

    /// <summary>Stores <paramref name="content"/> locally and queues it for the replica.</summary>
    public async Task<ArtifactInfo> StoreAsync(string kind, string name, Stream content, string? expectedSha256 = null, CancellationToken cancellationToken = default)
    {
        var info = await Local.WriteAsync(kind, name, content, expectedSha256, cancellationToken);
        Replicator?.Enqueue(kind, name);
        return info;
    }

    /// <summary>Starts a group commit into the local store (<see cref="LocalWriteBatch"/>); <see cref="CommitLocalBatch"/> ends it.</summary>
    public LocalWriteBatch BeginLocalBatch(string kind) => Local.BeginBatch(kind);

    /// <summary>Commits <paramref name="batch"/> and queues what it stored for the replica (only then: nothing uncommitted is ever queued).</summary>
    public IReadOnlyList<LocalBatchOutcome> CommitLocalBatch(LocalWriteBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var outcomes = batch.Commit();
        if (Replicator is not null)
        {
            foreach (var outcome in outcomes)
            {
                if (outcome.Stored is not null)
                {
                    Replicator.Enqueue(batch.Kind, outcome.Name);
                }
            }
        }

        return outcomes;
    }

    /// <summary>
    /// Stores <paramref name="content"/> locally, checks it with <see cref="ArtifactWriteOptions.Validate"/>, and
    /// replicates it: either through the upload queue, or (<see cref="ArtifactWriteOptions.OverlapBufferBytes"/>)
    /// by copying it to the replica while it is written locally.
    /// </summary>
    /// <remarks>
    /// The overlapped copy reads what the local write reads, through a buffer of at most
    /// <see cref="ArtifactWriteOptions.OverlapBufferBytes"/>: it never slows the local write down. When it falls
    /// further behind, or the replica fails, it is abandoned (its multipart upload aborted, so nothing half
    /// written lists as an artifact) and the artifact is queued instead. It is only completed once the local
    /// artifact is stored and validated, and its checksum must equal the local one, else it is deleted and the
    /// artifact queued. A replica problem therefore never fails the store; a local or validation failure leaves
    /// no artifact in either store.
    /// </remarks>
    public async Task<StoreResult> StoreAsync(string kind, string name, Stream content, ArtifactWriteOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var overlap = Replicator is not null && options.OverlapBufferBytes > 0 && CopyWhileWriting
            ? OverlappedUpload.Start(Replicator.Remote, kind, name, options.OverlapBufferBytes, cancellationToken)
            : null;
        try
        {
            ArtifactInfo info;
            try
            {
                var source = overlap is null ? content : new TeeStream(content, overlap);
                if (Progress is { } progress)
                {
                    source = new ProgressStream(source, $"storing {kind}/{name}", progress);
                }
                info = await Local.WriteAsync(kind, name, source, options.ExpectedSha256, cancellationToken);
            }
            catch
            {
                overlap?.Abandon("the local write failed");
                throw;
            }

            if (options.Validate is not null)
            {
                await ValidateOrDeleteAsync(info, options.Validate, overlap, cancellationToken);
            }

            if (Replicator is null)
            {
                return new StoreResult(info, ReplicaOutcome.None, null);
            }

            if (overlap is not null)
            {
                var (uploaded, detail) = await overlap.FinishAsync(info);
                if (uploaded)
                {
                    Replicator.Delivered(kind, name, info.Size, overlap.Elapsed.TotalSeconds);
                    return new StoreResult(info, ReplicaOutcome.Uploaded, detail);
                }

                Replicator.Enqueue(kind, name);
                return new StoreResult(info, ReplicaOutcome.Queued, detail);
            }

            Replicator.Enqueue(kind, name);
            return new StoreResult(info, ReplicaOutcome.Queued, null);
        }
        finally
        {
            if (overlap is not null)
            {
                await overlap.DisposeAsync(_time);
            }
        }
    }

    private async Task ValidateOrDeleteAsync(ArtifactInfo info, Func<ArtifactInfo, CancellationToken, Task> validate, OverlappedUpload? overlap, CancellationToken cancellationToken)
    {
        try
        {
            await validate(info, cancellationToken);
        }
        catch (Exception rejected)
        {
            overlap?.Abandon("the artifact failed its check");
            try
            {
                await Local.DeleteAsync(info.Kind, info.Name, CancellationToken.None);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new StoreException(
                    $"{rejected.Message}; the rejected {Local.PathOf(info.Kind, info.Name)} could not be removed ({ex.Message}): remove it and its .sha256 by hand", rejected);
            }

            throw;
        }
    }

    /// <summary>
    /// A copy to the replica fed from the local write through a bounded in-memory pipe. The pipe never pushes
    /// back: the producer measures how far the upload lags and abandons it beyond the limit.
    /// </summary>
    private sealed class OverlappedUpload
    {
        private const long MiB = 1024 * 1024;

        // pauseWriterThreshold 0: FlushAsync never waits for the reader; the lag is bounded by Offer instead.
        private readonly Pipe _pipe = new(new PipeOptions(pauseWriterThreshold: 0, resumeWriterThreshold: 0, useSynchronizationContext: false));
        private readonly CancellationTokenSource _cts;
        private readonly IArtifactStore _remote;
        private readonly long _limit;
        private readonly long _started = Stopwatch.GetTimestamp();
        private Task<ArtifactInfo?> _upload = Task.FromResult<ArtifactInfo?>(null);
        private long _written;
        private long _consumed;
        private string? _abandoned;
        private Exception? _failure;

        private OverlappedUpload(IArtifactStore remote, long limit, CancellationToken cancellationToken)
        {
            _remote = remote;
            _limit = limit;
            _cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        }

        public TimeSpan Elapsed => Stopwatch.GetElapsedTime(_started);

        public static OverlappedUpload Start(IArtifactStore remote, string kind, string name, long limit, CancellationToken cancellationToken)
        {
            var overlap = new OverlappedUpload(remote, limit, cancellationToken);
            overlap._upload = Task.Run(() => overlap.UploadAsync(kind, name), CancellationToken.None);
            return overlap;
        }

        /// <summary>Hands bytes the local write just read to the upload, or abandons it when it lags too far.</summary>
        public void Offer(ReadOnlySpan<byte> data)
        {
            if (_abandoned is not null || data.IsEmpty)
            {
                return;
            }

            if (_upload.IsCompleted)
            {
                Abandon(FailureReason());
                return;
            }

            var lag = _written - Interlocked.Read(ref _consumed);
            if (lag + data.Length > _limit)
            {
                Abandon($"the copy made during the write fell more than {_limit / MiB} MiB behind");
                return;
            }

            _pipe.Writer.Write(data);
            _written += data.Length;
            var flush = _pipe.Writer.FlushAsync(CancellationToken.None);
            var result = flush.IsCompletedSuccessfully ? flush.Result : flush.AsTask().GetAwaiter().GetResult();
            if (result.IsCompleted)
            {
                // The upload stopped reading: it failed.
                Abandon(FailureReason());
            }
        }

        /// <summary>Stops the upload: the store sees a failing read, aborts its multipart upload and stores nothing.</summary>
        public void Abandon(string reason)
        {
            if (_abandoned is not null)
            {
                return;
            }

            _abandoned = reason;
            _pipe.Writer.Complete(new IOException($"copy abandoned: {reason}"));
            _cts.Cancel();
        }

        /// <summary>Ends the stream (the local artifact is complete and valid), waits for the upload and checks it.</summary>
        public async Task<(bool Uploaded, string Detail)> FinishAsync(ArtifactInfo local)
        {
            if (_abandoned is not null)
            {
                return (false, _abandoned);
            }

            await _pipe.Writer.CompleteAsync();
            var remote = await _upload;
            if (remote is null)
            {
                _abandoned = FailureReason();
                return (false, _abandoned);
            }

            if (remote.Size == local.Size && string.Equals(remote.Sha256, local.Sha256, StringComparison.Ordinal))
            {
                return (true, "copied while it was written, checksum verified");
            }

            // Cannot happen unless the tee is broken; the replica must still never keep other bytes than the local copy.
            _abandoned = $"the copy made during the write has sha256 {remote.Sha256} ({remote.Size} bytes), not {local.Sha256} ({local.Size} bytes); it was deleted";
            try
            {
                await _remote.DeleteAsync(local.Kind, local.Name, CancellationToken.None);
            }
            catch (StoreException ex)
            {
                _abandoned = $"the copy made during the write has sha256 {remote.Sha256}, not {local.Sha256}, and could not be deleted: {ex.Message}";
            }

            return (false, _abandoned);
        }

        /// <summary>Gives an abandoned upload a short while to abort cleanly; after that it finishes in the background.</summary>
        public async Task DisposeAsync(TimeProvider time)
        {
            if (_abandoned is not null && !_upload.IsCompleted)
            {
                try
                {
                    await _upload.WaitAsync(AbandonGrace, time, CancellationToken.None);
                }
                catch (TimeoutException)
                {
                    // It aborts on its own; AbortStaleUploadsAsync sweeps what a stuck store leaves.
                }
            }

            if (_upload.IsCompleted)
            {
                _cts.Dispose();
            }
        }

        private async Task<ArtifactInfo?> UploadAsync(string kind, string name)
        {
            try
            {
                await using var reader = new CountingStream(_pipe.Reader.AsStream(leaveOpen: true), this);
                return await _remote.WriteAsync(kind, name, reader, expectedSha256: null, _cts.Token);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                _failure = ex;
                return null;
            }
            finally
            {
                await _pipe.Reader.CompleteAsync();
            }
        }

        private string FailureReason() =>
            _failure switch
            {
                null => "the copy made during the write stopped",
                OperationCanceledException => "the copy made during the write was cancelled",
                _ => $"the copy made during the write failed: {_failure.Message.Split('\n')[0].Trim()}",
            };

        private sealed class CountingStream(Stream inner, OverlappedUpload owner) : ReadOnlyStream
        {
            public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

            public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
                Count(await inner.ReadAsync(buffer, cancellationToken));

            public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
                ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

            protected override void Dispose(bool disposing)
            {
                if (disposing)
                {
                    inner.Dispose();
                }

                base.Dispose(disposing);
            }

            private int Count(int read)
            {
                Interlocked.Add(ref owner._consumed, read);
                return read;
            }
        }
    }

    /// <summary>Passes reads through and reports the bytes read so far, at most once a MiB and at the end.</summary>
    private sealed class ProgressStream(Stream source, string step, IProgress<Restore.TransferProgress> progress) : ReadOnlyStream
    {
        private long _done;
        private long _reported = -1;

        public override int Read(byte[] buffer, int offset, int count) => Count(source.Read(buffer, offset, count));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Count(await source.ReadAsync(buffer, cancellationToken));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        private int Count(int read)
        {
            _done += read;
            if (read == 0 || _done - _reported >= 1 << 20)
            {
                _reported = _done;
                progress.Report(new Restore.TransferProgress(step, _done, null));
            }

            return read;
        }
    }

    /// <summary>Passes reads through and offers every chunk read to the overlapped upload.</summary>
    private sealed class TeeStream(Stream source, OverlappedUpload overlap) : ReadOnlyStream
    {
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var read = source.Read(buffer);
            overlap.Offer(buffer[..read]);
            return read;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await source.ReadAsync(buffer, cancellationToken);
            overlap.Offer(buffer.Span[..read]);
            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }
}

/// <summary>What <see cref="BackupRepository.StoreAsync(string, string, Stream, ArtifactWriteOptions, CancellationToken)"/> does beyond a plain local write.</summary>
public sealed class ArtifactWriteOptions
{
    /// <summary>When set, bytes that hash differently are refused and nothing is stored.</summary>
    public string? ExpectedSha256 { get; init; }

    /// <summary>
    /// Checks the artifact once it is stored locally, before it is replicated (e.g. <c>pg_restore --list</c>).
    /// Throwing rejects it: the local artifact is deleted, nothing reaches the replica, and the exception propagates.
    /// </summary>
    public Func<ArtifactInfo, CancellationToken, Task>? Validate { get; init; }

    /// <summary>
    /// With a replicator: copy to the replica while writing locally, letting that copy lag at most this many bytes
    /// before it is abandoned for the upload queue. 0 (the default) only queues.
    /// </summary>
    public long OverlapBufferBytes { get; init; }
}

/// <summary>How an artifact reached (or will reach) the replica.</summary>
public enum ReplicaOutcome
{
    /// <summary>No replica is configured.</summary>
    None,

    /// <summary>Queued for the replicator (the overlapped copy, if any, was abandoned: see the detail).</summary>
    Queued,

    /// <summary>Copied to the replica while it was written, with the same checksum as the local artifact.</summary>
    Uploaded,
}

/// <summary>The stored artifact and what happened with its replica.</summary>
/// <param name="Artifact">The local artifact.</param>
/// <param name="Replica">How it reached, or will reach, the replica.</param>
/// <param name="ReplicaDetail">Why an overlapped copy was given up, or how it was checked; null when there was none.</param>
public sealed record StoreResult(ArtifactInfo Artifact, ReplicaOutcome Replica, string? ReplicaDetail);
