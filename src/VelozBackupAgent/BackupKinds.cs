namespace VelozBackupAgent;

/// <summary>The four kinds of artifact, which are also the folder names under the backup root and S3 prefix.</summary>
public static class BackupKinds
{
    public const string Wal = "wal";
    public const string Config = "config";
    public const string Database = "database";
    public const string Secrets = "secrets";

    /// <summary>In restore order for a full restore: secrets, configuration, database, WAL.</summary>
    public static IReadOnlyList<string> All { get; } = [Secrets, Config, Database, Wal];

    public static bool IsKnown(string kind) => All.Contains(kind, StringComparer.Ordinal);
}
