using System.Collections;
using System.Diagnostics;

namespace VelozBackupAgent.Sources;

/// <summary>Which groups of the agent's own variables a child inherits, on top of <see cref="ChildEnvironment.Common"/>.</summary>
[Flags]
public enum InheritedVariables
{
    /// <summary>Only the common variables (PATH, HOME, locale, TZ, …).</summary>
    Common = 0,

    /// <summary>libpq's <c>PG*</c> variables (PGPASSFILE, PGSSLROOTCERT, PGSERVICEFILE, …) except <c>PGPASSWORD</c>, which only ever comes from the spec.</summary>
    Libpq = 1,

    /// <summary><c>GNUPGHOME</c>.</summary>
    Gnupg = 2,

    /// <summary>What <c>systemctl</c>/<c>sudo</c> in an operator's service command may need: the D-Bus addresses and <c>XDG_RUNTIME_DIR</c>, <c>SHELL</c>, <c>TERM</c>.</summary>
    Service = 4,
}

/// <summary>
/// The environment of every child the agent starts, built from an allow-list: the agent's environment holds S3
/// credentials (<c>AWS_SECRET_ACCESS_KEY</c>), every <c>Backup__*</c> override (a connection string with its
/// password among them) and whatever the service manager put there, and none of that is a child's business. A child
/// gets the <see cref="Common"/> variables, the groups its spec asks for (<see cref="InheritedVariables"/>), and then
/// the spec's own variables (which win; a null value removes one). Nothing else is inherited.
/// </summary>
public static class ChildEnvironment
{
    /// <summary>Every child gets these when the agent has them.</summary>
    public static readonly IReadOnlyList<string> Common =
    [
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",

        // The server a PITR restore starts runs `veloz-backup pg-wal-get` as its restore_command: a framework-dependent
        // agent installed outside /usr/share/dotnet finds its runtime here.
        "DOTNET_ROOT",

        // Windows cannot start much without these.
        "SYSTEMROOT", "WINDIR", "COMSPEC", "PATHEXT", "TEMP", "TMP", "USERPROFILE", "APPDATA", "LOCALAPPDATA", "PROGRAMDATA",
    ];

    /// <summary>Every variable whose name starts with this is common too (LC_ALL, LC_CTYPE, …).</summary>
    public const string LocalePrefix = "LC_";

    private static readonly string[] ServiceNames = ["XDG_RUNTIME_DIR", "DBUS_SYSTEM_BUS_ADDRESS", "DBUS_SESSION_BUS_ADDRESS", "SHELL", "TERM"];

    private static StringComparer NameComparer => OperatingSystem.IsWindows() ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal;

    private static StringComparison NameComparison => OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    /// <summary>Whether a variable of the agent called <paramref name="name"/> passes to a child that inherits <paramref name="groups"/>.</summary>
    public static bool Inherits(string name, InheritedVariables groups)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (Common.Contains(name, NameComparer) || name.StartsWith(LocalePrefix, NameComparison))
        {
            return true;
        }

        if (groups.HasFlag(InheritedVariables.Libpq) && name.StartsWith("PG", NameComparison) && !name.Equals("PGPASSWORD", NameComparison))
        {
            return true;
        }

        if (groups.HasFlag(InheritedVariables.Gnupg) && name.Equals("GNUPGHOME", NameComparison))
        {
            return true;
        }

        return groups.HasFlag(InheritedVariables.Service) && ServiceNames.Contains(name, NameComparer);
    }

    /// <summary>The child's whole environment: the allowed part of <paramref name="agent"/>, then <paramref name="overrides"/>.</summary>
    public static Dictionary<string, string> Build(IEnumerable<KeyValuePair<string, string?>> agent, InheritedVariables groups, IReadOnlyDictionary<string, string?> overrides)
    {
        ArgumentNullException.ThrowIfNull(agent);
        ArgumentNullException.ThrowIfNull(overrides);
        var result = new Dictionary<string, string>(NameComparer);
        foreach (var (name, value) in agent)
        {
            if (value is not null && Inherits(name, groups))
            {
                result[name] = value;
            }
        }

        foreach (var (name, value) in overrides)
        {
            if (value is null)
            {
                result.Remove(name);
            }
            else
            {
                result[name] = value;
            }
        }

        return result;
    }

    /// <summary>Replaces <paramref name="info"/>'s environment (a copy of the agent's, by default) with <see cref="Build"/>'s.</summary>
    public static void Apply(ProcessStartInfo info, InheritedVariables groups, IReadOnlyDictionary<string, string?> overrides)
    {
        ArgumentNullException.ThrowIfNull(info);
        var built = Build(AgentVariables(), groups, overrides);
        info.Environment.Clear();
        foreach (var (name, value) in built)
        {
            info.Environment[name] = value;
        }
    }

    private static IEnumerable<KeyValuePair<string, string?>> AgentVariables()
    {
        foreach (DictionaryEntry entry in System.Environment.GetEnvironmentVariables())
        {
            if (entry.Key is string name)
            {
                yield return new KeyValuePair<string, string?>(name, entry.Value as string);
            }
        }
    }
}
