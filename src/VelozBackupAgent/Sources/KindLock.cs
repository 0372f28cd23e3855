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
    private readonly FileStream _file;

    private KindLock(FileStream file) => _file = file;

    /// <summary>Takes the lock, or returns null (and the holder's pid when known) when another run holds it.</summary>
    public static KindLock? TryAcquire(string stateDirectory, string kind, out int? holderPid)
    {
        holderPid = null;
        var directory = Path.Combine(stateDirectory, "locks");
        PrivateFiles.CreateDirectory(directory);
        var path = Path.Combine(directory, kind + ".lock");
        try
        {
            var file = PrivateFiles.Open(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            // The lock file itself cannot be read while locked, so the holder's pid goes beside it.
            PrivateFiles.WriteAllText(path + ".pid", Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\n");
            return new KindLock(file);
        }
        catch (IOException)
        {
            try
            {
                holderPid = int.TryParse(File.ReadAllText(path + ".pid").Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var p) ? p : null;
            }
            catch (IOException)
            {
                // Unreadable while held: the pid is only a courtesy.
            }

            return null;
        }
    }

    public void Dispose() => _file.Dispose();
}
