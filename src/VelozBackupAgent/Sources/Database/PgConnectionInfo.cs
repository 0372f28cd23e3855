using System.Globalization;
using Npgsql;

namespace VelozBackupAgent.Sources.Database;

/// <summary>
/// The database connection of <c>Backup:Database:ConnectionString</c> (Npgsql format), resolved once so the
/// Npgsql pre-check and pg_dump reach the same server as the same user. pg_dump gets it as libpq environment
/// variables (<see cref="ChildEnvironment"/>): the password only ever travels in <c>PGPASSWORD</c>, never on a
/// command line, and <see cref="ToString"/> never shows it.
/// </summary>
internal sealed class PgConnectionInfo
{
    /// <summary>What libpq is told the client is, so a DBA sees the dump in <c>pg_stat_activity</c>.</summary>
    public const string DefaultApplicationName = "veloz-backup";

    private static readonly NpgsqlConnectionStringBuilder Defaults = new();

    private readonly NpgsqlConnectionStringBuilder _builder;
    private readonly Dictionary<string, string?> _environment;

    private PgConnectionInfo(NpgsqlConnectionStringBuilder builder, Dictionary<string, string?> environment, string host, int port, string database, string user, string? password, string? passfile)
    {
        _builder = builder;
        _environment = environment;
        Host = host;
        Port = port;
        Database = database;
        User = user;
        Password = password;
        Passfile = passfile;
    }

    /// <summary>Host name, address or Unix socket directory; several comma-separated for failover.</summary>
    public string Host { get; }

    public int Port { get; }

    /// <summary>The database dumped (Npgsql's and libpq's default: the user name).</summary>
    public string Database { get; }

    public string User { get; }

    /// <summary>From the connection string, else the agent's <c>PGPASSWORD</c>; null leaves it to a password file.</summary>
    public string? Password { get; }

    /// <summary>From the connection string (<c>Passfile</c>), else the agent's <c>PGPASSFILE</c>; null means <c>~/.pgpass</c>.</summary>
    public string? Passfile { get; }

    /// <summary>Where the database is, for messages: <c>database veloz at 127.0.0.1:5432</c>.</summary>
    public string Describe() => $"database {Database} at {Where()}";

    /// <summary>Never contains the password.</summary>
    public override string ToString() => Describe();

    /// <summary>
    /// Parses <paramref name="connectionString"/>; <paramref name="environment"/> looks up the agent's variables
    /// (PGUSER, PGPASSWORD, PGPASSFILE), which fill in what the connection string leaves out, as libpq would.
    /// Throws <see cref="BackupSourceException"/> naming the key, never echoing the string (it may hold a password).
    /// </summary>
    public static PgConnectionInfo Parse(string? connectionString, Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        const string Key = "Backup:Database:ConnectionString";
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new BackupSourceException($"{Key} is empty");
        }

        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException ex)
        {
            // Npgsql's messages name the keyword ("Couldn't set port") or a position, never a value.
            throw new BackupSourceException($"{Key} is not a valid Npgsql connection string: {ex.Message.Split(" (Parameter", 2)[0]}", ex);
        }

        if (string.IsNullOrWhiteSpace(builder.Host))
        {
            throw new BackupSourceException($"{Key} has no Host (e.g. Host=localhost, or a Unix socket directory such as Host=/var/run/postgresql)");
        }

        var user = NonEmpty(builder.Username) ?? NonEmpty(environment("PGUSER")) ?? System.Environment.UserName;
        var database = NonEmpty(builder.Database) ?? user;
        var password = NonEmpty(builder.Password) ?? NonEmpty(environment("PGPASSWORD"));
        var passfile = NonEmpty(builder.Passfile) ?? NonEmpty(environment("PGPASSFILE"));
        var (hosts, ports) = SplitHosts(builder.Host, builder.Port);

        var env = new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            ["PGHOST"] = hosts,
            ["PGPORT"] = ports,
            ["PGDATABASE"] = database,
            ["PGUSER"] = user,
            ["PGSSLMODE"] = SslMode(builder.SslMode),
            ["PGCONNECT_TIMEOUT"] = builder.Timeout.ToString(CultureInfo.InvariantCulture),
            ["PGAPPNAME"] = NonEmpty(builder.ApplicationName) ?? DefaultApplicationName,
            ["PGPASSWORD"] = password,
            ["PGPASSFILE"] = passfile,

            // A service file or a host address in the agent's environment would send pg_dump somewhere else than
            // the server the pre-check connected to: the connection string alone decides.
            ["PGSERVICE"] = null,
            ["PGHOSTADDR"] = null,
        };
        Optional(env, "PGSSLROOTCERT", builder.RootCertificate);
        Optional(env, "PGSSLCERT", builder.SslCertificate);
        Optional(env, "PGSSLKEY", builder.SslKey);
        Optional(env, "PGOPTIONS", builder.Options);
        Optional(env, "PGTARGETSESSIONATTRS", TargetSessionAttributes(builder.TargetSessionAttributes));
        if (builder.KerberosServiceName != Defaults.KerberosServiceName)
        {
            env["PGKRBSRVNAME"] = builder.KerberosServiceName;
        }

        if (builder.GssEncryptionMode != Defaults.GssEncryptionMode)
        {
            env["PGGSSENCMODE"] = builder.GssEncryptionMode.ToString().ToLowerInvariant();
        }

        if (builder.ChannelBinding != Defaults.ChannelBinding)
        {
            env["PGCHANNELBINDING"] = builder.ChannelBinding.ToString().ToLowerInvariant();
        }

        if (password is null)
        {
            env.Remove("PGPASSWORD");
        }

        if (passfile is null)
        {
            env.Remove("PGPASSFILE");
        }

        return new PgConnectionInfo(builder, env, builder.Host, builder.Port, database, user, password, passfile);
    }

    /// <summary>
    /// The variables pg_dump is started with (added to, or removed from, the agent's environment): host, port,
    /// database, user, SSL and timeout settings, and the password when there is one.
    /// </summary>
    public IReadOnlyDictionary<string, string?> ChildEnvironment() => _environment;

    /// <summary>The connection string of the Npgsql pre-check: the configured one, resolved like pg_dump's, unpooled.</summary>
    public string PrecheckConnectionString()
    {
        var b = new NpgsqlConnectionStringBuilder(_builder.ConnectionString)
        {
            Username = User,
            Database = Database,
            Pooling = false,
            ApplicationName = NonEmpty(_builder.ApplicationName) ?? DefaultApplicationName,
        };
        if (Password is not null)
        {
            b.Password = Password;
        }

        if (Passfile is not null)
        {
            b.Passfile = Passfile;
        }

        return b.ConnectionString;
    }

    /// <summary>Removes the password from <paramref name="text"/> (a last line of defence for messages built from driver errors).</summary>
    public string Scrub(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Password is { Length: > 0 } p ? text.Replace(p, "***", StringComparison.Ordinal) : text;
    }

    private string Where() =>
        Host.StartsWith('/') ? $"{Host} (port {Port.ToString(CultureInfo.InvariantCulture)})"
        : Host.Contains(',', StringComparison.Ordinal) || HasPortSuffix(Host) ? Host
        : $"{Host}:{Port.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>
    /// Npgsql takes <c>Host=a:5433,b</c> (a port per host, else <c>Port</c>); libpq wants PGHOST=<c>a,b</c> and
    /// PGPORT=<c>5433,5432</c>. Unix socket directories and bracketed IPv6 addresses are kept as they are.
    /// </summary>
    internal static (string Hosts, string Ports) SplitHosts(string host, int defaultPort)
    {
        var hosts = new List<string>();
        var ports = new List<string>();
        foreach (var raw in host.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var (h, p) = SplitHost(raw, defaultPort);
            hosts.Add(h);
            ports.Add(p.ToString(CultureInfo.InvariantCulture));
        }

        return (string.Join(',', hosts), ports.Distinct(StringComparer.Ordinal).Count() == 1 ? ports[0] : string.Join(',', ports));
    }

    private static (string Host, int Port) SplitHost(string raw, int defaultPort)
    {
        if (raw.StartsWith('/'))
        {
            return (raw, defaultPort);
        }

        if (raw.StartsWith('['))
        {
            var close = raw.IndexOf(']', StringComparison.Ordinal);
            if (close > 0 && close + 1 < raw.Length && raw[close + 1] == ':'
                && int.TryParse(raw.AsSpan(close + 2), NumberStyles.None, CultureInfo.InvariantCulture, out var p6))
            {
                return (raw[1..close], p6);
            }

            return (close > 0 ? raw[1..close] : raw, defaultPort);
        }

        var colon = raw.LastIndexOf(':');
        if (colon > 0 && raw.IndexOf(':', StringComparison.Ordinal) == colon
            && int.TryParse(raw.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port))
        {
            return (raw[..colon], port);
        }

        return (raw, defaultPort);
    }

    private static bool HasPortSuffix(string host) => !host.StartsWith('/') && SplitHost(host, -1).Port != -1;

    private static string SslMode(Npgsql.SslMode mode) => mode switch
    {
        Npgsql.SslMode.Disable => "disable",
        Npgsql.SslMode.Allow => "allow",
        Npgsql.SslMode.Require => "require",
        Npgsql.SslMode.VerifyCA => "verify-ca",
        Npgsql.SslMode.VerifyFull => "verify-full",
        _ => "prefer",
    };

    /// <summary>Npgsql's target session attributes in libpq's spelling; libpq has no prefer-primary, so that one tries any.</summary>
    private static string? TargetSessionAttributes(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" => null,
        "any" or "preferprimary" or "prefer-primary" => "any",
        "primary" => "primary",
        "standby" => "standby",
        "preferstandby" or "prefer-standby" => "prefer-standby",
        "readwrite" or "read-write" => "read-write",
        "readonly" or "read-only" => "read-only",
        _ => null,
    };

    private static void Optional(Dictionary<string, string?> env, string name, string? value)
    {
        if (NonEmpty(value) is { } v)
        {
            env[name] = v;
        }
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}
