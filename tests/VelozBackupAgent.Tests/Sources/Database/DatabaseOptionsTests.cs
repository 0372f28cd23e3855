using Microsoft.Extensions.Configuration;
using VelozBackupAgent.Configuration;

namespace VelozBackupAgent.Tests.Sources.Database;

/// <summary>The <c>Backup:Database</c> keys: defaults, the shipped file, and one clear problem per bad value.</summary>
public sealed class DatabaseOptionsTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-dbopts-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private BackupOptions Load(params (string Key, string? Value)[] settings)
    {
        var all = new Dictionary<string, string?> { ["Backup:LocalRoot"] = _root };
        foreach (var (k, v) in settings)
        {
            all[k] = v;
        }

        return BackupConfiguration.Load(new ConfigurationBuilder().AddInMemoryCollection(all).Build());
    }

    private string[] Problems(params (string Key, string? Value)[] settings)
    {
        var load = () => Load(settings);
        return load.Should().Throw<BackupConfigurationException>().Which.Problems.ToArray();
    }

    [Fact]
    public void Defaults_dump_veloz_daily_with_a_bounded_lock_wait_and_overlapped_upload()
    {
        var o = Load().Database;

        o.ConnectionString.Should().Be("Host=localhost;Database=veloz;Username=veloz");
        o.BinDirectory.Should().BeNull();
        o.LockWaitTimeout.Should().Be(TimeSpan.FromMinutes(5));
        o.S3OverlapBufferMiB.Should().Be(64);
        o.Schedule.Should().Be("0 0 2 * * ?");
        o.Retention.Should().Be(TimeSpan.FromDays(30));
    }

    [Fact]
    public void The_shipped_appsettings_carries_every_database_key_with_its_default()
    {
        var shipped = Path.Combine(AppContext.BaseDirectory, "appsettings.json");
        var config = new ConfigurationBuilder().AddJsonFile(shipped)
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Backup:LocalRoot"] = _root }).Build();

        var o = BackupConfiguration.Load(config).Database;

        var keys = config.GetSection("Backup:Database").GetChildren().Select(c => c.Key).ToList();
        keys.Should().Contain(["ConnectionString", "BinDirectory", "LockWaitTimeout", "S3OverlapBufferMiB"]);
        o.LockWaitTimeout.Should().Be(TimeSpan.FromMinutes(5));
        o.S3OverlapBufferMiB.Should().Be(64);
        string.IsNullOrEmpty(o.BinDirectory).Should().BeTrue("PATH is searched by default");
    }

    [Fact]
    public void Zero_turns_the_lock_wait_bound_and_the_overlap_off()
    {
        var o = Load(("Backup:Database:LockWaitTimeout", "00:00:00"), ("Backup:Database:S3OverlapBufferMiB", "0")).Database;

        o.LockWaitTimeout.Should().Be(TimeSpan.Zero);
        o.S3OverlapBufferMiB.Should().Be(0);
    }

    [Theory]
    [InlineData("Backup:Database:S3OverlapBufferMiB", "2048", "Backup:Database:S3OverlapBufferMiB must be between 0 (off) and 1024: 2048")]
    [InlineData("Backup:Database:S3OverlapBufferMiB", "-1", "Backup:Database:S3OverlapBufferMiB must be between 0 (off) and 1024: -1")]
    [InlineData("Backup:Database:LockWaitTimeout", "-00:00:01", "Backup:Database:LockWaitTimeout must be a duration such as 00:05:00, or 00:00:00 to wait for ever: -00:00:01")]
    [InlineData("Backup:Database:BinDirectory", "/nonexistent/pg/bin", "Backup:Database:BinDirectory does not exist: /nonexistent/pg/bin")]
    [InlineData("Backup:Database:ConnectionString", "Database=veloz", "Backup:Database:ConnectionString has no Host (e.g. Host=localhost, or a Unix socket directory such as Host=/var/run/postgresql)")]
    public void A_bad_value_is_one_problem_naming_its_key(string key, string value, string problem)
    {
        Problems((key, value)).Should().ContainSingle().Which.Should().Be(problem);
    }

    [Fact]
    public void A_connection_string_that_does_not_parse_is_named_without_its_password()
    {
        var problems = Problems(("Backup:Database:ConnectionString", "Host=db;Pasword=hunter2-secret"));

        problems.Should().ContainSingle().Which.Should().StartWith("Backup:Database:ConnectionString is not a valid Npgsql connection string")
            .And.NotContain("hunter2-secret");
    }

    [Fact]
    public void A_disabled_database_kind_does_not_need_a_valid_connection_string()
    {
        var load = () => Load(("Backup:Database:Enabled", "false"), ("Backup:Database:ConnectionString", ""));

        load.Should().NotThrow();
    }

    [Fact]
    public void A_misspelt_database_key_is_named()
    {
        Problems(("Backup:Database:LockWaitTimout", "00:01:00")).Should().ContainSingle()
            .Which.Should().Be("Backup:Database:LockWaitTimout is not a known setting (did you mean Backup:Database:LockWaitTimeout?)");
    }
}
