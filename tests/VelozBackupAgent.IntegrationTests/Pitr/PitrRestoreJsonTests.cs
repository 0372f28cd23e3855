using System.Text.Json;

namespace VelozBackupAgent.IntegrationTests.Pitr;

/// <summary><c>restore pitr --target-dir … --json</c> on a real PostgreSQL 15 cluster: the base backup, its store and checksum, the outcome.</summary>
public sealed class PitrRestoreJsonTests
{
    [Fact]
    public async Task A_scratch_pitr_json_names_the_base_backup_its_checksum_the_timeline_and_how_to_look_inside()
    {
        await using var bed = await PitrTestBed.CreateAsync();
        await using var daemon = bed.StartDaemon();
        await bed.WaitForStatusAsync(daemon, s => s.ReceiverUp, "the receiver streaming");
        await PitrTestBed.WaitForAsync(daemon, () => bed.LocalArtifacts().Any(n => n.EndsWith(".json", StringComparison.Ordinal)), "a base backup");
        var committed = await bed.Orders.CommitAsync();
        await bed.WaitForStatusAsync(daemon, s => VelozBackupAgent.Pitr.PitrStatus.Position(s.StoredLsn) >= VelozBackupAgent.Pitr.Lsn.Parse(committed.Lsn), "the commit stored");
        (await daemon.StopAsync()).Should().Be(0, daemon.Console);

        var scratch = Path.Combine(bed.Root, "scratch-json");
        var r = await bed.RunAsync("restore", "pitr", "--target-dir", scratch, "--json");
        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var root = doc.RootElement;
        root.GetProperty("operation").GetString().Should().Be("pitr");
        root.GetProperty("ok").GetBoolean().Should().BeTrue();
        var result = root.GetProperty("results").EnumerateArray().Should().ContainSingle().Subject;
        result.GetProperty("kind").GetString().Should().Be("pitr");
        result.GetProperty("artifact").GetString().Should().StartWith("base_");
        result.GetProperty("source").GetString().Should().Be("local");
        result.GetProperty("target").GetString().Should().Be(scratch);
        result.GetProperty("sha256").GetString().Should().HaveLength(64);
        result.GetProperty("tables").EnumerateArray().Should().NotBeEmpty();
        var pitr = root.GetProperty("pitr");
        pitr.GetProperty("timeline").GetInt32().Should().Be(2, "the recovered cluster is promoted onto a new timeline");
        pitr.GetProperty("port").GetInt32().Should().BePositive();
        pitr.GetProperty("startCommand").GetString().Should().NotBeNullOrEmpty();
        root.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("status").GetString()).Should().NotBeEmpty().And.AllBe("ok");
        root.GetProperty("service").ValueKind.Should().Be(JsonValueKind.Null, "a scratch restore touches no service");
    }
}
