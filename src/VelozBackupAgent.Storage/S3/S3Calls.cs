using System.Net;
using System.Net.Sockets;
using Amazon.Runtime;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace VelozBackupAgent.Storage.S3;

/// <summary>
/// The one place where S3 requests are retried and where S3 failures become <see cref="StoreException"/>s.
/// Transient failures (network, timeouts, 5xx, 429/SlowDown, RequestTimeout) are retried with exponential
/// backoff and jitter; everything else fails at once with one line that names the bucket and what to check.
/// Bytes that fail the SDK's own response check (MD5/CRC of what S3 sent) become <see cref="ArtifactIntegrityException"/>
/// ("checksum mismatch"), also while a response body is read (<see cref="WrapBody"/>). Once S3 was found unreachable,
/// later calls fail at once for <see cref="S3StoreOptions.UnreachableHold"/> instead of retrying again (a circuit breaker).
/// </summary>
internal sealed partial class S3Calls
{
    private readonly ResiliencePipeline _pipeline;
    private readonly string _bucket;
    private readonly string _endpoint;
    private readonly int _maxRetries;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly TimeSpan _unreachableHold;
    private readonly Lock _verdictGate = new();
    private (string Message, DateTimeOffset At)? _unreachable;

    public S3Calls(S3StoreOptions options, TimeProvider timeProvider, ILogger logger)
    {
        _bucket = options.Bucket;
        _endpoint = options.ServiceUrl ?? $"AWS region {options.Region}";
        _maxRetries = options.MaxRetries;
        _logger = logger;
        _time = timeProvider;
        _unreachableHold = options.UnreachableHold;

        var builder = new ResiliencePipelineBuilder { TimeProvider = timeProvider };
        if (options.MaxRetries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = args => ValueTask.FromResult(
                    args.Outcome.Exception is { } e && IsTransient(e, args.Context.CancellationToken)),
                MaxRetryAttempts = options.MaxRetries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.RetryBaseDelay,
                MaxDelay = options.RetryMaxDelay,
                OnRetry = args =>
                {
                    LogRetry(_logger, args.AttemptNumber + 1, _maxRetries, args.RetryDelay.TotalMilliseconds, OneLine(args.Outcome.Exception));
                    return default;
                },
            });
        }

        _pipeline = builder.Build();
    }

    /// <summary>Endpoint for messages: the service URL, or the AWS region.</summary>
    public string Endpoint => _endpoint;

    /// <summary>
    /// Runs <paramref name="call"/> (which must build its request, and any request stream, afresh on every
    /// attempt) with retries; failures surface as <see cref="StoreException"/>. Cancellation by
    /// <paramref name="cancellationToken"/> propagates as <see cref="OperationCanceledException"/>.
    /// </summary>
    public async Task<T> RunAsync<T>(string operation, string key, Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        ThrowIfKnownUnreachable();
        try
        {
            return await _pipeline.ExecuteAsync(async token => await call(token), cancellationToken);
        }
        catch (Exception e) when (e is not StoreException && !(e is OperationCanceledException && cancellationToken.IsCancellationRequested) && IsS3Failure(e))
        {
            throw Map(operation, key, e, cancellationToken);
        }
    }

    /// <summary>
    /// Wraps a response body so that what the SDK throws while it is read (its own checksum check at the end, a
    /// connection lost midway) surfaces as a <see cref="StoreException"/> like every other S3 failure.
    /// </summary>
    public Stream WrapBody(Stream body, string key) => new BodyStream(body, this, key);

    /// <summary>
    /// After an unreachable verdict, and for <see cref="S3StoreOptions.UnreachableHold"/>, every call fails at once with
    /// that verdict: one command pays the retries once, not once per call.
    /// </summary>
    private void ThrowIfKnownUnreachable()
    {
        if (_unreachableHold <= TimeSpan.Zero && _unreachableHold != Timeout.InfiniteTimeSpan)
        {
            return;
        }

        (string Message, DateTimeOffset At)? verdict;
        lock (_verdictGate)
        {
            verdict = _unreachable;
        }

        if (verdict is not { } v)
        {
            return;
        }

        var age = _time.GetUtcNow() - v.At;
        if (_unreachableHold != Timeout.InfiniteTimeSpan && age >= _unreachableHold)
        {
            lock (_verdictGate)
            {
                _unreachable = null;
            }

            return;
        }

        throw new StoreUnavailableException($"{v.Message} (found {Math.Max(0, Math.Round(age.TotalSeconds))} s ago; not tried again)");
    }

    private StoreUnavailableException Unreachable(string message, Exception e)
    {
        lock (_verdictGate)
        {
            _unreachable ??= (message, _time.GetUtcNow());
        }

        return new StoreUnavailableException(message, e);
    }

    public Task RunAsync(string operation, string key, Func<CancellationToken, Task> call, CancellationToken cancellationToken) =>
        RunAsync(operation, key, async token =>
        {
            await call(token);
            return true;
        }, cancellationToken);

    /// <summary>A 404 for the key itself (not for the bucket): HEAD gives no error code, GET gives NoSuchKey.</summary>
    public static bool IsMissingKey(AmazonServiceException e) =>
        e.StatusCode == HttpStatusCode.NotFound && e.ErrorCode is not "NoSuchBucket" and not "NoSuchUpload";

    internal static bool IsTransient(Exception e, CancellationToken cancellationToken)
    {
        if (e is AmazonServiceException { StatusCode: var status } service && status != 0)
        {
            var code = (int)status;
            // 501 NotImplemented is an answer, not an outage.
            return (code >= 500 && code != 501) || code == 429 || service.ErrorCode is "SlowDown" or "RequestTimeout" or "Throttling" or "ThrottlingException";
        }

        for (var x = e; x is not null; x = x.InnerException)
        {
            switch (x)
            {
                case HttpRequestException or SocketException or IOException or TimeoutException:
                    return true;
                case OperationCanceledException when !cancellationToken.IsCancellationRequested:
                    return true; // an HTTP timeout, not our caller's cancellation
                case AmazonServiceException { ErrorCode: "SlowDown" or "RequestTimeout" or "InternalError" or "ServiceUnavailable" }:
                    return true;
                default:
                    break;
            }
        }

        return false;
    }

    private static bool IsS3Failure(Exception e) =>
        e is AmazonServiceException or AmazonClientException or HttpRequestException or SocketException or IOException or TimeoutException or OperationCanceledException;

    private StoreException Map(string operation, string key, Exception e, CancellationToken cancellationToken)
    {
        if (IsResponseChecksumFailure(e))
        {
            return new ArtifactIntegrityException(
                $"s3://{_bucket}/{key}: checksum mismatch: the bytes S3 sent do not match the checksum S3 keeps for them (the object was altered or damaged in S3)", e);
        }

        if (IsMissingCredentials(e))
        {
            return new StoreException(
                $"no S3 credentials found for bucket '{_bucket}' at {_endpoint}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the agent's environment, or an AWS profile (AWS_PROFILE, ~/.aws/credentials), or give the host an instance role", e);
        }

        if (IsTransient(e, cancellationToken))
        {
            var retried = _maxRetries > 0 ? $" after {_maxRetries} retries" : "";
            if (e is AmazonServiceException { StatusCode: not 0 } busy)
            {
                return new StoreUnavailableException(
                    $"S3 at {_endpoint} keeps failing{retried} ({Code(busy)}) on {operation} of {key} in bucket '{_bucket}'", e);
            }

            return Unreachable($"S3 at {_endpoint} is unreachable{retried}: {Innermost(e)}", e);
        }

        if (e is AmazonServiceException service)
        {
            return service.ErrorCode switch
            {
                "NoSuchBucket" => new StoreException($"S3 bucket '{_bucket}' does not exist at {_endpoint}", e),
                "InvalidAccessKeyId" or "SignatureDoesNotMatch" or "InvalidToken" or "ExpiredToken" or "TokenRefreshRequired" =>
                    new StoreException($"S3 refused the credentials ({service.ErrorCode}) for bucket '{_bucket}' at {_endpoint}: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS profile", e),
                "AccessDenied" or "AllAccessDisabled" => new StoreException(
                    $"S3 denied access ({service.ErrorCode}) to bucket '{_bucket}' at {_endpoint} on {operation}: check the credentials and the bucket policy", e),
                _ when service.StatusCode == HttpStatusCode.Forbidden => new StoreException(
                    $"S3 refused access (403) to bucket '{_bucket}' at {_endpoint} on {operation}: check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS profile) and the bucket policy", e),
                _ when service.StatusCode == HttpStatusCode.NotFound => new StoreException(
                    $"S3 bucket '{_bucket}' at {_endpoint} has no {key} ({Code(service)}) on {operation}", e),
                _ => new StoreException($"S3 {operation} of {key} in bucket '{_bucket}' at {_endpoint} failed: {Code(service)}: {OneLine(service)}", e),
            };
        }

        // AmazonClientException: no credentials found, bad configuration, ...; its messages carry no secrets.
        return new StoreException($"S3 client for bucket '{_bucket}' at {_endpoint} failed on {operation}: {OneLine(e)}", e);
    }

    /// <summary>
    /// The SDK checks what S3 sent against the MD5 (ETag) or CRC S3 keeps for the object and throws a bare
    /// <see cref="AmazonClientException"/> ("Expected hash not equal to calculated hash") when they differ.
    /// </summary>
    internal static bool IsResponseChecksumFailure(Exception e) =>
        e is AmazonClientException
        && (e.Message.Contains("hash not equal", StringComparison.OrdinalIgnoreCase)
            || e.Message.Contains("checksum", StringComparison.OrdinalIgnoreCase) && e.Message.Contains("expected", StringComparison.OrdinalIgnoreCase));

    /// <summary>The default credential chain found nothing (its message lists every provider it tried, on many lines).</summary>
    internal static bool IsMissingCredentials(Exception e) =>
        e is AmazonClientException
        && e.Message.StartsWith("Failed to resolve AWS credentials", StringComparison.Ordinal);

    private static string Code(AmazonServiceException e) =>
        string.IsNullOrEmpty(e.ErrorCode) ? $"HTTP {(int)e.StatusCode}" : $"{e.ErrorCode}, HTTP {(int)e.StatusCode}";

    private static string Innermost(Exception e)
    {
        var x = e;
        while (x.InnerException is not null)
        {
            x = x.InnerException;
        }

        return OneLine(x);
    }

    internal static string OneLine(Exception? e) =>
        e is null ? "" : e.Message.ReplaceLineEndings(" ").Trim();

    /// <summary>A response body whose read failures are mapped like every other S3 failure.</summary>
    private sealed class BodyStream(Stream inner, S3Calls calls, string key) : ReadOnlyStream
    {
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            try
            {
                return inner.Read(buffer);
            }
            catch (Exception e) when (e is not StoreException && IsS3Failure(e) && e is not OperationCanceledException)
            {
                throw calls.MapRead(key, e);
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            try
            {
                return await inner.ReadAsync(buffer, cancellationToken);
            }
            catch (Exception e) when (e is not StoreException && IsS3Failure(e) && !(e is OperationCanceledException && cancellationToken.IsCancellationRequested))
            {
                throw calls.MapRead(key, e);
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }

    /// <summary>A failure while a body streams is not retried (the bytes already handed on cannot be taken back).</summary>
    private StoreException MapRead(string key, Exception e)
    {
        if (IsResponseChecksumFailure(e) || e is not (IOException or HttpRequestException or SocketException or TimeoutException or OperationCanceledException))
        {
            return Map("GetObject", key, e, CancellationToken.None);
        }

        return new StoreUnavailableException($"S3 at {_endpoint} broke off while sending {key} from bucket '{_bucket}': {Innermost(e)}", e);
    }

    [LoggerMessage(EventId = LogEvents.S3Store.Retry, Level = LogLevel.Warning, Message = "S3 request failed, retry {Attempt}/{MaxRetries} in {DelayMs:F0} ms: {Error}")]
    private static partial void LogRetry(ILogger logger, int attempt, int maxRetries, double delayMs, string error);
}
