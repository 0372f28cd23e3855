using Microsoft.Extensions.Logging;
using Quartz;
using VelozBackupAgent.Host.Cli;
using VelozBackupAgent.Telemetry;
using VelozBackupAgent.Verification;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Host.Daemon;

/// <summary>
/// The scheduled restore drill (<c>Backup:Verify:DrillSchedule</c>, monthly by default): the whole verification
/// checklist with a real test restore of every kind into scratch locations, timed against the RTOs and recorded
/// in <c>.state/restore-test.json</c>, which the restore-test metrics report; checksum mismatches it finds count
/// in <c>veloz_backup_integrity_errors_total</c>.
/// </summary>
internal sealed partial class DrillJob(AgentContext agent, DaemonStopping stopping, BackupMetrics metrics, ILogger<DrillJob> logger) : IJob
{
    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (stopping.Stopping)
        {
            return;
        }

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, context.CancellationToken, stopping.Abort);
        try
        {
            var verifier = agent.CreateVerifier();
            verifier.IntegrityError += metrics.RecordIntegrityError;
            var report = await verifier.RunAsync(new VerifyRequest(TestRestore: true, ReadData: false), linked.Token).ConfigureAwait(false);
            var failed = report.Checks.Where(c => c.Status == CheckStatus.Fail).Select(c => $"{c.Item}: {c.Detail}").ToList();
            if (failed.Count == 0)
            {
                Log.Passed(logger, report.TestRestore?.DurationSeconds.GetValueOrDefault("total") ?? 0);
            }
            else
            {
                Log.Failed(logger, failed.Count, string.Join(" | ", failed));
            }
        }
        catch (OperationCanceledException) when (linked.IsCancellationRequested)
        {
            // Stopping: the drill runs again at its next fire; scratch copies are removed by the verifier.
        }
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Verify.DrillPassed, LogLevel.Information, "restore drill passed: every kind restored into scratch locations in {Seconds:0.0} s")]
        public static partial void Passed(ILogger logger, double seconds);

        [LoggerMessage(LogEvents.Verify.DrillFailed, LogLevel.Error, "restore drill FAILED {Count} checks: {Failures}")]
        public static partial void Failed(ILogger logger, int count, string failures);
    }
}
