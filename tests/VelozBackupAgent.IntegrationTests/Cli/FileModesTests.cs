using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.IntegrationTests.Restore;

namespace VelozBackupAgent.IntegrationTests.Cli;

/// <summary>
/// Everything the agent creates is 0600 (files) and 0700 (directories), whatever the umask it is started with:
/// every entry under LocalRoot (artifacts, <c>.state/**</c>), the log file and its directory, a verify report.
/// </summary>
public sealed class FileModesTests
{
    private const UnixFileMode File0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode Dir0700 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>The real binary under <c>sh -c 'umask U; exec dotnet …'</c>, as a service started with that umask.</summary>
    private static Task<ProcessResult> RunWithUmaskAsync(string umask, RestoreTestBed bed, string logFile, params string[] args) =>
        ChildProcess.RunAsync("sh", ["-c", $"umask {umask}; exec \"$@\"", "sh", VelozBackupBinary.Command.File, .. VelozBackupBinary.Command.Prefix, .. args, "--config", bed.ConfigPath, $"--Backup:Log:File={logFile}"],
            new Dictionary<string, string?> { ["VELOZ_BACKUP_CONFIG"] = null }, TimeSpan.FromMinutes(4));

    [Theory]
    [InlineData("022")]
    [InlineData("000")]
    public async Task Backup_verify_status_and_prune_create_only_private_files_and_directories(string umask)
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        var logDirectory = Path.Combine(bed.Root, "log", "veloz");
        var logFile = Path.Combine(logDirectory, "backup.log");
        var report = Path.Combine(bed.Root, "backup_report.txt");
        var stale = Path.Combine(bed.Root, "old_report.txt");
        await File.WriteAllTextAsync(stale, "an older report, world-readable\n");
        File.SetUnixFileMode(stale, (UnixFileMode)0x1B6); // 0666

        foreach (var args in new[] { ["backup", "all"], ["verify", "--test-restore", "--report", report], ["verify", "--report", stale], ["status"], ["prune"], new[] { "list" } })
        {
            var r = await RunWithUmaskAsync(umask, bed, logFile, args);
            r.ExitCode.Should().Be(0, $"{string.Join(' ', args)}: {r.StdOut}{r.StdErr}");
        }

        var wrong = new List<string>();
        void Check(string path)
        {
            var expected = Directory.Exists(path) ? Dir0700 : File0600;
            var mode = File.GetUnixFileMode(path);
            if (mode != expected)
            {
                wrong.Add($"{Path.GetRelativePath(bed.Root, path)} {Convert.ToString((int)mode, 8)}");
            }
        }

        Check(Path.Combine(bed.LocalRoot, ".state"));
        var entries = Directory.EnumerateFileSystemEntries(bed.LocalRoot, "*", SearchOption.AllDirectories).ToList();
        // (The lock's .pid file lives only while a run holds the lock; its mode is checked in BackupRunnerTests.)
        entries.Should().Contain(e => e.EndsWith("/.state/locks/database.lock", StringComparison.Ordinal))
            .And.Contain(e => e.EndsWith("/.state/restore-test.json", StringComparison.Ordinal))
            .And.Contain(e => e.EndsWith("/.state/verify", StringComparison.Ordinal))
            .And.Contain(e => e.EndsWith("/.state/last-prune", StringComparison.Ordinal))
            .And.Contain(e => e.EndsWith(".dump", StringComparison.Ordinal));
        entries.ForEach(Check);
        Check(Path.Combine(bed.Root, "log"));
        Check(logDirectory);
        var logs = Directory.GetFiles(logDirectory);
        logs.Should().NotBeEmpty("the log file sink wrote its file");
        foreach (var log in logs)
        {
            Check(log);
        }

        Check(report);
        Check(stale);
        wrong.Should().BeEmpty($"with umask {umask} every file is 0600 and every directory 0700");
    }
}
