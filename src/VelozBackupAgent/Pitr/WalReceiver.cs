using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Npgsql;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Database;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Pitr;

/// <summary>
/// Streams the server's WAL into the store, supervised: runs <c>pg_receivewal --slot &lt;Slot&gt; --synchronous</c> into
/// a spool directory (<c>&lt;LocalRoot&gt;/.state/pitr/spool</c>), creating the physical slot when it is missing, and
/// starts it again with backoff (1 s doubling to 1 min) whenever it stops: the slot keeps the server from recycling
/// WAL meanwhile, so a restart loses nothing. Each completed segment and timeline history file is stored through
/// <see cref="WalArchive"/> (checksummed, durable, queued for S3) and only then leaves the spool. Every
/// <c>ShipPartialEvery</c> the server is polled (its position, and the slot's restart_lsn: the flush position the receiver
/// reported) and the newly received part of the segment still being written is stored as a piece, so a site failure
/// loses seconds of commits. Timeline switches are followed by pg_receivewal itself; a spool left ahead of the
/// server's history (after a restore to an earlier point) is moved aside and streaming starts again from the slot.
/// </summary>
/// <remarks>
/// Everything that goes wrong is one line (<see cref="PitrStatus.LastError"/>, logged once per change) with a metric
/// label (<see cref="PitrFailure"/>); the other kinds never notice.
/// </remarks>
public sealed partial class WalReceiver
{
    private const int PageSize = 8192;
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan HealthyRun = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan SampleWindow = TimeSpan.FromHours(6);

    private readonly BackupOptions _options;
    private readonly WalArchive _archive;
    private readonly PgTools _tools;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ILogger _childLogger;
    private readonly string _spool;
    private readonly string _statusPath;
    private readonly string _queueDirectory;
    private readonly bool _s3;
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly ConcurrentDictionary<string, long> _failures = new(StringComparer.Ordinal);
    private readonly Queue<(DateTimeOffset Time, Lsn Server)> _samples = new();
    private readonly Dictionary<WalFileName, uint> _shipped = [];
    private readonly Lock _gate = new();

    private PitrStatus _status = new();
    private long _segmentSize = 16L * 1024 * 1024;
    private Lsn _storedEnd = Lsn.Invalid;
    private DateTimeOffset? _lastStoredAt;
    private Lsn _received = Lsn.Invalid;
    private DateTimeOffset? _lastReceivedAt;
    private DateTimeOffset? _recoveryPoint;
    private DateTimeOffset? _recoveryPointS3;
    private long _restarts;
    private string? _lastLoggedError;

    public WalReceiver(BackupOptions options, WalArchive archive, TimeProvider time, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(archive);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _options = options;
        _archive = archive;
        _tools = new PgTools(options.Database);
        _time = time;
        _logger = loggerFactory.CreateLogger<WalReceiver>();
        _childLogger = loggerFactory.CreateLogger("VelozBackupAgent.Pitr.PgReceiveWal");
        _spool = Path.Combine(archive.StateDirectory, "spool");
        _statusPath = Path.Combine(archive.StateDirectory, "status.json");
        _queueDirectory = Path.Combine(options.StateDirectory, "upload-queue", BackupKinds.Pitr);
        _s3 = options.S3.Enabled;
        archive.Stored += (_, wal) => OnStored(wal);
    }

    /// <summary>pg_receivewal's application_name (followed by the node's name with <c>Backup:Cluster:Enabled</c>).</summary>
    public const string ReceiverApplicationName = "veloz-backup-receiver";

    /// <summary>The spool pg_receivewal writes into.</summary>
    public string SpoolDirectory => _spool;

    /// <summary>A consistent snapshot of what the receiver knows.</summary>
    public PitrStatus Status
    {
        get
        {
            lock (_gate)
            {
                return _status;
            }
        }
    }

    /// <summary>The receiver's child process id while it runs (tests check its command line and environment).</summary>
    public int? ProcessId { get; private set; }

    /// <summary>Runs until <paramref name="stopping"/> is cancelled; never throws for a streaming problem.</summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        PrivateDirectory.Create(_archive.StateDirectory);
        PrivateDirectory.Create(_spool);
        using var watcher = WatchSpool();
        var backoff = TimeSpan.FromSeconds(1);
        while (!stopping.IsCancellationRequested)
        {
            if (ReceiverPause.Active(_options.StateDirectory))
            {
                await WhilePausedAsync(stopping);
                continue;
            }

            var started = _time.GetTimestamp();
            try
            {
                await SessionAsync(stopping);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is WalArchiveException or BackupSourceException or NpgsqlException or IOException or UnauthorizedAccessException or TimeoutException)
            {
                Fail(FailureOf(ex), ex.Message);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                Log.Unexpected(_logger, ex);
                Fail(PitrFailure.Other, $"{ex.GetType().Name}: {ex.Message}");
            }

            if (stopping.IsCancellationRequested)
            {
                break;
            }

            if (ReceiverPause.Active(_options.StateDirectory))
            {
                continue;
            }

            if (_time.GetElapsedTime(started) > HealthyRun)
            {
                backoff = TimeSpan.FromSeconds(1);
            }

            backoff = StandbyRetry(Status.Failure) ?? backoff;
            try
            {
                // While nothing streams the slot still grows on the server: keep the figures (and the alerts) current.
                await PollWhileDownAsync(stopping);
                await Task.Delay(backoff, _time, stopping);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
            Interlocked.Increment(ref _restarts);
        }

        Update(s => s with { ReceiverUp = false, UpSince = null });
    }

    private async Task SessionAsync(CancellationToken stopping)
    {
        // A restore moves the spool aside (it held the old timeline): start each session with one.
        PrivateDirectory.Create(_spool);
        var connection = PgConnectionInfo.Parse(_options.Database.ConnectionString, Environment.GetEnvironmentVariable);
        var server = new PgServer(connection);
        var facts = await server.ProbeAsync(stopping);
        if (server.Problems(facts) is [var first, ..])
        {
            throw new WalArchiveException(first.StartsWith("role ", StringComparison.Ordinal) ? PitrFailure.Privilege : PitrFailure.ServerSettings, first);
        }

        await _tools.CheckAsync("pg_receivewal", facts.Version.Major, _childLogger, stopping);
        if (await _archive.CheckIdentityAsync(facts.SystemIdentifier, server.Describe(), stopping) is { } otherCluster)
        {
            throw new WalArchiveException(PitrFailure.OtherCluster, otherCluster);
        }

        if (await _archive.IdentityAsync(stopping) is null)
        {
            _archive.RememberIdentity(facts.SystemIdentifier);
        }

        _segmentSize = facts.SegmentSize;
        var slotName = _options.Pitr.Slot;
        var slot = await server.SlotAsync(slotName, stopping);
        if (slot is null)
        {
            await server.CreateSlotAsync(slotName, stopping);
            Log.SlotCreated(_logger, slotName, server.Describe());
        }
        else if (!slot.Physical)
        {
            throw new WalArchiveException(PitrFailure.ServerSettings, $"{slotName} on {server.Describe()} is a logical replication slot: give the agent a physical one (Backup:Pitr:Slot)");
        }
        else if (slot.WalStatus == "lost")
        {
            // The server recycled WAL the slot still needed (max_slot_wal_keep_size): streaming on would hide a gap.
            // Start a new slot from now and say plainly what is missing; a new base backup closes it for restores.
            await server.DropSlotAsync(slotName, stopping);
            await server.CreateSlotAsync(slotName, stopping);
            Fail(PitrFailure.SlotLost,
                $"the replication slot {slotName} on {server.Describe()} lost WAL the receiver had not streamed (max_slot_wal_keep_size was exceeded): WAL after {_storedEnd} is missing from the archive; the slot was created again and streaming goes on, but take a new base backup (veloz-backup backup pitr) so a restore to later points works");
        }
        else if (slot.Active)
        {
            throw new WalArchiveException(PitrFailure.SlotActive,
                string.Create(CultureInfo.InvariantCulture, $"the replication slot {slotName} on {server.Describe()} is in use by PID {slot.ActivePid} (another receiver or a second agent): stop it, or give this agent its own Backup:Pitr:Slot"));
        }

        // What an earlier run left: complete files, and the partial segment (stable now: nothing writes it).
        RemoveUnusablePartials();
        await ShipCompletedAsync(stopping);
        await ShipStablePartialsAsync(all: true, stopping);
        InitialiseStoredEnd();

        var monitor = await server.OpenAsync(stopping);
        await using (monitor)
        {
            var environment = new Dictionary<string, string?>(connection.ChildEnvironment(), StringComparer.Ordinal)
            {
                // In a cluster the node's name too: pg_stat_replication then says which node holds the slot.
                ["PGAPPNAME"] = _options.Cluster.Enabled ? $"{ReceiverApplicationName} {_options.NodeName}" : ReceiverApplicationName,
            };
            await using var receiver = ReceiverProcess.Start(_tools.PathOf("pg_receivewal"),
                ["--directory", _spool, "--slot", slotName, "--synchronous", "--no-loop", "--no-password", "--verbose"],
                environment, _tools.InstallHint(facts.Version.Major), _childLogger);
            ProcessId = receiver.ProcessId;
            var upSince = _time.GetUtcNow();
            Update(s => s with { ReceiverUp = true, UpSince = upSince, Failure = PitrFailure.None, SystemIdentifier = facts.SystemIdentifier.ToString(CultureInfo.InvariantCulture) });
            Log.Streaming(_logger, server.Describe(), slotName, _spool);
            if (_lastLoggedError is not null)
            {
                Log.Recovered(_logger);
                _lastLoggedError = null;
            }

            var monitorDb = monitor;
            try
            {
                while (!receiver.HasExited && !stopping.IsCancellationRequested && !ReceiverPause.Active(_options.StateDirectory))
                {
                    await WaitAsync(receiver, stopping);
                    await ShipCompletedAsync(stopping);
                    monitorDb = await PollAsync(server, monitorDb, receiver, stopping);
                }
            }
            finally
            {
                if (!ReferenceEquals(monitorDb, monitor))
                {
                    await monitorDb.DisposeAsync();
                }

                await receiver.StopAsync(StopGrace);
                ProcessId = null;
            }

            // Whatever it had flushed before it stopped is stable now: store it before anything else happens.
            await ShipCompletedAsync(CancellationToken.None);
            await ShipStablePartialsAsync(all: true, CancellationToken.None);
            Update(s => s with { ReceiverUp = false, UpSince = null });
            if (stopping.IsCancellationRequested || ReceiverPause.Active(_options.StateDirectory))
            {
                return;
            }

            var stderr = receiver.Stderr;
            if (stderr.Contains("not in this server's history", StringComparison.OrdinalIgnoreCase))
            {
                // The spool is ahead of the server's history (it was restored to an earlier point): what the spool holds
                // is stored already; set it aside and stream again from the slot on the server's timeline.
                var aside = MoveSpoolAside();
                throw new WalArchiveException(PitrFailure.Other, $"the spool was ahead of {server.Describe()}'s timeline history (restored to an earlier point?); its files were stored and moved to {aside}; streaming starts again from the slot");
            }

            var (failure, line) = PgTools.Explain(stderr, server.Describe(), facts.User, slotName,
                string.Create(CultureInfo.InvariantCulture, $"pg_receivewal stopped (exit code {receiver.ExitCode})"));
            throw new WalArchiveException(failure, line);
        }
    }

    /// <summary>
    /// A restore replaces the cluster: no streaming until it is done. Afterwards the server is another history (a new
    /// timeline from an earlier point): what this process knew of positions no longer applies.
    /// </summary>
    private async Task WhilePausedAsync(CancellationToken stopping)
    {
        Log.Paused(_logger);
        Update(s => s with { ReceiverUp = false, UpSince = null, LastError = "paused while a restore replaces the cluster", LastErrorAt = _time.GetUtcNow() });
        SaveStatus();
        while (!stopping.IsCancellationRequested && ReceiverPause.Active(_options.StateDirectory))
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), _time, stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }

        lock (_gate)
        {
            _storedEnd = Lsn.Invalid;
            _received = Lsn.Invalid;
            _recoveryPoint = null;
            _recoveryPointS3 = null;
            _samples.Clear();
        }

        _shipped.Clear();
        Log.Resumed(_logger);
    }

    private async Task WaitAsync(ReceiverProcess receiver, CancellationToken stopping)
    {
        using var tick = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        tick.CancelAfter(_options.Pitr.ShipPartialEvery);
        try
        {
            await Task.WhenAny(receiver.Exited, _wake.Reader.ReadAsync(tick.Token).AsTask()).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            // The tick.
        }

        stopping.ThrowIfCancellationRequested();
    }

    /// <summary>One poll: the server's position, a new piece of the segment being written, the status.</summary>
    private async Task<NpgsqlConnection> PollAsync(PgServer server, NpgsqlConnection db, ReceiverProcess receiver, CancellationToken stopping)
    {
        ServerPosition position;
        try
        {
            position = await PgServer.PositionAsync(db, _options.Pitr.Slot, stopping);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException && !stopping.IsCancellationRequested)
        {
            // The receiver may still be fine; poll again on a fresh connection next time.
            Log.PollFailed(_logger, ex.Message.Split('\n')[0]);
            try
            {
                return await server.OpenAsync(stopping);
            }
            catch (BackupSourceException)
            {
                return db;
            }
        }

        var now = _time.GetUtcNow();
        // The slot's restart_lsn is what the receiver reported flushed (pg_stat_replication, which would say it too, shows
        // its details to privileged roles only). Until the receiver's first report it is still where the slot was created
        // or left, which the file may not hold yet: pieces are therefore also bounded by what the file holds.
        var restart = position.Slot?.RestartLsn ?? Lsn.Invalid;
        var flushed = restart;
        if (flushed > _received || (flushed == position.ServerLsn && flushed != Lsn.Invalid))
        {
            _received = flushed;
            _lastReceivedAt = now;
        }

        if (!receiver.HasExited)
        {
            try
            {
                await ShipReceivedPieceAsync(flushed, stopping);
            }
            catch (WalArchiveException ex) when (ex.Failure == PitrFailure.Other)
            {
                // Bytes that do not look like WAL yet are never stored; the next poll tries again (and lag shows if it lasts).
                Log.PieceDeferred(_logger, ex.Message);
            }
        }

        await ShipStablePartialsAsync(all: false, stopping);
        Sample(now, position.ServerLsn);
        var s3End = S3End();
        lock (_gate)
        {
            _recoveryPoint = RecoveryPointFor(_storedEnd, _recoveryPoint);
            if (s3End is { } e)
            {
                _recoveryPointS3 = RecoveryPointFor(e, _recoveryPointS3);
            }
        }

        var current = CurrentPartial();
        Update(s => s with
        {
            CheckedAt = now,
            ServerLsn = position.ServerLsn.ToString(),
            ReceivedLsn = _received == Lsn.Invalid ? null : _received.ToString(),
            LastReceivedAt = _lastReceivedAt,
            StoredLsn = _storedEnd == Lsn.Invalid ? null : _storedEnd.ToString(),
            LastStoredAt = _lastStoredAt,
            StoredLsnS3 = s3End?.ToString(),
            RecoveryPoint = _recoveryPoint,
            RecoveryPointS3 = _s3 ? _recoveryPointS3 : null,
            LagBytes = Math.Max(0, position.ServerLsn - _storedEnd),
            LagBytesS3 = s3End is { } end ? Math.Max(0, position.ServerLsn - end) : null,
            SlotRetainedBytes = restart == Lsn.Invalid ? 0 : Math.Max(0, position.ServerLsn - restart),
            SlotWalStatus = position.Slot?.WalStatus,
            Timeline = current?.File.Timeline ?? s.Timeline,
            Segment = current?.File.ToString() ?? s.Segment,
        });
        SaveStatus();
        return db;
    }

    /// <summary>
    /// One poll of the server while the receiver is down: its position, what the slot retains, the lag — so a slot
    /// filling the server's disk shows while streaming is broken, which is when it happens. Failures are ignored (the
    /// session's error says what is wrong).
    /// </summary>
    private async Task PollWhileDownAsync(CancellationToken stopping)
    {
        try
        {
            var server = new PgServer(PgConnectionInfo.Parse(_options.Database.ConnectionString, Environment.GetEnvironmentVariable));
            var db = await server.OpenAsync(stopping);
            await using (db)
            {
                var position = await PgServer.PositionAsync(db, _options.Pitr.Slot, stopping);
                var now = _time.GetUtcNow();
                Sample(now, position.ServerLsn);
                var restart = position.Slot?.RestartLsn ?? Lsn.Invalid;
                Update(s => s with
                {
                    CheckedAt = now,
                    ServerLsn = position.ServerLsn.ToString(),
                    LagBytes = _storedEnd == Lsn.Invalid ? s.LagBytes : Math.Max(0, position.ServerLsn - _storedEnd),
                    SlotRetainedBytes = restart == Lsn.Invalid ? s.SlotRetainedBytes : Math.Max(0, position.ServerLsn - restart),
                    SlotWalStatus = position.Slot?.WalStatus,
                });
                SaveStatus();
            }
        }
        catch (Exception ex) when (ex is BackupSourceException or NpgsqlException or TimeoutException or InvalidOperationException or IOException && !stopping.IsCancellationRequested)
        {
            // The session reports why it cannot stream.
        }
    }

    /// <summary>Stores the part of the segment being written that the receiver has flushed and that is not stored yet.</summary>
    private async Task ShipReceivedPieceAsync(Lsn flushed, CancellationToken stopping)
    {
        if (CurrentPartial() is not { } current || flushed == Lsn.Invalid)
        {
            return;
        }

        var start = current.File.StartLsn(_segmentSize);
        if (flushed <= start || flushed - start >= _segmentSize)
        {
            // Not into this segment yet, or the segment is complete and about to be renamed (then stored whole).
            return;
        }

        var shipped = Shipped(current.File);
        try
        {
            var end = Math.Min((uint)(flushed - start), EndOfWrittenBytes(current.Path, shipped));
            if (end > shipped)
            {
                await _archive.StorePieceAsync(current.Path, current.File, shipped, end, _segmentSize, stopping);
                _shipped[current.File] = end;
            }
        }
        catch (FileNotFoundException) when (!File.Exists(current.Path))
        {
            // pg_receivewal finished the segment and renamed it (X.partial -> X) between the listing and the read: it is
            // stored whole by ShipCompletedAsync, which is no failure of the session (it restarted the receiver).
        }
    }

    /// <summary>
    /// Stores what a partial segment nobody writes any more holds (the receiver stopped, or it moved on to a new
    /// timeline): up to its last received byte. The next piece starts at that last page again, since the last bytes
    /// received may have been only part of it.
    /// </summary>
    private async Task ShipStablePartialsAsync(bool all, CancellationToken cancellationToken)
    {
        var partials = Partials();
        if (partials.Count == 0)
        {
            return;
        }

        var newest = partials[^1];
        foreach (var partial in partials)
        {
            // While the receiver runs, the segment it writes, and any other of its timeline (one it is about to rename
            // X.partial -> X as it moves on), is its own: only an older timeline's last segment is stable.
            if (!all && (partial == newest || partial.File.Timeline == newest.File.Timeline))
            {
                continue;
            }

            var shipped = Shipped(partial.File);
            uint end;
            try
            {
                end = EndOfWrittenBytes(partial.Path, shipped);
                if (end > shipped)
                {
                    await _archive.StorePieceAsync(partial.Path, partial.File, shipped, end, _segmentSize, cancellationToken);
                }
            }
            catch (FileNotFoundException) when (!File.Exists(partial.Path))
            {
                // Completed and renamed meanwhile: stored whole by ShipCompletedAsync.
                _shipped.Remove(partial.File);
                continue;
            }

            // Re-send the last page next time: it may have been written only in part.
            _shipped[partial.File] = end > shipped ? (uint)Math.Max(0, (end - 1) / PageSize * PageSize) : shipped;
            if (partial != newest)
            {
                // An older timeline's last segment: stored; nothing will write it again.
                File.Delete(partial.Path);
                _shipped.Remove(partial.File);
            }
        }
    }

    /// <summary>Stores every completed segment and history file in the spool, oldest first, and removes each once stored.</summary>
    private async Task ShipCompletedAsync(CancellationToken cancellationToken)
    {
        if (!Directory.Exists(_spool))
        {
            return;
        }

        var files = Directory.EnumerateFiles(_spool)
            .Select(p => (Path: p, Artifact: PitrArtifact.Classify(Path.GetFileName(p))))
            .Where(f => f.Artifact is { Type: PitrArtifactType.Segment or PitrArtifactType.History })
            // History files first: a restore must never see a timeline's segments without its history.
            .OrderBy(f => f.Artifact!.Type == PitrArtifactType.History ? 0 : 1)
            .ThenBy(f => f.Artifact!.Name, StringComparer.Ordinal)
            .ToList();
        foreach (var (path, artifact) in files)
        {
            try
            {
                await _archive.StoreFileAsync(path, _segmentSize, cancellationToken);
            }
            catch (WalArchiveException ex) when (ex.Failure is PitrFailure.Conflict or PitrFailure.OtherCluster or PitrFailure.Other)
            {
                // A file that can never be stored must not hold up the ones after it: keep it beside the spool for whoever
                // investigates (never delete received WAL), say so, go on with the rest.
                var aside = path + (ex.Failure == PitrFailure.Conflict ? ".conflict-" : ".rejected-") + _time.GetUtcNow().ToString("yyyyMMddTHHmmssZ", CultureInfo.InvariantCulture);
                File.Move(path, aside);
                Fail(ex.Failure, ex.Message + $" (the received copy is kept as {aside})");
                continue;
            }

            File.Delete(path);
            if (artifact!.File is { } segment && artifact.Type == PitrArtifactType.Segment)
            {
                _shipped.Remove(segment);
                await _archive.DeleteSupersededPiecesAsync(segment, cancellationToken);
            }
        }
    }

    private void OnStored(ArchivedWal wal)
    {
        lock (_gate)
        {
            _lastStoredAt = _time.GetUtcNow();
            if (wal.End != Lsn.Invalid && (wal.File is null || CurrentTimelineOrAny(wal.File.Value.Timeline)) && wal.End > _storedEnd)
            {
                _storedEnd = wal.End;
            }
        }
    }

    private bool CurrentTimelineOrAny(uint timeline) => _status.Timeline == 0 || timeline >= _status.Timeline;

    /// <summary>
    /// Where the stored WAL reaches when this process has stored nothing yet: the segment being received (pieces or
    /// whole), else the newest stored segment.
    /// </summary>
    private void InitialiseStoredEnd()
    {
        if (_storedEnd != Lsn.Invalid)
        {
            return;
        }

        if (CurrentPartial() is { } current)
        {
            var start = current.File.StartLsn(_segmentSize);
            var chain = _archive.StoredPieceEnd(current.File, _segmentSize);
            _shipped[current.File] = chain == 0 ? 0 : (uint)Math.Max(0, (chain - 1) / PageSize * PageSize);
            _storedEnd = chain > 0 ? start + chain : start;
            return;
        }

        if (!Directory.Exists(_archive.Directory))
        {
            return;
        }

        WalFileName? newest = null;
        foreach (var path in Directory.EnumerateFiles(_archive.Directory))
        {
            if (WalFileName.TryParse(Path.GetFileName(path), out var name) && File.Exists(path + ".sha256")
                && (newest is null || name.SegmentNumber(_segmentSize) > newest.Value.SegmentNumber(_segmentSize)))
            {
                newest = name;
            }
        }

        if (newest is { } n)
        {
            _storedEnd = n.StartLsn(_segmentSize) + _segmentSize;
        }
    }

    private uint Shipped(WalFileName file)
    {
        if (!_shipped.TryGetValue(file, out var shipped))
        {
            var chain = _archive.StoredPieceEnd(file, _segmentSize);
            shipped = chain == 0 ? 0 : (uint)Math.Max(0, (chain - 1) / PageSize * PageSize);
            _shipped[file] = shipped;
        }

        return shipped;
    }

    /// <summary>
    /// A .partial shorter or longer than a segment is what pg_receivewal leaves when it could not preallocate one (a full
    /// disk); it refuses to start while it is there. All zeros, it holds nothing: removed. Otherwise it is set aside.
    /// </summary>
    private void RemoveUnusablePartials()
    {
        if (!Directory.Exists(_spool))
        {
            return;
        }

        foreach (var path in Directory.EnumerateFiles(_spool, "*.partial"))
        {
            var info = new FileInfo(path);
            if (info.Length == _segmentSize)
            {
                continue;
            }

            if (AllZeros(path))
            {
                File.Delete(path);
                Log.RemovedPartial(_logger, info.Name, info.Length);
            }
            else
            {
                var aside = path + ".unusable-" + _time.GetUtcNow().ToString("yyyyMMddTHHmmssZ", CultureInfo.InvariantCulture);
                File.Move(path, aside);
                Log.SetAsidePartial(_logger, info.Name, info.Length, aside);
            }
        }
    }

    private static bool AllZeros(string path)
    {
        using var input = File.OpenRead(path);
        var buffer = new byte[1 << 16];
        int read;
        while ((read = input.Read(buffer)) > 0)
        {
            if (buffer.AsSpan(0, read).IndexOfAnyExcept((byte)0) >= 0)
            {
                return false;
            }
        }

        return true;
    }

    private sealed record SpoolPartial(string Path, WalFileName File);

    /// <summary>The spool's .partial files, oldest first (by timeline, then position).</summary>
    private List<SpoolPartial> Partials()
    {
        if (!Directory.Exists(_spool))
        {
            return [];
        }

        var partials = new List<SpoolPartial>();
        foreach (var path in Directory.EnumerateFiles(_spool, "*.partial"))
        {
            var name = Path.GetFileName(path);
            if (WalFileName.TryParse(name[..^".partial".Length], out var file))
            {
                partials.Add(new SpoolPartial(path, file));
            }
        }

        return [.. partials.OrderBy(p => p.File.Timeline).ThenBy(p => p.File.SegmentNumber(_segmentSize))];
    }

    private SpoolPartial? CurrentPartial() => Partials() is [.., var newest] ? newest : null;

    /// <summary>
    /// Just past the last byte at or after <paramref name="from"/> that is not zero, or <paramref name="from"/>: the file
    /// is written in order, so everything before it was received; what follows is the preallocated zeros. (A received
    /// WAL byte that happens to be zero at the very end is left for the next piece, which sends that page again.)
    /// </summary>
    private uint EndOfWrittenBytes(string path, uint from)
    {
        using var input = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, PageSize);
        var page = new byte[PageSize];
        var end = from;
        for (long offset = from / PageSize * PageSize; offset < Math.Min(input.Length, _segmentSize); offset += PageSize)
        {
            input.Position = offset;
            var read = input.ReadAtLeast(page, PageSize, throwOnEndOfStream: false);
            var last = read == 0 ? -1 : page.AsSpan(0, read).LastIndexOfAnyExcept((byte)0);
            if (last < 0)
            {
                break;
            }

            end = (uint)Math.Max(end, offset + last + 1);
        }

        return end;
    }

    private void Sample(DateTimeOffset now, Lsn server)
    {
        if (server == Lsn.Invalid)
        {
            return;
        }

        lock (_gate)
        {
            _samples.Enqueue((now, server));
            while (_samples.Count > 1 && now - _samples.Peek().Time > SampleWindow)
            {
                _samples.Dequeue();
            }
        }
    }

    /// <summary>The newest sampled moment whose server position is within <paramref name="end"/> (never earlier than <paramref name="previous"/>).</summary>
    private DateTimeOffset? RecoveryPointFor(Lsn end, DateTimeOffset? previous)
    {
        if (end == Lsn.Invalid)
        {
            return previous;
        }

        DateTimeOffset? best = previous;
        foreach (var (time, server) in _samples)
        {
            if (server <= end && (best is null || time > best))
            {
                best = time;
            }
        }

        return best;
    }

    /// <summary>How far S3 holds the WAL: the start of the oldest piece or segment still queued, else the local end.</summary>
    private Lsn? S3End()
    {
        if (!_s3)
        {
            return null;
        }

        var end = _storedEnd;
        if (Directory.Exists(_queueDirectory))
        {
            foreach (var marker in Directory.EnumerateFiles(_queueDirectory))
            {
                if (PitrArtifact.Classify(Path.GetFileName(marker)) is { File: { } file } artifact && artifact.Type is PitrArtifactType.Segment or PitrArtifactType.Partial)
                {
                    var start = file.StartLsn(_segmentSize) + (artifact.Type == PitrArtifactType.Partial ? artifact.PartialStart : 0);
                    if (start < end)
                    {
                        end = start;
                    }
                }
            }
        }

        return end;
    }

    private string MoveSpoolAside()
    {
        var aside = Path.Combine(_archive.StateDirectory, "spool-abandoned-" + _time.GetUtcNow().ToString("yyyyMMddTHHmmssZ", CultureInfo.InvariantCulture));
        PrivateDirectory.Create(aside);
        foreach (var file in Directory.EnumerateFiles(_spool))
        {
            File.Move(file, Path.Combine(aside, Path.GetFileName(file)));
        }

        _shipped.Clear();
        return aside;
    }

    private FileSystemWatcher? WatchSpool()
    {
        try
        {
            var watcher = new FileSystemWatcher(_spool) { NotifyFilter = NotifyFilters.FileName, IncludeSubdirectories = false };
            // A completed segment appears by rename (X.partial → X): ship it at once rather than at the next tick.
            watcher.Renamed += (_, _) => _wake.Writer.TryWrite(true);
            watcher.Created += (_, e) =>
            {
                if (!e.Name!.EndsWith(".partial", StringComparison.Ordinal))
                {
                    _wake.Writer.TryWrite(true);
                }
            };
            watcher.EnableRaisingEvents = true;
            return watcher;
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or PlatformNotSupportedException)
        {
            Log.NoWatcher(_logger, ex.Message);
            return null;
        }
    }

    /// <summary>
    /// With <c>Backup:Cluster:Enabled</c> a slot in use is another node's receiver, not a fault: this node is its
    /// standby and tries again every second (no backoff), so it streams within seconds of the holder's death.
    /// </summary>
    private TimeSpan? StandbyRetry(PitrFailure failure) =>
        _options.Cluster.Enabled && failure == PitrFailure.SlotActive ? TimeSpan.FromSeconds(1) : null;

    /// <summary>True while this node waits as the standby of another node's receiver (cluster mode, slot in use).</summary>
    public bool Standby => _options.Cluster.Enabled && Status is { ReceiverUp: false, Failure: PitrFailure.SlotActive };

    private void Fail(PitrFailure failure, string line)
    {
        _failures.AddOrUpdate(PgTools.Label(failure), 1, (_, n) => n + 1);
        var now = _time.GetUtcNow();
        Update(s => s with { ReceiverUp = false, UpSince = null, Failure = failure, LastError = line, LastErrorAt = now });
        if (!string.Equals(line, _lastLoggedError, StringComparison.Ordinal))
        {
            Log.Failed(_logger, line);
            _lastLoggedError = line;
        }

        SaveStatus();
    }

    private void Update(Func<PitrStatus, PitrStatus> change)
    {
        lock (_gate)
        {
            _status = change(_status) with
            {
                Restarts = Interlocked.Read(ref _restarts),
                Failures = new Dictionary<string, long>(_failures, StringComparer.Ordinal),
            };
        }
    }

    private void SaveStatus()
    {
        try
        {
            PitrStatus.Save(_statusPath, Status);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.StatusNotSaved(_logger, ex.Message);
        }
    }

    private static PitrFailure FailureOf(Exception ex) => ex switch
    {
        WalArchiveException w => w.Failure,
        BackupSourceException b when b.Message.Contains("not found", StringComparison.Ordinal) || b.Message.Contains("older than the server", StringComparison.Ordinal) => PitrFailure.Tools,
        BackupSourceException b when b.Message.Contains("no space left", StringComparison.OrdinalIgnoreCase) => PitrFailure.DiskFull,
        BackupSourceException b when b.Message.Contains("REPLICATION", StringComparison.Ordinal) => PitrFailure.Privilege,
        BackupSourceException => PitrFailure.Connection,
        IOException io when io.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase) => PitrFailure.DiskFull,
        NpgsqlException or TimeoutException => PitrFailure.Connection,
        _ => PitrFailure.Other,
    };

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Pitr.Streaming, LogLevel.Information, "pitr: streaming WAL from {Server} through slot {Slot} into {Spool}")]
        public static partial void Streaming(ILogger logger, string server, string slot, string spool);

        [LoggerMessage(LogEvents.Pitr.SlotCreated, LogLevel.Information, "pitr: created the physical replication slot {Slot} on {Server}")]
        public static partial void SlotCreated(ILogger logger, string slot, string server);

        [LoggerMessage(LogEvents.Pitr.StreamingStopped, LogLevel.Error, "pitr: WAL streaming stopped: {Reason}; retrying with backoff, the other kinds go on")]
        public static partial void Failed(ILogger logger, string reason);

        [LoggerMessage(LogEvents.Pitr.StreamingRecovered, LogLevel.Information, "pitr: WAL streaming works again")]
        public static partial void Recovered(ILogger logger);

        [LoggerMessage(LogEvents.Pitr.PollFailed, LogLevel.Debug, "pitr: polling the server failed ({Reason}); trying again on a new connection")]
        public static partial void PollFailed(ILogger logger, string reason);

        [LoggerMessage(LogEvents.Pitr.NoWatcher, LogLevel.Warning, "pitr: cannot watch the spool ({Reason}); completed segments are stored at each poll instead")]
        public static partial void NoWatcher(ILogger logger, string reason);

        [LoggerMessage(LogEvents.Pitr.StatusNotSaved, LogLevel.Warning, "pitr: cannot save the receiver's status ({Reason})")]
        public static partial void StatusNotSaved(ILogger logger, string reason);

        [LoggerMessage(LogEvents.Pitr.Unexpected, LogLevel.Error, "pitr: unexpected failure of the WAL receiver")]
        public static partial void Unexpected(ILogger logger, Exception exception);

        [LoggerMessage(LogEvents.Pitr.PieceDeferred, LogLevel.Debug, "pitr: not storing the newest received bytes yet: {Reason}")]
        public static partial void PieceDeferred(ILogger logger, string reason);

        [LoggerMessage(LogEvents.Pitr.Paused, LogLevel.Information, "pitr: streaming paused while a restore replaces the cluster")]
        public static partial void Paused(ILogger logger);

        [LoggerMessage(LogEvents.Pitr.Resumed, LogLevel.Information, "pitr: the restore is done; streaming starts again")]
        public static partial void Resumed(ILogger logger);

        [LoggerMessage(LogEvents.Pitr.RemovedPartial, LogLevel.Warning, "pitr: removed {Name} from the spool: {Bytes} bytes of zeros, left by a receiver that could not preallocate a segment (a full disk?)")]
        public static partial void RemovedPartial(ILogger logger, string name, long bytes);

        [LoggerMessage(LogEvents.Pitr.SetAsidePartial, LogLevel.Warning, "pitr: {Name} in the spool has {Bytes} bytes, not a whole segment; moved to {Aside} so streaming can start again")]
        public static partial void SetAsidePartial(ILogger logger, string name, long bytes, string aside);
    }
}
