using System.Globalization;
using Amazon.Runtime;
using Amazon.S3;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Storage.S3;
using Xunit.Abstractions;

namespace VelozBackupAgent.IntegrationTests.Stores;

/// <summary>
/// Server-side encryption, storage class and Object Lock on the wire: a recording relay between the store and a real
/// s3rver shows the headers of every request. s3rver stores and reports the storage class but ignores encryption and
/// Object Lock, so those are checked as sent.
/// </summary>
public sealed class S3ProtectionTests : IClassFixture<S3rverFixture>, IAsyncLifetime
{
    private const int Part = S3StoreOptions.MinPartSizeBytes;
    private const string KmsKey = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    private readonly S3rverServer _server;
    private readonly ITestOutputHelper _output;
    private readonly string _bucket = "p-" + Guid.NewGuid().ToString("N")[..12];
    private readonly ListLogger _log = new();
    private RecordingProxy _proxy = null!;
    private AmazonS3Client _client = null!;

    public S3ProtectionTests(S3rverFixture fixture, ITestOutputHelper output)
    {
        _server = fixture.Server;
        _output = output;
    }

    public async Task InitializeAsync()
    {
        await _server.CreateBucketAsync(_bucket);
        _proxy = RecordingProxy.Start(_server.Port);
        var options = _server.Options(_bucket);
        options.ServiceUrl = _proxy.ServiceUrl;
        _client = S3ArtifactStore.CreateClient(options, new BasicAWSCredentials(S3rverServer.AccessKey, S3rverServer.SecretKey));
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _proxy.DisposeAsync();
    }

    private S3ArtifactStore Store(Action<S3StoreOptions> configure)
    {
        var options = _server.Options(_bucket);
        options.ServiceUrl = _proxy.ServiceUrl;
        configure(options);
        return new S3ArtifactStore(options, _client, _log);
    }

    /// <summary>Object writes: PutObject and CopyObject (PUT without a part number) and multipart initiation (POST ?uploads).</summary>
    private static bool IsObjectWrite(RecordedRequest r) =>
        (r.Method == "PUT" && !r.Target.Contains("partNumber=", StringComparison.Ordinal)) || (r.Method == "POST" && r.Target.EndsWith("?uploads", StringComparison.Ordinal));

    /// <summary>Requests that carry object bytes: PutObject and UploadPart.</summary>
    private static bool CarriesBytes(RecordedRequest r) => r.Method == "PUT" && r.Header("x-amz-copy-source") is null;

    [Fact]
    public async Task Every_object_write_carries_encryption_storage_class_and_lock_and_every_body_a_content_md5()
    {
        var store = Store(o =>
        {
            o.ServerSideEncryption = "aws:kms";
            o.KmsKeyId = KmsKey;
            o.StorageClass = "STANDARD_IA";
            o.ObjectLockMode = "GOVERNANCE";
            o.ObjectLockDays = 30;
        });
        var before = TimeProvider.System.GetUtcNow();

        await store.WriteAsync("database", "veloz_20261201_020000.dump", new GeneratedStream(1000));
        await store.WriteAsync("database", "veloz_20261202_020000.dump", new GeneratedStream(Part * 2L + 17)); // multipart, then the metadata copy
        await store.WriteAsync("config", "config_20261202_020000.tar.gz", new GeneratedStream(Part * 2L + 3), GeneratedStream.Sha256Of(Part * 2L + 3)); // multipart, metadata at initiate
        await store.WriteAsync("pitr", "000000010000000000000007", new GeneratedStream(4096));
        var after = TimeProvider.System.GetUtcNow();

        var requests = _proxy.Requests;
        foreach (var r in requests)
        {
            _output.WriteLine($"{r.Method} {r.Target} {string.Join(' ', r.Headers.Where(h => h.Key.StartsWith("x-amz-", StringComparison.OrdinalIgnoreCase) || h.Key.Equals("Content-MD5", StringComparison.OrdinalIgnoreCase)).Select(h => $"{h.Key}={h.Value}"))}");
        }

        var writes = requests.Where(IsObjectWrite).ToList();
        writes.Select(w => w.Path).Should().Contain(
        [
            $"/{_bucket}/veloz-1/database/veloz_20261201_020000.dump", $"/{_bucket}/veloz-1/database/veloz_20261201_020000.dump.sha256",
            $"/{_bucket}/veloz-1/pitr/000000010000000000000007", $"/{_bucket}/veloz-1/pitr/000000010000000000000007.sha256",
            $"/{_bucket}/veloz-1/config/config_20261202_020000.tar.gz.sha256",
        ]);
        writes.Count(w => w.Method == "POST").Should().Be(2, "two multipart uploads were initiated");
        writes.Count(w => w.Header("x-amz-copy-source") is not null).Should().Be(1, "the upload without a known checksum gets its metadata by one copy");
        writes.Should().HaveCount(9, "4 sidecars, 2 single puts, 2 initiations, 1 copy");
        foreach (var w in writes)
        {
            w.Header("x-amz-server-side-encryption").Should().Be("aws:kms", w.Target);
            w.Header("x-amz-server-side-encryption-aws-kms-key-id").Should().Be(KmsKey, w.Target);
            w.Header("x-amz-storage-class").Should().Be("STANDARD_IA", w.Target);
            w.Header("x-amz-object-lock-mode").Should().Be("GOVERNANCE", w.Target);
            var until = DateTimeOffset.Parse(w.Header("x-amz-object-lock-retain-until-date")!, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
            until.Should().BeOnOrAfter(before.AddDays(30).AddSeconds(-1), w.Target).And.BeOnOrBefore(after.AddDays(30).AddSeconds(1), w.Target);
        }

        // Object Lock refuses a put without Content-MD5 (or a checksum header): every body, parts included, has one.
        var bodies = requests.Where(CarriesBytes).ToList();
        bodies.Should().HaveCount(4 + 2 + 3 + 3, "4 sidecars, 2 single puts, 3 + 3 parts");
        bodies.Should().OnlyContain(b => b.Header("Content-MD5") != null);
    }

    [Fact]
    public async Task Without_the_options_no_protection_header_is_sent()
    {
        var store = Store(_ => { });

        await store.WriteAsync("database", "veloz_20261201_020000.dump", new GeneratedStream(1000));
        await store.WriteAsync("database", "veloz_20261202_020000.dump", new GeneratedStream(Part * 2L + 17));

        _proxy.Requests.Where(IsObjectWrite).Should().HaveCount(5).And.OnlyContain(r => !r.Headers.Keys.Any(k =>
            k.StartsWith("x-amz-server-side-encryption", StringComparison.OrdinalIgnoreCase)
            || k.StartsWith("x-amz-object-lock", StringComparison.OrdinalIgnoreCase)
            || k.Equals("x-amz-storage-class", StringComparison.OrdinalIgnoreCase)));
    }

    [Fact]
    public async Task The_storage_class_s3rver_reports_is_checked_and_what_it_does_not_report_is_said_once()
    {
        var store = Store(o =>
        {
            o.ServerSideEncryption = "AES256";
            o.StorageClass = "ONEZONE_IA";
            o.ObjectLockMode = "COMPLIANCE";
            o.ObjectLockDays = 1;
        });

        await store.WriteAsync("database", "veloz_20261201_020000.dump", new GeneratedStream(1000));
        await store.WriteAsync("database", "veloz_20261202_020000.dump", new GeneratedStream(Part * 2L + 17));
        await store.WriteAsync("wal", "orders_0000000000000001.wal", new GeneratedStream(10));

        foreach (var key in new[] { "veloz-1/database/veloz_20261201_020000.dump", "veloz-1/database/veloz_20261202_020000.dump", "veloz-1/database/veloz_20261202_020000.dump.sha256" })
        {
            (await _client.GetObjectMetadataAsync(_bucket, key)).StorageClass.Value.Should().Be("ONEZONE_IA", key);
        }

        _log.Lines.Should().NotContain(l => l.Contains("StorageClass", StringComparison.Ordinal), "s3rver reports the class, and it matches");
        _log.Lines.Where(l => l.Contains("does not report ServerSideEncryption", StringComparison.Ordinal)).Should().ContainSingle();
        _log.Lines.Where(l => l.Contains("does not report ObjectLockMode", StringComparison.Ordinal)).Should().ContainSingle();
    }

    [Fact]
    public async Task Lock_dates_come_from_the_object_time_where_s3rver_reports_no_retention()
    {
        var store = Store(o =>
        {
            o.ObjectLockMode = "GOVERNANCE";
            o.ObjectLockDays = 10;
        });
        var before = TimeProvider.System.GetUtcNow().AddSeconds(-2); // s3rver's Last-Modified has whole seconds

        await store.WriteAsync("database", "veloz_20261201_020000.dump", new GeneratedStream(1000));

        var until = await store.LockedUntilAsync("database", "veloz_20261201_020000.dump");
        until.Should().NotBeNull();
        until!.Value.Should().BeOnOrAfter(before.AddDays(10)).And.BeOnOrBefore(TimeProvider.System.GetUtcNow().AddDays(10).AddSeconds(2));
        (await store.LockedUntilAsync("database", "veloz_20261101_020000.dump")).Should().BeNull("nothing stored, nothing locked");
        (await Store(_ => { }).LockedUntilAsync("database", "veloz_20261201_020000.dump")).Should().BeNull("without ObjectLockMode the store does not ask");
    }

    [Fact]
    public async Task A_storage_class_s3rver_does_not_know_fails_the_write_with_one_line_and_stores_nothing()
    {
        var store = Store(o => o.StorageClass = "GLACIER_IR");

        var write = () => store.WriteAsync("database", "veloz_20261201_020000.dump", new GeneratedStream(1000));

        var e = (await write.Should().ThrowAsync<Storage.StoreException>()).Which;
        _output.WriteLine(e.Message);
        e.Message.Should().Contain("InvalidStorageClass").And.NotContain("\n");
        (await store.StatAsync("database", "veloz_20261201_020000.dump")).Should().BeNull();
    }

    private sealed class ListLogger : ILogger<S3ArtifactStore>
    {
        private readonly List<string> _lines = [];

        public IReadOnlyList<string> Lines
        {
            get
            {
                lock (_lines)
                {
                    return [.. _lines];
                }
            }
        }

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_lines)
            {
                _lines.Add($"{logLevel}: {formatter(state, exception)}");
            }
        }
    }
}
