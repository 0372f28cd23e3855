using System.Globalization;

namespace VelozBackupAgent.Sources.Archives;

/// <summary>
/// User and group names for archive entries, read from <c>/etc/passwd</c> and <c>/etc/group</c>. GNU tar
/// restores ownership by name first (so a rebuilt machine with other numeric ids still gets the right
/// owner) and falls back to the numeric id, which every entry also carries. Ids without a local name
/// (NSS/LDAP users) get no name and restore by number.
/// </summary>
internal sealed class OwnerNames
{
    private readonly Dictionary<int, string> _users;
    private readonly Dictionary<int, string> _groups;

    public OwnerNames(Dictionary<int, string> users, Dictionary<int, string> groups)
    {
        _users = users;
        _groups = groups;
    }

    /// <summary>An empty map: entries carry numeric ids only.</summary>
    public static OwnerNames None { get; } = new([], []);

    /// <summary>Reads the local account databases; unreadable ones just give no names.</summary>
    public static OwnerNames Load(string passwd = "/etc/passwd", string group = "/etc/group") =>
        new(ReadIds(passwd), ReadIds(group));

    public string? User(int uid) => _users.GetValueOrDefault(uid);

    public string? Group(int gid) => _groups.GetValueOrDefault(gid);

    /// <summary>Parses <c>name:password:id:…</c> lines; the first name for an id wins, as getpwuid does.</summary>
    internal static Dictionary<int, string> Parse(IEnumerable<string> lines)
    {
        var ids = new Dictionary<int, string>();
        foreach (var line in lines)
        {
            var fields = line.Split(':');
            if (fields.Length >= 3 && fields[0].Length > 0 && !fields[0].StartsWith('#')
                && int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var id))
            {
                ids.TryAdd(id, fields[0]);
            }
        }

        return ids;
    }

    private static Dictionary<int, string> ReadIds(string path)
    {
        try
        {
            return Parse(File.ReadLines(path));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
