using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.IntegrationTests.Telemetry;

/// <summary>The real daemon's <c>/metrics</c> and <c>/health</c>, scraped over HTTP and checked with promtool.</summary>
public sealed class MetricsDaemonTests : IDisposable
{
    /// <summary>A Quartz cron that does not fire before 2099: only the start-up catch-up runs, so a restart runs nothing.</summary>
    private const string Never = "0 0 3 1 1 ? 2099";

    private readonly string _root = Directory.CreateTempSubdirectory("veloz-metrics-").FullName;
    private readonly string _etc = Directory.CreateTempSubdirectory("veloz-metrics-etc-").FullName;
    private readonly string _wal = Directory.CreateTempSubdirectory("veloz-metrics-wal-").FullName;

    public MetricsDaemonTests()
    {
        File.WriteAllText(Path.Combine(_etc, "config.yaml"), "engine: veloz\n");
    }

    public void Dispose()
    {
        foreach (var dir in new[] { _root, _etc, _wal })
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private List<string> Args(bool wal = true, string? configRoot = null, string configSchedule = Never) =>
    [
        $"--Backup:LocalRoot={_root}",
        $"--Backup:Config:Root={configRoot ?? _etc}",
        $"--Backup:Config:Schedule={configSchedule}",
        $"--Backup:Wal:Enabled={(wal ? "true" : "false")}",
        $"--Backup:Wal:Directory={_wal}",
        $"--Backup:Wal:Schedule={Never}",
        "--Backup:Database:Enabled=false",
        "--Backup:Secrets:Enabled=false",
    ];

    private static double Unix(DateTimeOffset t) => t.ToUnixTimeSeconds();

    private string OnlyArtifact(string kind, string prefix) =>
        Directory.GetFiles(Path.Combine(_root, kind), prefix + "_*").Where(f => !f.EndsWith(".sha256", StringComparison.Ordinal))
            .Select(Path.GetFileName).Should().ContainSingle().Subject!;

    private static DateTimeOffset TimeIn(string name)
    {
        ArtifactName.TryParse(name, out _, out var time, out _, out _).Should().BeTrue(name);
        return time;
    }

    private static async Task<Health?> HealthAsync(RunningDaemon daemon) =>
        await daemon.GetAsync("/health") is { } r ? new Health(JsonDocument.Parse(r.Body).RootElement.Clone()) : null;

    private static JsonElement KindIn(Health health, string kind) =>
        health.Root.GetProperty("kinds").EnumerateArray().Single(k => k.GetProperty("kind").GetString() == kind);

    [Fact]
    public async Task Known_series_exist_from_start_up_pass_promtool_and_freshness_comes_back_from_the_catalog_after_a_restart()
    {
        string first;
        await using (var daemon = RunningDaemon.Start(Args(), RunningDaemon.FreePort()))
        {
            // Both kinds had never run, so both ran at start-up; healthy means they succeeded and Quartz runs.
            await daemon.WaitForAsync(() => HealthAsync(daemon), h => h.Root.GetProperty("status").GetString() == "healthy", "a healthy /health");
            var reply = await daemon.GetAsync("/metrics");
            reply!.Value.ContentType.Should().Be("text/plain; version=0.0.4; charset=utf-8");
            first = reply.Value.Body;
            (await daemon.StopAsync()).Should().Be(0, daemon.Console);
        }

        var lint = await ChildProcess.RunAsync("promtool", ["check", "metrics"], stdin: first);
        lint.ExitCode.Should().Be(0, lint.StdOut + lint.StdErr);
        (lint.StdOut + lint.StdErr).Should().BeEmpty("promtool's linter has nothing to say about a real scrape");

        var scrape = new Scrape(first);
        foreach (var kind in new[] { "config", "wal" })
        {
            foreach (var outcome in new[] { "succeeded", "unchanged", "failed", "busy" })
            {
                scrape.Has($"veloz_backup_runs_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}").Should().BeTrue();
            }

            scrape[$"veloz_backup_runs_total{{kind=\"{kind}\",outcome=\"succeeded\"}}"].Should().Be(1);
            scrape[$"veloz_backup_runs_total{{kind=\"{kind}\",outcome=\"failed\"}}"].Should().Be(0);
            scrape[$"veloz_backup_duration_seconds_count{{kind=\"{kind}\"}}"].Should().BeGreaterThanOrEqualTo(1);
            scrape[$"veloz_backup_last_failure_timestamp_seconds{{kind=\"{kind}\"}}"].Should().Be(0);
            scrape[$"veloz_backup_artifacts{{kind=\"{kind}\",target=\"local\"}}"].Should().Be(1);
        }

        foreach (var kind in new[] { "config", "wal", "database", "secrets" })
        {
            scrape[$"veloz_backup_integrity_errors_total{{kind=\"{kind}\"}}"].Should().Be(0);
            scrape[$"veloz_backup_retention_deleted_total{{kind=\"{kind}\",target=\"local\"}}"].Should().Be(0);
        }

        scrape["veloz_backup_freshness_objective_seconds{kind=\"wal\"}"].Should().Be(300);
        scrape["veloz_backup_upload_backlog_artifacts"].Should().Be(0);
        scrape["veloz_backup_wal_segments_pending"].Should().Be(0);
        scrape["veloz_backup_restore_test_last_success_timestamp_seconds"].Should().Be(0);
        scrape["veloz_backup_last_success_timestamp_seconds{kind=\"config\",target=\"local\"}"].Should().BeGreaterThan(0);
        scrape.Has("veloz_backup_last_success_timestamp_seconds{kind=\"database\",target=\"local\"}").Should().BeFalse("database is disabled");

        var config = OnlyArtifact("config", "config");
        var manifest = OnlyArtifact("wal", "wal-manifest");
        await using (var daemon = RunningDaemon.Start(Args(), RunningDaemon.FreePort()))
        {
            var restarted = new Scrape(await daemon.ScrapeAsync());

            restarted["veloz_backup_runs_total{kind=\"config\",outcome=\"succeeded\"}"].Should().Be(0, "nothing ran in the new process");
            restarted["veloz_backup_last_success_timestamp_seconds{kind=\"config\",target=\"local\"}"].Should().Be(Unix(TimeIn(config)), "the time in the newest artifact's name");
            restarted["veloz_backup_last_success_timestamp_seconds{kind=\"wal\",target=\"local\"}"].Should().Be(Unix(TimeIn(manifest)), "for the WAL, the newest manifest's name");
            restarted["veloz_backup_artifacts{kind=\"config\",target=\"local\"}"].Should().Be(1);
            restarted["veloz_backup_stored_bytes{kind=\"config\",target=\"local\"}"].Should().Be(new FileInfo(Path.Combine(_root, "config", config)).Length);
            var health = await daemon.WaitForAsync(() => HealthAsync(daemon), h => h.Root.GetProperty("scheduler").GetString() == "running", "a running scheduler");
            health.Root.GetProperty("status").GetString().Should().Be("healthy", "freshness comes from the catalog, not from \"never\"");
            (await daemon.StopAsync()).Should().Be(0, daemon.Console);
        }
    }

    [Fact]
    public async Task Health_is_503_naming_the_stale_kind_and_turns_200_when_another_process_backs_it_up()
    {
        // A six-year-old configuration backup, and a configuration root with nothing to archive: the catch-up run
        // of the six-hourly schedule fails.
        await using (var content = new MemoryStream("old"u8.ToArray()))
        {
            await new LocalArtifactStore(_root).WriteAsync("config", "config_20200101_000000.tar.gz", content);
        }

        var empty = Directory.CreateTempSubdirectory("veloz-metrics-empty-").FullName;
        try
        {
            await using var daemon = RunningDaemon.Start(Args(configRoot: empty, configSchedule: "0 0 0/6 * * ?"), RunningDaemon.FreePort());
            var scrape = await daemon.WaitForAsync(async () => new Scrape(await daemon.ScrapeAsync()),
                s => s["veloz_backup_runs_total{kind=\"config\",outcome=\"failed\"}"] >= 1, "the failed configuration run");
            scrape["veloz_backup_last_failure_timestamp_seconds{kind=\"config\"}"].Should().BeGreaterThan(0);
            scrape["veloz_backup_last_success_timestamp_seconds{kind=\"config\",target=\"local\"}"].Should().Be(Unix(new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero)));

            var health = await daemon.WaitForAsync(() => HealthAsync(daemon),
                h => h.Root.GetProperty("scheduler").GetString() == "running" && !KindIn(h, "wal").GetProperty("stale").GetBoolean(),
                "/health after the WAL's start-up run");

            (await daemon.GetAsync("/health"))!.Value.Status.Should().Be(HttpStatusCode.ServiceUnavailable);
            health.Root.GetProperty("status").GetString().Should().Be("unhealthy");
            var config = KindIn(health, "config");
            config.GetProperty("stale").GetBoolean().Should().BeTrue();
            config.GetProperty("lastSuccess").GetString().Should().Be("2020-01-01T00:00:00Z");
            config.GetProperty("objectiveSeconds").GetDouble().Should().Be(6 * 3600);
            config.GetProperty("overdueSeconds").GetDouble().Should().BeGreaterThan(5 * 365 * 86400.0);
            health.Root.GetProperty("problems").EnumerateArray().Select(p => p.GetString()).Should().ContainSingle()
                .Which.Should().StartWith("config is stale: last success 2020-01-01 00:00:00Z, ");


            // The on-call stores a configuration backup by hand, in another process: the daemon notices it.
            var now = TimeProvider.System.GetUtcNow();
            var file = Path.Combine(empty, ArtifactName.Format("config", now, ".tar.gz"));
            await TestArchives.WriteTarGzAsync(file);
            var import = await VelozBackupBinary.RunAsync(["import", "config", file, $"--Backup:LocalRoot={_root}"]);
            import.ExitCode.Should().Be(0, import.StdErr);

            var healed = await daemon.WaitForAsync(() => HealthAsync(daemon), h => h.Root.GetProperty("status").GetString() == "healthy", "a healthy /health after the import");
            KindIn(healed, "config").GetProperty("lastSuccess").GetString().Should().Be(now.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
            (await daemon.GetAsync("/health"))!.Value.Status.Should().Be(HttpStatusCode.OK);
            (await daemon.StopAsync()).Should().Be(0, daemon.Console);
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
        }
    }

    [Fact]
    public async Task A_port_in_use_stops_the_daemon_at_start_up_with_one_line_naming_Backup_Http_Url()
    {
        using var holder = new TcpListener(IPAddress.Loopback, 0);
        holder.Start();
        var port = ((IPEndPoint)holder.LocalEndpoint).Port;

        var r = await VelozBackupBinary.RunAsync(["run", .. Args(), $"--Backup:Http:Url=http://127.0.0.1:{port}"], timeout: TimeSpan.FromSeconds(60));

        r.ExitCode.Should().Be(1, r.StdOut);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("Backup:Http:Url").And.Contain($"127.0.0.1:{port}").And.Contain("in use");
        Directory.Exists(Path.Combine(_root, "config")).Should().BeFalse("the listener is bound before any backup starts");
    }

    [Fact]
    public async Task A_hanging_S3_never_holds_up_a_scrape_or_health()
    {
        // Accepts connections and never answers: every S3 request (listing, upload) hangs.
        using var blackhole = new TcpListener(IPAddress.Loopback, 0);
        blackhole.Start();
        var held = new List<TcpClient>();
        using var stop = new CancellationTokenSource();
        var accepting = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    var client = await blackhole.AcceptTcpClientAsync(stop.Token);
                    lock (held)
                    {
                        held.Add(client);
                    }
                }
            }
            catch (OperationCanceledException)
            {
                // Test over.
            }
        });

        try
        {
            var env = S3Env($"http://127.0.0.1:{((IPEndPoint)blackhole.LocalEndpoint).Port}", "veloz-backups");
            await using var daemon = RunningDaemon.Start(Args(wal: false), RunningDaemon.FreePort(), env);
            await daemon.WaitForAsync(() => Task.FromResult(Count(held) > 0 ? "connected" : null), _ => true, "a connection to the hanging S3");

            var health = await daemon.WaitForAsync(() => HealthAsync(daemon), h => h.Root.GetProperty("status").GetString() == "healthy", "a healthy /health");
            KindIn(health, "config").GetProperty("stale").GetBoolean().Should().BeFalse();
            var scrape = new Scrape(await daemon.ScrapeAsync());
            scrape["veloz_backup_artifacts{kind=\"config\",target=\"s3\"}"].Should().Be(0);
            scrape["veloz_backup_last_success_timestamp_seconds{kind=\"config\",target=\"s3\"}"].Should().Be(0);
            scrape["veloz_backup_last_success_timestamp_seconds{kind=\"config\",target=\"local\"}"].Should().BeGreaterThan(0);
            scrape["veloz_backup_upload_backlog_artifacts"].Should().Be(1, "the configuration backup waits for S3");
            scrape["veloz_backup_upload_backlog_oldest_timestamp_seconds"].Should().BeGreaterThan(0);
            (await daemon.StopAsync()).Should().Be(0, "a hanging listing is cancelled at stop: " + daemon.Console);
        }
        finally
        {
            await stop.CancelAsync();
            await accepting;
            lock (held)
            {
                held.ForEach(c => c.Dispose());
            }
        }
    }

    [Fact]
    public async Task Copies_to_S3_move_the_s3_series_and_after_a_restart_they_come_back_from_an_S3_listing()
    {
        await using var s3 = await S3rverServer.StartNewAsync();
        var bucket = "metrics-" + Guid.NewGuid().ToString("N")[..10];
        await s3.CreateBucketAsync(bucket);
        s3.Stop();
        var env = S3Env(s3.ServiceUrl, bucket);

        await using (var daemon = RunningDaemon.Start(Args(wal: false), RunningDaemon.FreePort(), env))
        {
            await daemon.WaitForAsync(() => HealthAsync(daemon), h => h.Root.GetProperty("status").GetString() == "healthy", "a healthy /health");
            var down = new Scrape(await daemon.ScrapeAsync());
            down["veloz_backup_upload_backlog_artifacts"].Should().Be(1);
            down["veloz_backup_last_success_timestamp_seconds{kind=\"config\",target=\"s3\"}"].Should().Be(0);
            down["veloz_backup_bytes_total{kind=\"config\",target=\"s3\"}"].Should().Be(0);

            await s3.StartAsync();
            var config = OnlyArtifact("config", "config");
            var size = new FileInfo(Path.Combine(_root, "config", config)).Length;
            var up = await daemon.WaitForAsync(async () => new Scrape(await daemon.ScrapeAsync()),
                s => s["veloz_backup_upload_backlog_artifacts"] == 0 && s["veloz_backup_artifacts{kind=\"config\",target=\"s3\"}"] == 1, "the backlog drained to S3");

            up["veloz_backup_last_success_timestamp_seconds{kind=\"config\",target=\"s3\"}"].Should().Be(Unix(TimeIn(config)));
            up["veloz_backup_bytes_total{kind=\"config\",target=\"s3\"}"].Should().Be(size);
            up["veloz_backup_stored_bytes{kind=\"config\",target=\"s3\"}"].Should().Be(size);
            up["veloz_backup_upload_backlog_bytes"].Should().Be(0);
            var lint = await ChildProcess.RunAsync("promtool", ["check", "metrics"], stdin: up.Text);
            lint.ExitCode.Should().Be(0, lint.StdOut + lint.StdErr);
            (await daemon.StopAsync()).Should().Be(0, daemon.Console);
        }

        await using (var daemon = RunningDaemon.Start(Args(wal: false), RunningDaemon.FreePort(), env))
        {
            var listed = await daemon.WaitForAsync(async () => new Scrape(await daemon.ScrapeAsync()),
                s => s["veloz_backup_artifacts{kind=\"config\",target=\"s3\"}"] == 1, "the S3 listing");
            listed["veloz_backup_runs_total{kind=\"config\",outcome=\"succeeded\"}"].Should().Be(0);
            listed["veloz_backup_bytes_total{kind=\"config\",target=\"s3\"}"].Should().Be(0, "nothing was copied by this process");
            listed["veloz_backup_last_success_timestamp_seconds{kind=\"config\",target=\"s3\"}"].Should().Be(Unix(TimeIn(OnlyArtifact("config", "config"))));
            (await daemon.StopAsync()).Should().Be(0, daemon.Console);
        }
    }

    private static int Count(List<TcpClient> held)
    {
        lock (held)
        {
            return held.Count;
        }
    }

    /// <summary>The parsed <c>/health</c> body.</summary>
    private sealed record Health(JsonElement Root);

    private static Dictionary<string, string?> S3Env(string serviceUrl, string bucket) => new()
    {
        ["Backup__S3__Enabled"] = "true",
        ["Backup__S3__Bucket"] = bucket,
        ["Backup__S3__ServiceUrl"] = serviceUrl,
        ["Backup__S3__ForcePathStyle"] = "true",
        ["Backup__S3__ChunkedUpload"] = "false",
        ["Backup__S3__MaxRetries"] = "1",
        ["Backup__Secrets__Recipients__0"] = TestEnvironment.GpgRecipient,
        ["Backup__Secrets__GnupgHome"] = TestEnvironment.GnupgHome,
        ["Backup__Replication__InitialBackoff"] = "00:00:01",
        ["Backup__Replication__MaxBackoff"] = "00:00:02",
        ["AWS_ACCESS_KEY_ID"] = S3rverServer.AccessKey,
        ["AWS_SECRET_ACCESS_KEY"] = S3rverServer.SecretKey,
        ["AWS_REGION"] = "us-east-1",
        ["AWS_EC2_METADATA_DISABLED"] = "true",
    };
}
