namespace VelozBackupAgent;

/// <summary>The kinds of artifact, which are also the folder names under the backup root and S3 prefix.</summary>
public static class BackupKinds
{
    public const string Wal = "wal";
    public const string Config = "config";
    public const string Database = "database";
    public const string Secrets = "secrets";

    /// <summary>PostgreSQL point-in-time recovery: base backups plus the server's WAL, streamed continuously.</summary>
    public const string Pitr = "pitr";

    /// <summary>
    /// In restore order for a full restore: secrets, configuration, the database (a dump, or with PITR the cluster
    /// itself), WAL.
    /// </summary>
    public static IReadOnlyList<string> All { get; } = [Secrets, Config, Database, Pitr, Wal];

    /// <summary>
    /// The kinds that are one per database, not one per node: with <c>Backup:Cluster</c> stored in S3 under
    /// <c>Backup:Cluster:SharedPrefix</c>, not the node's name.
    /// </summary>
    public static IReadOnlyList<string> DatabaseWide { get; } = [Database, Pitr];

    public static bool IsKnown(string kind) => All.Contains(kind, StringComparer.Ordinal);
}
