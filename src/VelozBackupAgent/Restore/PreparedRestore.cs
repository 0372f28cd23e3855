namespace VelozBackupAgent.Restore;

/// <summary>What one restored artifact amounts to, for the operator.</summary>
/// <param name="Kind">wal, config, database or secrets.</param>
/// <param name="Artifact">The artifact restored.</param>
/// <param name="Target">What now holds it: a directory or a database.</param>
/// <param name="Summary">One line: counts and sizes (files, segments, tables and rows).</param>
/// <param name="Prepare">Verifying, downloading, decrypting, extracting or pg_restore into a scratch copy.</param>
/// <param name="Commit">Putting it in place (renames, the database swap): the part that needs the service stopped.</param>
/// <param name="Warnings">What the operator should know (segments not in the backup, the previous copy kept, …).</param>
public sealed record RestoreResult(string Kind, string Artifact, string Target, string Summary, TimeSpan Prepare, TimeSpan Commit, IReadOnlyList<string> Warnings)
{
    public TimeSpan Duration => Prepare + Commit;

    /// <summary>Kind-specific detail for machine output (e.g. the restored tables).</summary>
    public object? Details { get; init; }
}

/// <summary>
/// A restore with all the slow, risky work done beside the live copy (verified, extracted, restored into a
/// scratch database) and only the switch-over left. Disposing an uncommitted one removes the scratch copy and
/// leaves the live system exactly as it was.
/// </summary>
public interface IPreparedRestore : IAsyncDisposable
{
    string Kind { get; }

    string Artifact { get; }

    /// <summary>Puts the prepared copy in place.</summary>
    Task<RestoreResult> CommitAsync(CancellationToken cancellationToken);
}
