using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Replication;

namespace VelozBackupAgent.Sources;

/// <summary>Composes the enabled backup sources from configuration: the one place that knows every kind's class.</summary>
public static class BackupSources
{
    /// <param name="options">Which kinds are enabled, and their settings.</param>
    /// <param name="repository">Where every kind writes.</param>
    /// <param name="time">The clock.</param>
    /// <param name="loggerFactory">Loggers.</param>
    /// <param name="walArchive">The PITR WAL archive the base backups check their cluster against; made here when null.</param>
    public static IReadOnlyList<IBackupSource> Create(BackupOptions options, BackupRepository repository, TimeProvider time, ILoggerFactory loggerFactory, Pitr.WalArchive? walArchive = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
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

        if (options.Pitr.Enabled)
        {
            walArchive ??= new Pitr.WalArchive(options, repository, loggerFactory.CreateLogger<Pitr.WalArchive>());
            sources.Add(new Pitr.BaseBackupSource(options, repository, walArchive, time, loggerFactory));
        }

        if (options.Wal.Enabled)
        {
            sources.Add(new Wal.WalSource(options, repository, time, loggerFactory));
        }

        return sources;
    }
}
