using System.IO.Pipelines;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Sources;

/// <summary>
/// Turns a writer (tar → gzip, say) into a stream a store can read, through a bounded in-memory pipe: the
/// producer runs on its own task and pauses when the reader falls behind, so memory stays flat. A producer
/// failure surfaces to the reader (the store write then aborts, leaving no artifact); disposing the stream
/// cancels the producer.
/// </summary>
public static class ProducerStream
{
    private const long PauseAtBytes = 4L * 1024 * 1024;

    public static Stream Start(Func<Stream, CancellationToken, Task> produce, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(produce);
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: PauseAtBytes, resumeWriterThreshold: PauseAtBytes / 2, useSynchronizationContext: false));
        var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var producer = Task.Run(async () =>
        {
            try
            {
                await using (var writer = pipe.Writer.AsStream(leaveOpen: true))
                {
                    await produce(writer, cts.Token).ConfigureAwait(false);
                    await writer.FlushAsync(cts.Token).ConfigureAwait(false);
                }

                await pipe.Writer.CompleteAsync().ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                await pipe.Writer.CompleteAsync(ex).ConfigureAwait(false);
            }
        }, CancellationToken.None);
        return new ReadSide(pipe.Reader, cts, producer);
    }

    private sealed class ReadSide(PipeReader reader, CancellationTokenSource cts, Task producer) : ReadOnlyStream
    {
        private readonly Stream _inner = reader.AsStream(leaveOpen: true);
        private bool _disposed;

        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);
        public override int Read(Span<byte> buffer) => _inner.Read(buffer);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            _inner.ReadAsync(buffer, offset, count, cancellationToken);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            _inner.ReadAsync(buffer, cancellationToken);

        public override async ValueTask DisposeAsync()
        {
            if (!_disposed)
            {
                _disposed = true;
                await cts.CancelAsync().ConfigureAwait(false);
                await reader.CompleteAsync().ConfigureAwait(false);
                await producer.ConfigureAwait(false);
                cts.Dispose();
                await _inner.DisposeAsync().ConfigureAwait(false);
            }

            await base.DisposeAsync().ConfigureAwait(false);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing && !_disposed)
            {
                _disposed = true;
                cts.Cancel();
                reader.Complete();
                producer.GetAwaiter().GetResult();
                cts.Dispose();
                _inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
