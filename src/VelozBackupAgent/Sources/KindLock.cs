using System.Globalization;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Sources;

/// <summary>
/// One run per kind across processes: an exclusive lock (flock, through <see cref="FileShare.None"/>) on
/// <c>&lt;state&gt;/locks/&lt;kind&gt;.lock</c>, held for the run. The daemon's scheduled job and a
/// <c>veloz-backup backup</c> from a terminal therefore never write the same kind at once. The kernel drops
/// the lock when the holder dies, so a crash never leaves a stale lock behind.
/// </summary>
public sealed class KindLock : IDisposable
{
    private const string BackupMark = "backup ";
    private readonly FileStream _file;
    private readonly string _pidFile;

    private KindLock(FileStream file, string pidFile)
    {
        _file = file;
        _pidFile = pidFile;
    }

    /// <summary>
    /// Takes the lock, or returns null (and the holder's pid when known) when another run holds it.
    /// <paramref name="backupStartedAt"/>: the lock is taken for a backup run that started then; other processes see
    /// it through <see cref="BackupRunningSince"/> (freshness while a long run is in progress).
    /// </summary>
    public static KindLock? TryAcquire(string stateDirectory, string kind, out int? holderPid, DateTimeOffset? backupStartedAt = null)
    {
        holderPid = null;
        var directory = Path.Combine(stateDirectory, "locks");
        PrivateFiles.CreateDirectory(directory);
        var path = Path.Combine(directory, kind + ".lock");
        try
        {
            var file = PrivateFiles.Open(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            // The lock file itself cannot be read while locked, so the holder's pid goes beside it.
            var pid = Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\n";
            if (backupStartedAt is { } started)
            {
                pid += BackupMark + started.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture) + "\n";
            }

            PrivateFiles.WriteAllText(path + ".pid", pid);
            return new KindLock(file, path + ".pid");
        }
        catch (IOException)
        {
            try
            {
                holderPid = ParsePid(File.ReadAllText(path + ".pid"));
            }
            catch (IOException)
            {
                // Unreadable while held: the pid is only a courtesy.
            }

            return null;
        }
    }

    /// <summary>
    /// When the backup run of <paramref name="kind"/> that holds the lock now (in any process) started; null when no
    /// backup of the kind runs. Read from the pid file beside the lock (never by taking the lock, which could make a
    /// run starting at that instant fail as busy): the holder must still be alive and have started before the run, so
    /// the file a killed process left behind, or its pid reused by a newer process, does not count.
    /// </summary>
    public static DateTimeOffset? BackupRunningSince(string stateDirectory, string kind)
    {
        // Read at every scrape and /health for every kind: the usual answer (no run) costs a stat, not an exception.
        var pidFile = Path.Combine(stateDirectory, "locks", kind + ".lock.pid");
        if (!File.Exists(pidFile))
        {
            return null;
        }

        string text;
        try
        {
            text = File.ReadAllText(pidFile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (ParsePid(text) is not { } pid || lines.Length < 2 || !lines[1].StartsWith(BackupMark, StringComparison.Ordinal)
            || !long.TryParse(lines[1].AsSpan(BackupMark.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var ms))
        {
            return null;
        }

        DateTimeOffset started;
        try
        {
            started = DateTimeOffset.FromUnixTimeMilliseconds(ms);
        }
        catch (ArgumentOutOfRangeException)
        {
            return null;
        }

        return HolderStartedBefore(pid, started) ? started : null;
    }

    private static bool HolderStartedBefore(int pid, DateTimeOffset runStarted)
    {
        if (pid == Environment.ProcessId)
        {
            return true;
        }

        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            // A second of slack: the process's start time is read from clock ticks since boot.
            return !process.HasExited && new DateTimeOffset(process.StartTime.ToUniversalTime()) <= runStarted + TimeSpan.FromSeconds(1);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException)
        {
            return false;
        }
    }

    private static int? ParsePid(string text)
    {
        var first = text.Split('\n', 2)[0].Trim();
        return int.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out var p) ? p : null;
    }

    /// <summary>Removes the pid file (under the lock, so no newer holder's file is touched), then releases the lock.</summary>
    public void Dispose()
    {
        try
        {
            File.Delete(_pidFile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Only a courtesy: a stale file names a dead process, which readers check.
        }

        _file.Dispose();
    }
}
