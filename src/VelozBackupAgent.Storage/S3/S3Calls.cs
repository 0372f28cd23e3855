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
/// </summary>
internal sealed partial class S3Calls
{
    private readonly ResiliencePipeline _pipeline;
    private readonly string _bucket;
    private readonly string _endpoint;
    private readonly int _maxRetries;
    private readonly ILogger _logger;

    public S3Calls(S3StoreOptions options, TimeProvider timeProvider, ILogger logger)
    {
        _bucket = options.Bucket;
        _endpoint = options.ServiceUrl ?? $"AWS region {options.Region}";
        _maxRetries = options.MaxRetries;
        _logger = logger;

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
        try
        {
            return await _pipeline.ExecuteAsync(async token => await call(token), cancellationToken);
        }
        catch (Exception e) when (e is not StoreException && !(e is OperationCanceledException && cancellationToken.IsCancellationRequested) && IsS3Failure(e))
        {
            throw Map(operation, key, e, cancellationToken);
        }
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
        if (IsTransient(e, cancellationToken))
        {
            var retried = _maxRetries > 0 ? $" after {_maxRetries} retries" : "";
            if (e is AmazonServiceException { StatusCode: not 0 } busy)
            {
                return new StoreUnavailableException(
                    $"S3 at {_endpoint} keeps failing{retried} ({Code(busy)}) on {operation} of {key} in bucket '{_bucket}'", e);
            }

            return new StoreUnavailableException($"S3 at {_endpoint} is unreachable{retried}: {Innermost(e)}", e);
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "S3 request failed, retry {Attempt}/{MaxRetries} in {DelayMs:F0} ms: {Error}")]
    private static partial void LogRetry(ILogger logger, int attempt, int maxRetries, double delayMs, string error);
}
