using System.Runtime.Versioning;
using Microsoft.Extensions.Hosting.WindowsServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.EventLog;

namespace VelozBackupAgent.Host.Daemon;

/// <summary>
/// The daemon as a Windows service (deploy/install.ps1 registers it): the service name, and warnings and errors
/// also to the Application event log (source <see cref="Name"/>) besides Backup:Log:File, so the machine's
/// usual monitoring sees a failed backup. Nothing here runs on Linux or in a console.
/// </summary>
internal static class WindowsService
{
    /// <summary>The service and event source name.</summary>
    public const string Name = "VelozBackupAgent";

    /// <summary>Adds the Event Log provider (warnings and above) when this process runs under the service control manager.</summary>
    public static void AddEventLog(ILoggingBuilder logging)
    {
        ArgumentNullException.ThrowIfNull(logging);
        if (OperatingSystem.IsWindows() && WindowsServiceHelpers.IsWindowsService())
        {
            AddEventLogCore(logging);
        }
    }

    [SupportedOSPlatform("windows")]
    private static void AddEventLogCore(ILoggingBuilder logging) =>
        logging.AddEventLog(new EventLogSettings
        {
            SourceName = Name,
            LogName = "Application",
            Filter = (_, level) => level >= LogLevel.Warning,
        });
}
