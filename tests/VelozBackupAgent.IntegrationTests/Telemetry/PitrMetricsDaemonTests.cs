using System.Net;
using System.Text.Json;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.IntegrationTests.Pitr;
using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.IntegrationTests.Telemetry;

/// <summary>
/// The real daemon's <c>/metrics</c> and <c>/health</c> with PITR streaming from a real PostgreSQL 15 into the local
/// store and an s3rver: every PITR series there, promtool's linter content with the scrape, and the values the
/// alert rules and the dashboard read.
/// </summary>
public sealed class PitrMetricsDaemonTests
{
    private static double Unix(DateTimeOffset t) => t.ToUnixTimeSeconds();

    [Fact]
    public async Task A_streaming_daemons_scrape_passes_promtool_and_shows_the_stream_the_recovery_point_and_the_base_backup()
    {
        await using var bed = await PitrTestBed.CreateAsync(withS3: true);
        await using var daemon = bed.StartDaemon();
        await PitrTestBed.WaitForAsync(daemon, () => bed.LocalArtifacts().Any(n => n.StartsWith("base_", StringComparison.Ordinal) && n.EndsWith(".json", StringComparison.Ordinal)), "a base backup");
        var commit = await bed.Orders.CommitAsync();
        var lsn = Lsn.Parse(commit.Lsn);
        await bed.WaitForStatusAsync(daemon, s => s.ReceiverUp && PitrStatus.Position(s.StoredLsnS3) >= lsn && s.RecoveryPointS3 >= commit.CommittedBy, "the commit's WAL in S3");
        var scrape = await daemon.WaitForAsync(async () => new Scrape(await daemon.ScrapeAsync()),
            s => s["veloz_backup_pitr_stored_wal_position_bytes{target=\"s3\"}"] >= lsn.Value && s["veloz_backup_pitr_base_backup_timestamp_seconds{target=\"s3\"}"] > 0,
            "a scrape with the commit and the base backup in S3");

        var lint = await ChildProcess.RunAsync("promtool", ["check", "metrics"], stdin: scrape.Text);
        lint.ExitCode.Should().Be(0, lint.StdOut + lint.StdErr);
        (lint.StdOut + lint.StdErr).Should().BeEmpty("promtool's linter has nothing to say about a scrape with PITR on");

        scrape["veloz_backup_pitr_receiver_up"].Should().Be(1);
        scrape["veloz_backup_pitr_receiver_restarts"].Should().Be(0, daemon.Console);
        var server = scrape["veloz_backup_pitr_server_wal_position_bytes"];
        var stored = scrape["veloz_backup_pitr_stored_wal_position_bytes{target=\"local\"}"];
        stored.Should().BeGreaterThanOrEqualTo(lsn.Value);
        server.Should().BeGreaterThanOrEqualTo(stored, "one scrape is one status: nothing is stored beyond the server's position");
        scrape["veloz_backup_pitr_received_wal_position_bytes"].Should().BeGreaterThanOrEqualTo(lsn.Value);
        scrape["veloz_backup_pitr_lag_bytes{target=\"local\"}"].Should().Be(Math.Max(0, server - stored));
        scrape["veloz_backup_pitr_received_timestamp_seconds"].Should().BeGreaterThan(0);
        scrape["veloz_backup_pitr_stored_timestamp_seconds"].Should().BeGreaterThan(0);
        scrape["veloz_backup_pitr_slot_retained_bytes"].Should().BeGreaterThanOrEqualTo(0);
        scrape["veloz_backup_pitr_slot_retained_objective_bytes"].Should().Be(4096L * 1024 * 1024);

        // The recovery point is recent, and it is the kind's last success in the same scrape.
        var now = TimeProvider.System.GetUtcNow();
        var point = scrape["veloz_backup_pitr_recovery_point_timestamp_seconds{target=\"local\"}"];
        point.Should().BeInRange(Unix(commit.CommittedBy) - 1, Unix(now) + 1);
        scrape["veloz_backup_last_success_timestamp_seconds{kind=\"pitr\",target=\"local\"}"].Should().Be(point);
        scrape["veloz_backup_pitr_recovery_point_timestamp_seconds{target=\"s3\"}"].Should().BeGreaterThanOrEqualTo(Unix(commit.CommittedBy) - 1);
        scrape["veloz_backup_freshness_objective_seconds{kind=\"pitr\"}"].Should().Be(300);

        var baseInfo = bed.LocalArtifacts().Single(n => n.StartsWith("base_", StringComparison.Ordinal) && n.EndsWith(".json", StringComparison.Ordinal));
        ArtifactName.TryParse(baseInfo, out _, out var baseTime, out _, out _).Should().BeTrue(baseInfo);
        scrape["veloz_backup_pitr_base_backup_timestamp_seconds{target=\"local\"}"].Should().Be(Unix(baseTime));
        scrape["veloz_backup_pitr_base_backup_timestamp_seconds{target=\"s3\"}"].Should().Be(Unix(baseTime));
        scrape["veloz_backup_pitr_base_backup_objective_seconds"].Should().Be(25 * 3600);
        foreach (var reason in PgTools.Labels)
        {
            scrape[$"veloz_backup_pitr_failures_total{{reason=\"{reason}\"}}"].Should().Be(0, reason);
        }

        var health = await daemon.GetAsync("/health");
        health!.Value.Status.Should().Be(HttpStatusCode.OK, health.Value.Body);
        var kinds = JsonDocument.Parse(health.Value.Body).RootElement.GetProperty("kinds").EnumerateArray()
            .ToDictionary(k => k.GetProperty("kind").GetString()!, k => k.GetProperty("stale").GetBoolean());
        kinds.Should().Contain("pitr", false).And.Contain("pitr-base", false);
        (await daemon.StopAsync()).Should().Be(0, daemon.Console);
    }
}
