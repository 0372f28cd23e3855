using System.Globalization;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Restore;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Sources.Archives;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Pitr;

/// <summary>
/// The operating-system user a PostgreSQL data directory belongs to, and how to run the server's programs as it:
/// PostgreSQL refuses to run as root, so as root they run through <c>runuser -u &lt;user&gt; --</c>; as any other user
/// the agent runs them itself (and then owns the directories it restores, as the server requires).
/// </summary>
public sealed record ServerUser(string Name, int Uid, int Gid)
{
    /// <summary>True when the agent runs as root and may hand files to another user.</summary>
    public static bool AgentIsRoot => Owners.IsRoot;

    /// <summary>
    /// The owner of <paramref name="dataDirectory"/> if it exists, else of its parent, else the <c>postgres</c> user
    /// (a new host). Not root: the agent's own user, whoever owns the directory.
    /// </summary>
    public static ServerUser For(string dataDirectory)
    {
        var names = OwnerNames.Load();
        if (!AgentIsRoot)
        {
            var (uid, gid) = Owners.Current;
            return new ServerUser(names.User(uid) ?? Environment.UserName, uid, gid);
        }

        foreach (var path in new[] { dataDirectory, Path.GetDirectoryName(Path.GetFullPath(dataDirectory)) })
        {
            if (path is not null && FileStatus.TryStat(path, followLinks: true) is { } status && status.Uid != 0 && names.User(status.Uid) is { } owner)
            {
                return new ServerUser(owner, status.Uid, status.Gid);
            }
        }

        foreach (var line in File.Exists("/etc/passwd") ? File.ReadLines("/etc/passwd") : [])
        {
            var fields = line.Split(':');
            if (fields.Length > 3 && fields[0] == "postgres"
                && int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var uid)
                && int.TryParse(fields[3], NumberStyles.None, CultureInfo.InvariantCulture, out var gid))
            {
                return new ServerUser("postgres", uid, gid);
            }
        }

        throw new RestoreException($"cannot tell which user PostgreSQL runs as: {dataDirectory} does not exist and there is no postgres user (create the cluster's directory, owned by the server's user, or install PostgreSQL)");
    }

    /// <summary>A child spec that runs <paramref name="program"/> as this user.</summary>
    public ChildProcessSpec Spec(string program, IReadOnlyList<string> arguments, string displayName, IReadOnlyDictionary<string, string?>? environment = null, string? installHint = null) =>
        AgentIsRoot
            ? new ChildProcessSpec("runuser", ["-u", Name, "--", program, .. arguments], displayName) { Environment = environment ?? new Dictionary<string, string?>(), Inherit = InheritedVariables.Libpq, InstallHint = installHint }
            : new ChildProcessSpec(program, arguments, displayName) { Environment = environment ?? new Dictionary<string, string?>(), Inherit = InheritedVariables.Libpq, InstallHint = installHint };

    /// <summary>Runs <paramref name="program"/> as this user to its end; returns its stdout, throws <see cref="BackupSourceException"/> on failure.</summary>
    public async Task<string> RunAsync(string program, IReadOnlyList<string> arguments, string displayName, ILogger logger, CancellationToken cancellationToken,
        IReadOnlyDictionary<string, string?>? environment = null, string? installHint = null)
    {
        await using var child = ChildProcess.Start(Spec(program, arguments, displayName, environment, installHint), logger);
        return await child.ReadAllTextAsync(cancellationToken);
    }

    /// <summary>Gives <paramref name="path"/> and everything under it to this user (no-op unless the agent is root).</summary>
    public void Own(string path)
    {
        if (!AgentIsRoot)
        {
            return;
        }

        Owners.LChown(path, Uid, Gid);
        if (Directory.Exists(path) && (File.GetAttributes(path) & FileAttributes.ReparsePoint) == 0)
        {
            foreach (var entry in Directory.EnumerateFileSystemEntries(path, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
            {
                Owners.LChown(entry, Uid, Gid);
            }
        }
    }
}
