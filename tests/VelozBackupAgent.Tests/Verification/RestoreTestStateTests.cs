using VelozBackupAgent.Verification;

namespace VelozBackupAgent.Tests.Verification;

public sealed class RestoreTestStateTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("restore-test-state-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public void Empty_when_no_test_restore_ran_or_the_file_is_damaged()
    {
        RestoreTestState.Read(_dir.FullName).Should().Be(new RestoreTestRecord(null, null));
        File.WriteAllText(Path.Combine(_dir.FullName, RestoreTestState.FileName), "{ not json");
        RestoreTestState.Read(_dir.FullName).Should().Be(new RestoreTestRecord(null, null));
    }

    [Fact]
    public void A_failure_keeps_the_previous_success()
    {
        var t0 = new DateTimeOffset(2026, 11, 1, 4, 0, 0, TimeSpan.Zero);
        var ok = new RestoreTestResult(t0, true, new Dictionary<string, double> { ["database"] = 12.5, ["total"] = 14 }, null);
        RestoreTestState.Write(_dir.FullName, ok);
        var bad = new RestoreTestResult(t0.AddMonths(1), false, new Dictionary<string, double> { ["total"] = 3 }, "database: pg_restore failed");
        var record = RestoreTestState.Write(_dir.FullName, bad);

        record.Last!.Passed.Should().BeFalse();
        record.LastSuccess!.Time.Should().Be(t0);
        var read = RestoreTestState.Read(_dir.FullName);
        read.Last!.Failure.Should().Be("database: pg_restore failed");
        read.LastSuccess!.DurationSeconds["database"].Should().Be(12.5);
    }
}
