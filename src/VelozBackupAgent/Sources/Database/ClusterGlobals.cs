using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Npgsql;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Replication;
using VelozBackupAgent.Sources.Secrets;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Sources.Database;

/// <summary>What the globals step of a database backup stored, and the phrase the run's detail carries.</summary>
/// <param name="Artifact">The stored <c>globals_….sql.gpg</c>; null when none was stored (no recipients).</param>
/// <param name="Detail">One phrase for the run's detail: what was stored, or why not.</param>
internal sealed record GlobalsBackup(ArtifactInfo? Artifact, string Detail);

/// <summary>
/// The cluster's globals beside every dump: <c>pg_dumpall --globals-only</c> (roles, their attributes, password
/// hashes and settings, role memberships, parameter grants; tablespaces too, which a restore reports and never
/// creates), streamed into <c>gpg --encrypt</c> to <c>Backup:Secrets:Recipients</c> and from gpg into the store as
/// <c>globals_YYYYMMDD_HHMMSS[-N].sql.gpg</c>, with the dump's own time and sequence, so the pair is obvious
/// (<c>veloz_20261201_020000.dump</c> ↔ <c>globals_20261201_020000.sql.gpg</c>). No plaintext byte touches the disk:
/// pg_dumpall's stdout is copied into gpg's stdin (and, bounded, into memory to count what it holds).
/// </summary>
/// <remarks>
/// Decisions, each also in the README:
/// <list type="bullet">
/// <item>No recipient configured: no globals artifact (never a plaintext one); the dump still succeeds and the
/// run's detail and the log say the roles are not backed up.</item>
/// <item>A backup role that cannot read <c>pg_authid</c> (not a superuser): <c>--no-role-passwords</c>, said in the
/// detail, the log and the file's header (<see cref="GlobalsScript.NoPasswordsMarker"/>), so a restore warns that
/// the passwords must be set again.</item>
/// <item>pg_dumpall or gpg missing or failing, a recipient's key unusable: the dump is already stored and stays;
/// the run fails with one line naming both, so the broken new-server path is noticed.</item>
/// </list>
/// Credentials reach pg_dumpall through the libpq environment only (<see cref="PgConnectionInfo.ChildEnvironment"/>).
/// </remarks>
internal sealed partial class ClusterGlobals
{
    /// <summary>The name prefix of globals artifacts.</summary>
    public const string Prefix = "globals";

    /// <summary>The name suffix of globals artifacts: an SQL script, gpg-encrypted.</summary>
    public const string Suffix = ".sql.gpg";

    private const string RecipientsKey = $"{BackupOptions.SectionName}:{nameof(BackupOptions.Secrets)}:{nameof(SecretsOptions.Recipients)}";
    private const int CapturedLimit = 16 << 20;

    private readonly BackupOptions _options;
    private readonly BackupRepository _repository;
    private readonly ILogger _logger;
    private readonly ILogger _childLogger;

    public ClusterGlobals(BackupOptions options, BackupRepository repository, ILogger logger, ILogger childLogger)
    {
        _options = options;
        _repository = repository;
        _logger = logger;
        _childLogger = childLogger;
    }

    /// <summary><c>globals_20261201_020000-2.sql.gpg</c> for <c>veloz_20261201_020000-2.dump</c>; null for a name without a time.</summary>
    public static string? NameFor(string dumpName) =>
        ArtifactName.TryParse(dumpName, out _, out var time, out var sequence, out _) ? ArtifactName.Format(Prefix, time, Suffix, sequence) : null;

    /// <summary>Whether <paramref name="name"/> is a globals artifact's name.</summary>
    public static bool IsGlobalsName(string name) =>
        ArtifactName.TryParse(name, out var prefix, out _, out _, out var suffix) && prefix == Prefix && suffix == Suffix;

    /// <summary>
    /// Dumps the globals of the cluster <paramref name="connection"/> points at beside the stored dump
    /// <paramref name="dumpName"/>. Throws <see cref="BackupSourceException"/> (one line) when they cannot be stored.
    /// </summary>
    public async Task<GlobalsBackup> BackUpAsync(PgConnectionInfo connection, string dumpName, CancellationToken cancellationToken)
    {
        if (_options.Secrets.Recipients.All(string.IsNullOrWhiteSpace))
        {
            Log.NoRecipients(_logger, RecipientsKey, dumpName);
            return new GlobalsBackup(null,
                $"globals NOT backed up: {RecipientsKey} is empty and role password hashes are never stored unencrypted; a restore onto a new server will lack the roles");
        }

        var name = NameFor(dumpName) ?? throw new BackupSourceException($"{dumpName} carries no time, so no globals artifact can be named after it");
        if (await _repository.Local.StatAsync(BackupKinds.Database, name, cancellationToken) is not null || File.Exists(_repository.Local.PathOf(BackupKinds.Database, name)))
        {
            throw new BackupSourceException($"{name} already exists in the store and is not this run's; move it aside");
        }

        var gpg = new Gpg(_options.Secrets, _childLogger);
        var recipients = await gpg.ResolveRecipientsAsync(cancellationToken);
        var (canReadPasswords, user) = await CanReadPasswordsAsync(connection, cancellationToken);
        if (!canReadPasswords)
        {
            Log.WithoutPasswords(_logger, user, name);
        }

        var spec = new ChildProcessSpec(PgDumpallPath(), Arguments(connection.Database, canReadPasswords), "pg_dumpall")
        {
            Environment = connection.ChildEnvironment(),
            Inherit = InheritedVariables.Libpq,
            InstallHint = string.IsNullOrWhiteSpace(_options.Database.BinDirectory)
                ? "install the PostgreSQL client tools (e.g. postgresql-client-15) or set Backup:Database:BinDirectory"
                : $"Backup:Database:BinDirectory is {_options.Database.BinDirectory}; it must hold pg_dumpall too",
        };

        var header = new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"-- veloz-backup: the cluster globals stored with {dumpName} (pg_dumpall --globals-only)\n");
        if (!canReadPasswords)
        {
            header.Append(CultureInfo.InvariantCulture,
                $"{GlobalsScript.NoPasswordsMarker}: the backup role {user} cannot read pg_authid (not a superuser); roles restored from this file have no password\n");
        }

        using var captured = new MemoryStream();
        var complete = true;
        ArtifactInfo stored;
        await using (var dumpall = ChildProcess.Start(spec, _childLogger))
        await using (var encrypt = gpg.StartEncryption(recipients))
        {
            // pg_dumpall → gpg's stdin through a pipe; gpg's stdout → the store, which writes only ciphertext.
            encrypt.PumpInput(async (stdin, token) =>
            {
                await stdin.WriteAsync(Encoding.UTF8.GetBytes(header.ToString()), token);
                var buffer = new byte[1 << 16];
                int read;
                while ((read = await dumpall.Output.ReadAsync(buffer, token)) > 0)
                {
                    await stdin.WriteAsync(buffer.AsMemory(0, read), token);
                    complete = complete && captured.Length + read <= CapturedLimit;
                    if (complete)
                    {
                        captured.Write(buffer, 0, read);
                    }
                }
            }, cancellationToken);
            stored = await _repository.StoreAsync(BackupKinds.Database, name, encrypt.Output, cancellationToken: cancellationToken);
        }

        var detail = Describe(stored.Name, complete ? captured : null, canReadPasswords, user);
        Log.Stored(_logger, stored.Name, stored.Size, dumpName, detail);
        return new GlobalsBackup(stored, detail);
    }

    /// <summary>pg_dumpall's arguments: globals only, never prompt, the configured database to connect to. Nothing secret, ever.</summary>
    internal static IReadOnlyList<string> Arguments(string database, bool withPasswords)
    {
        var arguments = new List<string> { "--globals-only", "--no-password" };
        if (!withPasswords)
        {
            arguments.Add("--no-role-passwords");
        }

        // The role may only be allowed into its own database (pg_hba.conf); libpq would read a name with '=' as a
        // connection string, so such a name is left out and pg_dumpall tries postgres, then template1.
        if (!database.Contains('=', StringComparison.Ordinal) && !database.Contains("://", StringComparison.Ordinal))
        {
            arguments.Add("--database=" + database);
        }

        return arguments;
    }

    private string PgDumpallPath() =>
        string.IsNullOrWhiteSpace(_options.Database.BinDirectory) ? "pg_dumpall" : Path.Combine(_options.Database.BinDirectory, "pg_dumpall");

    /// <summary>Whether the backup role may read pg_authid (the password hashes): superusers only, unless granted.</summary>
    private static async Task<(bool CanRead, string User)> CanReadPasswordsAsync(PgConnectionInfo connection, CancellationToken cancellationToken)
    {
        var connectionString = connection.PrecheckConnectionString();
        try
        {
            var db = new NpgsqlConnection(connectionString);
            await using (db)
            {
                await db.OpenAsync(cancellationToken);
                var command = new NpgsqlCommand("SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT'), current_user::text", db);
                await using (command)
                {
                    var reader = await command.ExecuteReaderAsync(cancellationToken);
                    await using (reader)
                    {
                        await reader.ReadAsync(cancellationToken);
                        return (reader.GetBoolean(0), reader.GetString(1));
                    }
                }
            }
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException && !cancellationToken.IsCancellationRequested)
        {
            throw new BackupSourceException(DatabaseSource.ConnectFailure(connection, new NpgsqlConnectionStringBuilder(connectionString).Timeout, ex));
        }
    }

    /// <summary>The run's detail phrase: the artifact, what it holds, and what a restore will and will not do with it.</summary>
    /// <param name="name">The stored artifact.</param>
    /// <param name="captured">pg_dumpall's output, or null when it was too large to keep a copy of in memory.</param>
    /// <param name="withPasswords">False when dumped with --no-role-passwords.</param>
    /// <param name="user">The backup role.</param>
    private string Describe(string name, MemoryStream? captured, bool withPasswords, string user)
    {
        var passwords = withPasswords
            ? ""
            : $" WITHOUT role passwords (the backup role {user} is not a superuser and cannot read pg_authid: pg_dumpall --no-role-passwords; a restore creates the roles without passwords)";
        if (captured is null)
        {
            return $"globals: {name}{passwords}";
        }

        try
        {
            var script = GlobalsScript.Parse(Encoding.UTF8.GetString(captured.GetBuffer(), 0, (int)captured.Length));
            var text = string.Create(CultureInfo.InvariantCulture, $"globals: {name}, {script.Roles.Count} roles, {script.Memberships.Count} memberships{passwords}");
            if (script.Tablespaces.Count > 0)
            {
                text += $"; tablespaces {string.Join(", ", script.Tablespaces)} recorded, not restored by the agent";
            }

            return text;
        }
        catch (GlobalsScriptException ex)
        {
            // Stored all the same: it is what pg_dumpall wrote and restores by hand with psql.
            Log.NotParseable(_logger, name, ex.Message);
            return $"globals: {name}{passwords}; WARNING: the agent's restore will refuse it ({ex.Message}): restore its roles by hand (README, Break glass)";
        }
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Database.Stored, LogLevel.Information, "{Name}: the cluster globals of {Dump}, {Bytes} bytes encrypted: {Detail}")]
        public static partial void Stored(ILogger logger, string name, long bytes, string dump, string detail);

        [LoggerMessage(LogEvents.Database.NoRecipients, LogLevel.Warning, "{Dump}: the cluster globals (roles, password hashes) are NOT backed up: {Key} is empty and they are never stored unencrypted; a restore onto a new server will lack the roles")]
        public static partial void NoRecipients(ILogger logger, string key, string dump);

        [LoggerMessage(LogEvents.Database.WithoutPasswords, LogLevel.Warning, "{Name}: the backup role {User} is not a superuser and cannot read pg_authid: the globals are dumped with --no-role-passwords, and roles restored from them will have no password")]
        public static partial void WithoutPasswords(ILogger logger, string user, string name);

        [LoggerMessage(LogEvents.Database.NotParseable, LogLevel.Warning, "{Name}: stored, but the agent's restore will refuse it: {Reason}")]
        public static partial void NotParseable(ILogger logger, string name, string reason);
    }
}
