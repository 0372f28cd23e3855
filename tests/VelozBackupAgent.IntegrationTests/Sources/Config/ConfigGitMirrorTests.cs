using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.IntegrationTests.Sources.Archives;
using VelozBackupAgent.Sources;
using ChildProcess = VelozBackupAgent.IntegrationTests.Infrastructure.ChildProcess;
using VelozBackupAgent.Sources.Config;

namespace VelozBackupAgent.IntegrationTests.Sources.Config;

/// <summary>Backup:Config:GitRepository with the real git binary, the real local store and real files.</summary>
public sealed class ConfigGitMirrorTests : IDisposable
{
    private const UnixFileMode Mode0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode Mode0644 = Mode0600 | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    private const UnixFileMode Mode0755 = Mode0644 | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
    private static readonly DateTimeOffset Start = new(2026, 11, 30, 9, 0, 0, TimeSpan.Zero);

    private readonly SourceWorkspace _ws = new("veloz-gitmirror-");
    private readonly ManualClock _clock = new(Start);
    private readonly string _repo;

    public ConfigGitMirrorTests()
    {
        _ws.Options.Config.Root = _ws.Source;
        _ws.Options.Secrets.Directory = Path.Combine(_ws.Source, "secrets");
        foreach (var glob in new[] { "config.yaml", "strategies/*.yaml", "strategies/*.sh", "risk_limits.yaml" })
        {
            _ws.Options.Config.Include.Add(glob);
        }

        _ws.Options.Config.Exclude.Add("**/*.secret");
        _repo = Path.Combine(_ws.Directory, "mirror", "config.git");
    }

    public void Dispose() => _ws.Dispose();

    private ConfigSource Source() => new(_ws.Options, _ws.Repository, _clock, _ws.Logs.Factory());

    private async Task<BackupOutput> BackupAsync(BackupTrigger trigger = BackupTrigger.Scheduled)
    {
        var output = await Source().RunAsync(trigger, CancellationToken.None);
        _clock.Advance(TimeSpan.FromHours(6));
        return output;
    }

    private async Task<string> GitAsync(params string[] args)
    {
        var r = await ChildProcess.RunAsync("git", ["--git-dir", _repo, .. args]);
        r.ExitCode.Should().Be(0, $"git {string.Join(' ', args)}: {r.StdErr}");
        return r.StdOut;
    }

    private void SeedTree()
    {
        _ws.Write("config.yaml", "engine:\n  port: 8080\n", Mode0644);
        _ws.Write("risk_limits.yaml", "max_position: 10\nmax_drawdown: 0.05\n", Mode0644);
        _ws.Write("strategies/momentum.yaml", "lookback: 20\n", Mode0644);
        _ws.Write("strategies/start.sh", "#!/bin/sh\nexec veloz\n", Mode0644);
        _ws.Write("exchange.secret", "SECRET-exchange-CANARY\n");
        _ws.Write("strategies/alpha.secret", "SECRET-alpha-CANARY\n");
        _ws.Write("secrets/binance.key", "SECRET-binance-CANARY\n", Mode0600);
    }

    [Fact]
    public async Task Every_new_archive_is_a_commit_whose_log_shows_what_changed_and_never_a_secret()
    {
        SeedTree();
        _ws.Options.Config.GitRepository = _repo;

        var first = await BackupAsync();
        first.Detail.Should().Contain("git: config_20261130_090000.tar.gz: first mirrored configuration (4 file(s))");
        (await Tools.StatAsync(_repo, "%a")).Should().Be("700");

        _ws.Write("risk_limits.yaml", "max_position: 20\nmax_drawdown: 0.05\n", Mode0644);
        _ws.Write("strategies/breakout.yaml", "window: 5\n", Mode0644);
        File.Delete(Path.Combine(_ws.Source, "strategies", "momentum.yaml"));
        File.SetUnixFileMode(Path.Combine(_ws.Source, "strategies", "start.sh"), Mode0755);
        var second = await BackupAsync();
        second.Detail.Should().Contain("git: config_20261130_150000.tar.gz: 1 modified, 1 added, 1 removed, 1 mode changed");

        // A scheduled run of the same tree stores an archive but adds no commit.
        var third = await BackupAsync();
        third.Artifacts.Should().ContainSingle();
        third.Detail.Should().EndWith("; git mirror unchanged");

        (await GitAsync("log", "--format=%s")).Split('\n', StringSplitOptions.RemoveEmptyEntries).Should().Equal(
            "config_20261130_150000.tar.gz: 1 modified, 1 added, 1 removed, 1 mode changed",
            "config_20261130_090000.tar.gz: first mirrored configuration (4 file(s))");
        var body = await GitAsync("log", "-1", "--format=%b");
        body.Should().Be("modified risk_limits.yaml\nadded strategies/breakout.yaml\nremoved strategies/momentum.yaml\nmode strategies/start.sh 100644 -> 100755\n\n");
        (await GitAsync("log", "-1", "--format=%an <%ae>|%ct")).Trim().Should().Be($"{ConfigGitMirror.Identity}|{Start.AddHours(6).ToUnixTimeSeconds()}");

        // "What changed in risk_limits.yaml since yesterday?"
        var patch = await GitAsync("log", "-p", "--format=%s", "--", "risk_limits.yaml");
        patch.Should().Contain("-max_position: 10\n+max_position: 20\n");
        (await GitAsync("show", "main:risk_limits.yaml")).Should().Be("max_position: 20\nmax_drawdown: 0.05\n");
        (await GitAsync("ls-tree", "-r", "--name-only", "main")).Split('\n', StringSplitOptions.RemoveEmptyEntries).Should().Equal(
            "config.yaml", "risk_limits.yaml", "strategies/breakout.yaml", "strategies/start.sh");
        (await GitAsync("ls-tree", "main", "strategies/start.sh")).Should().StartWith("100755 blob ");

        // No secret in any commit, nor anywhere in the repository's objects.
        (await GitAsync("log", "--all", "--name-only", "--format=")).Should().NotContain("secret").And.NotContain("binance");
        (await GitAsync("fsck", "--full", "--strict")).Should().BeEmpty();
        var grep = await ChildProcess.RunAsync("grep", ["-r", "-a", "-c", "CANARY", _repo]);
        grep.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Should().OnlyContain(l => l.EndsWith(":0", StringComparison.Ordinal));
        var zgrep = await ChildProcess.RunAsync("bash", ["-c", $"git --git-dir '{_repo}' cat-file --batch-all-objects --batch | grep -a -c CANARY"]);
        zgrep.StdOut.Trim().Should().Be("0");
    }

    [Fact]
    public async Task A_new_mirror_is_filled_with_every_stored_archive_oldest_first()
    {
        SeedTree();
        await BackupAsync();
        _ws.Write("config.yaml", "engine:\n  port: 9090\n", Mode0644);
        await BackupAsync();
        _ws.Write("config.yaml", "engine:\n  port: 9191\n", Mode0644);

        _ws.Options.Config.GitRepository = _repo;
        var output = await BackupAsync(BackupTrigger.Change);

        output.Detail.Should().Contain("git mirror filled with 3 commits, last config_20261130_210000.tar.gz: 1 modified, 0 added, 0 removed");
        (await GitAsync("log", "--format=%s|%ct")).Split('\n', StringSplitOptions.RemoveEmptyEntries).Should().Equal(
            $"config_20261130_210000.tar.gz: 1 modified, 0 added, 0 removed|{Start.AddHours(12).ToUnixTimeSeconds()}",
            $"config_20261130_150000.tar.gz: 1 modified, 0 added, 0 removed|{Start.AddHours(6).ToUnixTimeSeconds()}",
            $"config_20261130_090000.tar.gz: first mirrored configuration (4 file(s))|{Start.ToUnixTimeSeconds()}");
        (await GitAsync("show", "main~1:config.yaml")).Should().Be("engine:\n  port: 9090\n");
    }

    [Fact]
    public async Task A_mirror_that_fails_leaves_the_archive_stored_and_catches_up_on_the_next_backup()
    {
        SeedTree();
        Directory.CreateDirectory(_repo);
        File.WriteAllText(Path.Combine(_repo, "notes.txt"), "not a repository\n");
        _ws.Options.Config.GitRepository = _repo;

        var output = await BackupAsync();

        output.Artifacts.Should().ContainSingle();
        File.Exists(_ws.PathOf("config", output.Artifacts[0].Name)).Should().BeTrue();
        output.Detail.Should().Contain($"git mirror failed: Backup:Config:GitRepository: {_repo} exists and is not a bare git repository");
        _ws.Logs.Lines.Should().Contain(l => l.Contains("did not take config_20261130_090000.tar.gz", StringComparison.Ordinal));
        File.ReadAllText(Path.Combine(_repo, "notes.txt")).Should().Be("not a repository\n");

        Directory.Delete(_repo, recursive: true);
        _ws.Write("risk_limits.yaml", "max_position: 30\n", Mode0644);
        var next = await BackupAsync();
        next.Detail.Should().Contain("git mirror filled with 2 commits");
        (await GitAsync("show", "main:risk_limits.yaml")).Should().Be("max_position: 30\n");
    }

    [Fact]
    public async Task A_tampered_archive_is_never_committed()
    {
        SeedTree();
        var first = await BackupAsync();
        var path = _ws.PathOf("config", first.Artifacts[0].Name);
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0xFF;
        File.SetUnixFileMode(path, Mode0600);
        File.WriteAllBytes(path, bytes);

        _ws.Write("config.yaml", "engine:\n  port: 7070\n", Mode0644);
        _ws.Options.Config.GitRepository = _repo;
        var output = await BackupAsync();

        output.Detail.Should().Contain("git: config_20261130_150000.tar.gz: first mirrored configuration");
        _ws.Logs.Lines.Should().Contain(l => l.Contains("filling the git mirror, config_20261130_090000.tar.gz cannot be read", StringComparison.Ordinal));
        (await GitAsync("log", "--format=%s")).Split('\n', StringSplitOptions.RemoveEmptyEntries).Should().ContainSingle();
        (await GitAsync("show", "main:config.yaml")).Should().Be("engine:\n  port: 7070\n");
    }
}
