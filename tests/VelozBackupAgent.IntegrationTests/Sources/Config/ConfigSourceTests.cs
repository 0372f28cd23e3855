using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.IntegrationTests.Sources.Archives;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Config;

namespace VelozBackupAgent.IntegrationTests.Sources.Config;

/// <summary>The configuration kind on real files, the real local store, the real tar and a real file watcher.</summary>
public sealed class ConfigSourceTests : IDisposable
{
    private const UnixFileMode Mode0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode Mode0640 = Mode0600 | UnixFileMode.GroupRead;
    private const UnixFileMode Mode0644 = Mode0640 | UnixFileMode.OtherRead;
    private const UnixFileMode Mode0755 = Mode0644 | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
    private static readonly DateTimeOffset Start = new(2026, 11, 23, 10, 15, 0, TimeSpan.Zero);
    private static readonly DateTime OldMtime = new DateTime(2025, 1, 2, 3, 4, 5, DateTimeKind.Utc).AddTicks(1_234_567);

    private readonly SourceWorkspace _ws = new("veloz-config-");
    private readonly ManualClock _clock = new(Start);

    public ConfigSourceTests()
    {
        _ws.Options.Config.Root = _ws.Source;
        _ws.Options.Secrets.Directory = Path.Combine(_ws.Source, "secrets");
        foreach (var glob in new[] { "config.yaml", "strategies/*.yaml", "risk_limits.yaml", ".env" })
        {
            _ws.Options.Config.Include.Add(glob);
        }

        _ws.Options.Config.Exclude.Add("**/*.secret");
    }

    public void Dispose() => _ws.Dispose();

    private ConfigSource Source(TimeProvider? time = null) => new(_ws.Options, _ws.Repository, time ?? _clock, _ws.Logs.Factory());

    /// <summary>The seeds' /etc/veloz, with things that must never be archived around it.</summary>
    private void SeedTree()
    {
        _ws.Write("config.yaml", "engine:\n  port: 8080\n", Mode0640);
        _ws.Write("risk_limits.yaml", "max_position: 10\n", Mode0644);
        _ws.Write(".env", "VELOZ_ENV=production\n", Mode0600);
        _ws.Write("strategies/momentum.yaml", "lookback: 20\n", Mode0644);
        _ws.Write("strategies/mean_reversion.yaml", "window: 50\n", Mode0600);
        _ws.Write("strategies/README.txt", "not configuration\n");
        _ws.Write("exchange.secret", "SECRET-exchange\n");
        _ws.Write("strategies/alpha.secret", "SECRET-alpha\n");
        _ws.Write("secrets/binance.key", "SECRET-binance\n", Mode0600);
        _ws.Write("notes.md", "not configuration\n");
        File.SetUnixFileMode(Path.Combine(_ws.Source, "strategies"), Mode0755);
    }

    [Fact]
    public async Task A_scheduled_run_archives_exactly_the_included_files_restorable_with_tar()
    {
        SeedTree();
        File.SetLastWriteTimeUtc(Path.Combine(_ws.Source, "config.yaml"), OldMtime);
        File.SetLastWriteTimeUtc(Path.Combine(_ws.Source, "strategies", "momentum.yaml"), OldMtime.AddDays(1));
        await Tools.RunAsync("chown", "1234:5678", Path.Combine(_ws.Source, "strategies", "mean_reversion.yaml"));

        var output = await Source().RunAsync(BackupTrigger.Scheduled, CancellationToken.None);

        var artifact = output.Artifacts.Should().ContainSingle().Subject;
        artifact.Kind.Should().Be("config");
        artifact.Name.Should().Be("config_20261123_101500.tar.gz");
        output.Detail.Should().Be("5 file(s)");
        var archive = _ws.PathOf("config", artifact.Name);
        (await Tools.TarListAsync(archive)).Should().Equal(
            ".env", "config.yaml", "risk_limits.yaml", "strategies/", "strategies/mean_reversion.yaml", "strategies/momentum.yaml");

        var restored = Path.Combine(_ws.Directory, "restored");
        await Tools.TarExtractAsync(archive, restored);
        foreach (var file in new[] { ".env", "config.yaml", "risk_limits.yaml", "strategies/mean_reversion.yaml", "strategies/momentum.yaml" })
        {
            var original = Path.Combine(_ws.Source, file);
            var copy = Path.Combine(restored, file);
            (await File.ReadAllBytesAsync(copy)).Should().Equal(await File.ReadAllBytesAsync(original), file);
            File.GetUnixFileMode(copy).Should().Be(File.GetUnixFileMode(original), file);
            File.GetLastWriteTimeUtc(copy).Should().Be(File.GetLastWriteTimeUtc(original), file);
        }

        File.GetLastWriteTimeUtc(Path.Combine(restored, "config.yaml")).Should().Be(OldMtime);
        File.GetUnixFileMode(Path.Combine(restored, "strategies")).Should().Be(Mode0755);
        (await Tools.StatAsync(Path.Combine(restored, "strategies", "mean_reversion.yaml"), "%u:%g")).Should().Be("1234:5678");
        (await Tools.TarVerboseAsync(archive)).Should().Contain("1234/5678").And.Contain("-rw-r----- 0/0");
        Directory.GetFileSystemEntries(restored, "*", SearchOption.AllDirectories).Should().HaveCount(6);
    }

    [Fact]
    public async Task Secret_files_and_the_secrets_directory_never_appear_even_when_a_glob_matches_everything()
    {
        SeedTree();
        _ws.Write("secrets/nested/db.pass", "SECRET-db\n");
        _ws.Write("vault.secret/token", "SECRET-vault\n");
        File.CreateSymbolicLink(Path.Combine(_ws.Source, "binance-link.yaml"), "secrets/binance.key");
        _ws.Options.Config.Include.Clear();
        _ws.Options.Config.Include.Add("**/*");
        _ws.Options.Config.Include.Add("secrets/**");
        _ws.Options.Config.Exclude.Clear();

        var output = await Source().RunAsync(BackupTrigger.Manual, CancellationToken.None);

        var archive = _ws.PathOf("config", output.Artifacts[0].Name);
        var names = await Tools.TarListAsync(archive);
        names.Should().Contain(["config.yaml", "notes.md", "strategies/README.txt", "binance-link.yaml"]);
        names.Should().NotContain(n => n.EndsWith(".secret", StringComparison.OrdinalIgnoreCase) || n.Contains(".secret/", StringComparison.Ordinal) || n.StartsWith("secrets", StringComparison.Ordinal));
        (await TarBytesAsync(archive)).Should().NotContain("SECRET-", "no secret's bytes may be in the configuration archive");
        var link = await EntryAsync(archive, "binance-link.yaml");
        link.EntryType.Should().Be(TarEntryType.SymbolicLink);
        link.LinkName.Should().Be("secrets/binance.key");
    }

    [Fact]
    public async Task Symbolic_links_are_stored_as_links_and_never_followed_out_of_the_root()
    {
        _ws.Write("config.yaml", "a: 1\n");
        var outside = Path.Combine(_ws.Directory, "outside");
        Directory.CreateDirectory(outside);
        await File.WriteAllTextAsync(Path.Combine(outside, "shared.yaml"), "OUTSIDE-THE-ROOT\n");
        Directory.CreateDirectory(Path.Combine(_ws.Source, "strategies"));
        File.CreateSymbolicLink(Path.Combine(_ws.Source, "strategies", "shared.yaml"), Path.Combine(outside, "shared.yaml"));
        File.CreateSymbolicLink(Path.Combine(_ws.Source, "risk_limits.yaml"), "config.yaml");
        Directory.CreateSymbolicLink(Path.Combine(_ws.Source, "linked-dir"), outside);
        _ws.Options.Config.Include.Add("linked-dir/*.yaml");

        var output = await Source().RunAsync(BackupTrigger.Scheduled, CancellationToken.None);

        var archive = _ws.PathOf("config", output.Artifacts[0].Name);
        (await Tools.TarListAsync(archive)).Should().Equal("config.yaml", "risk_limits.yaml", "strategies/", "strategies/shared.yaml");
        (await EntryAsync(archive, "strategies/shared.yaml")).LinkName.Should().Be(Path.Combine(outside, "shared.yaml"));
        (await EntryAsync(archive, "risk_limits.yaml")).LinkName.Should().Be("config.yaml");
        (await TarBytesAsync(archive)).Should().NotContain("OUTSIDE-THE-ROOT");
        _ws.Logs.Lines.Should().Contain(l => l.Contains("strategies/shared.yaml -> ", StringComparison.Ordinal) && l.Contains("not in the backup", StringComparison.Ordinal));

        var restored = Path.Combine(_ws.Directory, "restored");
        await Tools.TarExtractAsync(archive, restored);
        new FileInfo(Path.Combine(restored, "risk_limits.yaml")).LinkTarget.Should().Be("config.yaml");
    }

    [Fact]
    public async Task An_unchanged_tree_on_a_change_trigger_writes_nothing_and_real_changes_write_once()
    {
        SeedTree();
        var source = Source();
        await source.RunAsync(BackupTrigger.Scheduled, CancellationToken.None);

        var unchanged = await source.RunAsync(BackupTrigger.Change, CancellationToken.None);
        unchanged.Artifacts.Should().BeEmpty();
        unchanged.Detail.Should().Be("unchanged since config_20261123_101500.tar.gz");

        // Only the mtime moved, or a file no glob matches changed: still nothing to store.
        File.SetLastWriteTimeUtc(Path.Combine(_ws.Source, "config.yaml"), OldMtime);
        _ws.Write("notes.md", "edited\n");
        _ws.Write("exchange.secret", "SECRET-rotated\n");
        _ws.Write("secrets/binance.key", "SECRET-rotated\n");
        (await source.RunAsync(BackupTrigger.Change, CancellationToken.None)).Artifacts.Should().BeEmpty();

        var steps = new (string What, Action Change)[]
        {
            ("content", () => _ws.Write("strategies/momentum.yaml", "lookback: 21\n", Mode0644)),
            ("mode", () => File.SetUnixFileMode(Path.Combine(_ws.Source, "risk_limits.yaml"), Mode0600)),
            ("new file", () => _ws.Write("strategies/breakout.yaml", "n: 3\n")),
            ("removed file", () => File.Delete(Path.Combine(_ws.Source, ".env"))),
        };
        foreach (var (what, change) in steps)
        {
            change();
            _clock.Advance(TimeSpan.FromMinutes(1));
            (await source.RunAsync(BackupTrigger.Change, CancellationToken.None)).Artifacts.Should().ContainSingle(what);
            (await source.RunAsync(BackupTrigger.Change, CancellationToken.None)).Artifacts.Should().BeEmpty(what);
        }

        _ws.Artifacts("config").Should().HaveCount(5);
    }

    [Fact]
    public async Task A_pruned_or_tampered_newest_archive_makes_a_change_run_write_again()
    {
        SeedTree();
        var source = Source();
        var first = (await source.RunAsync(BackupTrigger.Scheduled, CancellationToken.None)).Artifacts[0];

        // The last byte is the gzip trailer: every entry still reads back identical, only the end gives it away.
        await using (var f = new FileStream(_ws.PathOf("config", first.Name), FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = f.Length - 1;
            var b = f.ReadByte();
            f.Position = f.Length - 1;
            f.WriteByte((byte)(b ^ 0xFF));
        }

        _clock.Advance(TimeSpan.FromMinutes(1));
        var afterTamper = await source.RunAsync(BackupTrigger.Change, CancellationToken.None);
        afterTamper.Artifacts.Should().ContainSingle().Which.Name.Should().Be("config_20261123_101600.tar.gz");
        _ws.Logs.Lines.Should().Contain(l => l.Contains($"the newest backup {first.Name} cannot be read back", StringComparison.Ordinal));

        await _ws.Repository.Local.DeleteAsync("config", afterTamper.Artifacts[0].Name);
        await _ws.Repository.Local.DeleteAsync("config", first.Name);
        _clock.Advance(TimeSpan.FromMinutes(1));
        (await source.RunAsync(BackupTrigger.Change, CancellationToken.None)).Artifacts.Should().ContainSingle();
        (await source.RunAsync(BackupTrigger.Change, CancellationToken.None)).Artifacts.Should().BeEmpty();
    }

    [Fact]
    public async Task Two_archives_in_the_same_second_get_distinct_names()
    {
        SeedTree();
        var source = Source();
        var a = await source.RunAsync(BackupTrigger.Manual, CancellationToken.None);
        var b = await source.RunAsync(BackupTrigger.Manual, CancellationToken.None);
        var c = await source.RunAsync(BackupTrigger.MissedAtStartup, CancellationToken.None);

        new[] { a, b, c }.Select(o => o.Artifacts.Single().Name).Should().Equal(
            "config_20261123_101500.tar.gz", "config_20261123_101500-2.tar.gz", "config_20261123_101500-3.tar.gz");
    }

    [Fact]
    public async Task A_config_change_is_archived_by_the_running_watcher_within_seconds()
    {
        SeedTree();
        var source = Source(TimeProvider.System);
        var runner = new BackupRunner([source], _ws.Options.StateDirectory, TimeProvider.System);
        (await runner.RunAsync("config", BackupTrigger.Scheduled)).Outcome.Should().Be(BackupOutcome.Succeeded);

        using var stop = new CancellationTokenSource();
        var changeRuns = 0;
        var watching = source.WatchAsync(async ct =>
        {
            Interlocked.Increment(ref changeRuns);
            await runner.RunAsync("config", BackupTrigger.Change, ct);
        }, stop.Token);
        try
        {
            // The watcher's first pass compares with the archive just written: nothing new.
            (await Tools.EventuallyAsync(() => Volatile.Read(ref changeRuns) >= 1, TimeSpan.FromSeconds(15))).Should().BeTrue();
            _ws.Artifacts("config").Should().HaveCount(1);

            _ws.Write("strategies/momentum.yaml", "lookback: 99\n", Mode0644);

            (await Tools.EventuallyAsync(() => _ws.Artifacts("config").Length == 2, TimeSpan.FromSeconds(15)))
                .Should().BeTrue("a change to an included file is backed up within seconds");
            var newest = (await BackupCatalog.ListAsync(_ws.Repository.Local, "config"))[0].Name;
            var restored = Path.Combine(_ws.Directory, "restored");
            await Tools.TarExtractAsync(_ws.PathOf("config", newest), restored);
            (await File.ReadAllTextAsync(Path.Combine(restored, "strategies", "momentum.yaml"))).Should().Be("lookback: 99\n");
        }
        finally
        {
            await stop.CancelAsync();
            await FluentActions.Awaiting(() => watching).Should().ThrowAsync<OperationCanceledException>();
        }
    }

    [Fact]
    public async Task A_missing_root_is_one_line_naming_the_key_and_nothing_is_stored()
    {
        _ws.Options.Config.Root = Path.Combine(_ws.Directory, "etc-veloz");

        var run = () => Source().RunAsync(BackupTrigger.Scheduled, CancellationToken.None);

        (await run.Should().ThrowAsync<BackupSourceException>()).Which.Message
            .Should().Be($"Backup:Config:Root does not exist: {Path.Combine(_ws.Directory, "etc-veloz")}");
        _ws.StoredFiles("config").Should().BeEmpty();
    }

    [Fact]
    public async Task No_matching_file_is_a_failure_naming_the_globs_not_an_empty_archive()
    {
        _ws.Write("notes.md", "x\n");
        _ws.Write("app.secret", "x\n");

        var run = () => Source().RunAsync(BackupTrigger.Scheduled, CancellationToken.None);

        var message = (await run.Should().ThrowAsync<BackupSourceException>()).Which.Message;
        message.Should().Be($"Backup:Config:Include matched no file under {_ws.Source} (Include [config.yaml, strategies/*.yaml, risk_limits.yaml, .env], Exclude [**/*.secret]; *.secret and {_ws.Source}/secrets are always excluded): refusing to store an empty configuration backup");
        message.Should().NotContain("\n");
        _ws.StoredFiles("config").Should().BeEmpty();
    }

    [Fact]
    public async Task An_unreadable_file_is_named_and_nothing_partial_is_stored()
    {
        SeedTree();
        var victim = Path.Combine(_ws.Source, "strategies", "momentum.yaml");
        await using (await UnreadableFile.MakeAsync(victim))
        {
            var runner = new BackupRunner([Source()], _ws.Options.StateDirectory, _clock);
            var result = await runner.RunAsync("config", BackupTrigger.Scheduled);

            result.Outcome.Should().Be(BackupOutcome.Failed);
            result.Detail.Should().Be($"cannot read {victim}: permission denied");
        }

        _ws.StoredFiles("config").Should().BeEmpty("a failed run leaves no artifact, sidecar or temporary file");
    }

    [Fact]
    public async Task Missing_literal_includes_are_reported_but_do_not_fail_the_backup()
    {
        _ws.Write("config.yaml", "a: 1\n");

        var output = await Source().RunAsync(BackupTrigger.Scheduled, CancellationToken.None);

        output.Detail.Should().Be("1 file(s); nothing matched risk_limits.yaml, .env");
        _ws.Logs.Lines.Should().Contain(l => l.Contains("Include glob risk_limits.yaml matched no file", StringComparison.Ordinal));
    }

    private static async Task<string> TarBytesAsync(string archive)
    {
        await using var gzip = new GZipStream(File.OpenRead(archive), CompressionMode.Decompress);
        using var plain = new MemoryStream();
        await gzip.CopyToAsync(plain);
        return Encoding.UTF8.GetString(plain.ToArray());
    }

    private static async Task<TarEntry> EntryAsync(string archive, string name)
    {
        await using var gzip = new GZipStream(File.OpenRead(archive), CompressionMode.Decompress);
        await using var reader = new TarReader(gzip);
        while (await reader.GetNextEntryAsync() is { } entry)
        {
            if (entry.Name == name)
            {
                return entry;
            }
        }

        throw new InvalidOperationException($"{name} is not in {archive}");
    }
}
