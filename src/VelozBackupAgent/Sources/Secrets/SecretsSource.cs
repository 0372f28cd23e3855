using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Sources.Archives;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Sources.Secrets;

/// <summary>
/// The secrets kind: <c>Backup:Secrets:Directory</c> as a tar.gz streamed into <c>gpg --encrypt</c> to every
/// configured recipient, gpg's output streamed into the store as <c>secrets_YYYYMMDD_HHMMSS.tar.gz.gpg</c>.
/// No plaintext byte touches the disk: no temporary file, no tar on disk, nothing derived from the content
/// in the state directory (see <see cref="SecretsState"/>). Every recipient's key is checked first; one that
/// is missing, expired, revoked or cannot encrypt stops the run before anything is encrypted. Scheduled,
/// missed and manual runs always write; a change-triggered run writes only when the directory's metadata
/// fingerprint differs from the last successful backup's (and that backup is still intact in the store).
/// Restore by hand: <c>gpg --decrypt secrets_….tar.gz.gpg | tar -xzf - -C /etc/veloz/secrets</c>.
/// </summary>
public sealed partial class SecretsSource : IWatchableSource
{
    private const string Prefix = "secrets";
    private const string Suffix = ".tar.gz.gpg";
    private const int Attempts = 3;
    private const string DirectoryKey = $"{BackupOptions.SectionName}:{nameof(BackupOptions.Secrets)}:{nameof(SecretsOptions.Directory)}";

    private readonly BackupOptions _options;
    private readonly BackupRepository _repository;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Gpg _gpg;
    private readonly SecretsState _state;

    public SecretsSource(BackupOptions options, BackupRepository repository, TimeProvider time, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(repository);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _options = options;
        _repository = repository;
        _time = time;
        _logger = loggerFactory.CreateLogger<SecretsSource>();
        _gpg = new Gpg(options.Secrets, _logger);
        _state = new SecretsState(options.StateDirectory);
    }

    /// <inheritdoc />
    public string Kind => BackupKinds.Secrets;

    /// <inheritdoc />
    public async Task<BackupOutput> RunAsync(BackupTrigger trigger, CancellationToken cancellationToken)
    {
        var directory = _options.Secrets.Directory;
        _gpg.EnsureRecipientsConfigured();
        var entries = Scan(directory);
        var recipients = await _gpg.ResolveRecipientsAsync(cancellationToken).ConfigureAwait(false);

        // Every command runs (and must succeed) before anything is encrypted: a failing one fails the run, and
        // no archive holds the directory without it.
        var outputs = await SecretCommands.RunAllAsync(_options.Secrets, _state.SpoolDirectory, _logger, cancellationToken).ConfigureAwait(false);
        try
        {
            return await RunWithOutputsAsync(trigger, directory, entries, recipients, outputs, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            SecretCommands.Dispose(outputs);
        }
    }

    private async Task<BackupOutput> RunWithOutputsAsync(BackupTrigger trigger, string directory, List<SourceEntry> entries, IReadOnlyList<GpgKey> recipients,
        List<SecretCommandOutput> outputs, CancellationToken cancellationToken)
    {
        var commandLines = outputs.Count == 0 ? [] : SecretCommands.SaltedHashes(outputs, _state.Salt()).ToList();
        for (var attempt = 1; ; attempt++)
        {
            if (attempt > 1)
            {
                entries = Scan(directory);
            }

            var fingerprint = SecretsState.Fingerprint(entries, recipients.Select(k => k.Fingerprint), commandLines);
            if (trigger == BackupTrigger.Change && await UnchangedSinceAsync(fingerprint, cancellationToken).ConfigureAwait(false) is { } same)
            {
                return BackupOutput.Nothing($"unchanged since {same}");
            }

            try
            {
                var info = await EncryptAndStoreAsync(entries, outputs, recipients, cancellationToken).ConfigureAwait(false);
                try
                {
                    _state.Save(fingerprint, info);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // The backup itself is complete; the next change-triggered run just writes once more.
                    Log.StateNotSaved(_logger, _state.FilePath, ex.Message);
                }

                var files = entries.Count(e => e.Kind == FileKind.Regular);
                var commands = outputs.Count == 0 ? "" : $" and {outputs.Count} command output(s)";
                return new BackupOutput([info], $"{files} file(s){commands} encrypted to {string.Join(", ", recipients.Select(k => k.Fingerprint))}");
            }
            catch (Exception ex) when (Changed(ex) is { } changed && attempt < Attempts)
            {
                Log.Retrying(_logger, changed.Message, attempt);
            }
            catch (Exception ex) when (Changed(ex) is { } changed)
            {
                throw new BackupSourceException($"{changed.Message} on {Attempts} attempts in a row; the next run tries again", ex);
            }
        }
    }

    /// <inheritdoc />
    public Task WatchAsync(Func<CancellationToken, Task> changed, CancellationToken cancellationToken)
    {
        var watchers = new List<Task>();
        if (!string.IsNullOrEmpty(_options.Secrets.Directory))
        {
            watchers.Add(new DebouncedWatcher(_options.Secrets.Directory, _time, _logger) { IncludeSubdirectories = true }.RunAsync(changed, cancellationToken));
        }

        if (_options.Secrets.Commands.Count > 0 && _options.Secrets.CommandPollInterval > TimeSpan.Zero)
        {
            // A command's source (Vault) cannot be watched: it is polled, and the change-triggered run writes
            // only when an output's salted hash moved.
            watchers.Add(PollCommandsAsync(changed, cancellationToken));
        }

        return Task.WhenAll(watchers);
    }

    private async Task PollCommandsAsync(Func<CancellationToken, Task> changed, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_options.Secrets.CommandPollInterval, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            await changed(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<ArtifactInfo> EncryptAndStoreAsync(List<SourceEntry> entries, List<SecretCommandOutput> outputs, IReadOnlyList<GpgKey> recipients, CancellationToken cancellationToken)
    {
        var name = await ArtifactNameAllocator.AllocateAsync(_repository.Local, Kind, Prefix, Suffix, _time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        var owners = OwnerNames.Load();
        await using var gpg = _gpg.StartEncryption(recipients);

        // tar → gzip → gpg's stdin through a pipe; gpg's stdout → the store, which writes only ciphertext.
        var generated = outputs.Select(o => new GeneratedEntry(o.EntryName, o.Spool.OpenRead, o.Spool.Owner.Uid, o.Spool.Owner.Gid, _time.GetUtcNow())).ToList();
        gpg.PumpInput((stdin, ct) => TarGzArchive.WriteAsync(stdin, entries, generated, owners, ct), cancellationToken);
        return await _repository.StoreAsync(Kind, name, gpg.Output, cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Everything to archive; refuses a missing directory and one without a single file.</summary>
    private List<SourceEntry> Scan(string directory)
    {
        var commands = _options.Secrets.Commands.Count > 0;
        if (commands && string.IsNullOrEmpty(directory))
        {
            return [];
        }

        if (!Directory.Exists(directory))
        {
            throw new BackupSourceException(File.Exists(directory) ? $"{DirectoryKey} is not a directory: {directory}" : $"{DirectoryKey} does not exist: {directory}");
        }

        var entries = new List<SourceEntry>();
        foreach (var entry in SourceTree.Walk(directory, _ => true))
        {
            if (entry.Kind == FileKind.Other)
            {
                Log.SpecialFileSkipped(_logger, entry.FullPath);
                continue;
            }

            if (commands && (entry.RelativePath == SecretCommands.Directory || entry.RelativePath.StartsWith(SecretCommands.Directory + "/", StringComparison.Ordinal)))
            {
                // The commands' outputs live there in the archive (a restore into this directory puts them there).
                if (entry.RelativePath == SecretCommands.Directory)
                {
                    Log.CommandsDirectorySkipped(_logger, entry.FullPath);
                }

                continue;
            }

            entries.Add(entry);
        }

        if (!commands && !entries.Any(e => e.Kind == FileKind.Regular))
        {
            // An empty (or unmounted) secrets directory backed up "successfully" would hide the loss of every secret.
            throw new BackupSourceException($"{DirectoryKey} has no files: {directory}; refusing to store an empty secrets backup (is it mounted?)");
        }

        return entries;
    }

    /// <summary>The artifact of the last successful backup when it had this fingerprint and is intact in the store.</summary>
    private async Task<string?> UnchangedSinceAsync(string fingerprint, CancellationToken cancellationToken)
    {
        if (_state.Read() is not { } last || last.Fingerprint != fingerprint)
        {
            return null;
        }

        try
        {
            var stored = await _repository.Local.StatAsync(Kind, last.Artifact, cancellationToken).ConfigureAwait(false);
            if (stored?.Sha256 != last.Sha256)
            {
                return null;
            }

            // Ciphertext only, and small: reading it through the verifying stream proves the bytes still match.
            await using var content = await _repository.Local.OpenReadAsync(Kind, last.Artifact, cancellationToken).ConfigureAwait(false);
            await content.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
            return last.Artifact;
        }
        catch (Exception ex) when (ex is StoreException or IOException)
        {
            Log.LastBackupUnusable(_logger, last.Artifact, ex.Message);
            return null;
        }
    }

    private static SourceChangedException? Changed(Exception ex) =>
        ex as SourceChangedException ?? ex.InnerException as SourceChangedException;

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Secrets.CommandsDirectorySkipped, LogLevel.Warning, "secrets: {Path} is not archived: commands/ in the archive holds the output of Backup:Secrets:Commands")]
        public static partial void CommandsDirectorySkipped(ILogger logger, string path);

        [LoggerMessage(LogEvents.Secrets.SpecialFileSkipped, LogLevel.Warning, "secrets: {Path} is a FIFO, socket or device; not archived")]
        public static partial void SpecialFileSkipped(ILogger logger, string path);

        [LoggerMessage(LogEvents.Secrets.LastBackupUnusable, LogLevel.Warning, "secrets: the last backup {Name} cannot be verified ({Reason}); writing a new one")]
        public static partial void LastBackupUnusable(ILogger logger, string name, string reason);

        [LoggerMessage(LogEvents.Secrets.StateNotSaved, LogLevel.Warning, "secrets: could not record the last backup in {Path} ({Reason}); the next change-triggered run writes again")]
        public static partial void StateNotSaved(ILogger logger, string path, string reason);

        [LoggerMessage(LogEvents.Secrets.Retrying, LogLevel.Information, "secrets: {Reason} (attempt {Attempt}); archiving again from a fresh listing")]
        public static partial void Retrying(ILogger logger, string reason, int attempt);
    }
}
