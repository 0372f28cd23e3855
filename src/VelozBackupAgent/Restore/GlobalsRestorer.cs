using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Npgsql;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Database;
using VelozBackupAgent.Sources.Secrets;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Restore;

/// <summary>What the globals step of a database restore did, for the summary, the warnings and a pg_restore failure.</summary>
/// <param name="Artifact">The globals artifact used; null when there was none to use.</param>
/// <param name="Created">Roles created, in order.</param>
/// <param name="Existing">Roles of the file the server already had (left exactly as they were).</param>
/// <param name="Failed">Roles whose creation failed, with the server's reason.</param>
/// <param name="Warnings">What the operator should know, one line each.</param>
/// <param name="Problem">Why no role could be restored at all (no globals artifact, cannot decrypt); null when they were looked at.</param>
/// <param name="Defined">Every role the file defines (to explain a pg_restore failure on a role it lacks).</param>
public sealed record GlobalsRestoreReport(
    string? Artifact,
    IReadOnlyList<string> Created,
    IReadOnlyList<string> Existing,
    IReadOnlyDictionary<string, string> Failed,
    IReadOnlyList<string> Warnings,
    string? Problem,
    IReadOnlyCollection<string> Defined)
{
    internal static GlobalsRestoreReport Unavailable(string? artifact, string problem, params string[] warnings) =>
        new(artifact, [], [], new Dictionary<string, string>(), warnings, problem, []);

    /// <summary>Appended to the restore's one-line summary: <c>; roles: created veloz, analyst; existing postgres</c>; empty without a globals artifact.</summary>
    public string SummarySuffix
    {
        get
        {
            if (Problem is not null)
            {
                return "";
            }

            var parts = new List<string>();
            if (Created.Count > 0)
            {
                parts.Add("created " + Names(Created));
            }

            if (Existing.Count > 0)
            {
                parts.Add("existing " + Names(Existing));
            }

            if (Failed.Count > 0)
            {
                parts.Add("FAILED " + Names([.. Failed.Keys]));
            }

            return parts.Count == 0 ? "; roles: none in the backup" : "; roles: " + string.Join("; ", parts);
        }
    }

    /// <summary>What to add to pg_restore's <c>role "x" does not exist</c> line.</summary>
    public string ExplainMissing(string role, IReadOnlyList<string> created)
    {
        ArgumentNullException.ThrowIfNull(created);
        var kept = created.Count == 0 ? "" : $"; the roles it did create ({Names(created)}) stay";
        if (Problem is not null)
        {
            return $"; the dump's roles were not restored: {Problem}{kept}";
        }

        if (Failed.TryGetValue(role, out var why))
        {
            return $"; creating role {role} from {Artifact} failed: {why}{kept}";
        }

        return Defined.Contains(role)
            ? kept
            : $"; {Artifact} does not define role {role} either: create it by hand (CREATE ROLE …) and restore again{kept}";
    }

    private static string Names(IReadOnlyList<string> names) =>
        names.Count <= 6 ? string.Join(", ", names) : string.Join(", ", names.Take(5)) + string.Create(CultureInfo.InvariantCulture, $" and {names.Count - 5} more");
}

/// <summary>
/// Before a dump is restored, the roles it needs: the <c>globals_….sql.gpg</c> stored with the dump (same time and
/// sequence in the name, same store) is verified against its checksum, decrypted with the agent's keyring into memory
/// (never a plaintext byte on disk), parsed (<see cref="GlobalsScript"/>: a statement pg_dumpall does not write
/// refuses the file before anything runs), and every role the server does NOT have is created with its attributes,
/// password hash, settings and comment; then the memberships and parameter grants that involve a created role.
/// Existing roles are never altered (not their password, not their attributes, not their memberships), nothing is
/// dropped, and tablespaces are never created. What was created and what existed goes to the restore's summary and
/// warnings. Roles created stay even when the restore fails later: nothing that existed was changed, and the next
/// attempt needs them.
/// </summary>
public sealed partial class GlobalsRestorer
{
    /// <summary>A globals script is a few KiB per role; a file this large is not one.</summary>
    private const int MaxScriptBytes = 64 << 20;

    private readonly BackupOptions _options;
    private readonly RestoreSources _sources;
    private readonly ILogger _logger;

    public GlobalsRestorer(BackupOptions options, RestoreSources sources, ILogger logger)
    {
        _options = options;
        _sources = sources;
        _logger = logger;
    }

    /// <summary>
    /// Restores the roles of the globals stored with <paramref name="dump"/> that are missing on the server
    /// <paramref name="db"/> is connected to. Throws <see cref="RestoreException"/> for a globals file that fails its
    /// checksum or holds anything pg_dumpall --globals-only does not write (nothing from it is run then); a missing
    /// or undecryptable file is reported, not thrown: the dump may well restore without it.
    /// </summary>
    public async Task<GlobalsRestoreReport> RestoreMissingRolesAsync(ArtifactRef dump, NpgsqlConnection db, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(dump);
        ArgumentNullException.ThrowIfNull(db);
        if (ClusterGlobals.NameFor(dump.Name) is not { } name)
        {
            return GlobalsRestoreReport.Unavailable(null, $"the dump's name {dump.Name} carries no time, so no globals artifact (globals_YYYYMMDD_HHMMSS.sql.gpg) is paired with it");
        }

        var located = await LocateAsync(dump, name, cancellationToken).ConfigureAwait(false);
        if (located.Artifact is not { } artifact)
        {
            Log.NoGlobals(_logger, dump.Name, located.Why!);
            return GlobalsRestoreReport.Unavailable(null, located.Why!);
        }

        string text;
        using (var staged = await _sources.StageAsync(artifact, cancellationToken).ConfigureAwait(false))
        {
            var gpg = new Gpg(_options.Secrets, _logger);
            try
            {
                text = await DecryptAsync(gpg, staged, cancellationToken).ConfigureAwait(false);
            }
            catch (BackupSourceException ex)
            {
                var why = $"{name} cannot be decrypted with {gpg.Keyring} ({ex.Message}); import the private key of one of Backup:Secrets:Recipients (gpg --import) or set Backup:Secrets:GnupgHome";
                Log.NoGlobals(_logger, dump.Name, why);
                return GlobalsRestoreReport.Unavailable(name, why, $"the roles of {name} were not restored: {why}");
            }
        }

        GlobalsScript script;
        try
        {
            script = GlobalsScript.Parse(text);
        }
        catch (GlobalsScriptException ex)
        {
            throw new RestoreException(
                $"{name}: refused, {ex.Message}; nothing from it was run and nothing was restored (if you trust the dump, move {name} and its .sha256 aside to restore it without its roles)", ex);
        }

        return await ApplyAsync(name, script, db, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads pg_restore's <c>role "x" does not exist</c> out of a failure line; null when it is another failure.</summary>
    public static string? MissingRole(string message) =>
        MissingRoleRegex().Match(message ?? "") is { Success: true } m ? m.Groups["role"].Value.Replace("\"\"", "\"", StringComparison.Ordinal) : null;

    private static async Task<(ArtifactRef? Artifact, string? Why)> LocateAsync(ArtifactRef dump, string name, CancellationToken cancellationToken)
    {
        var missing = $"no globals artifact {name} beside {dump.Name} (dumps made before the agent stored globals, or while Backup:Secrets:Recipients was empty, have none), so its roles were not restored";
        if (dump.LoosePath is { } loose)
        {
            var path = Path.Combine(Path.GetDirectoryName(loose) ?? ".", name);
            return File.Exists(path) ? (new ArtifactRef(null, dump.Kind, name, path), null) : (null, missing);
        }

        try
        {
            return await dump.Store!.StatAsync(dump.Kind, name, cancellationToken).ConfigureAwait(false) is null
                ? (null, missing)
                : (new ArtifactRef(dump.Store, dump.Kind, name), null);
        }
        catch (StoreException ex)
        {
            return (null, $"{name} could not be looked for in {dump.Store!.Target}: {ex.Message}");
        }
    }

    /// <summary>gpg --decrypt fed from the verified file; the plaintext lives only in this process's memory.</summary>
    private static async Task<string> DecryptAsync(Gpg gpg, StagedArtifact staged, CancellationToken cancellationToken)
    {
        await using var child = ArchiveRestorer.StartDecrypting(gpg, staged, cancellationToken);
        using var plain = new MemoryStream();
        var buffer = new byte[1 << 16];
        int read;
        while ((read = await child.Output.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (plain.Length + read > MaxScriptBytes)
            {
                throw new RestoreException($"{staged.Source.Name} decrypts to more than {MaxScriptBytes >> 20} MiB: not a pg_dumpall --globals-only script; refused, nothing from it was run");
            }

            plain.Write(buffer, 0, read);
        }

        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(plain.GetBuffer(), 0, (int)plain.Length);
        }
        catch (DecoderFallbackException ex)
        {
            throw new RestoreException($"{staged.Source.Name} does not decrypt to UTF-8 text: not a pg_dumpall --globals-only script; refused, nothing from it was run", ex);
        }
    }

    private async Task<GlobalsRestoreReport> ApplyAsync(string name, GlobalsScript script, NpgsqlConnection db, CancellationToken cancellationToken)
    {
        await ExecuteAsync(db, GlobalsSql.SessionSetup, null, cancellationToken).ConfigureAwait(false);
        var (roles, current) = await RolesAsync(db, cancellationToken).ConfigureAwait(false);
        var members = await MembershipsAsync(db, cancellationToken).ConfigureAwait(false);
        var created = new List<string>();
        var existing = new List<string>();
        var failed = new Dictionary<string, string>(StringComparer.Ordinal);
        var warnings = new List<string>();

        foreach (var role in script.Roles)
        {
            if (roles.Contains(role.Name))
            {
                // The connecting user, postgres and every other role the server has: never altered.
                existing.Add(role.Name);
                continue;
            }

            var transaction = await db.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                try
                {
                    foreach (var sql in GlobalsSql.CreateRole(role))
                    {
                        await ExecuteAsync(db, sql, transaction, cancellationToken).ConfigureAwait(false);
                    }

                    await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                    created.Add(role.Name);
                    roles.Add(role.Name);
                    Log.Created(_logger, role.Name, name, role.CanLogin, role.PasswordHash is not null);
                }
                catch (PostgresException ex)
                {
                    await transaction.RollbackAsync(CancellationToken.None).ConfigureAwait(false);
                    if (ex.SqlState == PostgresErrorCodes.DuplicateObject)
                    {
                        existing.Add(role.Name); // created meanwhile by someone else: theirs, left alone
                        continue;
                    }

                    failed[role.Name] = ex.MessageText;
                    warnings.Add($"role {role.Name} of {name} could not be created: {ex.MessageText}");
                    Log.CreateFailed(_logger, role.Name, name, ex.MessageText);
                }
            }
        }

        var granted = new List<string>();
        var createdSet = created.ToHashSet(StringComparer.Ordinal);
        foreach (var membership in script.Memberships)
        {
            var absent = new[] { membership.Role, membership.Member }.FirstOrDefault(r => !roles.Contains(r));
            if (absent is not null)
            {
                warnings.Add($"membership {membership} of {name} not granted: role {absent} does not exist on this server");
                continue;
            }

            if (members.Contains((membership.Role, membership.Member)))
            {
                continue;
            }

            if (!createdSet.Contains(membership.Role) && !createdSet.Contains(membership.Member))
            {
                warnings.Add($"membership {membership} of {name} is not on this server and was not granted, because both roles already existed and existing roles are left as they are (GRANT {GlobalsSql.Identifier(membership.Role)} TO {GlobalsSql.Identifier(membership.Member)} adds it)");
                continue;
            }

            try
            {
                await ExecuteAsync(db, GlobalsSql.Grant(membership), null, cancellationToken).ConfigureAwait(false);
                members.Add((membership.Role, membership.Member));
                granted.Add(membership.ToString());
            }
            catch (PostgresException ex)
            {
                warnings.Add($"membership {membership} of {name} could not be granted: {ex.MessageText}");
            }
        }

        foreach (var grant in script.ParameterGrants.Where(g => createdSet.Contains(g.Grantee)))
        {
            try
            {
                await ExecuteAsync(db, GlobalsSql.Grant(grant), null, cancellationToken).ConfigureAwait(false);
            }
            catch (PostgresException ex)
            {
                warnings.Add($"{string.Join(", ", grant.Privileges)} on parameter {string.Join(", ", grant.Parameters)} for role {grant.Grantee} could not be granted: {ex.MessageText}");
            }
        }

        if (created.Count > 0)
        {
            var superusers = script.Roles.Where(r => createdSet.Contains(r.Name) && r.IsSuperuser).Select(r => r.Name).ToList();
            warnings.Insert(0, $"created {created.Count} role(s) missing on this server from {name}"
                + (script.WithoutRolePasswords ? "" : " with their password hashes from the backup")
                + $": {string.Join(", ", created)}"
                + (superusers.Count > 0 ? $" (SUPERUSER: {string.Join(", ", superusers)})" : "")
                + (granted.Count > 0 ? $"; memberships granted: {string.Join(", ", granted)}" : ""));
        }

        var withoutPassword = script.Roles.Where(r => createdSet.Contains(r.Name) && r.CanLogin && r.PasswordHash is null).Select(r => r.Name).ToList();
        if (script.WithoutRolePasswords && withoutPassword.Count > 0)
        {
            warnings.Add($"{name} was taken with --no-role-passwords (the backup role could not read pg_authid): {string.Join(", ", withoutPassword)} have NO password now; set one with ALTER ROLE … PASSWORD before VeloZ connects");
        }

        var missingTablespaces = script.Tablespaces.Count == 0 ? [] : script.Tablespaces.Except(await TablespacesAsync(db, cancellationToken).ConfigureAwait(false), StringComparer.Ordinal).ToList();
        if (missingTablespaces.Count > 0)
        {
            warnings.Add($"tablespaces in {name} are not restored by the agent: {string.Join(", ", missingTablespaces)} (create them by hand, with a directory on this server, if the dump's tables use them)");
        }

        if (script.NotRestored.Count > 0)
        {
            warnings.Add($"not restored from {name}: {string.Join("; ", script.NotRestored)}");
        }

        Log.Summary(_logger, name, created.Count, existing.Count, failed.Count, string.Join(", ", existing), current);
        return new GlobalsRestoreReport(name, created, existing, failed, warnings, null, script.Roles.Select(r => r.Name).ToHashSet(StringComparer.Ordinal));
    }

    private static async Task<(HashSet<string> Roles, string Current)> RolesAsync(NpgsqlConnection db, CancellationToken cancellationToken)
    {
        var roles = new HashSet<string>(StringComparer.Ordinal);
        var current = "";
        var command = new NpgsqlCommand("SELECT rolname::text, rolname = current_user FROM pg_catalog.pg_roles", db);
        await using (command.ConfigureAwait(false))
        {
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    roles.Add(reader.GetString(0));
                    if (reader.GetBoolean(1))
                    {
                        current = reader.GetString(0);
                    }
                }
            }
        }

        return (roles, current);
    }

    private static async Task<List<string>> TablespacesAsync(NpgsqlConnection db, CancellationToken cancellationToken)
    {
        var names = new List<string>();
        var command = new NpgsqlCommand("SELECT spcname::text FROM pg_catalog.pg_tablespace", db);
        await using (command.ConfigureAwait(false))
        {
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    names.Add(reader.GetString(0));
                }
            }
        }

        return names;
    }

    private static async Task<HashSet<(string Role, string Member)>> MembershipsAsync(NpgsqlConnection db, CancellationToken cancellationToken)
    {
        var members = new HashSet<(string, string)>();
        var command = new NpgsqlCommand(
            "SELECT r.rolname::text, m.rolname::text FROM pg_catalog.pg_auth_members a " +
            "JOIN pg_catalog.pg_roles r ON r.oid = a.roleid JOIN pg_catalog.pg_roles m ON m.oid = a.member", db);
        await using (command.ConfigureAwait(false))
        {
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    members.Add((reader.GetString(0), reader.GetString(1)));
                }
            }
        }

        return members;
    }

    private static async Task ExecuteAsync(NpgsqlConnection db, string sql, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand(sql, db, transaction);
        await using (command.ConfigureAwait(false))
        {
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    [GeneratedRegex("role \"(?<role>(?:[^\"]|\"\")+)\" does not exist")]
    private static partial Regex MissingRoleRegex();

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Restore.GlobalsRoleCreated, LogLevel.Information, "globals: created role {Role} from {Artifact} (login {Login}, password hash {WithPassword})")]
        public static partial void Created(ILogger logger, string role, string artifact, bool login, bool withPassword);

        [LoggerMessage(LogEvents.Restore.GlobalsRoleFailed, LogLevel.Warning, "globals: role {Role} of {Artifact} could not be created: {Reason}")]
        public static partial void CreateFailed(ILogger logger, string role, string artifact, string reason);

        [LoggerMessage(LogEvents.Restore.GlobalsSummary, LogLevel.Information, "globals: {Artifact}: {Created} roles created, {Existing} already on the server and left as they are ({ExistingNames}), {Failed} failed; connected as {User}")]
        public static partial void Summary(ILogger logger, string artifact, int created, int existing, int failed, string existingNames, string user);

        [LoggerMessage(LogEvents.Restore.NoGlobals, LogLevel.Information, "globals: {Dump}: {Why}")]
        public static partial void NoGlobals(ILogger logger, string dump, string why);
    }
}
