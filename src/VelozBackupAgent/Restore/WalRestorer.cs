using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Sources.Wal;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Restore;

/// <summary>
/// Rebuilds the WAL directory exactly as one manifest recorded it: every listed segment, and the active file from
/// its snapshot. Everything is checked before a byte is copied (each artifact present with the recorded size),
/// every byte is hashed against the manifest while copied into a staging directory beside the target, and only
/// a complete, fsynced directory is swapped in — atomically where the kernel can (<c>renameat2</c>). The directory
/// it replaces is kept beside it as <c>&lt;dir&gt;.pre-restore-&lt;time&gt;</c>, never deleted.
/// </summary>
public sealed partial class WalRestorer
{
    private const int Parallelism = 4;
    private readonly BackupOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public WalRestorer(BackupOptions options, TimeProvider time, ILogger logger)
    {
        _options = options;
        _time = time;
        _logger = logger;
    }

    /// <summary>
    /// Assembles the WAL of <paramref name="manifest"/> in a staging directory beside <paramref name="target"/>
    /// (default Backup:Wal:Directory), every byte verified; segments are read from <paramref name="segmentStore"/>
    /// (the manifest's own store). Committing swaps it in.
    /// </summary>
    public async Task<IPreparedRestore> PrepareAsync(StagedArtifact manifest, IArtifactStore segmentStore, string? target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(segmentStore);
        var clock = Stopwatch.StartNew();
        var directory = Path.GetFullPath(target ?? _options.Wal.Directory).TrimEnd(Path.DirectorySeparatorChar);
        WalManifest document;
        var input = File.OpenRead(manifest.Path);
        await using (input.ConfigureAwait(false))
        {
            try
            {
                document = await WalManifest.ReadAsync(input, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidDataException)
            {
                throw new RestoreIntegrityException($"{manifest.Source.Name} is not a WAL manifest: {ex.Message}", ex);
            }
        }

        if (document.IsDelta)
        {
            document = await ResolveChainAsync(manifest.Source.Name, document, segmentStore, cancellationToken).ConfigureAwait(false);
        }

        var plan = Plan(document);
        await CheckPresentAsync(segmentStore, manifest.Source.Name, plan, cancellationToken).ConfigureAwait(false);

        var parent = Path.GetDirectoryName(directory) ?? throw new ArgumentException($"cannot restore into {directory}");
        Directory.CreateDirectory(parent);
        var stamp = _time.GetUtcNow().ToString("yyyyMMdd'T'HHmmss", CultureInfo.InvariantCulture);
        var staging = Path.Combine(parent, $".{Path.GetFileName(directory)}.restore-{stamp}-{Guid.NewGuid().ToString("N")[..6]}");
        var existing = FileStatus.TryStat(directory, followLinks: true);
        SafeTarExtractor.CreateDirectory(staging, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        try
        {
            var owner = await ArchiveRestorer.ResolveOwnerAsync(_options.Restore.Owner, _logger, cancellationToken).ConfigureAwait(false)
                ?? (existing is { } e && Owners.IsRoot ? (e.Uid, e.Gid) : null);
            // The modes the files and the directory had at that sync (recorded since manifests carry them); else
            // 0640 files and the replaced directory's mode (0750 when there is none).
            var fileMode = WalManifest.ParseMode(document.FileMode) ?? DefaultFileMode;
            var directoryMode = WalManifest.ParseMode(document.DirectoryMode)
                ?? (existing is { } old ? old.Permissions & (UnixFileMode)0x1FF : DefaultDirectoryMode);
            long bytes = 0;
            await Parallel.ForEachAsync(plan, new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken }, async (item, token) =>
            {
                await CopyAsync(segmentStore, item, Path.Combine(staging, item.FileName), fileMode, owner, token).ConfigureAwait(false);
                Interlocked.Add(ref bytes, item.Size);
            }).ConfigureAwait(false);

            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(staging, directoryMode);
                if (owner is { } o)
                {
                    Owners.LChown(staging, o.Uid, o.Gid);
                }

                FileSync.FsyncDirectory(staging);
            }

            var prepared = new PreparedWal(this, manifest.Source.Name, document, staging, directory, parent, stamp, existing is not null,
                plan.Count(p => !p.IsActive), bytes, clock.Elapsed);
            staging = null;
            return prepared;
        }
        finally
        {
            if (staging is not null && Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
    }

    /// <summary>A delta manifest with its chain applied: every parent read from the same store and checked against the checksum its child recorded.</summary>
    private static async Task<WalManifest> ResolveChainAsync(string name, WalManifest delta, IArtifactStore store, CancellationToken cancellationToken)
    {
        try
        {
            return await WalManifestChain.ResolveAsync(name, delta, async (parent, token) =>
            {
                try
                {
                    return await store.OpenReadAsync(BackupKinds.Wal, parent, token).ConfigureAwait(false);
                }
                catch (ArtifactNotFoundException)
                {
                    return null;
                }
            }, store.Target, cancellationToken).ConfigureAwait(false);
        }
        catch (WalManifestChainException ex) when (ex.Missing)
        {
            throw new RestoreException($"{ex.Message}; nothing was restored: try the other store (--from) or an older manifest (--at)", ex);
        }
        catch (WalManifestChainException ex)
        {
            throw new RestoreIntegrityException($"{ex.Message}; nothing was restored", ex);
        }
    }

    private sealed class PreparedWal(WalRestorer owner, string artifact, WalManifest document, string staging, string directory, string parent, string stamp,
        bool exists, int segments, long bytes, TimeSpan prepared) : IPreparedRestore
    {
        private bool _committed;

        public string Kind => BackupKinds.Wal;

        public string Artifact => artifact;

        public Task<RestoreResult> CommitAsync(CancellationToken cancellationToken)
        {
            var clock = Stopwatch.StartNew();
            var kept = Swap(staging, directory, stamp, exists);
            _committed = true;
            if (!OperatingSystem.IsWindows())
            {
                FileSync.FsyncDirectory(parent);
            }

            var warnings = Warnings(document);
            if (kept is not null)
            {
                warnings.Add($"the WAL directory it replaced was kept as {kept}; delete it when satisfied");
            }

            Log.Restored(owner._logger, artifact, directory, segments, bytes, kept ?? "-");
            var summary = string.Create(CultureInfo.InvariantCulture,
                $"{directory} as of {document.CreatedAt:yyyy-MM-dd HH:mm:ss'Z'}: {segments} segments{(document.Active is { } a ? " + " + a.File : "")}, {bytes} bytes");
            return Task.FromResult(new RestoreResult(Kind, artifact, directory, summary, prepared, clock.Elapsed, warnings));
        }

        public ValueTask DisposeAsync()
        {
            if (!_committed && Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }

            return ValueTask.CompletedTask;
        }
    }

    private const UnixFileMode DefaultFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead;

    private const UnixFileMode DefaultDirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute;

    private sealed record PlanItem(string Artifact, string FileName, long Size, string Sha256, bool IsActive);

    private static List<PlanItem> Plan(WalManifest manifest)
    {
        var plan = manifest.Segments.Select(s => new PlanItem(s.Name, s.Name, s.Size, s.Sha256, false)).ToList();
        var listed = plan.Select(p => p.FileName).ToHashSet(StringComparer.Ordinal);
        // A conflicting segment's stored copy is the one to restore (the source was suspect).
        foreach (var c in manifest.Conflicts.Where(c => c.StoredSha256 is not null && !listed.Contains(c.Name)))
        {
            plan.Add(new PlanItem(c.Name, c.Name, c.StoredSize, c.StoredSha256!, false));
            listed.Add(c.Name);
        }

        if (manifest.Active is { } active)
        {
            if (listed.Contains(active.File))
            {
                throw new RestoreIntegrityException($"manifest lists {active.File} both as a segment and as the active file");
            }

            plan.Add(new PlanItem(active.Artifact, active.File, active.Size, active.Sha256, true));
        }

        foreach (var item in plan)
        {
            if (item.FileName.Contains('/', StringComparison.Ordinal) || item.FileName.Contains('\\', StringComparison.Ordinal) || item.FileName is "." or ".." || item.FileName.Length == 0)
            {
                throw new RestoreIntegrityException($"manifest names a file outside the WAL directory: '{item.FileName}'");
            }
        }

        return plan;
    }

    private static async Task CheckPresentAsync(IArtifactStore store, string manifest, List<PlanItem> plan, CancellationToken cancellationToken)
    {
        var stored = new Dictionary<string, long?>(StringComparer.Ordinal);
        await foreach (var a in store.ListAsync(BackupKinds.Wal, cancellationToken).ConfigureAwait(false))
        {
            // An encrypted S3 copy is listed with the ciphertext's size: the copy checks the plaintext's size and checksum instead.
            stored[a.Name] = a.Encrypted ? null : a.Size;
        }

        var missing = plan.Where(p => !stored.ContainsKey(p.Artifact)).Select(p => p.Artifact).ToList();
        var wrongSize = plan.Where(p => stored.TryGetValue(p.Artifact, out var size) && size is not null && size != p.Size).Select(p => p.Artifact).ToList();
        if (missing.Count > 0)
        {
            throw new RestoreException(string.Create(CultureInfo.InvariantCulture,
                $"{manifest} lists {missing.Count} WAL files the {store.Target} store does not hold ({string.Join(", ", missing.Take(3))}{(missing.Count > 3 ? ", …" : "")}); nothing was restored: try the other store (--from) or an older manifest (--at)"));
        }

        if (wrongSize.Count > 0)
        {
            throw new RestoreIntegrityException(string.Create(CultureInfo.InvariantCulture,
                $"{wrongSize.Count} WAL files in the {store.Target} store differ in size from {manifest} ({string.Join(", ", wrongSize.Take(3))}); nothing was restored"));
        }
    }

    private static async Task CopyAsync(IArtifactStore store, PlanItem item, string path, UnixFileMode mode, (int Uid, int Gid)? owner, CancellationToken cancellationToken)
    {
        // Created owner-only; the recorded mode is set on the complete, verified file (chmod is not subject to the
        // agent's umask, which would otherwise narrow it).
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Options = FileOptions.Asynchronous };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        try
        {
            var input = await store.OpenReadAsync(BackupKinds.Wal, item.Artifact, cancellationToken).ConfigureAwait(false);
            await using (input.ConfigureAwait(false))
            {
                var output = new FileStream(path, options);
                await using (output.ConfigureAwait(false))
                {
                    var buffer = new byte[1 << 20];
                    int read;
                    while ((read = await input.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                    {
                        hash.AppendData(buffer, 0, read);
                        await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                    }

                    output.Flush(flushToDisk: true);
                }
            }
        }
        catch (ArtifactIntegrityException ex)
        {
            throw new RestoreIntegrityException($"{ex.Message}; nothing was restored", ex);
        }

        var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (!string.Equals(actual, item.Sha256, StringComparison.OrdinalIgnoreCase))
        {
            throw new RestoreIntegrityException($"{store.Target} wal/{item.Artifact} has sha256 {actual[..12]}…, the manifest recorded {item.Sha256[..Math.Min(12, item.Sha256.Length)]}…; nothing was restored");
        }

        if (owner is { } o)
        {
            Owners.LChown(path, o.Uid, o.Gid);
        }

        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, mode);
        }
    }

    /// <summary>Puts <paramref name="staging"/> in place of <paramref name="directory"/>; returns where the old one went.</summary>
    private static string? Swap(string staging, string directory, string stamp, bool exists)
    {
        if (!exists)
        {
            Directory.Move(staging, directory);
            return null;
        }

        var kept = $"{directory}.pre-restore-{stamp}";
        if (DirectoryExchange.TryExchange(staging, directory))
        {
            Directory.Move(staging, kept);
        }
        else
        {
            Directory.Move(directory, kept);
            Directory.Move(staging, directory);
        }

        return kept;
    }

    private static List<string> Warnings(WalManifest manifest)
    {
        var warnings = new List<string>();
        if (manifest.Pending.Count > 0)
        {
            warnings.Add(string.Create(CultureInfo.InvariantCulture, $"{manifest.Pending.Count} segments were still being written at that sync and are not in this restore: {string.Join(", ", manifest.Pending.Take(3).Select(p => p.Name))}"));
        }

        if (manifest.Unreadable.Count > 0)
        {
            warnings.Add(string.Create(CultureInfo.InvariantCulture, $"{manifest.Unreadable.Count} segments were unreadable at that sync and are not in this restore: {string.Join(", ", manifest.Unreadable.Take(3).Select(p => p.Name))}"));
        }

        if (manifest.Conflicts.Count > 0)
        {
            warnings.Add(string.Create(CultureInfo.InvariantCulture, $"{manifest.Conflicts.Count} segments differed from their stored copy at that sync; the stored copies were restored: {string.Join(", ", manifest.Conflicts.Take(3).Select(p => p.Name))}"));
        }

        return warnings;
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Restore.WalRestored, LogLevel.Information, "restored the WAL from {Manifest} into {Target}: {Segments} segments, {Bytes} bytes; previous directory kept as {Kept}")]
        public static partial void Restored(ILogger logger, string manifest, string target, int segments, long bytes, string kept);
    }
}
