namespace VelozBackupAgent.IntegrationTests.Systemd;

/// <summary>Files of the repository the tests run from (the unit, the scripts).</summary>
public static class RepoPaths
{
    /// <summary>The directory holding VelozBackupAgent.sln, found upwards from the test binaries.</summary>
    public static string Root
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "VelozBackupAgent.sln")))
                {
                    return dir.FullName;
                }
            }

            throw new InvalidOperationException($"VelozBackupAgent.sln not found above {AppContext.BaseDirectory}");
        }
    }

    public static string Unit => Path.Combine(Root, "systemd", "veloz-backup.service");

    /// <summary>systemd-analyze, which scripts/test.sh installs (Debian package systemd) when it is missing.</summary>
    public static string SystemdAnalyze =>
        global::VelozBackupAgent.Sources.ChildProcess.ResolveExecutable("systemd-analyze")
        ?? throw new InvalidOperationException("systemd-analyze is not installed: run the tests with ./scripts/test.sh, which installs the systemd package");
}
