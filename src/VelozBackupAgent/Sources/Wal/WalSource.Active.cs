using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Sources.Wal;

/// <summary>The active file: prefix snapshots of the file VeloZ appends to.</summary>
public sealed partial class WalSource
{
    private async Task SnapshotActiveAsync(WalIndex index, Run run, CancellationToken cancellationToken)
    {
        var path = Path.Combine(_directory, _naming.ActiveFile);
        WalFileState state;
        try
        {
            var file = new FileInfo(path);
            if (!file.Exists)
            {
                // No active file: VeloZ is stopped, or between sealing a segment and its next write.
                _activeFailedState = null;
                return;
            }

            state = WalFileState.Of(file);
            run.Modes.Count(file);
        }
        catch (FileNotFoundException)
        {
            return;
        }

        var last = index.Active;
        if (last is not null && last.State == state)
        {
            run.Active = last;
            return;
        }

        if (!run.Full)
        {
            // The watcher snapshots the active file only once its writes pause; under continuous appends the
            // scheduled run takes the snapshot. A failure in this very state is retried by the scheduled run.
            if (_activeFailedState == state || !_settle.IsSettled(_naming.ActiveFile, state, _time.GetUtcNow()))
            {
                return;
            }
        }

        try
        {
            using var handle = WalFile.OpenRead(path, _reads);

            // N is the length of the inode we hold, now; VeloZ keeps appending, the snapshot is exactly N bytes.
            var opened = WalFile.StateOf(handle, path);
            if (last is not null && opened.Size == last.Size)
            {
                // Same length as the last snapshot but another mtime (touched, rewritten in place, or the index was
                // rebuilt): compare the bytes before storing a duplicate.
                string sha;
                using (var probe = new WalReadStream(handle, path, opened.Size, _reads, ownsHandle: false))
                {
                    sha = await WalFile.Sha256Async(probe, cancellationToken).ConfigureAwait(false);
                }

                if (string.Equals(sha, last.Sha256, StringComparison.Ordinal))
                {
                    var same = last with { Mtime = opened.MtimeTicks };
                    index.SetActive(same);
                    run.Active = same;
                    _activeFailedState = null;
                    return;
                }
            }

            if (last is not null && opened.Size < last.Size)
            {
                // VeloZ seals the active file by renaming it into a segment and starts a new one: that is routine.
                // Shorter with no new segment since the last snapshot means truncated or replaced in place.
                if (index.SegmentsAddedSinceSnapshot > 0)
                {
                    WalLog.ActiveRotated(_logger, path, last.Size, opened.Size);
                }
                else
                {
                    WalLog.ActiveShrank(_logger, path, last.Size, opened.Size);
                }
            }

            var name = await ArtifactNameAllocator.AllocateAsync(_repository.Local, Kind, _naming.ActiveStem, _naming.ActiveSuffix, _time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
            ArtifactInfo snapshot;
            using (var content = new WalReadStream(handle, path, opened.Size, _reads, ownsHandle: false))
            {
                snapshot = await _repository.StoreAsync(Kind, name, content, expectedSha256: null, cancellationToken: cancellationToken).ConfigureAwait(false);
            }

            var entry = new WalActiveEntry(name, snapshot.Size, opened.MtimeTicks, snapshot.Sha256!);
            index.SetActive(entry);
            run.Active = entry;
            run.ActiveSnapshot = snapshot;
            run.Artifacts.Add(snapshot);
            _activeFailedState = null;
        }
        catch (WalFileReadException ex) when (ex.Vanished)
        {
            // Renamed away (sealed) between the stat and the open: the segment and the new active file are next.
        }
        catch (WalFileChangedException ex)
        {
            // Truncated while it was read: nothing was stored; its new content is taken next time.
            run.ActiveProblem = ex.Message;
            WalLog.ActiveSnapshotFailed(_logger, ex.Message);
            _activeFailedState = state;
        }
        catch (WalFileReadException ex)
        {
            run.ActiveProblem = ex.Message;
            run.ActiveUnreadable = true;
            WalLog.ActiveSnapshotFailed(_logger, ex.Message);
            _activeFailedState = state;
        }
    }
}
