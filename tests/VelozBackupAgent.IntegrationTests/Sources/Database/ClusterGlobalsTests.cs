using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Database;
using VelozBackupAgent.Storage.Local;
using static VelozBackupAgent.IntegrationTests.Sources.Database.DatabaseTestKit;
using ChildProcess = VelozBackupAgent.IntegrationTests.Infrastructure.ChildProcess;

namespace VelozBackupAgent.IntegrationTests.Sources.Database;

/// <summary>
/// The cluster globals stored beside each dump, on the shared test cluster with the real pg_dump, pg_dumpall and gpg:
/// named after the dump, encrypted, and what happens without recipients or without pg_dumpall. (Tests that create
/// roles use a private cluster: see Restore/GlobalsRestoreTests.)
/// </summary>
public sealed class ClusterGlobalsTests : IAsyncLifetime, IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-globals-").FullName;
    private readonly string _state = Directory.CreateTempSubdirectory("veloz-globals-state-").FullName;
    private readonly ManualClock _clock = new(At);
    private readonly CapturedLogs _logs = new();
    private PostgresDatabase _db = null!;

    public async Task InitializeAsync()
    {
        _db = await PostgresDatabase.CreateAsync("veloz_glob");
        await _db.SeedOrdersAsync(100);
    }

    public async Task DisposeAsync()
    {
        await _db.DisposeAsync();
        Directory.Delete(_root, recursive: true);
        Directory.Delete(_state, recursive: true);
    }

    public void Dispose() => _logs.Dispose();

    private string DatabaseDirectory => Path.Combine(_root, "database");

    private string DumpName(int sequence = 1) => Catalog.ArtifactName.Format(DatabaseSource.ArtifactPrefix(_db.Name), At, ".dump", sequence);

    private DatabaseSource Source(Action<BackupOptions>? configure = null)
    {
        var options = new BackupOptions { LocalRoot = _root };
        options.Database.ConnectionString = _db.ConnectionString;
        options.Database.BinDirectory = TestEnvironment.PostgresBinDirectory;
        options.Secrets.Recipients.Add(TestEnvironment.GpgRecipient);
        options.Secrets.GnupgHome = TestEnvironment.GnupgHome;
        configure?.Invoke(options);
        return new DatabaseSource(options, new BackupRepository(new LocalArtifactStore(_root, _clock)), _clock, _logs.Factory, _ => null);
    }

    private Task<BackupRunResult> RunThroughRunnerAsync(DatabaseSource source) =>
        new BackupRunner([source], _state, _clock, _logs.Factory.CreateLogger<BackupRunner>()).RunAsync(BackupKinds.Database, BackupTrigger.Scheduled);

    private static Task<ProcessResult> DecryptAsync(string path) =>
        ChildProcess.RunAsync("gpg", ["--batch", "--quiet", "--decrypt", path], new Dictionary<string, string?> { ["GNUPGHOME"] = TestEnvironment.GnupgHome });

    [Fact]
    public async Task Each_dump_gets_its_globals_beside_it_encrypted_and_named_with_the_dumps_time_and_sequence()
    {
        var source = Source();

        var first = await source.RunAsync(BackupTrigger.Scheduled, CancellationToken.None);
        var second = await source.RunAsync(BackupTrigger.Manual, CancellationToken.None);

        first.Artifacts.Select(a => a.Name).Should().Equal("globals_20261123_020000.sql.gpg", DumpName());
        second.Artifacts.Select(a => a.Name).Should().Equal("globals_20261123_020000-2.sql.gpg", DumpName(2));
        first.Detail.Should().MatchRegex(@"; globals: globals_20261123_020000\.sql\.gpg, \d+ roles, \d+ memberships$");

        var globals = Path.Combine(DatabaseDirectory, "globals_20261123_020000.sql.gpg");
        File.GetUnixFileMode(globals).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        (await ChildProcess.RunAsync("sha256sum", ["-c", "globals_20261123_020000.sql.gpg.sha256"], workingDirectory: DatabaseDirectory)).ExitCode.Should().Be(0);
        var bytes = await File.ReadAllBytesAsync(globals);
        System.Text.Encoding.Latin1.GetString(bytes).Should().NotContain("CREATE ROLE").And.NotContain("SCRAM-SHA-256");

        var plain = await DecryptAsync(globals);
        plain.ExitCode.Should().Be(0, plain.StdErr);
        plain.StdOut.Should().StartWith($"-- veloz-backup: the cluster globals stored with {DumpName()} (pg_dumpall --globals-only)\n")
            .And.Contain("PostgreSQL database cluster dump")
            .And.Contain("ALTER ROLE postgres WITH SUPERUSER")
            .And.Contain("PASSWORD 'SCRAM-SHA-256$", "a superuser's globals carry the password hashes");
        GlobalsScript.Parse(plain.StdOut).Role("postgres").Should().NotBeNull();
        _logs.Lines.Should().Contain(l => l.Contains("globals_20261123_020000.sql.gpg: the cluster globals of " + DumpName(), StringComparison.Ordinal))
            .And.NotContain(l => l.Contains("SCRAM-SHA-256", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Without_recipients_the_dump_succeeds_with_a_warning_and_no_globals_artifact()
    {
        var result = await RunThroughRunnerAsync(Source(o => o.Secrets.Recipients.Clear()));

        result.Outcome.Should().Be(BackupOutcome.Succeeded);
        result.Artifacts.Select(a => a.Name).Should().Equal(DumpName());
        result.Detail.Should().EndWith("; globals NOT backed up: Backup:Secrets:Recipients is empty and role password hashes are never stored unencrypted; a restore onto a new server will lack the roles");
        _logs.Lines.Should().Contain(l => l.StartsWith("Warning ", StringComparison.Ordinal) && l.Contains($"{DumpName()}: the cluster globals (roles, password hashes) are NOT backed up", StringComparison.Ordinal));
        Files(_root).Should().Equal(DumpName(), DumpName() + ".sha256");
    }

    [Fact]
    public async Task A_missing_pg_dumpall_fails_the_run_in_one_line_and_the_dump_stands()
    {
        var bin = Directory.CreateTempSubdirectory("veloz-bin-nodumpall-").FullName;
        try
        {
            File.CreateSymbolicLink(Path.Combine(bin, "pg_dump"), Tool("pg_dump"));
            File.CreateSymbolicLink(Path.Combine(bin, "pg_restore"), Tool("pg_restore"));

            var result = await RunThroughRunnerAsync(Source(o => o.Database.BinDirectory = bin));

            result.Outcome.Should().Be(BackupOutcome.Failed);
            result.Detail.Should().Be($"the dump {DumpName()} is stored, but the cluster globals are not: pg_dumpall not found: {bin}/pg_dumpall " +
                                      $"(Backup:Database:BinDirectory is {bin}; it must hold pg_dumpall too); a restore onto a new server would lack its roles");
            result.Artifacts.Select(a => a.Name).Should().Equal(DumpName());
            Files(_root).Should().Equal(DumpName(), DumpName() + ".sha256");
            (await ChildProcess.RunAsync("sha256sum", ["-c", DumpName() + ".sha256"], workingDirectory: DatabaseDirectory)).ExitCode.Should().Be(0);
            (await ChildProcess.RunAsync(Tool("pg_restore"), ["--list", Path.Combine(DatabaseDirectory, DumpName())])).ExitCode.Should().Be(0);
        }
        finally
        {
            Directory.Delete(bin, recursive: true);
        }
    }

    [Fact]
    public async Task A_recipient_without_a_key_fails_the_run_after_the_dump_is_stored_and_leaves_no_globals()
    {
        var result = await RunThroughRunnerAsync(Source(o =>
        {
            o.Secrets.Recipients.Clear();
            o.Secrets.Recipients.Add("nobody@example.invalid");
        }));

        result.Outcome.Should().Be(BackupOutcome.Failed);
        result.Detail.Should().StartWith($"the dump {DumpName()} is stored, but the cluster globals are not: Backup:Secrets:Recipients: no public key for nobody@example.invalid")
            .And.EndWith("; a restore onto a new server would lack its roles");
        Files(_root).Should().Equal(DumpName(), DumpName() + ".sha256");
    }
}
