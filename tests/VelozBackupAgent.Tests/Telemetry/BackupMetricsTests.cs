using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Time.Testing;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Retention;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Telemetry;
using VelozBackupAgent.Verification;

namespace VelozBackupAgent.Tests.Telemetry;

public sealed class BackupMetricsTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);

    private readonly string _root = Directory.CreateTempSubdirectory("veloz-metrics-").FullName;
    private readonly FakeTimeProvider _clock = new(Now);
    private readonly List<BackupMetrics> _metrics = [];

    public void Dispose()
    {
        foreach (var m in _metrics)
        {
            m.Dispose();
        }

        Directory.Delete(_root, recursive: true);
    }

    private BackupOptions Options(params (string Key, string Value)[] settings)
    {
        var all = new Dictionary<string, string?> { ["Backup:LocalRoot"] = _root };
        foreach (var (k, v) in settings)
        {
            all[k] = v;
        }

        return BackupConfiguration.Load(new ConfigurationBuilder().AddInMemoryCollection(all).Build());
    }

    private LocalArtifactStore Local => new(_root, _clock);

    /// <summary>A new agent's metrics, each on its own meter so tests running in parallel never see each other's.</summary>
    private BackupMetrics Metrics(BackupOptions options)
    {
        var metrics = new BackupMetrics(options, Local, null, _clock, meterName: "VelozBackupAgent.Tests." + Guid.NewGuid().ToString("N"));
        _metrics.Add(metrics);
        return metrics;
    }

    private static double Unix(DateTimeOffset t) => t.ToUnixTimeMilliseconds() / 1000.0;

    private async Task StoreAsync(string kind, string name, int size = 10)
    {
        await using var content = new MemoryStream(new byte[size]);
        await Local.WriteAsync(kind, name, content);
    }

    [Fact]
    public void Every_known_series_exists_from_start_up_at_zero()
    {
        var metrics = Metrics(Options(("Backup:Secrets:Enabled", "false")));

        var scrape = new ScrapeText(metrics.Scrape());

        foreach (var kind in new[] { "wal", "config", "database" })
        {
            foreach (var outcome in new[] { "succeeded", "unchanged", "failed", "busy" })
            {
                scrape[$"veloz_backup_runs_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}"].Should().Be(0);
            }

            scrape[$"veloz_backup_last_success_timestamp_seconds{{kind=\"{kind}\",target=\"local\"}}"].Should().Be(0);
            scrape[$"veloz_backup_last_failure_timestamp_seconds{{kind=\"{kind}\"}}"].Should().Be(0);
            scrape[$"veloz_backup_bytes_total{{kind=\"{kind}\",target=\"local\"}}"].Should().Be(0);
            scrape[$"veloz_backup_duration_seconds_bucket{{kind=\"{kind}\",le=\"+Inf\"}}"].Should().Be(0);
            scrape[$"veloz_backup_duration_seconds_count{{kind=\"{kind}\"}}"].Should().Be(0);
        }

        foreach (var kind in new[] { "wal", "config", "database", "secrets" })
        {
            scrape[$"veloz_backup_integrity_errors_total{{kind=\"{kind}\"}}"].Should().Be(0);
            scrape[$"veloz_backup_retention_deleted_total{{kind=\"{kind}\",target=\"local\"}}"].Should().Be(0);
            scrape[$"veloz_backup_artifacts{{kind=\"{kind}\",target=\"local\"}}"].Should().Be(0);
            scrape[$"veloz_backup_stored_bytes{{kind=\"{kind}\",target=\"local\"}}"].Should().Be(0);
        }

        scrape["veloz_backup_freshness_objective_seconds{kind=\"wal\"}"].Should().Be(300);
        scrape["veloz_backup_freshness_objective_seconds{kind=\"config\"}"].Should().Be(6 * 3600);
        scrape["veloz_backup_freshness_objective_seconds{kind=\"database\"}"].Should().Be(24 * 3600);
        scrape["veloz_backup_upload_backlog_artifacts"].Should().Be(0);
        scrape["veloz_backup_upload_backlog_bytes"].Should().Be(0);
        scrape["veloz_backup_wal_segments_pending"].Should().Be(0);
        scrape["veloz_backup_restore_test_last_success_timestamp_seconds"].Should().Be(0);
        scrape["veloz_backup_restore_test_objective_seconds{kind=\"database\"}"].Should().Be(1800);
        scrape.Samples.Keys.Should().NotContain(k => k.Contains("kind=\"secrets\",outcome", StringComparison.Ordinal), "secrets is disabled");
        scrape.Types["veloz_backup_duration_seconds"].Should().Be("histogram");
        scrape.Types["veloz_backup_runs_total"].Should().Be("counter");
        scrape.Types["veloz_backup_last_success_timestamp_seconds"].Should().Be("gauge");
    }

    [Fact]
    public async Task After_a_restart_freshness_and_sizes_come_from_the_names_in_the_catalog()
    {
        await StoreAsync("config", "config_20261120_060000.tar.gz", 100);
        await StoreAsync("config", "config_20261121_060000.tar.gz", 150);
        await StoreAsync("wal", "orders_0000000000000001.wal", 1000);
        await StoreAsync("wal", "wal-manifest_20261121_065500.json", 50);
        await StoreAsync("wal", "orders_current_20261121_070000.wal", 20);
        var metrics = Metrics(Options());

        (await metrics.RefreshAsync(Local)).Should().BeTrue();
        var scrape = new ScrapeText(metrics.Scrape());

        scrape["veloz_backup_last_success_timestamp_seconds{kind=\"config\",target=\"local\"}"].Should().Be(Unix(new DateTimeOffset(2026, 11, 21, 6, 0, 0, TimeSpan.Zero)));
        scrape["veloz_backup_last_success_timestamp_seconds{kind=\"wal\",target=\"local\"}"]
            .Should().Be(Unix(new DateTimeOffset(2026, 11, 21, 6, 55, 0, TimeSpan.Zero)), "for the WAL a manifest marks a sync; a watcher snapshot does not");
        scrape["veloz_backup_last_success_timestamp_seconds{kind=\"database\",target=\"local\"}"].Should().Be(0);
        scrape["veloz_backup_artifacts{kind=\"config\",target=\"local\"}"].Should().Be(2);
        scrape["veloz_backup_stored_bytes{kind=\"config\",target=\"local\"}"].Should().Be(250);
        scrape["veloz_backup_artifacts{kind=\"wal\",target=\"local\"}"].Should().Be(3);
        scrape["veloz_backup_stored_bytes{kind=\"wal\",target=\"local\"}"].Should().Be(1070);
        metrics.LastSuccess("config", "local").Should().Be(new DateTimeOffset(2026, 11, 21, 6, 0, 0, TimeSpan.Zero));
    }

    [Fact]
    public async Task Runs_count_by_outcome_time_their_duration_and_move_last_success_and_failure()
    {
        var options = Options();
        var metrics = Metrics(options);
        var runner = new BackupRunner([
            new ScriptedSource("config", async ct =>
            {
                _clock.Advance(TimeSpan.FromSeconds(3));
                await StoreAsync("config", "config_20261123_100000.tar.gz", 700);
                return new BackupOutput([new ArtifactInfo("config", "config_20261123_100000.tar.gz", 700, null)]);
            }),
            new ScriptedSource("database", _ =>
            {
                _clock.Advance(TimeSpan.FromSeconds(40));
                throw new BackupSourceException("pg_dump: connection refused");
            }),
        ], options.StateDirectory, _clock);
        metrics.Attach(runner, new Pruner(options, [Local], (_, _, _) => Task.FromResult<WalManifestLinks?>(null), _clock), null);

        await runner.RunAsync("config", BackupTrigger.Scheduled);
        var failedAt = _clock.GetUtcNow();
        await runner.RunAsync("database", BackupTrigger.Scheduled);
        var scrape = new ScrapeText(metrics.Scrape());

        scrape["veloz_backup_runs_total{kind=\"config\",outcome=\"succeeded\"}"].Should().Be(1);
        scrape["veloz_backup_runs_total{kind=\"database\",outcome=\"failed\"}"].Should().Be(1);
        scrape["veloz_backup_bytes_total{kind=\"config\",target=\"local\"}"].Should().Be(700);
        scrape["veloz_backup_duration_seconds_bucket{kind=\"config\",le=\"2.5\"}"].Should().Be(0);
        scrape["veloz_backup_duration_seconds_bucket{kind=\"config\",le=\"5\"}"].Should().Be(1);
        scrape["veloz_backup_duration_seconds_sum{kind=\"config\"}"].Should().Be(3);
        scrape["veloz_backup_duration_seconds_bucket{kind=\"database\",le=\"60\"}"].Should().Be(1);
        scrape["veloz_backup_last_success_timestamp_seconds{kind=\"config\",target=\"local\"}"].Should().Be(Unix(Now));
        scrape["veloz_backup_artifacts{kind=\"config\",target=\"local\"}"].Should().Be(1, "a run's artifacts are counted without listing the store");
        scrape["veloz_backup_last_failure_timestamp_seconds{kind=\"database\"}"].Should().Be(Unix(failedAt + TimeSpan.FromSeconds(40)));
        scrape["veloz_backup_last_success_timestamp_seconds{kind=\"database\",target=\"local\"}"].Should().Be(0);
    }

    [Fact]
    public async Task A_run_that_fails_after_storing_its_dump_counts_the_dump_and_still_shows_the_failure()
    {
        var options = Options();
        var metrics = Metrics(options);
        var dump = new ArtifactInfo("database", "veloz_20261123_100000.dump", 500, null);
        var runner = new BackupRunner([
            new ScriptedSource("database", _ =>
            {
                _clock.Advance(TimeSpan.FromSeconds(5));
                throw new PartialBackupException([dump], "the dump veloz_20261123_100000.dump is stored, but the cluster globals are not: pg_dumpall not found", new BackupSourceException("pg_dumpall not found"));
            }),
        ], options.StateDirectory, _clock);
        metrics.Attach(runner, new Pruner(options, [Local], (_, _, _) => Task.FromResult<WalManifestLinks?>(null), _clock), null);

        var result = await runner.RunAsync("database", BackupTrigger.Scheduled);
        var scrape = new ScrapeText(metrics.Scrape());

        result.Outcome.Should().Be(BackupOutcome.Failed);
        result.Artifacts.Should().Equal(dump);
        scrape["veloz_backup_runs_total{kind=\"database\",outcome=\"failed\"}"].Should().Be(1);
        scrape["veloz_backup_artifacts{kind=\"database\",target=\"local\"}"].Should().Be(1, "the stored dump is a backup");
        scrape["veloz_backup_last_success_timestamp_seconds{kind=\"database\",target=\"local\"}"].Should().Be(Unix(Now), "fresh: the dump's time");
        scrape["veloz_backup_last_failure_timestamp_seconds{kind=\"database\"}"].Should().Be(Unix(Now + TimeSpan.FromSeconds(5)), "later than the success: the run-failing alert fires");
    }

    [Fact]
    public async Task An_unchanged_run_proves_the_newest_backup_current_but_a_WAL_change_run_is_not_a_sync()
    {
        var options = Options();
        var metrics = Metrics(options);
        var runner = new BackupRunner([
            new ScriptedSource("config", _ => Task.FromResult(BackupOutput.Nothing("unchanged"))),
            new ScriptedSource("wal", _ => Task.FromResult(new BackupOutput([new ArtifactInfo("wal", "orders_0000000000000007.wal", 64, null)]))),
        ], options.StateDirectory, _clock);
        metrics.Attach(runner, new Pruner(options, [Local], (_, _, _) => Task.FromResult<WalManifestLinks?>(null), _clock), null);

        await runner.RunAsync("config", BackupTrigger.Change);
        await runner.RunAsync("wal", BackupTrigger.Change);
        var scrape = new ScrapeText(metrics.Scrape());

        scrape["veloz_backup_runs_total{kind=\"config\",outcome=\"unchanged\"}"].Should().Be(1);
        scrape["veloz_backup_last_success_timestamp_seconds{kind=\"config\",target=\"local\"}"].Should().Be(Unix(Now));
        scrape["veloz_backup_runs_total{kind=\"wal\",outcome=\"succeeded\"}"].Should().Be(1);
        scrape["veloz_backup_bytes_total{kind=\"wal\",target=\"local\"}"].Should().Be(64);
        scrape["veloz_backup_last_success_timestamp_seconds{kind=\"wal\",target=\"local\"}"].Should().Be(0);

        await runner.RunAsync("wal", BackupTrigger.Scheduled);
        new ScrapeText(metrics.Scrape())["veloz_backup_last_success_timestamp_seconds{kind=\"wal\",target=\"local\"}"].Should().Be(Unix(Now));
    }

    [Fact]
    public async Task Retention_deletions_are_counted_and_leave_the_inventory()
    {
        var options = Options();
        await StoreAsync("config", "config_20261001_000000.tar.gz", 100);
        await StoreAsync("config", "config_20261122_000000.tar.gz", 100);
        var metrics = Metrics(options);
        await metrics.RefreshAsync(Local);
        var pruner = new Pruner(options, [Local], (_, _, _) => Task.FromResult<WalManifestLinks?>(null), _clock);
        metrics.Attach(new BackupRunner([], options.StateDirectory, _clock), pruner, null);

        var report = await pruner.PruneAsync(dryRun: false);
        var scrape = new ScrapeText(metrics.Scrape());

        report.Deleted.Should().ContainSingle().Which.Name.Should().Be("config_20261001_000000.tar.gz");
        scrape["veloz_backup_retention_deleted_total{kind=\"config\",target=\"local\"}"].Should().Be(1);
        scrape["veloz_backup_artifacts{kind=\"config\",target=\"local\"}"].Should().Be(1);
        scrape["veloz_backup_stored_bytes{kind=\"config\",target=\"local\"}"].Should().Be(100);
    }

    [Fact]
    public void Integrity_errors_are_counted_per_kind_and_a_refused_copy_once_per_artifact()
    {
        var metrics = Metrics(Options());

        metrics.RecordIntegrityError("database");
        metrics.RecordRefusal(new ReplicationRefusal("wal", "orders_0000000000000001.wal", "S3 stored 1174 bytes but 1000 were sent"));
        metrics.RecordRefusal(new ReplicationRefusal("wal", "orders_0000000000000001.wal", "S3 stored 1174 bytes but 1000 were sent"));
        var scrape = new ScrapeText(metrics.Scrape());

        scrape["veloz_backup_integrity_errors_total{kind=\"database\"}"].Should().Be(1);
        scrape["veloz_backup_integrity_errors_total{kind=\"wal\"}"].Should().Be(1, "the queue retries the same artifact; it is one problem");
        scrape["veloz_backup_integrity_errors_total{kind=\"config\"}"].Should().Be(0);
        var unknown = () => metrics.RecordIntegrityError("logs");
        unknown.Should().Throw<ArgumentException>();
    }

    [Fact]
    public void The_restore_test_record_is_read_at_every_scrape()
    {
        var options = Options();
        var metrics = Metrics(options);
        new ScrapeText(metrics.Scrape())["veloz_backup_restore_test_last_success_timestamp_seconds"].Should().Be(0);

        var passed = new RestoreTestResult(Now, true, new Dictionary<string, double> { ["database"] = 95.5, ["wal"] = 4, ["total"] = 120 }, null);
        RestoreTestState.Write(options.StateDirectory, passed);
        var scrape = new ScrapeText(metrics.Scrape());

        scrape["veloz_backup_restore_test_last_success_timestamp_seconds"].Should().Be(Unix(Now));
        scrape["veloz_backup_restore_test_last_run_timestamp_seconds"].Should().Be(Unix(Now));
        scrape["veloz_backup_restore_test_duration_seconds{kind=\"database\"}"].Should().Be(95.5);
        scrape["veloz_backup_restore_test_duration_seconds{kind=\"total\"}"].Should().Be(120);

        RestoreTestState.Write(options.StateDirectory, new RestoreTestResult(Now.AddDays(31), false, new Dictionary<string, double>(), "database: pg_restore failed"));
        scrape = new ScrapeText(metrics.Scrape());
        scrape["veloz_backup_restore_test_last_success_timestamp_seconds"].Should().Be(Unix(Now));
        scrape["veloz_backup_restore_test_last_run_timestamp_seconds"].Should().Be(Unix(Now.AddDays(31)), "a newer run than the last success means the newest test restore failed");
    }

    [Fact]
    public async Task Health_is_fresh_within_the_objective_and_names_the_stale_kind_and_by_how_much()
    {
        var options = Options(("Backup:Database:Enabled", "false"), ("Backup:Secrets:Enabled", "false"), ("Backup:Wal:Enabled", "false"));
        await StoreAsync("config", "config_20261123_080000.tar.gz");
        var metrics = Metrics(options);
        await metrics.RefreshAsync(Local);

        var fresh = metrics.Health(SchedulerState.Running);
        fresh.Healthy.Should().BeTrue();
        fresh.StatusCode.Should().Be(200);
        fresh.Kinds.Should().ContainSingle().Which.Age.Should().Be(TimeSpan.FromHours(2));

        // While every kind is fresh (FakeTimeProvider only moves forward, so before the clock is advanced).
        var stopped = metrics.Health(SchedulerState.Standby);
        stopped.Healthy.Should().BeFalse();
        stopped.Problems.Should().ContainSingle().Which.Should().Contain("the scheduler is not running (standby)");

        _clock.Advance(TimeSpan.FromHours(4) + TimeSpan.FromMinutes(1));
        metrics.Health(SchedulerState.Running).Healthy.Should().BeTrue("the one-minute grace is not over yet");

        _clock.Advance(TimeSpan.FromSeconds(1));
        var stale = metrics.Health(SchedulerState.Running);
        stale.Healthy.Should().BeFalse();
        stale.StatusCode.Should().Be(503);
        stale.Kinds.Single().Overdue.Should().Be(TimeSpan.FromSeconds(61));
        stale.Problems.Should().ContainSingle().Which.Should().Be(
            "config is stale: last success 2026-11-23 08:00:00Z, 6h 1m ago, 1m 1s past its 6h objective");
    }

    private sealed class ScriptedSource(string kind, Func<CancellationToken, Task<BackupOutput>> run) : IBackupSource
    {
        public string Kind => kind;

        public Task<BackupOutput> RunAsync(BackupTrigger trigger, CancellationToken cancellationToken) => run(cancellationToken);
    }
}
