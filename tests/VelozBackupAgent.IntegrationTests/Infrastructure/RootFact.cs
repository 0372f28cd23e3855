namespace VelozBackupAgent.IntegrationTests.Infrastructure;

/// <summary>A test that needs root (e.g. to mount a tiny tmpfs for a real full disk). CI runs as root.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
        {
            Skip = "needs root on Linux (mounts a tmpfs); CI runs as root";
        }
    }
}
