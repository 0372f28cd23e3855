using System.Net;
using System.Text.Json;
using Npgsql;
using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Telemetry;

/// <summary>
/// A dump that takes longer than the freshness grace, with the real daemon, a real <c>pg_dump</c> held up by a lock in
/// a real PostgreSQL and the real binary: while a run that started on time is in progress the kind stays fresh in
/// <c>/health</c>, the metrics and <c>verify</c>, and the run is visible; once it ends, nothing says it runs.
/// </summary>
public sealed class RunningFreshnessTests : IAsyncLifetime
{
    private const string Never = "0 0 3 1 1 ? 2099";
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-running-").FullName;
    private PostgresDatabase _db = null!;

    public async Task InitializeAsync()
    {
        _db = await PostgresDatabase.CreateAsync("veloz_running");
        await _db.SeedOrdersAsync(200);
    }

    public async Task DisposeAsync()
    {
        await _db.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }

    private List<string> Args() =>
    [
        $"--Backup:LocalRoot={_root}",
        "--Backup:Wal:Enabled=false",
        "--Backup:Config:Enabled=false",
        "--Backup:Secrets:Enabled=false",
        // The dump's cluster globals are encrypted to the secrets' recipients.
        $"--Backup:Secrets:Recipients:0={TestEnvironment.GpgRecipient}", $"--Backup:Secrets:GnupgHome={TestEnvironment.GnupgHome}",
        $"--Backup:Database:Schedule={Never}",
        // Stale 15 s after a dump: the held-up run below outlives that.
        "--Backup:Database:FreshnessObjective=00:00:10",
        "--Backup:FreshnessGrace=00:00:05",
    ];

    private Dictionary<string, string?> Env() => new() { ["Backup__Database__ConnectionString"] = _db.ConnectionString };

    private sealed record Health(JsonElement Root);

    private static async Task<Health?> HealthAsync(RunningDaemon daemon) =>
        await daemon.GetAsync("/health") is { } r ? new Health(JsonDocument.Parse(r.Body).RootElement.Clone()) : null;

    private static DateTimeOffset Time(string iso) => DateTimeOffset.Parse(iso, System.Globalization.CultureInfo.InvariantCulture);

    private string NewestDumpTime()
    {
        var name = Directory.GetFiles(Path.Combine(_root, "database"), "*.dump").Select(Path.GetFileName).Single()!;
        Catalog.ArtifactName.TryParse(name, out _, out var time, out _, out _).Should().BeTrue(name);
        return time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
    }

    private static JsonElement Database(JsonElement health) =>
        health.GetProperty("kinds").EnumerateArray().Single(k => k.GetProperty("kind").GetString() == "database");

    [Fact]
    public async Task A_dump_held_up_past_the_objective_keeps_database_fresh_while_it_runs_and_is_shown_running()
    {
        var first = await VelozBackupBinary.RunAsync(["backup", "database", .. Args()], Env());
        first.ExitCode.Should().Be(0, first.StdErr);

        var firstDump = Time(NewestDumpTime());
        await using var daemon = RunningDaemon.Start(Args(), RunningDaemon.FreePort(), Env());
        await daemon.WaitForAsync(() => HealthAsync(daemon), h => h.Root.GetProperty("scheduler").GetString() == "running", "the daemon's scheduler");

        // The next dump starts at once (on time) and waits for a table another session holds locked.
        await using var locker = new NpgsqlConnection(_db.ConnectionString);
        await locker.OpenAsync();
        await using var transaction = await locker.BeginTransactionAsync();
        await using (var lockOrders = new NpgsqlCommand("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE", locker, transaction))
        {
            await lockOrders.ExecuteNonQueryAsync();
        }

        string? runStarted = null;
        using var slow = VelozBackupBinary.Start(["backup", "database", "--no-upload", .. Args()], Env());
        try
        {
            // Past objective + grace for the newest dump: only the run in progress keeps the kind fresh.
            var kept = (await daemon.WaitForAsync(() => HealthAsync(daemon),
                h => Database(h.Root).TryGetProperty("keptFreshByRun", out var k) && k.GetBoolean(), "/health kept fresh by the run in progress")).Root;
            Database(kept).GetProperty("stale").GetBoolean().Should().BeFalse();
            Database(kept).GetProperty("ageSeconds").GetDouble().Should().BeGreaterThan(15);
            Database(kept).GetProperty("runOverdue").GetBoolean().Should().BeFalse();
            kept.GetProperty("status").GetString().Should().Be("healthy");
            (await daemon.GetAsync("/health"))!.Value.Status.Should().Be(HttpStatusCode.OK);

            runStarted = Database(kept).GetProperty("runningSince").GetString();
            var scrape = new Scrape(await daemon.ScrapeAsync());
            var since = scrape["veloz_backup_running_since_timestamp_seconds{kind=\"database\"}"];
            since.Should().BeGreaterThan(0);
            DateTimeOffset.FromUnixTimeMilliseconds((long)(since * 1000)).Should().BeCloseTo(
                DateTimeOffset.Parse(Database(kept).GetProperty("runningSince").GetString()!, System.Globalization.CultureInfo.InvariantCulture), TimeSpan.FromSeconds(1));
            scrape["veloz_backup_max_run_duration_seconds{kind=\"database\"}"].Should().Be(6 * 3600);

            var verify = await VelozBackupBinary.RunAsync(["verify", .. Args()], Env());
            verify.StdOut.Split('\n').Should().Contain(l => l.Contains("Database backup fresh", StringComparison.Ordinal)
                && l.Contains("PASS", StringComparison.Ordinal) && l.Contains("a run started on time is in progress", StringComparison.Ordinal), verify.StdOut);
        }
        finally
        {
            await transaction.RollbackAsync();
        }

        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
        {
            var output = slow.StandardOutput.ReadToEndAsync(timeout.Token);
            var errors = slow.StandardError.ReadToEndAsync(timeout.Token);
            await slow.WaitForExitAsync(timeout.Token);
            slow.ExitCode.Should().Be(0, $"the dump finishes once the lock is gone: {await output}{await errors}");
        }

        var after = new Scrape(await daemon.ScrapeAsync());
        after["veloz_backup_running_since_timestamp_seconds{kind=\"database\"}"].Should().Be(0);
        // The new dump is named (and judged) by the time its run started; the daemon sees it from the other process.
        var health = (await daemon.WaitForAsync(() => HealthAsync(daemon),
            h => Database(h.Root).GetProperty("lastSuccess").GetString() is { } last && Time(last) > firstDump, "/health with the held-up dump as the newest")).Root;
        // The name's time is taken a moment after the run's start (the source allocates it).
        Time(Database(health).GetProperty("lastSuccess").GetString()!).Should().BeCloseTo(Time(runStarted!), TimeSpan.FromSeconds(3));
        Database(health).TryGetProperty("runningSince", out _).Should().BeFalse();
        Database(health).TryGetProperty("keptFreshByRun", out _).Should().BeFalse();
        (await daemon.StopAsync()).Should().Be(0, daemon.Console);
    }
}
