using System.Text.Json;

namespace VelozBackupAgent.IntegrationTests.Restore;

/// <summary><c>restore … --json</c> (issue 17) through the real binary: one document on stdout, success or failure.</summary>
public sealed class RestoreJsonTests
{
    [Fact]
    public async Task Restore_config_json_names_the_artifact_store_target_checksum_and_steps()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        (await bed.RunAsync("backup", "config")).ExitCode.Should().Be(0);
        var artifact = Directory.GetFiles(Path.Combine(bed.LocalRoot, "config"), "config_*.tar.gz").Single();
        var recorded = (await File.ReadAllTextAsync(artifact + ".sha256"))[..64];
        var target = Path.Combine(bed.Root, "restored-config");

        var r = await bed.RunAsync("restore", "config", "--target", target, "--json");
        r.ExitCode.Should().Be(0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var root = doc.RootElement;
        root.GetProperty("operation").GetString().Should().Be("config");
        root.GetProperty("ok").GetBoolean().Should().BeTrue();
        root.GetProperty("error").ValueKind.Should().Be(JsonValueKind.Null);
        var result = root.GetProperty("results").EnumerateArray().Should().ContainSingle().Subject;
        result.GetProperty("kind").GetString().Should().Be("config");
        result.GetProperty("artifact").GetString().Should().Be(Path.GetFileName(artifact));
        result.GetProperty("source").GetString().Should().Be("local");
        result.GetProperty("target").GetString().Should().Be(target);
        result.GetProperty("sha256").GetString().Should().Be(recorded);
        result.GetProperty("seconds").ValueKind.Should().Be(JsonValueKind.Number);
        var steps = root.GetProperty("steps").EnumerateArray().ToList();
        steps.Should().NotBeEmpty();
        steps.Select(s => s.GetProperty("status").GetString()).Should().AllBe("ok");
        steps[0].GetProperty("name").GetString().Should().StartWith("config: verifying");
        root.GetProperty("service").ValueKind.Should().Be(JsonValueKind.Null, "a restore into --target does not touch the service");
        root.GetProperty("withinObjective").GetBoolean().Should().BeTrue();
        r.StdOut.Should().NotContain("-> ", "no step lines mix into the document");
    }

    [Fact]
    public async Task A_failed_restore_json_is_still_one_document_with_the_failed_step_and_the_error()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        (await bed.RunAsync("backup", "config")).ExitCode.Should().Be(0);
        var artifact = Directory.GetFiles(Path.Combine(bed.LocalRoot, "config"), "config_*.tar.gz").Single();
        var bytes = await File.ReadAllBytesAsync(artifact);
        bytes[bytes.Length / 2] ^= 0xFF;
        await File.WriteAllBytesAsync(artifact, bytes);

        var r = await bed.RunAsync("restore", "config", "--target", Path.Combine(bed.Root, "x"), "--json");
        r.ExitCode.Should().Be(1, "the exit code is the one without --json");
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain("refusing to restore");
        using var doc = JsonDocument.Parse(r.StdOut);
        var root = doc.RootElement;
        root.GetProperty("ok").GetBoolean().Should().BeFalse();
        root.GetProperty("error").GetString().Should().Contain("refusing to restore");
        root.GetProperty("results").GetArrayLength().Should().Be(0);
        root.GetProperty("verified").GetArrayLength().Should().Be(0, "nothing matched its checksum");
        root.GetProperty("steps").EnumerateArray().Last().GetProperty("status").GetString().Should().Be("failed");
        root.GetProperty("totalSeconds").ValueKind.Should().Be(JsonValueKind.Null);
    }

    [Fact]
    public async Task Restore_database_json_has_the_tables_and_rows_and_the_service_steps()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        (await bed.RunAsync("backup", "database")).ExitCode.Should().Be(0);

        var r = await bed.RunAsync("restore", "database", "--yes", "--json");
        r.ExitCode.Should().Be(0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var root = doc.RootElement;
        var result = root.GetProperty("results").EnumerateArray().Should().ContainSingle().Subject;
        result.GetProperty("kind").GetString().Should().Be("database");
        result.GetProperty("target").GetString().Should().Be(bed.Database.Name);
        result.GetProperty("sha256").GetString().Should().HaveLength(64);
        result.GetProperty("tables").EnumerateArray().Should().Contain(t => t.GetProperty("name").GetString()!.EndsWith("orders", StringComparison.Ordinal) && t.GetProperty("rows").GetInt64() == 2500);
        root.GetProperty("service").GetProperty("stopped").GetBoolean().Should().BeTrue();
        root.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("name").GetString()).Should().Contain(s => s!.StartsWith("stopping VeloZ", StringComparison.Ordinal));
        (await File.ReadAllLinesAsync(bed.ServiceLog)).Should().Equal("started", "stopped", "started");
    }

    [Fact]
    public async Task Restore_full_json_from_s3_has_every_kind_in_the_runbooks_order_with_its_store_and_checksum()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: true);
        var backup = await bed.RunAsync("backup", "all");
        backup.ExitCode.Should().Be(0, backup.StdOut + backup.StdErr);
        Directory.Delete(bed.LocalRoot, recursive: true);
        Directory.CreateDirectory(bed.LocalRoot);

        var r = await bed.RunAsync("restore", "full", "--yes", "--source", $"s3://{bed.Bucket}/{RestoreTestBed.NodeName}", "--json");
        r.ExitCode.Should().Be(0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var root = doc.RootElement;
        root.GetProperty("operation").GetString().Should().Be("full");
        var results = root.GetProperty("results").EnumerateArray().ToList();
        results.Select(x => x.GetProperty("kind").GetString()).Should().Equal("secrets", "config", "database", "wal");
        results.Should().OnlyContain(x => x.GetProperty("source").GetString() == "s3" && x.GetProperty("sha256").GetString()!.Length == 64);
        root.GetProperty("verified").EnumerateArray().Select(v => v.GetProperty("source").GetString()).Should().OnlyContain(s => s == "s3");
        root.GetProperty("skipped").EnumerateArray().Select(x => x.GetString()).Should().Contain(x => x!.StartsWith("pitr:", StringComparison.Ordinal));
        root.GetProperty("service").GetProperty("started").GetBoolean().Should().BeTrue();
        root.GetProperty("objectiveSeconds").GetDouble().Should().Be(4 * 3600);
    }
}
