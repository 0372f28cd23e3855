using VelozBackupAgent.Catalog;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Sources;

/// <summary>
/// Picks the name of a new timestamped artifact: <c>&lt;prefix&gt;_YYYYMMDD_HHMMSS&lt;suffix&gt;</c> in UTC, or
/// with <c>-2</c>, <c>-3</c>… when that second is already taken, so two artifacts made in the same second never
/// collide. Callers hold the kind's lock (<see cref="BackupRunner"/>), so the check-then-write cannot race.
/// </summary>
public static class ArtifactNameAllocator
{
    public static async Task<string> AllocateAsync(LocalArtifactStore local, string kind, string prefix, string suffix, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(local);
        for (var sequence = 1; ; sequence++)
        {
            var name = ArtifactName.Format(prefix, now, suffix, sequence);
            if (await local.StatAsync(kind, name, cancellationToken) is null && !File.Exists(local.PathOf(kind, name)))
            {
                return name;
            }
        }
    }
}
