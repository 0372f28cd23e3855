using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Pitr;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Telemetry;
using VelozBackupAgent.Tests.Support;

namespace VelozBackupAgent.Tests.Telemetry;

/// <summary>
/// The PITR series (<c>Backup:Pitr:Enabled</c>): the receiver's status as gauges, failures as a counter, base backups
/// from the inventory, and pitr's freshness (the recovery point) in the generic series and in <c>/health</c>.
/// </summary>
public sealed class PitrMetricsTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);

    private static readonly string[] ReceiverSeries =
    [
        "veloz_backup_pitr_receiver_up",
        "veloz_backup_pitr_receiver_restarts",
        "veloz_backup_pitr_server_wal_position_bytes",
        "veloz_backup_pitr_received_wal_position_bytes",
        "veloz_backup_pitr_received_timestamp_seconds",
        "veloz_backup_pitr_stored_wal_position_bytes",
        "veloz_backup_pitr_stored_timestamp_seconds",
        "veloz_backup_pitr_recovery_point_timestamp_seconds",
        "veloz_backup_pitr_lag_bytes",
        "veloz_backup_pitr_slot_retained_bytes",
    ];

    /// <summary>The reasons VelozBackupPitrWalNotStored fires for (deploy/prometheus/veloz-backup-rules.yml).</summary>
    private static readonly string[] AlertedReasons = ["other_cluster", "conflict", "slot_lost"];

    private readonly string _root = Directory.CreateTempSubdirectory("veloz-pitr-metrics-").FullName;
    private readonly string _s3Root = Directory.CreateTempSubdirectory("veloz-pitr-metrics-s3-").FullName;
    private readonly FakeTimeProvider _clock = new(Now);
    private readonly List<BackupMetrics> _metrics = [];

    public void Dispose()
    {
        foreach (var m in _metrics)
        {
            m.Dispose();
        }

        Directory.Delete(_root, recursive: true);
        Directory.Delete(_s3Root, recursive: true);
    }

    private BackupOptions Options(params (string Key, string Value)[] settings)
    {
        var all = new Dictionary<string, string?>
        {
            ["Backup:LocalRoot"] = _root,
            ["Backup:Pitr:Enabled"] = "true",
            ["Backup:Database:Enabled"] = "false",
            ["Backup:Secrets:Enabled"] = "false",
        };
        foreach (var (k, v) in settings)
        {
            all[k] = v;
        }

        return BackupConfiguration.Load(new ConfigurationBuilder().AddInMemoryCollection(all).Build());
    }

    private LocalArtifactStore Local => new(_root, _clock);

    private S3Folder Remote => new(new LocalArtifactStore(_s3Root, _clock));

    /// <summary>A new agent's metrics with PITR attached, on its own meter so tests running in parallel never see each other's.</summary>
    private BackupMetrics Metrics(BackupOptions options, Func<PitrStatus>? status, bool s3 = false)
    {
        var metrics = new BackupMetrics(options, Local, s3 ? Remote : null, _clock, meterName: "VelozBackupAgent.Tests." + Guid.NewGuid().ToString("N"));
        _metrics.Add(metrics);
        metrics.AttachPitr(new WalArchive(options, new BackupRepository(Local), NullLogger.Instance), status);
        return metrics;
    }

    private static double Unix(DateTimeOffset t) => t.ToUnixTimeMilliseconds() / 1000.0;

    private static async Task StoreAsync(IArtifactStore store, string name)
    {
        await using var content = new MemoryStream("{}"u8.ToArray());
        await store.WriteAsync(BackupKinds.Pitr, name, content);
    }

    [Fact]
    public async Task Every_pitr_series_shows_the_receivers_status_positions_in_bytes_and_times_in_Unix_seconds()
    {
        await StoreAsync(Local, "base_20261123_010000.json");
        await StoreAsync(Remote, "base_20261122_010000.json");
        var status = new PitrStatus
        {
            ReceiverUp = true,
            UpSince = Now.AddHours(-2),
            Restarts = 3,
            ServerLsn = "1/2A000000",
            ReceivedLsn = "1/29FFF000",
            LastReceivedAt = Now.AddSeconds(-2),
            StoredLsn = "1/29000000",
            LastStoredAt = Now.AddSeconds(-4),
            StoredLsnS3 = "0/16B3F10",
            RecoveryPoint = Now.AddSeconds(-5.5),
            RecoveryPointS3 = Now.AddMinutes(-3),
            LagBytes = 16 * 1024 * 1024,
            LagBytesS3 = 123_456,
            SlotRetainedBytes = 4096,
        };
        var metrics = Metrics(Options(("Backup:Pitr:MaxRetainedWalMiB", "2048"), ("Backup:Pitr:BaseFreshnessObjective", "1.02:00:00")), () => status, s3: true);
        (await metrics.RefreshAsync(Local)).Should().BeTrue();
        (await metrics.RefreshAsync(Remote)).Should().BeTrue();

        var scrape = new ScrapeText(metrics.Scrape());

        scrape["veloz_backup_pitr_receiver_up"].Should().Be(1);
        scrape["veloz_backup_pitr_receiver_restarts"].Should().Be(3);
        // An LSN hi/lo is the byte position hi * 2^32 + lo.
        scrape["veloz_backup_pitr_server_wal_position_bytes"].Should().Be(0x1_2A00_0000);
        scrape["veloz_backup_pitr_received_wal_position_bytes"].Should().Be(0x1_29FF_F000);
        scrape["veloz_backup_pitr_received_timestamp_seconds"].Should().Be(Unix(Now) - 2);
        scrape["veloz_backup_pitr_stored_wal_position_bytes{target=\"local\"}"].Should().Be(0x1_2900_0000);
        scrape["veloz_backup_pitr_stored_wal_position_bytes{target=\"s3\"}"].Should().Be(0x16B3F10);
        scrape["veloz_backup_pitr_stored_timestamp_seconds"].Should().Be(Unix(Now) - 4);
        scrape["veloz_backup_pitr_recovery_point_timestamp_seconds{target=\"local\"}"].Should().Be(Unix(Now) - 5.5, "milliseconds are kept");
        scrape["veloz_backup_pitr_recovery_point_timestamp_seconds{target=\"s3\"}"].Should().Be(Unix(Now) - 180);
        scrape["veloz_backup_pitr_lag_bytes{target=\"local\"}"].Should().Be(16 * 1024 * 1024);
        scrape["veloz_backup_pitr_lag_bytes{target=\"s3\"}"].Should().Be(123_456);
        scrape["veloz_backup_pitr_slot_retained_bytes"].Should().Be(4096);
        scrape["veloz_backup_pitr_slot_retained_objective_bytes"].Should().Be(2048L * 1024 * 1024, "Backup:Pitr:MaxRetainedWalMiB in bytes");
        scrape["veloz_backup_pitr_base_backup_timestamp_seconds{target=\"local\"}"].Should().Be(Unix(new DateTimeOffset(2026, 11, 23, 1, 0, 0, TimeSpan.Zero)));
        scrape["veloz_backup_pitr_base_backup_timestamp_seconds{target=\"s3\"}"].Should().Be(Unix(new DateTimeOffset(2026, 11, 22, 1, 0, 0, TimeSpan.Zero)));
        scrape["veloz_backup_pitr_base_backup_objective_seconds"].Should().Be(26 * 3600);

        // The generic freshness series of the kind is the recovery point, held to Backup:Pitr:FreshnessObjective.
        scrape["veloz_backup_last_success_timestamp_seconds{kind=\"pitr\",target=\"local\"}"].Should().Be(Unix(Now) - 5.5);
        scrape["veloz_backup_last_success_timestamp_seconds{kind=\"pitr\",target=\"s3\"}"].Should().Be(Unix(Now) - 180);
        scrape["veloz_backup_freshness_objective_seconds{kind=\"pitr\"}"].Should().Be(300);
        scrape["veloz_backup_runs_total{kind=\"pitr\",outcome=\"failed\"}"].Should().Be(0, "base backups are the kind's runs");

        foreach (var family in ReceiverSeries.Append("veloz_backup_pitr_slot_retained_objective_bytes").Append("veloz_backup_pitr_base_backup_timestamp_seconds"))
        {
            scrape.Types[family].Should().Be("gauge", family);
        }

        scrape.Types["veloz_backup_pitr_failures_total"].Should().Be("counter");
    }

    [Fact]
    public void Before_the_receiver_reports_every_series_exists_at_zero_meaning_unknown()
    {
        var metrics = Metrics(Options(), () => new PitrStatus(), s3: true);

        var scrape = new ScrapeText(metrics.Scrape());

        foreach (var series in new[]
                 {
                     "veloz_backup_pitr_receiver_up", "veloz_backup_pitr_receiver_restarts", "veloz_backup_pitr_server_wal_position_bytes",
                     "veloz_backup_pitr_received_wal_position_bytes", "veloz_backup_pitr_received_timestamp_seconds", "veloz_backup_pitr_stored_timestamp_seconds",
                     "veloz_backup_pitr_slot_retained_bytes",
                 })
        {
            scrape[series].Should().Be(0, series);
        }

        foreach (var target in new[] { "local", "s3" })
        {
            scrape[$"veloz_backup_pitr_stored_wal_position_bytes{{target=\"{target}\"}}"].Should().Be(0);
            scrape[$"veloz_backup_pitr_recovery_point_timestamp_seconds{{target=\"{target}\"}}"].Should().Be(0, "no recovery point is known yet");
            scrape[$"veloz_backup_pitr_lag_bytes{{target=\"{target}\"}}"].Should().Be(0);
            scrape[$"veloz_backup_pitr_base_backup_timestamp_seconds{{target=\"{target}\"}}"].Should().Be(0, "no base backup");
            scrape[$"veloz_backup_last_success_timestamp_seconds{{kind=\"pitr\",target=\"{target}\"}}"].Should().Be(0);
        }

        scrape["veloz_backup_pitr_slot_retained_objective_bytes"].Should().Be(4096L * 1024 * 1024);
        scrape["veloz_backup_pitr_base_backup_objective_seconds"].Should().Be(25 * 3600);
        foreach (var reason in PgTools.Labels)
        {
            scrape[$"veloz_backup_pitr_failures_total{{reason=\"{reason}\"}}"].Should().Be(0, reason);
        }

        PgTools.Labels.Should().Contain(AlertedReasons, "the alert rules match these reasons");
    }

    [Fact]
    public void Failures_are_counted_as_the_growth_of_the_statuss_counts_and_only_once()
    {
        var status = new PitrStatus();
        var metrics = Metrics(Options(), () => status);

        status = status with { Failures = new Dictionary<string, long> { ["connection"] = 2 } };
        new ScrapeText(metrics.Scrape())["veloz_backup_pitr_failures_total{reason=\"connection\"}"].Should().Be(2);
        new ScrapeText(metrics.Scrape())["veloz_backup_pitr_failures_total{reason=\"connection\"}"].Should().Be(2, "a scrape adds only what grew since the last one");

        status = status with { Failures = new Dictionary<string, long> { ["connection"] = 5, ["slot_lost"] = 1 } };
        var scrape = new ScrapeText(metrics.Scrape());

        scrape["veloz_backup_pitr_failures_total{reason=\"connection\"}"].Should().Be(5);
        scrape["veloz_backup_pitr_failures_total{reason=\"slot_lost\"}"].Should().Be(1);
        scrape["veloz_backup_pitr_failures_total{reason=\"conflict\"}"].Should().Be(0);
        scrape["veloz_backup_integrity_errors_total{kind=\"pitr\"}"].Should().Be(0, "receiver failures are not integrity errors");
    }

    [Fact]
    public void One_scrape_reads_the_status_once_so_its_series_agree()
    {
        var polls = 0;
        var metrics = Metrics(Options(), () =>
        {
            polls++;
            return new PitrStatus
            {
                ServerLsn = string.Create(CultureInfo.InvariantCulture, $"0/{polls:X}000000"),
                StoredLsn = string.Create(CultureInfo.InvariantCulture, $"0/{polls:X}000000"),
                RecoveryPoint = Now.AddSeconds(polls),
                Failures = new Dictionary<string, long> { ["connection"] = polls },
            };
        });

        var scrape = new ScrapeText(metrics.Scrape());

        polls.Should().Be(1);
        scrape["veloz_backup_pitr_server_wal_position_bytes"].Should().Be(0x1000000);
        scrape["veloz_backup_pitr_stored_wal_position_bytes{target=\"local\"}"].Should().Be(0x1000000);
        scrape["veloz_backup_last_success_timestamp_seconds{kind=\"pitr\",target=\"local\"}"]
            .Should().Be(scrape["veloz_backup_pitr_recovery_point_timestamp_seconds{target=\"local\"}"]).And.Be(Unix(Now) + 1);
        scrape["veloz_backup_pitr_failures_total{reason=\"connection\"}"].Should().Be(1);
    }

    [Fact]
    public async Task Health_names_pitr_stale_past_the_recovery_points_objective_and_pitr_base_past_the_base_objective()
    {
        await StoreAsync(Local, "base_20261122_100000.json");
        var status = new PitrStatus { ReceiverUp = true, RecoveryPoint = Now.AddMinutes(-5) };
        var metrics = Metrics(Options(("Backup:Config:Enabled", "false"), ("Backup:Wal:Enabled", "false")), () => status);
        await metrics.RefreshAsync(Local);

        var fresh = metrics.Health(SchedulerState.Running);
        fresh.Healthy.Should().BeTrue(string.Join("; ", fresh.Problems));
        fresh.Kinds.Select(k => k.Kind).Should().Equal("pitr", "pitr-base");
        fresh.Kinds[0].Age.Should().Be(TimeSpan.FromMinutes(5));
        fresh.Kinds[1].Age.Should().Be(TimeSpan.FromHours(24));

        // The recovery point stops moving: stale past 5 minutes plus the one-minute grace.
        _clock.Advance(TimeSpan.FromMinutes(1));
        metrics.Health(SchedulerState.Running).Healthy.Should().BeTrue("the grace is not over yet");
        _clock.Advance(TimeSpan.FromSeconds(1));
        var stale = metrics.Health(SchedulerState.Running);
        stale.Healthy.Should().BeFalse();
        stale.Problems.Should().ContainSingle().Which.Should().StartWith("pitr is stale: last success 2026-11-23 09:55:00Z");

        // It moves again; then the base backup (25 h objective) ages past its objective and grace.
        status = status with { RecoveryPoint = _clock.GetUtcNow() };
        metrics.Health(SchedulerState.Running).Healthy.Should().BeTrue();
        _clock.SetUtcNow(new DateTimeOffset(2026, 11, 23, 11, 1, 0, TimeSpan.Zero));
        status = status with { RecoveryPoint = _clock.GetUtcNow() };
        metrics.Health(SchedulerState.Running).Healthy.Should().BeTrue("25 h plus the grace, not past it");
        _clock.Advance(TimeSpan.FromSeconds(1));
        status = status with { RecoveryPoint = _clock.GetUtcNow() };
        var baseStale = metrics.Health(SchedulerState.Running);
        baseStale.Healthy.Should().BeFalse();
        baseStale.Problems.Should().ContainSingle().Which.Should().StartWith("pitr-base is stale: last success 2026-11-22 10:00:00Z");

        // No recovery point known at all: stale, "no successful backup yet".
        status = new PitrStatus();
        metrics.Health(SchedulerState.Running).Problems.Should().Contain(p => p.StartsWith("pitr is stale: no successful backup yet", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Without_streaming_the_base_series_are_exposed_but_no_receiver_series_and_no_recovery_point()
    {
        await StoreAsync(Local, "base_20261123_010000.json");
        var metrics = Metrics(Options(("Backup:Pitr:Streaming", "false"), ("Backup:Config:Enabled", "false"), ("Backup:Wal:Enabled", "false")), status: null);
        await metrics.RefreshAsync(Local);

        var scrape = new ScrapeText(metrics.Scrape());

        foreach (var family in ReceiverSeries)
        {
            scrape.Types.Should().NotContainKey(family, "archive_command mode runs no receiver");
        }

        scrape["veloz_backup_pitr_base_backup_timestamp_seconds{target=\"local\"}"].Should().Be(Unix(new DateTimeOffset(2026, 11, 23, 1, 0, 0, TimeSpan.Zero)));
        scrape["veloz_backup_pitr_base_backup_objective_seconds"].Should().Be(25 * 3600);
        scrape["veloz_backup_pitr_failures_total{reason=\"conflict\"}"].Should().Be(0, "the counter exists, though pg-wal-push runs in PostgreSQL's processes, not the daemon's");
        scrape["veloz_backup_runs_total{kind=\"pitr\",outcome=\"succeeded\"}"].Should().Be(0);
        scrape.Samples.Keys.Should().NotContain(k => k.StartsWith("veloz_backup_last_success_timestamp_seconds{kind=\"pitr\"", StringComparison.Ordinal),
            "without the server's position the agent knows no recovery point, and a base backup is not one");
        scrape.Samples.Keys.Should().NotContain(k => k.StartsWith("veloz_backup_freshness_objective_seconds{kind=\"pitr\"", StringComparison.Ordinal));

        // Nine hours after the base backup: healthy (only the base is judged), not held to the WAL's 5 minutes.
        var health = metrics.Health(SchedulerState.Running);
        health.Healthy.Should().BeTrue(string.Join("; ", health.Problems));
        health.Kinds.Select(k => k.Kind).Should().Equal("pitr-base");
    }
}
