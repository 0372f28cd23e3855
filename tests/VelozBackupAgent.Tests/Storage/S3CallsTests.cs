using System.Net;
using System.Net.Sockets;
using Amazon.Runtime;
using Amazon.S3;
using Microsoft.Extensions.Logging.Abstractions;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.S3;

namespace VelozBackupAgent.Tests.Storage;

/// <summary>The S3 store's one retry and error-mapping layer, without a server.</summary>
public sealed class S3CallsTests
{
    private readonly S3Calls _calls = new(
        new S3StoreOptions
        {
            Bucket = "veloz-backups",
            Prefix = "veloz-1",
            ServiceUrl = "http://127.0.0.1:4569",
            MaxRetries = 2,
            RetryBaseDelay = TimeSpan.FromMilliseconds(1),
            RetryMaxDelay = TimeSpan.FromMilliseconds(5),
        },
        TimeProvider.System,
        NullLogger.Instance);

    private int _attempts;

    private static AmazonS3Exception S3Error(HttpStatusCode status, string? code) =>
        new("server says no", null, ErrorType.Sender, code, "request-id", status);

    private Task<int> Failing(Exception error, int failures) =>
        _calls.RunAsync("PutObject", "veloz-1/database/x.dump", _ =>
        {
            _attempts++;
            return _attempts <= failures ? throw error : Task.FromResult(42);
        }, CancellationToken.None);

    [Theory]
    [InlineData(HttpStatusCode.ServiceUnavailable, "SlowDown")]
    [InlineData(HttpStatusCode.InternalServerError, "InternalError")]
    [InlineData(HttpStatusCode.TooManyRequests, null)]
    [InlineData(HttpStatusCode.BadRequest, "RequestTimeout")]
    public async Task Transient_server_errors_are_retried(HttpStatusCode status, string? code)
    {
        (await Failing(S3Error(status, code), failures: 2)).Should().Be(42);
        _attempts.Should().Be(3);
    }

    [Fact]
    public async Task Network_failures_are_retried_then_reported_as_unreachable()
    {
        var refused = new HttpRequestException("Connection refused (127.0.0.1:4569)", new SocketException((int)SocketError.ConnectionRefused));

        var thrown = await FluentActions.Awaiting(() => Failing(refused, failures: 10)).Should().ThrowAsync<StoreUnavailableException>();

        _attempts.Should().Be(3);
        thrown.Which.Message.Should().StartWith("S3 at http://127.0.0.1:4569 is unreachable after 2 retries: Connection refused");
    }

    [Fact]
    public async Task An_http_timeout_is_transient_but_the_callers_cancellation_is_not()
    {
        (await Failing(new TaskCanceledException("The request was canceled due to the configured HttpClient.Timeout"), failures: 1)).Should().Be(42);

        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        var attempts = 0;
        await FluentActions.Awaiting(() => _calls.RunAsync("PutObject", "k", token =>
        {
            attempts++;
            token.ThrowIfCancellationRequested();
            return Task.FromResult(1);
        }, cts.Token)).Should().ThrowAsync<OperationCanceledException>();
        attempts.Should().BeLessThanOrEqualTo(1);
    }

    [Fact]
    public async Task Throttling_that_does_not_stop_is_unavailable_naming_the_code()
    {
        var thrown = await FluentActions.Awaiting(() => Failing(S3Error(HttpStatusCode.ServiceUnavailable, "SlowDown"), failures: 10))
            .Should().ThrowAsync<StoreUnavailableException>();

        thrown.Which.Message.Should().Be(
            "S3 at http://127.0.0.1:4569 keeps failing after 2 retries (SlowDown, HTTP 503) on PutObject of veloz-1/database/x.dump in bucket 'veloz-backups'");
    }

    [Theory]
    [InlineData(HttpStatusCode.NotFound, "NoSuchBucket", "S3 bucket 'veloz-backups' does not exist at http://127.0.0.1:4569")]
    [InlineData(HttpStatusCode.Forbidden, "InvalidAccessKeyId", "S3 refused the credentials (InvalidAccessKeyId) for bucket 'veloz-backups' at http://127.0.0.1:4569: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS profile")]
    [InlineData(HttpStatusCode.Forbidden, "SignatureDoesNotMatch", "S3 refused the credentials (SignatureDoesNotMatch) for bucket 'veloz-backups' at http://127.0.0.1:4569: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS profile")]
    [InlineData(HttpStatusCode.Forbidden, "AccessDenied", "S3 denied access (AccessDenied) to bucket 'veloz-backups' at http://127.0.0.1:4569 on PutObject: check the credentials and the bucket policy")]
    [InlineData(HttpStatusCode.NotImplemented, "NotImplemented", "S3 PutObject of veloz-1/database/x.dump in bucket 'veloz-backups' at http://127.0.0.1:4569 failed: NotImplemented, HTTP 501: server says no")]
    public async Task Permanent_errors_fail_at_once_with_one_line(HttpStatusCode status, string code, string message)
    {
        var thrown = await FluentActions.Awaiting(() => Failing(S3Error(status, code), failures: 10)).Should().ThrowAsync<StoreException>();

        _attempts.Should().Be(1);
        thrown.Which.Should().NotBeOfType<StoreUnavailableException>();
        thrown.Which.IsPermanent.Should().BeTrue();
        thrown.Which.Message.Should().Be(message);
    }

    [Fact]
    public async Task The_SDKs_own_response_checksum_failure_is_a_checksum_mismatch_naming_the_object()
    {
        var thrown = await FluentActions.Awaiting(() => Failing(new AmazonClientException("Expected hash not equal to calculated hash"), failures: 10))
            .Should().ThrowAsync<ArtifactIntegrityException>();

        _attempts.Should().Be(1, "bytes that do not match are not a passing fault");
        thrown.Which.Message.Should().StartWith("s3://veloz-backups/veloz-1/database/x.dump: checksum mismatch").And.NotContain("Expected hash");
    }

    [Fact]
    public async Task Missing_credentials_are_one_line_that_says_where_the_agent_looks()
    {
        var sdk = new AmazonClientException(
            "Failed to resolve AWS credentials. The credential providers used to search for credentials returned the following errors:\n" +
            "Exception 1 of 4: The environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN were not set with AWS credentials.\n" +
            "Exception 2 of 4: The webIdentityTokenFile must be an absolute path.");

        var thrown = await FluentActions.Awaiting(() => Failing(sdk, failures: 10)).Should().ThrowAsync<StoreException>();

        _attempts.Should().Be(1);
        thrown.Which.Message.Should().StartWith("no S3 credentials found for bucket 'veloz-backups' at http://127.0.0.1:4569")
            .And.Contain("AWS_ACCESS_KEY_ID").And.Contain("profile").And.Contain("instance role").And.NotContain("\n").And.NotContain("Exception 1 of");
    }

    [Fact]
    public async Task An_unreachable_verdict_stands_for_the_hold_then_S3_is_tried_again()
    {
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 12, 2, 4, 0, 0, TimeSpan.Zero));
        var calls = new S3Calls(
            new S3StoreOptions { Bucket = "b", Prefix = "veloz-1", ServiceUrl = "http://127.0.0.1:4569", MaxRetries = 0, UnreachableHold = TimeSpan.FromMinutes(1) },
            clock, NullLogger.Instance);
        var attempts = 0;
        Task<int> Call(bool fail) => calls.RunAsync("HeadObject", "k", _ =>
        {
            attempts++;
            return fail ? throw new HttpRequestException("Connection refused", new SocketException((int)SocketError.ConnectionRefused)) : Task.FromResult(7);
        }, CancellationToken.None);

        await FluentActions.Awaiting(() => Call(fail: true)).Should().ThrowAsync<StoreUnavailableException>();
        clock.Advance(TimeSpan.FromSeconds(59));
        var held = await FluentActions.Awaiting(() => Call(fail: false)).Should().ThrowAsync<StoreUnavailableException>();
        held.Which.Message.Should().Contain("found 59 s ago; not tried again");
        attempts.Should().Be(1, "within the hold nothing is sent");

        clock.Advance(TimeSpan.FromSeconds(1));
        (await Call(fail: false)).Should().Be(7);
        attempts.Should().Be(2);
    }

    [Fact]
    public async Task Without_a_hold_every_call_tries_S3_again_and_an_answering_S3_never_trips_it()
    {
        var refused = new HttpRequestException("Connection refused", new SocketException((int)SocketError.ConnectionRefused));
        await FluentActions.Awaiting(() => Failing(refused, failures: 100)).Should().ThrowAsync<StoreUnavailableException>();
        await FluentActions.Awaiting(() => Failing(refused, failures: 100)).Should().ThrowAsync<StoreUnavailableException>();
        _attempts.Should().Be(6, "the default (no hold) retries on every call, as the daemon needs");

        var calls = new S3Calls(
            new S3StoreOptions { Bucket = "b", Prefix = "veloz-1", MaxRetries = 0, UnreachableHold = Timeout.InfiniteTimeSpan },
            TimeProvider.System, NullLogger.Instance);
        var attempts = 0;
        for (var i = 0; i < 2; i++)
        {
            await FluentActions.Awaiting(() => calls.RunAsync("GetObject", "k", _ =>
            {
                attempts++;
                return Task.FromException<int>(S3Error(HttpStatusCode.ServiceUnavailable, "SlowDown"));
            }, CancellationToken.None)).Should().ThrowAsync<StoreUnavailableException>();
        }

        attempts.Should().Be(2, "a server that answers 503 is reachable: no verdict");
    }

    [Fact]
    public void Missing_key_is_told_apart_from_missing_bucket()
    {
        S3Calls.IsMissingKey(S3Error(HttpStatusCode.NotFound, "NoSuchKey")).Should().BeTrue();
        S3Calls.IsMissingKey(S3Error(HttpStatusCode.NotFound, null)).Should().BeTrue(); // HEAD has no body
        S3Calls.IsMissingKey(S3Error(HttpStatusCode.NotFound, "NoSuchBucket")).Should().BeFalse();
        S3Calls.IsMissingKey(S3Error(HttpStatusCode.Forbidden, "AccessDenied")).Should().BeFalse();
    }

    [Theory]
    [InlineData("")]
    [InlineData("/veloz-1")]
    [InlineData("veloz-1/")]
    [InlineData("veloz 1")]
    [InlineData("veloz%2F1")]
    public void A_bad_prefix_is_refused(string prefix)
    {
        var options = new S3StoreOptions { Bucket = "b", Prefix = prefix };
        FluentActions.Invoking(options.Validate).Should().Throw<ArgumentException>().WithMessage("*prefix*");
    }

    [Fact]
    public void A_part_size_below_five_mib_is_refused()
    {
        var options = new S3StoreOptions { Bucket = "b", Prefix = "veloz-1", PartSizeBytes = 1024 };
        FluentActions.Invoking(options.Validate).Should().Throw<ArgumentException>().WithMessage("*5 MiB*");
    }
}
