using System.Globalization;
using Npgsql;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Database;

namespace VelozBackupAgent.Pitr;

/// <summary>What the server says about itself, read once per receiver start or base backup.</summary>
/// <param name="Version">Server version (major decides tool compatibility).</param>
/// <param name="VersionNum">server_version_num, e.g. 150018.</param>
/// <param name="SystemIdentifier">The cluster's system identifier: WAL of another cluster must never mix with this one's.</param>
/// <param name="WalLevel">minimal, replica or logical.</param>
/// <param name="MaxWalSenders">max_wal_senders.</param>
/// <param name="MaxReplicationSlots">max_replication_slots.</param>
/// <param name="MaxSlotWalKeepSize">max_slot_wal_keep_size as the server prints it (-1: unlimited).</param>
/// <param name="SegmentSize">wal_segment_size in bytes.</param>
/// <param name="InRecovery">True on a standby.</param>
/// <param name="CanReplicate">The connecting role has REPLICATION (or is a superuser).</param>
/// <param name="User">The connecting role.</param>
public sealed record ServerFacts(
    PgVersion Version,
    int VersionNum,
    ulong SystemIdentifier,
    string WalLevel,
    int MaxWalSenders,
    int MaxReplicationSlots,
    string MaxSlotWalKeepSize,
    long SegmentSize,
    bool InRecovery,
    bool CanReplicate,
    string User);

/// <summary>A physical replication slot as <c>pg_replication_slots</c> shows it.</summary>
/// <param name="Name">slot_name.</param>
/// <param name="RestartLsn">Where it holds WAL from; for a slot a receiver streams through, what the receiver flushed. Invalid before first use.</param>
/// <param name="Active">A walsender uses it now.</param>
/// <param name="ActivePid">That walsender's pid.</param>
/// <param name="WalStatus">reserved, extended, unreserved or lost (PostgreSQL 13+).</param>
/// <param name="Physical">False for a logical slot of that name (which the receiver cannot use).</param>
public sealed record SlotFacts(string Name, Lsn RestartLsn, bool Active, int? ActivePid, string? WalStatus, bool Physical);

/// <summary>One poll of the server while streaming: where its WAL is and what the slot holds back.</summary>
/// <param name="ServerLsn">pg_current_wal_lsn() (a standby: the last WAL it received).</param>
/// <param name="Slot">The slot, or null when it does not exist.</param>
public sealed record ServerPosition(Lsn ServerLsn, SlotFacts? Slot);

/// <summary>
/// The SQL side of PITR: the facts a receiver or base backup needs before it starts, the settings that are wrong (one
/// line each, naming the setting to change), the slot, and the server's WAL position. Connects with the configured
/// connection string (Npgsql), never showing its password.
/// </summary>
public sealed class PgServer
{
    private readonly PgConnectionInfo _connection;

    internal PgServer(PgConnectionInfo connection) => _connection = connection;

    /// <summary>Where the server is, for messages (never the password).</summary>
    public string Describe() => _connection.Describe();

    /// <summary>Reads <see cref="ServerFacts"/>; a server that cannot be reached is a <see cref="BackupSourceException"/> with the reason.</summary>
    public async Task<ServerFacts> ProbeAsync(CancellationToken cancellationToken)
    {
        const string Sql = """
            SELECT current_setting('server_version_num')::int,
                   (SELECT system_identifier FROM pg_control_system())::text,
                   current_setting('wal_level'),
                   current_setting('max_wal_senders')::int,
                   current_setting('max_replication_slots')::int,
                   current_setting('max_slot_wal_keep_size'),
                   (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),
                   pg_is_in_recovery(),
                   coalesce((SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), false),
                   current_user
            """;
        return await WithConnectionAsync(async db =>
        {
            await using var command = new NpgsqlCommand(Sql, db);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            var number = reader.GetInt32(0);
            var version = new PgVersion(number / 10000, db.ServerVersion.Split(' ', 2)[0]);
            return new ServerFacts(
                version,
                number,
                ulong.Parse(reader.GetString(1), NumberStyles.None, CultureInfo.InvariantCulture),
                reader.GetString(2),
                reader.GetInt32(3),
                reader.GetInt32(4),
                reader.GetString(5),
                reader.GetInt64(6),
                reader.GetBoolean(7),
                reader.GetBoolean(8),
                reader.GetString(9));
        }, cancellationToken);
    }

    /// <summary>
    /// What keeps the server from streaming WAL to the agent, one line each naming the setting to change; empty when
    /// nothing does. (A missing pg_hba.conf replication entry only shows when the receiver connects.)
    /// </summary>
    public IReadOnlyList<string> Problems(ServerFacts facts)
    {
        ArgumentNullException.ThrowIfNull(facts);
        var where = _connection.Describe();
        var problems = new List<string>();
        if (facts.Version.Major < 15)
        {
            problems.Add($"{where} runs PostgreSQL {facts.Version.Text}: point-in-time recovery needs PostgreSQL 15 or newer");
        }

        if (facts.WalLevel == "minimal")
        {
            problems.Add($"wal_level is minimal on {where}: set wal_level = replica (and max_wal_senders = 10) in postgresql.conf and restart PostgreSQL");
        }

        if (facts.MaxWalSenders < 2)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture,
                $"max_wal_senders is {facts.MaxWalSenders} on {where}: the receiver and a base backup need 2 (3 leaves one spare): set it in postgresql.conf and restart PostgreSQL"));
        }

        if (facts.MaxReplicationSlots < 1)
        {
            problems.Add($"max_replication_slots is 0 on {where}: set it to at least 1 in postgresql.conf and restart PostgreSQL");
        }

        if (!facts.CanReplicate)
        {
            problems.Add($"role {facts.User} may not stream WAL from {where}: as a superuser run ALTER ROLE {QuoteIdent(facts.User)} REPLICATION");
        }

        return problems;
    }

    /// <summary>The slot named <paramref name="slot"/>, or null when it does not exist.</summary>
    public Task<SlotFacts?> SlotAsync(string slot, CancellationToken cancellationToken) =>
        WithConnectionAsync(db => ReadSlotAsync(db, slot, cancellationToken), cancellationToken);

    /// <summary>
    /// Creates the physical slot, reserving WAL at once (so nothing written from now on can be recycled before the
    /// receiver streams it). Returns false when it already existed.
    /// </summary>
    public Task<bool> CreateSlotAsync(string slot, CancellationToken cancellationToken) =>
        WithConnectionAsync(async db =>
        {
            try
            {
                await using var command = new NpgsqlCommand("SELECT pg_create_physical_replication_slot(@slot, true)", db);
                command.Parameters.AddWithValue("slot", slot);
                await command.ExecuteNonQueryAsync(cancellationToken);
                return true;
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.DuplicateObject)
            {
                return false;
            }
            catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.InsufficientPrivilege or PostgresErrorCodes.ObjectNotInPrerequisiteState)
            {
                throw new BackupSourceException($"cannot create the replication slot {slot} on {_connection.Describe()}: {ex.MessageText}" + Hint(ex), ex);
            }
        }, cancellationToken);

    /// <summary>Drops the slot if it exists (a restore recreates it for the new timeline). Refuses an active slot.</summary>
    public Task DropSlotAsync(string slot, CancellationToken cancellationToken) =>
        WithConnectionAsync(async db =>
        {
            await using var command = new NpgsqlCommand("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = @slot", db);
            command.Parameters.AddWithValue("slot", slot);
            await command.ExecuteNonQueryAsync(cancellationToken);
            return true;
        }, cancellationToken);

    /// <summary>The server's WAL position and the slot, in one round trip on <paramref name="db"/>.</summary>
    public static async Task<ServerPosition> PositionAsync(NpgsqlConnection db, string slot, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(db);
        await using var command = new NpgsqlCommand(
            "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END)::text", db);
        var lsn = await command.ExecuteScalarAsync(cancellationToken) as string;
        var facts = await ReadSlotAsync(db, slot, cancellationToken);
        return new ServerPosition(lsn is not null && Lsn.TryParse(lsn, out var l) ? l : Lsn.Invalid, facts);
    }

    /// <summary>An open, unpooled connection for a long-lived poll (the receiver's monitor).</summary>
    public async Task<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connectionString = _connection.PrecheckConnectionString();
        var db = new NpgsqlConnection(connectionString);
        try
        {
            await db.OpenAsync(cancellationToken);
            return db;
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException && !cancellationToken.IsCancellationRequested)
        {
            await db.DisposeAsync();
            throw new BackupSourceException(DatabaseSource.ConnectFailure(_connection, new NpgsqlConnectionStringBuilder(connectionString).Timeout, ex), ex);
        }
    }

    private static async Task<SlotFacts?> ReadSlotAsync(NpgsqlConnection db, string slot, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "SELECT restart_lsn::text, active, active_pid, wal_status, slot_type = 'physical' FROM pg_replication_slots WHERE slot_name = @slot", db);
        command.Parameters.AddWithValue("slot", slot);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        var restart = reader.IsDBNull(0) ? Lsn.Invalid : Lsn.Parse(reader.GetString(0));
        return new SlotFacts(slot, restart, reader.GetBoolean(1), reader.IsDBNull(2) ? null : reader.GetInt32(2),
            reader.IsDBNull(3) ? null : reader.GetString(3), reader.GetBoolean(4));
    }

    private async Task<T> WithConnectionAsync<T>(Func<NpgsqlConnection, Task<T>> body, CancellationToken cancellationToken)
    {
        await using var db = await OpenAsync(cancellationToken);
        try
        {
            return await body(db);
        }
        catch (PostgresException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new BackupSourceException(_connection.Scrub($"{_connection.Describe()}: {ex.MessageText}{Hint(ex)}"), ex);
        }
        catch (NpgsqlException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new BackupSourceException(_connection.Scrub($"{_connection.Describe()}: {ex.Message.Split('\n')[0].Trim()}"), ex);
        }
    }

    private static string Hint(PostgresException ex) => ex.SqlState switch
    {
        PostgresErrorCodes.InsufficientPrivilege => " (the role needs REPLICATION: ALTER ROLE … REPLICATION)",
        PostgresErrorCodes.ObjectNotInPrerequisiteState => " (wal_level must be replica and max_replication_slots at least 1)",
        _ => "",
    };

    private static string QuoteIdent(string name) =>
        name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_') ? name : "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}
