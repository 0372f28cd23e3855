using System.CommandLine;
using System.Globalization;
using VelozBackupAgent.Restore;

namespace VelozBackupAgent.Host.Cli;

/// <summary><c>restore wal|config|database|secrets|full</c>: the runbook's procedures.</summary>
internal static class RestoreVerbs
{
    public static Command Restore(VerbContext ctx)
    {
        var command = new Command("restore",
            "Restore an artifact the way the disaster-recovery runbook does: verify its checksum first, prepare everything beside the live copy, " +
            "then stop VeloZ (Backup:Restore:StopCommand), switch over, start it and wait for Backup:Restore:HealthUrl.");
        command.Subcommands.Add(Kind(ctx, BackupKinds.Wal,
            "Rebuild the WAL directory exactly as a sync's manifest recorded it (the newest, or the newest at or before --at, e.g. just before an accidental deletion). " +
            "The directory is assembled and verified beside the target and swapped in; the one it replaces is kept as <dir>.pre-restore-<time>."));
        command.Subcommands.Add(Kind(ctx, BackupKinds.Config, "Extract a configuration archive into Backup:Config:Root (or --target), keeping modes (and owners when run as root)."));
        command.Subcommands.Add(Kind(ctx, BackupKinds.Database,
            "pg_restore a dump into a scratch database, then swap it in for the configured database (--yes) or keep it side by side (--into NAME). Reports tables and rows."));
        command.Subcommands.Add(Kind(ctx, BackupKinds.Secrets, "gpg --decrypt with the agent's keyring and extract into Backup:Secrets:Directory (or --target): files 0600, owner Backup:Restore:Owner."));
        command.Subcommands.Add(Pitr(ctx));
        command.Subcommands.Add(Full(ctx));
        return command;
    }

    private static Command Pitr(VerbContext ctx)
    {
        var time = new Option<string?>("--target-time") { Description = "Recover to this time: the last commit at or before it is kept (ISO 8601; without a zone it is UTC), e.g. 2026-11-23T09:55:00Z" };
        var lsn = new Option<string?>("--target-lsn") { Description = "Recover up to and including this WAL position, e.g. 0/5000060" };
        var xid = new Option<string?>("--target-xid") { Description = "Recover up to and including the commit of this transaction id" };
        var name = new Option<string?>("--target-name") { Description = "Recover to this restore point (pg_create_restore_point)" };
        var timeline = new Option<string?>("--target-timeline") { Description = "Recover along this timeline (default: the newest stored timeline that descends from the base backup)" };
        var baseName = new Option<string?>("--base") { Description = "Start from this base backup (base_YYYYMMDD_HHMMSS) instead of the newest one old enough for the target" };
        var from = new Option<string?>("--from") { Description = "Take the base backup and WAL from local or s3 (default: the local store, else S3)" };
        from.AcceptOnlyFromAmong("local", "s3");
        var yes = new Option<bool>("--yes") { Description = "Confirm: restore the live cluster (Backup:Pitr:DataDirectory); the data directory it replaces is kept as <PGDATA>.pre-restore-<time>" };
        var targetDir = new Option<string?>("--target-dir") { Description = "Restore into this empty directory instead, recovered by a temporary server on a free port and stopped again; the live cluster is not touched" };
        var noService = new Option<bool>("--no-service") { Description = "Do not stop and start VeloZ nor wait for its health URL (PostgreSQL itself is still stopped and started)" };
        var json = JsonOption();
        var command = new Command("pitr",
            "Point-in-time recovery of the PostgreSQL cluster (the runbook's Option A): the base backup and every WAL file it needs are verified and staged before " +
            "anything stops; then VeloZ and PostgreSQL are stopped, the data directory moved aside (never deleted), the base extracted with the recovery settings, " +
            "PostgreSQL started until it replayed to the target and promoted, the replication slot created again, VeloZ started, and a new base backup taken. " +
            "No target: the end of the stored WAL. Times without a zone are UTC.")
        {
            time, lsn, xid, name, timeline, baseName, from, yes, targetDir, noService, json,
        };
        command.SetAction((parse, ct) => ctx.RunAsync(parse, daemon: false, async agent =>
        {
            if (!agent.Options.Pitr.Enabled)
            {
                throw new ArgumentException("point-in-time recovery is disabled: set Backup:Pitr:Enabled to true (and back the cluster up with it first)");
            }

            var target = VelozBackupAgent.Pitr.PitrTarget.Parse(parse.GetValue(time), parse.GetValue(lsn), parse.GetValue(xid), parse.GetValue(name));
            uint? tl = parse.GetValue(timeline) is { } t
                ? uint.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : throw new ArgumentException($"--target-timeline: not a timeline number: '{t}'")
                : null;
            var request = new VelozBackupAgent.Pitr.PitrRestoreRequest(target, parse.GetValue(from), tl, parse.GetValue(baseName));
            var directory = parse.GetValue(targetDir);
            if (directory is null && !parse.GetValue(yes))
            {
                throw new ArgumentException("restore pitr replaces the live cluster: pass --yes to confirm, or --target-dir DIR to restore into a scratch directory");
            }

            if (parse.GetValue(json))
            {
                return await JsonAsync(ctx, agent, BackupKinds.Pitr, async restorer =>
                {
                    if (directory is null)
                    {
                        var liveReport = await restorer.RestorePitrAsync(request, !parse.GetValue(noService), ct);
                        return (liveReport, liveReport.Results.Select(r => r.Details).OfType<VelozBackupAgent.Pitr.PitrOutcome>().Select(o => PitrJson(o, null, null)).FirstOrDefault());
                    }

                    var scratch = await restorer.Pitr.RestoreIntoAsync(request, directory, keep: true, ct);
                    var result = new RestoreResult(BackupKinds.Pitr, scratch.Base, scratch.Directory,
                        $"restored {scratch.Base} into {scratch.Directory} to {target.Describe()}: timeline {scratch.Outcome.Timeline}, {Stopped(scratch.Outcome)}",
                        scratch.Total, TimeSpan.Zero, []) { Details = scratch.Tables };
                    return (new RestoreReport([result], null, scratch.Total, agent.Options.Verify.RtoDatabase, []), PitrJson(scratch.Outcome, scratch.Port, scratch.StartCommand));
                });
            }

            var progress = ProgressPrinter.For(ctx, agent.Time);
            var restorer = agent.CreateRestorer(progress);
            progress.Attach(restorer);
            if (directory is not null)
            {
                var report = await progress.RunAsync(() => restorer.Pitr.RestoreIntoAsync(request, directory, keep: true, ct));
                await PrintStepsAsync(ctx, report.Steps);
                await ctx.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"restored {report.Base} into {report.Directory} to {target.Describe()}: timeline {report.Outcome.Timeline}, {Stopped(report.Outcome)}"));
                foreach (var table in report.Tables)
                {
                    await ctx.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"  {table.Name}: {table.Rows} rows"));
                }

                await ctx.Out.WriteLineAsync($"the server is stopped; to look inside: {report.StartCommand} (it listens on 127.0.0.1:{report.Port.ToString(CultureInfo.InvariantCulture)} only, password logins, archiving off)");
                await ctx.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"total {Seconds(report.Total)}: {(report.Total <= agent.Options.Verify.RtoDatabase ? "within" : "OVER")} the RTO (database corruption) of {agent.Options.Verify.RtoDatabase:c}"));
                return ExitCodes.Success;
            }

            var live = await progress.RunAsync(() => restorer.RestorePitrAsync(request, !parse.GetValue(noService), ct));
            await PrintStepsAsync(ctx, restorer.Pitr.Steps);
            await PrintAsync(ctx, live, "RTO (database corruption)");
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Option<bool> JsonOption() =>
        new("--json") { Description = "Machine-readable output (stable field names): each kind's artifact, source store, target and verified checksum, every step with its status and time, the error" };

    /// <summary>
    /// A restore with <c>--json</c>: one document on stdout, also when it fails (<c>ok</c> false, the step that failed,
    /// <c>error</c>); the failure's one line on stderr and the exit code stay those without <c>--json</c>. No step lines
    /// or progress are printed, so stdout is only the document.
    /// </summary>
    private static async Task<int> JsonAsync(VerbContext ctx, AgentContext agent, string operation, Func<Restorer, Task<(RestoreReport Report, object? Pitr)>> run)
    {
        var restorer = agent.CreateRestorer();
        var recorder = new RestoreRecorder(agent.Time);
        recorder.Attach(restorer);
        RestoreReport report;
        object? pitr;
        try
        {
            (report, pitr) = await run(restorer);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            await ctx.Out.WriteLineAsync(recorder.Document(operation, null, ex is OperationCanceledException ? "interrupted" : VerbContext.FirstLine(ex.Message)));
            throw;
        }

        await ctx.Out.WriteLineAsync(recorder.Document(operation, report, null, pitr));
        foreach (var w in report.Results.SelectMany(r => r.Warnings.Select(w => $"{r.Kind}: {w}")))
        {
            await ctx.Error.WriteLineAsync($"veloz-backup: warning: {w}");
        }

        return ExitCodes.Success;
    }

    private static object PitrJson(VelozBackupAgent.Pitr.PitrOutcome outcome, int? port, string? startCommand) => new
    {
        timeline = outcome.Timeline,
        switchPoint = outcome.SwitchPoint?.ToString(),
        stoppedAt = outcome.StoppedAt,
        port,
        startCommand,
    };

    private static async Task PrintStepsAsync(VerbContext ctx, IReadOnlyList<VelozBackupAgent.Pitr.PitrStep> steps)
    {
        await Format.TableAsync(ctx.Out, ["STEP", "TIME"], steps.Select(s => new[] { s.Name, Seconds(s.Duration) }));
    }

    private static Command Kind(VerbContext ctx, string kind, string description)
    {
        var source = new Argument<string?>("source")
        {
            Description = "latest (default), a local artifact file (its .sha256 sidecar beside it), or s3://BUCKET/NODE/" + kind + "/NAME",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var at = new Option<string?>("--at") { Description = "With latest: the newest artifact at or before this time (ISO 8601; UTC unless an offset is given), e.g. 2026-11-23T09:55:00Z" };
        var from = new Option<string?>("--from") { Description = "With latest: the store to take it from, local or s3 (default: local, then S3 when the local store has none)" };
        from.AcceptOnlyFromAmong("local", "s3");
        var noService = new Option<bool>("--no-service") { Description = "Do not run the stop/start commands nor wait for the health URL" };
        var json = JsonOption();
        var command = new Command(kind, description) { source, at, from, noService, json };

        Option<string?>? target = null;
        Option<string?>? into = null;
        Option<bool>? yes = null;
        Option<int?>? jobs = null;
        Option<bool>? keepOld = null;
        if (kind == BackupKinds.Database)
        {
            into = new Option<string?>("--into") { Description = "Restore side by side into this database (VeloZ keeps running; no stop/start)" };
            yes = new Option<bool>("--yes") { Description = "Replace the existing database (it is swapped out only after pg_restore succeeded, then dropped)" };
            jobs = new Option<int?>("--jobs", "-j") { Description = "pg_restore parallel jobs (default Backup:Restore:Jobs)" };
            keepOld = new Option<bool>("--keep-old") { Description = "Keep the replaced database as <name>_pre_restore_<time> instead of dropping it" };
            command.Options.Add(into);
            command.Options.Add(yes);
            command.Options.Add(jobs);
            command.Options.Add(keepOld);
        }
        else
        {
            target = new Option<string?>("--target") { Description = "Restore into this directory instead of the configured one (VeloZ keeps running; no stop/start)" };
            command.Options.Add(target);
        }

        command.SetAction((parse, ct) => ctx.RunAsync(parse, daemon: false, async agent =>
        {
            var sideBySide = (target is not null && parse.GetValue(target) is not null) || (into is not null && parse.GetValue(into) is not null);
            DatabaseRestoreRequest? database = null;
            if (kind == BackupKinds.Database)
            {
                var j = parse.GetValue(jobs!) ?? agent.Options.Restore.Jobs;
                if (j is < 1 or > 32)
                {
                    throw new ArgumentException("--jobs must be between 1 and 32");
                }

                database = new DatabaseRestoreRequest(parse.GetValue(into!), parse.GetValue(yes!), j, parse.GetValue(keepOld!));
                if (database.Into is null && !database.Replace)
                {
                    throw new ArgumentException($"restore database replaces the configured database: pass --yes to confirm, or --into NAME to restore side by side");
                }
            }

            var request = new RestoreRequest(kind, parse.GetValue(source), ParseTime(parse.GetValue(at)), parse.GetValue(from),
                target is null ? null : parse.GetValue(target), database, ManageService: !parse.GetValue(noService) && !sideBySide);
            if (parse.GetValue(json))
            {
                return await JsonAsync(ctx, agent, kind, async restorer => (await restorer.RestoreAsync(request, ct), null));
            }

            var progress = ProgressPrinter.For(ctx, agent.Time);
            var restorer = agent.CreateRestorer(progress);
            progress.Attach(restorer);
            var report = await progress.RunAsync(() => restorer.RestoreAsync(request, ct));
            await PrintAsync(ctx, report, $"RTO ({KindScenario(kind)})");
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command Full(VerbContext ctx)
    {
        var yes = new Option<bool>("--yes") { Description = "Confirm: this replaces the secrets, configuration, database and WAL directory of this host" };
        var source = new Option<string?>("--source") { Description = "s3://BUCKET[/NODE] to restore from (default: the local store, and Backup:S3 for whatever it lacks)" };
        var noService = new Option<bool>("--no-service") { Description = "Do not run the stop/start commands nor wait for the health URL" };
        var databaseFrom = new Option<string?>("--database-from")
        {
            Description = "pitr: the whole cluster to the newest stored WAL (the default when Backup:Pitr is enabled); dump: the newest pg_dump (the runbook's Option B)",
        };
        databaseFrom.AcceptOnlyFromAmong("pitr", "dump");
        var json = JsonOption();
        var command = new Command("full",
            "The site-failure path: the newest secrets, configuration, database and WAL, in that order, from S3 when the local store is gone; " +
            "then start VeloZ and wait for its health URL. Prints each step's time and the total against the runbook's RTO.") { yes, source, noService, databaseFrom, json };
        command.SetAction((parse, ct) => ctx.RunAsync(parse, daemon: false, async agent =>
        {
            if (!parse.GetValue(yes))
            {
                throw new ArgumentException("restore full replaces the secrets, configuration, database and WAL of this host: pass --yes to confirm");
            }

            if (parse.GetValue(json))
            {
                return await JsonAsync(ctx, agent, "full", async restorer =>
                {
                    var full = await restorer.RestoreFullAsync(parse.GetValue(source), !parse.GetValue(noService), ct, parse.GetValue(databaseFrom));
                    return (full, full.Results.Select(r => r.Details).OfType<VelozBackupAgent.Pitr.PitrOutcome>().Select(o => PitrJson(o, null, null)).FirstOrDefault());
                });
            }

            var progress = ProgressPrinter.For(ctx, agent.Time);
            var restorer = agent.CreateRestorer(progress);
            progress.Attach(restorer);
            var report = await progress.RunAsync(() => restorer.RestoreFullAsync(parse.GetValue(source), !parse.GetValue(noService), ct, parse.GetValue(databaseFrom)));
            if (restorer.Pitr.Steps.Count > 0)
            {
                await PrintStepsAsync(ctx, restorer.Pitr.Steps);
            }

            await PrintAsync(ctx, report, "RTO (complete site failure)");
            return ExitCodes.Success;
        }));
        return command;
    }

    private static async Task PrintAsync(VerbContext ctx, RestoreReport report, string objective)
    {
        var rows = report.Results.Select(r => new[]
        {
            r.Kind, r.Artifact, Seconds(r.Prepare), Seconds(r.Commit), r.Summary,
        });
        await Format.TableAsync(ctx.Out, ["KIND", "ARTIFACT", "PREPARE", "SWITCH", "RESTORED"], rows);
        if (report.Results.FirstOrDefault(r => r.Details is IReadOnlyList<RestoredTable>) is { Details: IReadOnlyList<RestoredTable> tables })
        {
            foreach (var t in tables)
            {
                await ctx.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"  {t.Name}: {t.Rows} rows"));
            }
        }

        foreach (var s in report.Skipped)
        {
            await ctx.Out.WriteLineAsync($"skipped {s}");
        }

        foreach (var w in report.Results.SelectMany(r => r.Warnings.Select(w => $"{r.Kind}: {w}")))
        {
            await ctx.Error.WriteLineAsync($"veloz-backup: warning: {w}");
        }

        if (report.Service is { } service)
        {
            await ctx.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"VeloZ stopped, restarted and healthy after {Seconds(service.HealthyAfter ?? TimeSpan.Zero)}; downtime {Seconds(service.Downtime)}"));
        }
        else
        {
            await ctx.Out.WriteLineAsync("VeloZ service not touched (--no-service or a side-by-side restore)");
        }

        var within = report.Total <= report.Objective ? "within" : "OVER";
        await ctx.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"total {Seconds(report.Total)}: {within} the {objective} of {report.Objective:c}"));
    }

    private static string KindScenario(string kind) => kind switch
    {
        BackupKinds.Wal => "single node failure",
        BackupKinds.Database or BackupKinds.Pitr => "database corruption",
        _ => "complete site failure",
    };

    private static string Seconds(TimeSpan t) => string.Create(CultureInfo.InvariantCulture, $"{t.TotalSeconds:0.0} s");

    /// <summary>ISO 8601 (or <c>yyyy-MM-dd HH:mm[:ss]</c>); UTC unless an offset is given.</summary>
    internal static DateTimeOffset? ParseTime(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t)
            ? t
            : throw new ArgumentException($"--at: not a time: '{text}' (use ISO 8601, e.g. 2026-11-23T09:55:00Z)");
    }

    /// <summary>How recovery ended, in words: PostgreSQL's reason names a target, or "no recovery target specified" for latest.</summary>
    private static string Stopped(VelozBackupAgent.Pitr.PitrOutcome outcome)
    {
        var at = outcome.SwitchPoint is { } p ? string.Create(CultureInfo.InvariantCulture, $" at {p}") : "";
        return outcome.StoppedAt is null or "no recovery target specified"
            ? $"recovered to the end of the stored WAL{at}"
            : $"stopped {outcome.StoppedAt}{at}";
    }
}
