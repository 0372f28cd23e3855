using System.Globalization;
using System.Security.Cryptography;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Sources.Database;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Checksums;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Restore;

/// <summary>Where a restore reads from: an artifact in a store, or a loose file with its sidecar beside it.</summary>
/// <param name="Store">The store holding it; null for a loose file.</param>
/// <param name="Kind">wal, config, database or secrets.</param>
/// <param name="Name">The artifact's file name.</param>
/// <param name="LoosePath">The file, when it is not in a store.</param>
public sealed record ArtifactRef(IArtifactStore? Store, string Kind, string Name, string? LoosePath = null)
{
    /// <summary>For messages: <c>local database/veloz_….dump</c>, <c>s3 …</c> or the file path.</summary>
    public string Label => LoosePath ?? $"{Store!.Target} {Kind}/{Name}";
}

/// <summary>Progress of a long step (download, checksum), in bytes.</summary>
/// <param name="Step">What is being done, e.g. <c>downloading veloz_….dump</c>.</param>
/// <param name="Done">Bytes so far.</param>
/// <param name="Total">Bytes in all, when known.</param>
public sealed record TransferProgress(string Step, long Done, long? Total);

/// <summary>
/// A verified local copy of an artifact, ready to restore from: its bytes were hashed and matched the
/// recorded checksum before anything is restored from it. A download from S3 lives in
/// <c>&lt;LocalRoot&gt;/.state/restore/</c> (0600) and is deleted on dispose; a local artifact is used in place.
/// </summary>
public sealed class StagedArtifact : IDisposable
{
    internal StagedArtifact(ArtifactRef source, string path, long size, string sha256, bool temporary)
    {
        Source = source;
        Path = path;
        Size = size;
        Sha256 = sha256;
        Temporary = temporary;
    }

    public ArtifactRef Source { get; }
    public string Path { get; }
    public long Size { get; }
    public string Sha256 { get; }
    public bool Temporary { get; }

    public void Dispose()
    {
        if (Temporary)
        {
            File.Delete(Path);
        }
    }
}

/// <summary>
/// Turns what the operator typed (<c>latest</c>, a file, an <c>s3://bucket/key</c> URL, <c>--at</c>, <c>--from</c>)
/// into an artifact, and stages it verified. The artifact patterns are those the backup kinds write.
/// </summary>
public sealed class RestoreSources
{
    private readonly BackupOptions _options;
    private readonly LocalArtifactStore _local;
    private readonly IArtifactStore? _remote;
    private readonly Func<string, string, IArtifactStore>? _s3Factory;
    private readonly IProgress<TransferProgress>? _progress;

    /// <param name="options">The agent's options (local root, node, database name).</param>
    /// <param name="local">The local store.</param>
    /// <param name="remote">The configured S3 store, when enabled.</param>
    /// <param name="s3Factory">Makes an S3 store for another (bucket, prefix), for <c>s3://</c> sources; null when S3 cannot be configured.</param>
    /// <param name="progress">Where download and checksum progress goes.</param>
    public RestoreSources(BackupOptions options, LocalArtifactStore local, IArtifactStore? remote, Func<string, string, IArtifactStore>? s3Factory, IProgress<TransferProgress>? progress = null)
    {
        _options = options;
        _local = local;
        _remote = remote;
        _s3Factory = s3Factory;
        _progress = progress;
    }

    public LocalArtifactStore Local => _local;

    public IArtifactStore? Remote => _remote;

    /// <summary>The (prefix, suffix) of the artifacts a restore of <paramref name="kind"/> starts from.</summary>
    public (string Prefix, string Suffix) PatternOf(string kind) => kind switch
    {
        BackupKinds.Wal => (Scheduling.BackupSchedule.WalManifestPrefix, ".json"),
        BackupKinds.Config => ("config", ".tar.gz"),
        BackupKinds.Secrets => ("secrets", ".tar.gz.gpg"),
        BackupKinds.Pitr => (Scheduling.BackupSchedule.PitrBasePrefix, Scheduling.BackupSchedule.PitrBaseInfoSuffix),
        BackupKinds.Database => (DatabaseSource.ArtifactPrefix(PgConnectionInfo.Parse(_options.Database.ConnectionString, Environment.GetEnvironmentVariable).Database), ".dump"),
        _ => throw new ArgumentException($"unknown kind '{kind}'", nameof(kind)),
    };

    /// <summary>The S3 store for an <c>s3://bucket[/prefix]</c> URL (prefix defaults to Backup:NodeName).</summary>
    public IArtifactStore S3Store(string url)
    {
        var (bucket, rest) = SplitS3Url(url);
        var prefix = rest.Trim('/');
        return StoreFor(bucket, prefix.Length == 0 ? _options.NodeName : prefix);
    }

    /// <summary>
    /// Resolves SOURCE for <paramref name="kind"/>: <c>latest</c> (or null) is the newest artifact at or before
    /// <paramref name="at"/> in the store <paramref name="from"/> names (default: local, then S3 when the local
    /// store has none); an <c>s3://bucket/prefix/kind/name</c> URL; or a file path.
    /// </summary>
    public async Task<ArtifactRef> ResolveAsync(string kind, string? source, DateTimeOffset? at, string? from, CancellationToken cancellationToken)
    {
        if (source is null || source.Equals("latest", StringComparison.OrdinalIgnoreCase))
        {
            return await LatestAsync(kind, at, from, cancellationToken).ConfigureAwait(false);
        }

        if (at is not null)
        {
            throw new ArgumentException("--at picks among stored artifacts: use it with SOURCE latest (or no SOURCE), not with a named artifact");
        }

        if (source.StartsWith("s3://", StringComparison.OrdinalIgnoreCase))
        {
            var (bucket, key) = SplitS3Url(source);
            var parts = key.Split('/', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 3)
            {
                throw new ArgumentException($"{source}: expected s3://BUCKET/NODE/{kind}/NAME");
            }

            if (parts[^2] != kind)
            {
                throw new ArgumentException($"{source} is a {parts[^2]} artifact, not {kind}");
            }

            var store = StoreFor(bucket, string.Join('/', parts[..^2]));
            return new ArtifactRef(store, kind, parts[^1]);
        }

        var full = System.IO.Path.GetFullPath(source);
        if (!File.Exists(full))
        {
            throw new ArgumentException($"no such file: {full}");
        }

        // A file inside the local store is that artifact (its sidecar is checked the same way either way).
        var inStore = System.IO.Path.GetFullPath(_local.PathOf(kind, System.IO.Path.GetFileName(full)));
        return string.Equals(inStore, full, StringComparison.Ordinal)
            ? new ArtifactRef(_local, kind, System.IO.Path.GetFileName(full))
            : new ArtifactRef(null, kind, System.IO.Path.GetFileName(full), full);
    }

    /// <summary>The newest artifact of <paramref name="kind"/> at or before <paramref name="at"/>; see <see cref="ResolveAsync"/>.</summary>
    public async Task<ArtifactRef> LatestAsync(string kind, DateTimeOffset? at, string? from, CancellationToken cancellationToken)
    {
        var stores = from switch
        {
            null => _remote is null ? [_local] : new[] { _local, _remote },
            "local" => [_local],
            "s3" => [_remote ?? throw new ArgumentException("--from s3: S3 is disabled (Backup:S3:Enabled); name the bucket with an s3:// SOURCE instead")],
            _ => throw new ArgumentException($"--from must be local or s3: {from}"),
        };

        if (from is null && _remote is not null && _options.Cluster.Enabled && Cluster.ClusterFreshness.IsDatabaseWide(kind))
        {
            // In a cluster another node's dump is in the shared S3 prefix only (its local copy is on that node): the newer
            // of the two stores, the local copy when both hold the same. S3 unreachable: the local store alone.
            var local = await NewestInAsync(_local, kind, at, cancellationToken).ConfigureAwait(false);
            ArtifactRef? remote = null;
            try
            {
                remote = await NewestInAsync(_remote, kind, at, cancellationToken).ConfigureAwait(false);
            }
            catch (StoreException) when (local is not null)
            {
            }

            if (Newer(local, remote) is { } picked)
            {
                return picked;
            }
        }

        foreach (var store in stores)
        {
            if (await NewestInAsync(store, kind, at, cancellationToken).ConfigureAwait(false) is { } found)
            {
                return found;
            }
        }

        var when = at is { } t ? " at or before " + t.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture) : "";
        var (prefix, suffix) = PatternOf(kind);
        throw new RestoreException($"no {kind} backup ({prefix}_YYYYMMDD_HHMMSS{suffix}){when} in {string.Join(" or ", stores.Select(Describe))}");
    }

    /// <summary>The later of two artifacts by the time (and sequence) in their names; <paramref name="a"/> on a tie.</summary>
    private static ArtifactRef? Newer(ArtifactRef? a, ArtifactRef? b)
    {
        if (a is null || b is null)
        {
            return a ?? b;
        }

        var ta = ArtifactName.TryParse(a.Name, out _, out var timeA, out var seqA, out _) ? (timeA, seqA) : (DateTimeOffset.MinValue, 0);
        var tb = ArtifactName.TryParse(b.Name, out _, out var timeB, out var seqB, out _) ? (timeB, seqB) : (DateTimeOffset.MinValue, 0);
        return tb.Item1 > ta.Item1 || (tb.Item1 == ta.Item1 && tb.Item2 > ta.Item2) ? b : a;
    }

    /// <summary>The newest artifact of <paramref name="kind"/> in <paramref name="store"/> at or before <paramref name="at"/>, or null.</summary>
    public async Task<ArtifactRef?> NewestInAsync(IArtifactStore store, string kind, DateTimeOffset? at, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        return NewestIn(await BackupCatalog.ListAsync(store, kind, cancellationToken).ConfigureAwait(false), store, kind, at);
    }

    /// <summary>As <see cref="NewestInAsync"/>, over a listing of <paramref name="store"/> the caller already holds.</summary>
    public ArtifactRef? NewestIn(IReadOnlyList<CatalogEntry> entries, IArtifactStore store, string kind, DateTimeOffset? at)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var (prefix, suffix) = PatternOf(kind);
        var candidates = entries.Where(e => e.Time is { } t && (at is null || t <= at) && e.Name.EndsWith(suffix, StringComparison.Ordinal)).ToList();
        var newest = candidates.FirstOrDefault(e => e.Name.StartsWith(prefix + "_", StringComparison.Ordinal));
        if (newest is null && kind == BackupKinds.Database)
        {
            // Restoring under another database name (a new host, a renamed database): the dumps of one database
            // are unambiguous; dumps of several need the operator to name one.
            var prefixes = candidates.Select(e => ArtifactName.TryParse(e.Name, out var p, out _, out _, out _) ? p : "").Distinct(StringComparer.Ordinal).ToList();
            if (prefixes.Count == 1)
            {
                newest = candidates[0];
            }
            else if (prefixes.Count > 1)
            {
                throw new RestoreException($"no dump of database {prefix} in {Describe(store)}, and dumps of several others ({string.Join(", ", prefixes)}): name the one to restore as SOURCE");
            }
        }

        return newest is null ? null : new ArtifactRef(store, kind, newest.Name);
    }

    /// <summary>
    /// Makes a verified local copy of <paramref name="artifact"/> (see <see cref="StagedArtifact"/>). A mismatch
    /// with the recorded checksum throws <see cref="RestoreIntegrityException"/> and leaves nothing behind.
    /// </summary>
    public async Task<StagedArtifact> StageAsync(ArtifactRef artifact, CancellationToken cancellationToken)
    {
        var staged = await StageVerifiedAsync(artifact, cancellationToken).ConfigureAwait(false);
        Staged?.Invoke(staged);
        return staged;
    }

    /// <summary>Each artifact once its bytes matched the recorded checksum (for <c>restore --json</c>'s <c>verified</c>).</summary>
    public event Action<StagedArtifact>? Staged;

    private async Task<StagedArtifact> StageVerifiedAsync(ArtifactRef artifact, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(artifact);
        try
        {
            if (artifact.LoosePath is { } loose)
            {
                return await StageLooseAsync(artifact, loose, cancellationToken).ConfigureAwait(false);
            }

            var store = artifact.Store!;
            var info = await store.StatAsync(artifact.Kind, artifact.Name, cancellationToken).ConfigureAwait(false)
                ?? throw new RestoreException($"no artifact {artifact.Kind}/{artifact.Name} in {Describe(store)}");
            if (store is LocalArtifactStore local)
            {
                // Read once through the verifying stream: the bytes on disk are what the sidecar says.
                var input = await local.OpenReadAsync(artifact.Kind, artifact.Name, cancellationToken).ConfigureAwait(false);
                await using (input.ConfigureAwait(false))
                {
                    await CopyAsync(input, Stream.Null, $"verifying {artifact.Name}", info.Size, cancellationToken).ConfigureAwait(false);
                }

                return new StagedArtifact(artifact, local.PathOf(artifact.Kind, artifact.Name), info.Size, info.Sha256!, temporary: false);
            }

            return await DownloadAsync(artifact, info, cancellationToken).ConfigureAwait(false);
        }
        catch (ArtifactIntegrityException ex)
        {
            throw new RestoreIntegrityException(ex.Message.Contains(artifact.Name, StringComparison.Ordinal) ? $"{ex.Message}; refusing to restore from it" : $"{artifact.Label}: {ex.Message}; refusing to restore from it", ex);
        }
    }

    /// <summary>The directory verified downloads are staged in.</summary>
    public string StagingDirectory => System.IO.Path.Combine(_options.StateDirectory, "restore");

    private async Task<StagedArtifact> DownloadAsync(ArtifactRef artifact, ArtifactInfo info, CancellationToken cancellationToken)
    {
        PrivateFiles.CreateDirectory(StagingDirectory);
        var path = System.IO.Path.Combine(StagingDirectory, $"{artifact.Name}.{Guid.NewGuid().ToString("N")[..8]}.part");

        try
        {
            var input = await artifact.Store!.OpenReadAsync(artifact.Kind, artifact.Name, cancellationToken).ConfigureAwait(false);
            await using (input.ConfigureAwait(false))
            {
                var output = PrivateFiles.Open(path, FileMode.CreateNew, options: FileOptions.Asynchronous);
                await using (output.ConfigureAwait(false))
                {
                    // The verifying stream throws at the end when the bytes differ from the sidecar/metadata.
                    await CopyAsync(input, output, $"downloading {artifact.Name}", info.Size, cancellationToken).ConfigureAwait(false);
                    output.Flush(flushToDisk: true);
                }
            }

            return new StagedArtifact(artifact, path, info.Size, info.Sha256!, temporary: true);
        }
        catch
        {
            File.Delete(path);
            throw;
        }
    }

    private async Task<StagedArtifact> StageLooseAsync(ArtifactRef artifact, string path, CancellationToken cancellationToken)
    {
        var sidecar = path + Sha256Sidecar.Suffix;
        if (!File.Exists(sidecar))
        {
            throw new RestoreException($"{path}: no checksum sidecar {sidecar} beside it; restores only use artifacts whose checksum can be verified (create one with: sha256sum {System.IO.Path.GetFileName(path)} > {System.IO.Path.GetFileName(sidecar)}, if you trust the file)");
        }

        var expected = Sha256Sidecar.Parse(await File.ReadAllTextAsync(sidecar, cancellationToken).ConfigureAwait(false), artifact.Name);
        var input = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.Asynchronous | FileOptions.SequentialScan);
        await using (input.ConfigureAwait(false))
        {
            var size = input.Length;
            var verifying = new VerifyingReadStream(input, expected, size, path);
            await using (verifying.ConfigureAwait(false))
            {
                await CopyAsync(verifying, Stream.Null, $"verifying {artifact.Name}", size, cancellationToken).ConfigureAwait(false);
            }

            return new StagedArtifact(artifact, path, size, expected, temporary: false);
        }
    }

    private async Task CopyAsync(Stream input, Stream output, string step, long total, CancellationToken cancellationToken)
    {
        var buffer = new byte[1 << 20];
        long done = 0;
        int read;
        while ((read = await input.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
            done += read;
            _progress?.Report(new TransferProgress(step, done, total));
        }
    }

    /// <summary>SHA-256 of a file, lower-case hex.</summary>
    public static async Task<string> HashFileAsync(string path, CancellationToken cancellationToken)
    {
        var input = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.Asynchronous | FileOptions.SequentialScan);
        await using (input.ConfigureAwait(false))
        {
            return Convert.ToHexStringLower(await SHA256.HashDataAsync(input, cancellationToken).ConfigureAwait(false));
        }
    }

    private string Describe(IArtifactStore store) => store is LocalArtifactStore l ? $"the local store {l.Root}" : $"S3 ({store.Target})";

    private IArtifactStore StoreFor(string bucket, string prefix)
    {
        if (_remote is not null && bucket == _options.S3.Bucket && prefix == _options.NodeName)
        {
            return _remote;
        }

        return _s3Factory?.Invoke(bucket, prefix)
            ?? throw new ArgumentException("an s3:// SOURCE needs the S3 endpoint settings of Backup:S3 (ServiceUrl, Region, ForcePathStyle)");
    }

    private static (string Bucket, string Key) SplitS3Url(string url)
    {
        if (!url.StartsWith("s3://", StringComparison.OrdinalIgnoreCase))
        {
            throw new ArgumentException($"not an s3:// URL: {url}");
        }

        var rest = url[5..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        var bucket = slash < 0 ? rest : rest[..slash];
        if (bucket.Length == 0)
        {
            throw new ArgumentException($"no bucket in {url}: expected s3://BUCKET[/NODE]");
        }

        return (bucket, slash < 0 ? "" : rest[(slash + 1)..]);
    }
}
