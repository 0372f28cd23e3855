using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.S3;

namespace VelozBackupAgent.Stores;

/// <summary>Builds the stores from configuration in one place, so wrappers are composed once.</summary>
public static class StoreComposition
{
    /// <summary>
    /// The store options for <c>Backup:S3</c>: keys under <c>&lt;NodeName&gt;/&lt;kind&gt;/</c>; with <c>Backup:Cluster</c>
    /// the database-wide kinds under <c>&lt;SharedPrefix&gt;/&lt;kind&gt;/</c> instead.
    /// </summary>
    /// <remarks>
    /// Why the prefix is decided here, per kind, and nowhere else: every S3 read and write (the upload queue and its
    /// reconciliation, the copy made while a base backup is written, retention, verify, status, every restore) goes
    /// through this one store, so mapping a kind to the shared prefix moves all of them together and none can look in
    /// the old place. A separate "shared" store beside the node's would have had to be threaded through each of them.
    /// Sharing the prefix needs no lock between nodes: names are unique per content (a WAL segment's name is its
    /// position, a dump's or base backup's carries its time and is made by one node per fire), the store accepts the
    /// same bytes under a name it holds and refuses other bytes (<see cref="IArtifactStore.WriteAsync"/>), and deleting
    /// what another node already deleted is not an error.
    /// </remarks>
    public static S3StoreOptions S3StoreOptionsFrom(BackupOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new S3StoreOptions
        {
            Bucket = options.S3.Bucket,
            Prefix = options.NodeName,
            KindPrefixes = options.Cluster.Enabled
                ? BackupKinds.DatabaseWide.ToDictionary(k => k, _ => options.Cluster.SharedPrefix, StringComparer.Ordinal)
                : new Dictionary<string, string>(StringComparer.Ordinal),
            ServiceUrl = options.S3.ServiceUrl?.ToString().TrimEnd('/'),
            Region = options.S3.Region,
            ForcePathStyle = options.S3.ForcePathStyle,
            ChunkedUpload = options.S3.ChunkedUpload,
            PartSizeBytes = options.S3.PartSizeMiB * 1024 * 1024,
            MaxRetries = options.S3.MaxRetries,
            VerifyEtag = options.S3.VerifyEtag,
            ServerSideEncryption = options.S3.ServerSideEncryption,
            KmsKeyId = options.S3.KmsKeyId,
            StorageClass = options.S3.StorageClass,
            ObjectLockMode = options.S3.ObjectLockMode,
            ObjectLockDays = options.S3.ObjectLockDays,
        };
    }

    /// <summary>
    /// An S3 store for another bucket or node prefix (a restore from <c>s3://bucket/node</c>), with the endpoint settings of
    /// Backup:S3. <c>unreachableHold</c>: see <see cref="S3StoreOptions.UnreachableHold"/> (default off). A prefix other
    /// than this node's name is taken exactly: every kind under it (<c>s3://bucket/cluster</c> reaches the shared kinds,
    /// <c>s3://bucket/node-b</c> another node's own); this node's name means this node's layout, shared kinds included.
    /// </summary>
    public static IArtifactStore CreateS3(BackupOptions options, ILoggerFactory loggerFactory, string bucket, string prefix, TimeProvider? timeProvider = null, TimeSpan unreachableHold = default)
    {
        ArgumentNullException.ThrowIfNull(loggerFactory);
        var storeOptions = S3StoreOptionsFrom(options);
        storeOptions.Bucket = bucket;
        if (!string.Equals(prefix, options.NodeName, StringComparison.Ordinal))
        {
            storeOptions.KindPrefixes = new Dictionary<string, string>(StringComparer.Ordinal);
        }

        storeOptions.Prefix = prefix;
        storeOptions.UnreachableHold = unreachableHold;
        return Encrypting(options, new S3ArtifactStore(storeOptions, loggerFactory.CreateLogger<S3ArtifactStore>(), timeProvider), loggerFactory, timeProvider);
    }

    /// <summary>
    /// The S3 replica; credentials from the AWS default chain (environment, profile, instance role). <c>unreachableHold</c>:
    /// see <see cref="S3StoreOptions.UnreachableHold"/> (default off).
    /// </summary>
    public static IArtifactStore CreateS3(BackupOptions options, ILoggerFactory loggerFactory, TimeProvider? timeProvider = null, TimeSpan unreachableHold = default)
    {
        ArgumentNullException.ThrowIfNull(loggerFactory);
        var storeOptions = S3StoreOptionsFrom(options);
        storeOptions.UnreachableHold = unreachableHold;
        return Encrypting(options, new S3ArtifactStore(storeOptions, loggerFactory.CreateLogger<S3ArtifactStore>(), timeProvider), loggerFactory, timeProvider);
    }

    /// <summary>
    /// The S3 store behind client-side gpg encryption (<see cref="EncryptingArtifactStore"/>): new copies encrypted when
    /// Backup:S3:Encrypt is on, encrypted copies decrypted on every read either way (a bucket may hold both).
    /// </summary>
    private static EncryptingArtifactStore Encrypting(BackupOptions options, S3ArtifactStore store, ILoggerFactory loggerFactory, TimeProvider? timeProvider) =>
        EncryptingArtifactStore.Over(store, options.Secrets, options.S3.Encrypt, timeProvider ?? TimeProvider.System, loggerFactory.CreateLogger<EncryptingArtifactStore>());
}
