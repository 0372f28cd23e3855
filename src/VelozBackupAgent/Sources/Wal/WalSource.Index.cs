using VelozBackupAgent.Catalog;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Sources.Wal;

/// <summary>The index of known segments: loaded, pruned, saved, and what a run leaves known published.</summary>
public sealed partial class WalSource
{
    private string? DirectoryMode()
    {
        if (OperatingSystem.IsWindows())
        {
            return null;
        }

        try
        {
            return WalManifest.FormatMode(File.GetUnixFileMode(_directory));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private async Task<WalIndex> LoadIndexAsync(CancellationToken cancellationToken)
    {
        if (_index is not null && !_indexFile.ChangedSinceLastIo())
        {
            return _index;
        }

        var (loaded, problem) = _indexFile.Load(_directory);
        if (loaded is null)
        {
            if (problem is null)
            {
                WalLog.IndexMissing(_logger, _indexFile.Path);
            }
            else
            {
                WalLog.IndexCorrupt(_logger, _indexFile.Path, problem);
            }

            // Segments are recognised lazily from their sidecars (see CompareAsync); the active file's last
            // snapshot is the newest one in the store.
            loaded = new WalIndex(_directory);
            loaded.SetActive(await NewestSnapshotAsync(cancellationToken).ConfigureAwait(false));
            loaded.Touch();
            _savedVersion = -1;
        }
        else
        {
            _savedVersion = loaded.Version;

            // A snapshot taken after the index was last saved (a crash, or a change-triggered run whose save was
            // deferred) is the one to compare with, or the next run would store the same bytes again.
            if (await NewestSnapshotAsync(cancellationToken).ConfigureAwait(false) is { } newest
                && !string.Equals(newest.Artifact, loaded.Active?.Artifact, StringComparison.Ordinal)
                && (loaded.Active is null || IsNewerSnapshot(newest.Artifact, loaded.Active.Artifact)))
            {
                loaded.SetActive(newest);
            }
        }

        _index = loaded;
        _publishedIndexVersion = -1;
        return loaded;
    }

    private async Task<WalActiveEntry?> NewestSnapshotAsync(CancellationToken cancellationToken)
    {
        var directory = Path.Combine(_repository.Local.Root, Kind);
        if (!Directory.Exists(directory))
        {
            return null;
        }

        string? newest = null;
        (DateTimeOffset Time, int Sequence) newestKey = default;
        foreach (var path in Directory.EnumerateFiles(directory))
        {
            var name = Path.GetFileName(path);
            if (name.StartsWith('.') || !_naming.IsSnapshot(name) || !ArtifactName.TryParse(name, out _, out var time, out var sequence, out _))
            {
                continue;
            }

            if (newest is null || (time, sequence).CompareTo(newestKey) > 0)
            {
                (newest, newestKey) = (name, (time, sequence));
            }
        }

        if (newest is null)
        {
            return null;
        }

        try
        {
            var info = await _repository.Local.StatAsync(Kind, newest, cancellationToken).ConfigureAwait(false);
            return info?.Sha256 is { } sha ? new WalActiveEntry(newest, info.Size, 0, sha) : null;
        }
        catch (ArtifactIntegrityException)
        {
            return null;
        }
    }

    private static bool IsNewerSnapshot(string candidate, string than) =>
        ArtifactName.TryParse(candidate, out _, out var t1, out var s1, out _)
        && (!ArtifactName.TryParse(than, out _, out var t2, out var s2, out _) || (t1, s1).CompareTo((t2, s2)) > 0);

    /// <summary>
    /// The local store's complete WAL artifacts, from one listing and no stat of a complete one; what interrupted writes
    /// left there (hidden temporary files of dead writers, a data file without its sidecar past the grace period, a
    /// sidecar without data) is removed first, from the same listing (see <see cref="ICleansOwnLeftovers"/>). Only the
    /// full syncs do this: a change-triggered run lists no store, and leftovers wait for the next scheduled sync.
    /// </summary>
    private HashSet<string> ListStoredNames()
    {
        HashSet<string> names;
        try
        {
            names = DirectoryNames.Files(Path.Combine(_repository.Local.Root, Kind));
        }
        catch (DirectoryNotFoundException)
        {
            return new HashSet<string>(StringComparer.Ordinal);
        }

        var removed = _repository.Local.RemoveLeftovers(Kind, names);
        if (removed.Count > 0)
        {
            WalLog.RemovedLeftovers(_logger, removed.Count, removed.Sum(r => r.Size));
        }

        return DirectoryNames.Complete(names);
    }

    private void Prune(WalIndex index, List<WalListedFile> listing)
    {
        // The usual sync: every indexed segment is still listed, nothing is unreadable or settling; then no name set of
        // the whole directory is built (10,000 segments: 10,000 lookups instead of a set and three passes).
        var listed = 0;
        foreach (var file in listing)
        {
            if (index.Segments.ContainsKey(file.Name))
            {
                listed++;
            }
        }

        if (listed == index.Segments.Count && _unreadable.Count == 0 && _settle.IsEmpty)
        {
            return;
        }

        var present = new HashSet<string>(listing.Count + 1, StringComparer.Ordinal);
        foreach (var file in listing)
        {
            present.Add(file.Name);
        }

        foreach (var name in index.Segments.Keys.Where(n => !present.Contains(n)).ToList())
        {
            // Deleted from the source: forgotten here, kept in the store and in earlier manifests.
            index.Remove(name);
        }

        foreach (var name in _unreadable.Keys.Where(n => !present.Contains(n)).ToList())
        {
            ClearUnreadable(name);
        }

        present.Add(_naming.ActiveFile);
        _settle.Retain(present);
    }

    private void SaveIndex(WalIndex index, bool force)
    {
        if (index.Version == _savedVersion)
        {
            return;
        }

        if (!force && _lastSaveTimestamp != 0 && _time.GetElapsedTime(_lastSaveTimestamp) < ChangeRunIndexSaveInterval)
        {
            return;
        }

        try
        {
            _indexFile.Save(index);
            _savedVersion = index.Version;
            _lastSaveTimestamp = _time.GetTimestamp();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The index is a cache: the backup stands without it.
            WalLog.IndexSaveFailed(_logger, _indexFile.Path, ex.Message);
        }
    }

    private async Task SaveIndexOnStopAsync()
    {
        if (!await _runGate.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false))
        {
            return;
        }

        try
        {
            if (_index is not null)
            {
                SaveIndex(_index, force: true);
            }
        }
        finally
        {
            _runGate.Release();
        }
    }

    /// <summary>Hands the watcher what this run left known, and readers of <see cref="Status"/> what it found.</summary>
    private void Publish(WalIndex index, Run run)
    {
        var known = Volatile.Read(ref _known);
        var segments = known.Segments;
        if (index.Version != _publishedIndexVersion || _unreadableVersion != _publishedUnreadableVersion)
        {
            var fresh = new Dictionary<string, WalFileState>(index.Segments.Count + _unreadable.Count, StringComparer.Ordinal);
            foreach (var (name, entry) in index.Segments)
            {
                fresh[name] = entry.State;
            }

            foreach (var (name, (state, _)) in _unreadable)
            {
                fresh[name] = state;
            }

            segments = fresh;
            _publishedIndexVersion = index.Version;
            _publishedUnreadableVersion = _unreadableVersion;
        }

        Volatile.Write(ref _known, new WalKnownState(segments, _activeFailedState ?? index.Active?.State));
        if (run.Processed)
        {
            Volatile.Write(ref _status, _status with
            {
                Conflicts = [.. run.Conflicts.Keys.Order(StringComparer.Ordinal)],
                Unreadable = [.. run.Unreadable.Keys.Order(StringComparer.Ordinal)],
                Settling = [.. run.Settling.Keys.Order(StringComparer.Ordinal)],
            });
        }
    }
}
