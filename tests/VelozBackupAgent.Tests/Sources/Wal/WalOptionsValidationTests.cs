using Microsoft.Extensions.Configuration;
using VelozBackupAgent.Configuration;

namespace VelozBackupAgent.Tests.Sources.Wal;

/// <summary>The keys of Backup:Wal that the WAL source added, as the validator checks them at start-up.</summary>
public sealed class WalOptionsValidationTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-walopts-").FullName;

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
    public void Settle_time_defaults_to_two_seconds_and_the_shipped_file_says_so()
    {
        Load().Wal.SettleTime.Should().Be(TimeSpan.FromSeconds(2));

        var shipped = new ConfigurationBuilder().AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json")).Build();
        shipped["Backup:Wal:SettleTime"].Should().Be("00:00:02");
    }

    [Theory]
    [InlineData("00:00:00")]
    [InlineData("00:00:00.500")]
    [InlineData("00:10:00")]
    public void Settle_time_accepts_zero_to_ten_minutes(string value)
    {
        Load(("Backup:Wal:SettleTime", value)).Wal.SettleTime.Should().Be(TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture));
    }

    [Theory]
    [InlineData("-00:00:01")]
    [InlineData("00:10:01")]
    public void Settle_time_outside_the_range_is_named(string value)
    {
        Problems(("Backup:Wal:SettleTime", value)).Should().ContainSingle()
            .Which.Should().StartWith("Backup:Wal:SettleTime must be between 00:00:00 and 00:10:00");
    }

    [Fact]
    public void A_misspelt_settle_time_is_named_with_a_suggestion()
    {
        Problems(("Backup:Wal:SettleTim", "00:00:01")).Should().ContainSingle()
            .Which.Should().Be("Backup:Wal:SettleTim is not a known setting (did you mean Backup:Wal:SettleTime?)");
    }

    [Theory]
    [InlineData("orders current.wal")]
    [InlineData(".orders_current.wal")]
    public void An_active_file_whose_snapshots_could_not_be_named_is_refused(string name)
    {
        Problems(("Backup:Wal:ActiveFile", name)).Should().ContainSingle()
            .Which.Should().StartWith("Backup:Wal:ActiveFile must be letters, digits");
    }

    [Fact]
    public void An_active_file_with_a_path_gets_one_problem_not_two()
    {
        Problems(("Backup:Wal:ActiveFile", "sub/orders_current.wal")).Should().ContainSingle()
            .Which.Should().StartWith("Backup:Wal:ActiveFile must be a plain file name");
    }
}
