namespace VelozBackupAgent.Storage;

/// <summary>
/// The one table of log event ids (like Npgsql's <c>NpgsqlEventId</c>): every <c>[LoggerMessage]</c> of the three
/// assemblies takes its id from here, grouped by area in blocks of a thousand or a hundred, so an id in the log
/// file names one message and one place in the code. It lives in the store layer because that is the one
/// assembly every other references. <c>LogEventsTests</c> fails on a duplicate id and on a message without one.
/// An id is never given to a different message: a new message takes the next free id of its area.
/// </summary>
internal static class LogEvents
{
    /// <summary>The local store (1000s).</summary>
    internal static class LocalStore
    {
        /// <summary>Replacing {Path}: it had no checksum sidecar (an interrupted earlier write)</summary>
        public const int ReplacingOrphan = 1001;
        /// <summary>Checksum sidecar unreadable: {Problem}</summary>
        public const int BadSidecar = 1002;
        /// <summary>Removing the remains of an interrupted write: {Path}</summary>
        public const int RemovingDebris = 1003;
        /// <summary>Tightening {Directory} to mode 0700</summary>
        public const int TighteningMode = 1004;
        /// <summary>Could not remove {Path}</summary>
        public const int CouldNotRemove = 1005;
    }

    /// <summary>The S3 store (1100s).</summary>
    internal static class S3Store
    {
        /// <summary>Stored s3://{Bucket}/{Key} ({Size} bytes, sha256 {Sha256}), verified</summary>
        public const int Stored = 1101;
        /// <summary>s3://{Bucket}/{Key} exists without its checksum sidecar (an interrupted write); replaci…</summary>
        public const int ReplacingOrphan = 1102;
        /// <summary>Upload of s3://{Bucket}/{Key} refused and removed: {Reason}</summary>
        public const int UploadRefused = 1103;
        /// <summary>Aborted the multipart upload of s3://{Bucket}/{Key}: {Reason}</summary>
        public const int Aborted = 1104;
        /// <summary>Could not {What} s3://{Bucket}/{Key}: {Error}</summary>
        public const int CleanupFailed = 1105;
        /// <summary>Aborted stale multipart upload of s3://{Bucket}/{Key} started {Initiated:o}</summary>
        public const int AbortedStale = 1106;
        /// <summary>S3 at {Endpoint} does not report {Setting} of stored objects in bucket '{Bucket}': it i…</summary>
        public const int NotReported = 1107;
        /// <summary>Skipped aborting stale multipart uploads in bucket '{Bucket}': {Reason}</summary>
        public const int StaleUploadsSkipped = 1108;
        /// <summary>S3 request failed, retry {Attempt}/{MaxRetries} in {DelayMs:F0} ms: {Error}</summary>
        public const int Retry = 1109;
    }

    /// <summary>The encrypting wrapper of the S3 copies (1200s).</summary>
    internal static class EncryptingStore
    {
        /// <summary>Encrypted {Kind}/{Name} for the replica: {PlainSize} bytes, {CipherSize} encrypted</summary>
        public const int Encrypted = 1201;
    }

    /// <summary>The S3 upload queue (2000s).</summary>
    internal static class Replication
    {
        /// <summary>Replicated {Kind}/{Name} to {Target} ({Bytes} bytes in {Seconds:F2} s)</summary>
        public const int Uploaded = 2001;
        /// <summary>{Target} is unavailable, {Count} artifacts ({Bytes} bytes) wait in the upload queue; ne…</summary>
        public const int Unavailable = 2002;
        /// <summary>{Target} is available again; draining {Count} queued artifacts</summary>
        public const int Available = 2003;
        /// <summary>Cannot replicate {Kind}/{Name} to {Target}: {Reason}</summary>
        public const int ItemFailed = 2004;
        /// <summary>Reconciliation queued {Count} local artifacts missing from {Target}</summary>
        public const int Reconciled = 2005;
        /// <summary>{Kind}/{Name} is gone from the local store; dropped from the upload queue</summary>
        public const int LocalGone = 2006;
        /// <summary>Replication pass failed: {Reason}</summary>
        public const int PassFailed = 2007;
    }

    /// <summary>The daemon and its schedule (3000s).</summary>
    internal static class Daemon
    {
        /// <summary>veloz-backup started: node {Node}, local store {Root}, S3 bucket {Bucket}, configuratio…</summary>
        public const int Started = 3001;
        /// <summary>backup {Kind}: a scheduled run was missed (last run {LastRun}, schedule {Schedule}); ru…</summary>
        public const int CatchingUp = 3101;
        /// <summary>backup {Kind}: cannot read the local store to judge missed runs ({Reason}); running it now</summary>
        public const int CannotJudge = 3102;
        /// <summary>backup {Kind}: schedule {Schedule} ({TimeZone}), next run {Next}</summary>
        public const int Scheduled = 3103;
    }

    /// <summary>The command line (3200s).</summary>
    internal static class Cli
    {
        /// <summary>unexpected failure</summary>
        public const int Unexpected = 3201;
    }

    /// <summary>What every kind shares: child processes, the runner, watchers (4000s-4200s).</summary>
    internal static class Sources
    {
        /// <summary>{Tool}: {Line}</summary>
        public const int ChildStderr = 4001;
        /// <summary>backup {Kind} {Outcome} ({Trigger}): {Artifact}, {Bytes} bytes in {DurationSeconds} s {…</summary>
        public const int RunFinished = 4101;
        /// <summary>backup {Kind} {Outcome} ({Trigger}): {Artifact}, {Bytes} bytes in {DurationSeconds} s: …</summary>
        public const int RunFailed = 4102;
        /// <summary>backup {Kind}: unexpected failure</summary>
        public const int UnexpectedFailure = 4103;
        /// <summary>backup {Kind}: removed {Count} leftovers of interrupted writes ({Bytes} bytes)</summary>
        public const int RemovedLeftovers = 4104;
        /// <summary>backup {Kind}: could not look for leftovers of interrupted writes: {Reason}</summary>
        public const int LeftoversNotRemoved = 4105;
        /// <summary>watched directory {Directory} does not exist; the scheduled run still reports it, watch…</summary>
        public const int WatchedDirectoryMissing = 4201;
        /// <summary>file watcher on {Directory} lost events ({Reason}); running a full scan</summary>
        public const int WatcherOverflow = 4202;
        /// <summary>change-triggered backup of {Directory} failed</summary>
        public const int WatcherRunFailed = 4203;
    }

    /// <summary>The config kind (4300s).</summary>
    internal static class Config
    {
        /// <summary>config: Include glob {Glob} matched no file under {Root}</summary>
        public const int IncludeMatchedNothing = 4301;
        /// <summary>config: symbolic link {Link} is stored as a link; its target is not in the backup (outs…</summary>
        public const int LinkTargetNotContained = 4302;
        /// <summary>config: {Path} is a FIFO, socket or device; not archived</summary>
        public const int SpecialFileSkipped = 4303;
        /// <summary>config: the newest backup {Name} cannot be read back ({Reason}); writing a new one</summary>
        public const int NewestUnreadable = 4304;
        /// <summary>config: {Reason} (attempt {Attempt}); archiving again from a fresh listing</summary>
        public const int Retrying = 4305;
        /// <summary>config: created the git mirror {Repository} (bare, branch main)</summary>
        public const int GitMirrorCreated = 4306;
        /// <summary>config: committed {Artifact} to the git mirror {Repository}: {Subject}</summary>
        public const int GitMirrorCommitted = 4307;
        /// <summary>config: {Artifact} is the same tree as the git mirror's last commit; nothing committed</summary>
        public const int GitMirrorUnchanged = 4308;
        /// <summary>config: the git mirror {Repository} did not take {Artifact} ({Reason}); …</summary>
        public const int GitMirrorFailed = 4309;
        /// <summary>config: filling the git mirror, {Artifact} cannot be read ({Reason}); left out</summary>
        public const int GitMirrorSkipped = 4310;
    }

    /// <summary>The order WAL kind (4400s).</summary>
    internal static class Wal
    {
        /// <summary>ALARM: WAL segment {Segment} changed after it was stored: the backup holds {StoredSize}…</summary>
        public const int Conflict = 4401;
        /// <summary>WAL segment {Segment} matches its stored copy again; the conflict is over</summary>
        public const int ConflictResolved = 4402;
        /// <summary>WAL segment {Path} cannot be read and is not backed up: {Reason}; the other segments st…</summary>
        public const int Unreadable = 4403;
        /// <summary>WAL index {Path} does not exist yet; known segments are recognised from the stored chec…</summary>
        public const int IndexMissing = 4404;
        /// <summary>WAL index {Path} is not usable ({Problem}); rebuilding it from the stored checksums, no…</summary>
        public const int IndexCorrupt = 4405;
        /// <summary>WAL index {Path} could not be saved ({Reason}); the next run rebuilds what it lacks fro…</summary>
        public const int IndexSaveFailed = 4406;
        /// <summary>active WAL file {Path} shrank from {OldSize} to {NewSize} bytes with no new segment sea…</summary>
        public const int ActiveShrank = 4407;
        /// <summary>active WAL file could not be snapshotted: {Reason}</summary>
        public const int ActiveSnapshotFailed = 4408;
        /// <summary>WAL segment {Segment} is still being written: {Reason}</summary>
        public const int StillChanging = 4409;
        /// <summary>WAL segment {Segment} is recorded as stored but missing from the local store; storing i…</summary>
        public const int StoredCopyMissing = 4410;
        /// <summary>the checksum sidecar of stored WAL segment {Segment} is damaged ({Reason}); the stored …</summary>
        public const int StoredSidecarDamaged = 4411;
        /// <summary>WAL watcher: the change-triggered run failed</summary>
        public const int ChangeRunFailed = 4412;
        /// <summary>WAL watcher: cannot list {Directory}: {Reason}</summary>
        public const int PlanFailed = 4413;
        /// <summary>active WAL file {Path} was rotated ({OldSize} bytes at the last snapshot, {NewSize} now…</summary>
        public const int ActiveRotated = 4414;
        /// <summary>the newest WAL manifest {Manifest} cannot be followed ({Reason}); this sync writes a full manifest, run verify</summary>
        public const int ManifestChainUnusable = 4415;
        /// <summary>backup wal: removed {Count} leftovers of interrupted writes ({Bytes} bytes)</summary>
        public const int RemovedLeftovers = 4416;
    }

    /// <summary>The database kind: pg_dump (4500s) and the cluster globals (4570s).</summary>
    internal static class Database
    {
        /// <summary>{Database}: PostgreSQL {ServerVersion}, {SizeBytes} bytes; dumping with pg_dump {PgDump…</summary>
        public const int Connected = 4501;
        /// <summary>{Name}: stored locally ({Bytes} bytes) and readable by pg_restore ({Tables} tables with…</summary>
        public const int StoredLocally = 4502;
        /// <summary>{Name}: the S3 copy made during the dump was given up, the upload queue copies it inste…</summary>
        public const int OverlapGivenUp = 4503;
        /// <summary>{Name}: the cluster globals of {Dump}, {Bytes} bytes encrypted: {Detail}</summary>
        public const int Stored = 4571;
        /// <summary>{Dump}: the cluster globals (roles, password hashes) are NOT backed up: {Key} is empty …</summary>
        public const int NoRecipients = 4572;
        /// <summary>{Name}: the backup role {User} is not a superuser and cannot read pg_authid: the global…</summary>
        public const int WithoutPasswords = 4573;
        /// <summary>{Name}: stored, but the agent's restore will refuse it: {Reason}</summary>
        public const int NotParseable = 4574;
    }

    /// <summary>The secrets kind (4600s).</summary>
    internal static class Secrets
    {
        /// <summary>secrets: {Path} is not archived: commands/ in the archive holds the output of Backup:Se…</summary>
        public const int CommandsDirectorySkipped = 4601;
        /// <summary>secrets: {Path} is a FIFO, socket or device; not archived</summary>
        public const int SpecialFileSkipped = 4602;
        /// <summary>secrets: the last backup {Name} cannot be verified ({Reason}); writing a new one</summary>
        public const int LastBackupUnusable = 4603;
        /// <summary>secrets: could not record the last backup in {Path} ({Reason}); the next change-trigger…</summary>
        public const int StateNotSaved = 4604;
        /// <summary>secrets: {Reason} (attempt {Attempt}); archiving again from a fresh listing</summary>
        public const int Retrying = 4605;
    }

    /// <summary>Retention (5000s).</summary>
    internal static class Retention
    {
        /// <summary>retention deleted {Kind}/{Name} from {Target} ({Bytes} bytes, older than {RetentionDays…</summary>
        public const int DeletedArtifact = 5001;
        /// <summary>retention refused to delete anything of {Kind} in {Target}: {Reason}</summary>
        public const int Refused = 5002;
        /// <summary>retention of {Kind} in {Target} failed: {Reason}</summary>
        public const int Failed = 5003;
        /// <summary>retention deleted {Kind}/{Name} from {Target} ({Bytes} bytes): no kept base backup need…</summary>
        public const int DeletedWal = 5004;
        /// <summary>retention kept {Kind}/{Name} in {Target}: it is under S3 Object Lock until {Until:u}</summary>
        public const int Locked = 5005;
    }

    /// <summary>/metrics, /health and the metrics collector (6000s).</summary>
    internal static class Telemetry
    {
        /// <summary>metrics and health listening on {Url} (GET /metrics, GET /health)</summary>
        public const int Listening = 6001;
        /// <summary>cannot listen on {Url} (Backup:Http:Url): {Reason}</summary>
        public const int CannotListen = 6002;
        /// <summary>metrics: cannot list the {Target} store ({Reason}); its artifact counts and freshness s…</summary>
        public const int ListingFailed = 6010;
        /// <summary>metrics: the {Target} store can be listed again</summary>
        public const int ListingRecovered = 6011;
    }

    /// <summary>Systemd notify and watchdog (7000s).</summary>
    internal static class Systemd
    {
        /// <summary>systemd notify socket {Socket}; watchdog pings {Watchdog}</summary>
        public const int Notifying = 7001;
        /// <summary>told systemd READY=1: the host and the scheduler are running</summary>
        public const int Ready = 7002;
        /// <summary>the scheduler is {Status} and not running: watchdog pings withheld, so systemd restarts…</summary>
        public const int WatchdogWithheld = 7003;
        /// <summary>the scheduler runs again: watchdog pings resumed</summary>
        public const int WatchdogResumed = 7004;
        /// <summary>the scheduler did not start (it is {Status} after up to {Seconds} s): READY=1 not sent</summary>
        public const int SchedulerNeverStarted = 7005;
        /// <summary>could not notify systemd ({State}) through {Socket}: {Reason}</summary>
        public const int SendFailed = 7006;
    }

    /// <summary>Restore (8000s): service control, database, globals, archives, WAL, the restorer.</summary>
    internal static class Restore
    {
        /// <summary>running {Key}: {Command}</summary>
        public const int Running = 8001;
        /// <summary>VeloZ healthy at {Url} after {Seconds:0.0} s</summary>
        public const int Healthy = 8002;
        /// <summary>pg_restore of {Artifact} into {Database} ({Jobs} jobs)</summary>
        public const int DatabaseRestoring = 8101;
        /// <summary>restored {Artifact} as database {Database}: {Tables} tables, {Rows} rows in {Seconds:0.…</summary>
        public const int DatabaseRestored = 8102;
        /// <summary>could not drop the scratch database {Database}: {Reason}; drop it by hand</summary>
        public const int ScratchDropFailed = 8103;
        /// <summary>globals: created role {Role} from {Artifact} (login {Login}, password hash {WithPassword})</summary>
        public const int GlobalsRoleCreated = 8171;
        /// <summary>globals: role {Role} of {Artifact} could not be created: {Reason}</summary>
        public const int GlobalsRoleFailed = 8172;
        /// <summary>globals: {Artifact}: {Created} roles created, {Existing} already on the server and left…</summary>
        public const int GlobalsSummary = 8173;
        /// <summary>globals: {Dump}: {Why}</summary>
        public const int NoGlobals = 8174;
        /// <summary>restored {Kind} from {Artifact} into {Target}: {Files} files, {Bytes} bytes</summary>
        public const int ArchiveRestored = 8201;
        /// <summary>restored the WAL from {Manifest} into {Target}: {Segments} segments, {Bytes} bytes; pre…</summary>
        public const int WalRestored = 8301;
        /// <summary>restore: {Line}</summary>
        public const int Step = 8401;
    }

    /// <summary>Verify (8500s); and the daemon's restore drill (8600s).</summary>
    internal static class Verify
    {
        /// <summary>verify {Status} {Item}: {Detail}</summary>
        public const int Check = 8501;
        /// <summary>restore drill passed: every kind restored into scratch locations in {Seconds:0.0} s</summary>
        public const int DrillPassed = 8601;
        /// <summary>restore drill FAILED {Count} checks: {Failures}</summary>
        public const int DrillFailed = 8602;
    }

    /// <summary>PostgreSQL point-in-time recovery (9000s): receiver, archive, base backups, restore.</summary>
    internal static class Pitr
    {
        /// <summary>pitr: streaming WAL from {Server} through slot {Slot} into {Spool}</summary>
        public const int Streaming = 9001;
        /// <summary>pitr: created the physical replication slot {Slot} on {Server}</summary>
        public const int SlotCreated = 9002;
        /// <summary>pitr: WAL streaming stopped: {Reason}; retrying with backoff, the other kinds go on</summary>
        public const int StreamingStopped = 9003;
        /// <summary>pitr: WAL streaming works again</summary>
        public const int StreamingRecovered = 9004;
        /// <summary>pitr: polling the server failed ({Reason}); trying again on a new connection</summary>
        public const int PollFailed = 9005;
        /// <summary>pitr: cannot watch the spool ({Reason}); completed segments are stored at each poll ins…</summary>
        public const int NoWatcher = 9006;
        /// <summary>pitr: cannot save the receiver's status ({Reason})</summary>
        public const int StatusNotSaved = 9007;
        /// <summary>pitr: unexpected failure of the WAL receiver</summary>
        public const int Unexpected = 9008;
        /// <summary>pitr: removed {Name} from the spool: {Bytes} bytes of zeros, left by a receiver that co…</summary>
        public const int RemovedPartial = 9009;
        /// <summary>pitr: {Name} in the spool has {Bytes} bytes, not a whole segment; moved to {Aside} so s…</summary>
        public const int SetAsidePartial = 9010;
        /// <summary>pitr: streaming paused while a restore replaces the cluster</summary>
        public const int Paused = 9011;
        /// <summary>pitr: the restore is done; streaming starts again</summary>
        public const int Resumed = 9012;
        /// <summary>pitr: not storing the newest received bytes yet: {Reason}</summary>
        public const int PieceDeferred = 9013;
        /// <summary>pitr: {Name} differs from the stored copy; the stored copy is kept: {Reason}</summary>
        public const int ArchiveConflict = 9101;
        /// <summary>pitr: cannot read the cluster's system identifier from {Name}: {Reason}</summary>
        public const int UnreadableIdentity = 9102;
        /// <summary>{Line}</summary>
        public const int ReceiverOutput = 9201;
        /// <summary>{Line}</summary>
        public const int ReceiverWarning = 9202;
        /// <summary>pitr: base backup of {Server} (PostgreSQL {Version}) into {Name}</summary>
        public const int BaseBackupStarting = 9301;
        /// <summary>pitr: stored base backup {Name}: {Bytes} bytes ({TarBytes} uncompressed), WAL {StartLsn…</summary>
        public const int BaseBackupStored = 9302;
        /// <summary>pitr: created the replication slot {Slot} before the base backup, so the WAL after it i…</summary>
        public const int BaseBackupSlotCreated = 9303;
        /// <summary>restore pitr: {Step} took {Seconds:0.0} s</summary>
        public const int RestoreStep = 9401;
        /// <summary>restore pitr: staged {Done} of {Total} WAL segments</summary>
        public const int RestoreStaged = 9402;
        /// <summary>restore pitr: could not stop the temporary server in {Directory}: {Reason}</summary>
        public const int RestoreStopFailed = 9403;
        /// <summary>restore pitr: removed {Path}, left by an interrupted drill</summary>
        public const int RestoreLeftoverRemoved = 9404;
        /// <summary>restore pitr: {Count} WAL files the local store {Root} lacks were read from S3 (archived by another node of the cluster), verified</summary>
        public const int RestoreFromS3 = 9405;
    }

    /// <summary>Several agents sharing one database (9500s).</summary>
    internal static class Cluster
    {
        /// <summary>cluster: node {Node} joins the agents sharing {Database} (schema {Schema}); …</summary>
        public const int Joined = 9501;
        /// <summary>cluster: a {Kind} fire came to node {Node}, which has that kind disabled: …</summary>
        public const int KindNotEnabled = 9502;
        /// <summary>cluster: cannot record the {Kind} run in the cluster's tables ({Reason})</summary>
        public const int RunNotRecorded = 9503;
        /// <summary>cluster: node {Node}'s clock is {Skew} off the database server's, more than {Max} s: …</summary>
        public const int ClockSkew = 9504;
        /// <summary>cluster: node {Node}'s clock is back within bounds ({Skew} off the database server's)</summary>
        public const int ClockSkewGone = 9505;
        /// <summary>cluster: cannot check in with {Database} ({Reason}); trying again, the node-local kinds go on</summary>
        public const int CheckinFailed = 9506;
        /// <summary>cluster: checked in with {Database} again</summary>
        public const int Reconnected = 9507;
        /// <summary>cluster: another agent already runs as node {Node} against {Database} (…) (taken while this agent's session was lost)</summary>
        public const int NameTaken = 9508;
        /// <summary>cluster: no {Kind} backup of the cluster is recorded yet: one node takes one now …</summary>
        public const int FirstRun = 9509;
    }
}
