using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Replication;

namespace VelozBackupAgent.Sources;

/// <summary>Composes the enabled backup sources from configuration: the one place that knows every kind's class.</summary>
public static class BackupSources
{
    public static IReadOnlyList<IBackupSource> Create(BackupOptions options, BackupRepository repository, TimeProvider time, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(options);
        var sources = new List<IBackupSource>();
        if (options.Secrets.Enabled)
        {
            sources.Add(new Secrets.SecretsSource(options, repository, time, loggerFactory));
        }

        if (options.Config.Enabled)
        {
            sources.Add(new Config.ConfigSource(options, repository, time, loggerFactory));
        }

        if (options.Database.Enabled)
        {
            sources.Add(new Database.DatabaseSource(options, repository, time, loggerFactory));
        }

        if (options.Wal.Enabled)
        {
            sources.Add(new Wal.WalSource(options, repository, time, loggerFactory));
        }

        return sources;
    }
}
