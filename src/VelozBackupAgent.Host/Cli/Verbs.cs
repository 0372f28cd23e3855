using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Hosting;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Host.Cli;

/// <summary>The verbs. Each is a thin shell: parse, call the library, print.</summary>
internal static class Verbs
{
    private static readonly JsonSerializerOptions Json = CliJson.Options;

    public static Command Run(VerbContext ctx)
    {
        var command = new Command("run", "Run the agent as a daemon (the systemd service): scheduled backups of every enabled kind, file watchers, catch-up of missed runs at start-up, S3 replication.");
        command.SetAction((parse, ct) => ctx.RunAsync(parse, daemon: true, async agent =>
        {
            using var host = Daemon.DaemonHost.Build(agent);
            await host.RunAsync(ct);
            return ExitCodes.Success;
        }));
        return command;
    }

    public static Command Backup(VerbContext ctx)
    {
        var kind = new Argument<string>("kind") { Description = "wal, config, database, secrets, pitr (a base backup) or all" };
        kind.CompletionSources.Add([.. BackupKinds.All, "all"]);
        var noUpload = new Option<bool>("--no-upload") { Description = "Only write the local store and queue the new artifacts; the daemon's queue (or `veloz-backup replicate`) copies them to S3" };
        var json = new Option<bool>("--json") { Description = "Machine-readable output (stable field names)" };
        var command = new Command("backup", "Back up one kind (or all) now, the same way the daemon's schedule does; then copy the new artifacts to S3 when it is enabled.") { kind, noUpload, json };
        command.SetAction((parse, ct) => ctx.RunAsync(parse, daemon: false, async agent =>
        {
            var requested = parse.GetValue(kind)!;
            var kinds = requested == "all"
                ? agent.Runner.Sources.Select(s => s.Kind).ToList()
                : KindsFrom(requested, orAll: true).ToList();
            if (kinds.Count == 0)
            {
                throw new ArgumentException("every backup kind is disabled in the configuration (Backup:<Kind>:Enabled)");
            }

            foreach (var k in kinds.Where(k => !agent.Runner.Has(k)))
            {
                throw new ArgumentException($"backup kind {k} is disabled: set Backup:{char.ToUpperInvariant(k[0])}{k[1..]}:Enabled to true");
            }

            // Not even the copy a dump makes to S3 while it is written: with --no-upload nothing here talks to S3.
            agent.Repository.CopyWhileWriting = !parse.GetValue(noUpload);
            // On a terminal (never with --json): bytes and rate of each dump and base backup as it is stored, on stderr.
            var progress = parse.GetValue(json) ? null : ProgressPrinter.For(ctx, agent.Time);
            if (progress is { Live: true })
            {
                agent.Repository.Progress = progress;
            }

            var results = new List<Sources.BackupRunResult>();
            async Task<int> RunAll()
            {
                foreach (var k in kinds)
                {
                    results.Add(await agent.Runner.RunAsync(k, Sources.BackupTrigger.Manual, ct));
                }

                return results.Count;
            }

            await (progress is null ? RunAll() : progress.RunAsync(RunAll));
            agent.Repository.Progress = null;

            ct.ThrowIfCancellationRequested();
            var failedAny = results.Any(r => r.Outcome is Sources.BackupOutcome.Failed or Sources.BackupOutcome.Busy);
            if (parse.GetValue(json))
            {
                // The same S3 copy as without --json; its outcome is a field, and S3 trouble stays a warning.
                object? s3 = null;
                if (agent.Replicator is not null && !parse.GetValue(noUpload) && results.Any(r => r.Artifacts.Count > 0))
                {
                    try
                    {
                        var pass = await agent.Replicator.DrainAsync(ct);
                        s3 = new { replicated = pass.Uploaded, failed = pass.Failed, backlogArtifacts = pass.Backlog.Artifacts, backlogBytes = pass.Backlog.Bytes, error = pass.Failed > 0 ? agent.Replicator.LastError : null };
                    }
                    catch (StoreException ex)
                    {
                        var backlog = agent.Replicator.RefreshBacklog();
                        s3 = new { replicated = 0, failed = 0, backlogArtifacts = backlog.Artifacts, backlogBytes = backlog.Bytes, error = ex.Message.Split('\n')[0].Trim() };
                    }
                }

                await ctx.Out.WriteLineAsync(JsonSerializer.Serialize(new
                {
                    kinds = results.Select(r => new
                    {
                        kind = r.Kind, outcome = r.Outcome.ToString().ToLowerInvariant(),
                        artifacts = r.Artifacts.Select(a => a.Name), bytes = r.Bytes,
                        seconds = Math.Round(r.Duration.TotalSeconds, 3), detail = r.Detail,
                    }),
                    s3,
                }, Json));
                foreach (var failed in results.Where(r => r.Outcome is Sources.BackupOutcome.Failed or Sources.BackupOutcome.Busy))
                {
                    await ctx.Error.WriteLineAsync($"veloz-backup: backup {failed.Kind} {failed.Outcome.ToString().ToLowerInvariant()}: {failed.Detail}");
                }

                return failedAny ? ExitCodes.Failed : ExitCodes.Success;
            }

            var rows = results.Select(r => new[]
            {
                r.Kind, r.Outcome.ToString().ToLowerInvariant(),
                r.Artifacts.Count switch { 0 => "-", 1 => r.Artifacts[0].Name, _ => $"{r.Artifacts[^1].Name} (+{r.Artifacts.Count - 1} more)" },
                Format.Bytes(r.Bytes), r.Duration.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + " s",
                r.Detail ?? "",
            });
            await Format.TableAsync(ctx.Out, ["KIND", "OUTCOME", "ARTIFACT", "SIZE", "TIME", "DETAIL"], rows);

            foreach (var failed in results.Where(r => r.Outcome is Sources.BackupOutcome.Failed or Sources.BackupOutcome.Busy))
            {
                await ctx.Error.WriteLineAsync($"veloz-backup: backup {failed.Kind} {failed.Outcome.ToString().ToLowerInvariant()}: {failed.Detail}");
            }

            if (agent.Replicator is not null && !parse.GetValue(noUpload) && results.Any(r => r.Artifacts.Count > 0))
            {
                // The local backup is done and counts; S3 trouble (down, refused, no credentials) is a warning, not a failure:
                // the artifacts stay queued for the daemon or `veloz-backup replicate`.
                try
                {
                    var pass = await agent.Replicator.DrainAsync(ct);
                    var line = string.Create(CultureInfo.InvariantCulture,
                        $"S3: replicated {pass.Uploaded}, failed {pass.Failed}; backlog {pass.Backlog.Artifacts} artifacts, {Format.Bytes(pass.Backlog.Bytes)}");
                    await (pass.Failed > 0 ? ctx.Error : ctx.Out).WriteLineAsync(pass.Failed > 0
                        ? $"veloz-backup: warning: {line} (queued; the daemon or `veloz-backup replicate` retries): {agent.Replicator.LastError}"
                        : line);
                }
                catch (StoreException ex)
                {
                    var backlog = agent.Replicator.RefreshBacklog();
                    await ctx.Error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                        $"veloz-backup: warning: S3 copy not made, {backlog.Artifacts} artifacts ({Format.Bytes(backlog.Bytes)}) stay queued for the daemon or `veloz-backup replicate`: {ex.Message.Split('\n')[0].Trim()}"));
                }
            }

            return results.Any(r => r.Outcome is Sources.BackupOutcome.Failed or Sources.BackupOutcome.Busy) ? ExitCodes.Failed : ExitCodes.Success;
        }));
        return command;
    }

    public static Command Prune(VerbContext ctx)
    {
        var dryRun = new Option<bool>("--dry-run") { Description = "Print exactly what would be deleted, delete nothing" };
        var json = new Option<bool>("--json") { Description = "Machine-readable output (stable field names)" };
        var command = new Command("prune", "Apply each kind's Retention to the local store and S3: delete what is older, never the newest of a kind, never a WAL segment a kept manifest lists.") { dryRun, json };
        command.SetAction((parse, ct) => ctx.RunAsync(parse, daemon: false, async agent =>
        {
            var report = await agent.Pruner.PruneAsync(parse.GetValue(dryRun), ct);
            if (parse.GetValue(json))
            {
                await ctx.Out.WriteLineAsync(JsonSerializer.Serialize(new
                {
                    dryRun = report.DryRun,
                    deleted = report.Deleted.Select(d => new { kind = d.Kind, target = d.Target, name = d.Name, size = d.Size, time = Format.IsoUtc(d.Time) }),
                    bytes = report.Deleted.Sum(d => d.Size),
                    locked = report.Locked.Select(l => new { kind = l.Kind, target = l.Target, name = l.Name, until = Format.IsoUtc(l.Until) }),
                    refusals = report.Refusals,
                    errors = report.Errors,
                }, Json));
                return report.Errors.Count > 0 ? ExitCodes.Failed : ExitCodes.Success;
            }

            var verb = report.DryRun ? "would delete" : "deleted";
            var rows = report.Deleted.Select(d => new[]
            {
                d.Kind, d.Target, d.Name, Format.Bytes(d.Size), d.Time?.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture) ?? "-",
            });
            await Format.TableAsync(ctx.Out, ["KIND", "TARGET", "NAME", "SIZE", "TIME (UTC)"], rows);
            await ctx.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"{verb} {report.Deleted.Count} artifacts, {Format.Bytes(report.Deleted.Sum(d => d.Size))}"));
            foreach (var copy in report.Locked)
            {
                await ctx.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"kept {copy.Kind}/{copy.Name} in {copy.Target}: under S3 Object Lock until {copy.Until.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z"));
            }

            foreach (var refusal in report.Refusals)
            {
                await ctx.Error.WriteLineAsync($"veloz-backup: prune: {refusal}");
            }

            foreach (var error in report.Errors)
            {
                await ctx.Error.WriteLineAsync($"veloz-backup: prune failed: {error}");
            }

            return report.Errors.Count > 0 ? ExitCodes.Failed : ExitCodes.Success;
        }));
        return command;
    }

    public static Command List(VerbContext ctx)
    {
        var kind = new Argument<string?>("kind") { Description = "wal, config, database, secrets or pitr (default: all)", Arity = ArgumentArity.ZeroOrOne };
        kind.CompletionSources.Add([.. BackupKinds.All]);
        var json = new Option<bool>("--json") { Description = "Machine-readable output (stable field names)" };
        var target = new Option<string>("--target") { Description = "local, s3 or all", DefaultValueFactory = _ => "all" };
        target.AcceptOnlyFromAmong("local", "s3", "all");
        var command = new Command("list", "List the artifacts of each store, newest first by the time in their names.") { kind, json, target };
        command.SetAction((parse, ct) => ctx.RunAsync(parse, daemon: false, async agent =>
        {
            var kinds = KindsFrom(parse.GetValue(kind));
            var stores = SelectStores(agent, parse.GetValue(target)!);
            var entries = new List<CatalogEntry>();
            foreach (var store in stores)
            {
                foreach (var k in kinds)
                {
                    entries.AddRange(await BackupCatalog.ListAsync(store, k, ct));
                }
            }

            if (parse.GetValue(json))
            {
                await ctx.Out.WriteLineAsync(JsonSerializer.Serialize(entries.Select(e => new
                {
                    e.Kind, e.Target, e.Name, time = Format.IsoUtc(e.Time), e.Size, e.Sha256,
                }), Json));
                return ExitCodes.Success;
            }

            var rows = entries.Select(e => new[]
            {
                e.Kind, e.Target, e.Name, e.Time?.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture) ?? "-",
                Format.Bytes(e.Size), e.Sha256?[..12] ?? "-",
            });
            await Format.TableAsync(ctx.Out, ["KIND", "TARGET", "NAME", "TIME (UTC)", "SIZE", "SHA256"], rows);
            return ExitCodes.Success;
        }));
        return command;
    }

    public static Command Status(VerbContext ctx)
    {
        var json = new Option<bool>("--json") { Description = "Machine-readable output (stable field names)" };
        var command = new Command("status", "Per kind and store: newest artifact, its age, count and total size; and the S3 upload backlog.") { json };
        command.SetAction((parse, ct) => ctx.RunAsync(parse, daemon: false, async agent =>
        {
            var now = agent.Time.GetUtcNow();
            var kinds = new List<object>();
            var rows = new List<string[]>();
            var storeErrors = new List<object>();
            foreach (var store in agent.Stores)
            {
                foreach (var k in BackupKinds.All)
                {
                    IReadOnlyList<CatalogEntry> entries;
                    try
                    {
                        entries = await BackupCatalog.ListAsync(store, k, ct);
                    }
                    catch (StoreException ex)
                    {
                        // One unusable store must not hide what the other holds: report it and go on.
                        storeErrors.Add(new { target = store.Target, error = ex.Message });
                        rows.Add(["*", store.Target, "-", "-", $"ERROR: {ex.Message}", "-"]);
                        break;
                    }

                    var newest = entries.FirstOrDefault(e => e.Time is not null) ?? (entries.Count > 0 ? entries[0] : null);
                    var age = newest?.Time is { } t ? now - t : (TimeSpan?)null;
                    var total = entries.Sum(e => e.Size);
                    // A kind switched off (Backup:<Kind>:Enabled false) is not stale or missing: nothing is meant to
                    // back it up, so say so instead of leaving an old age or a "-" to be read as a failure.
                    var enabled = agent.Runner.Has(k);
                    kinds.Add(new
                    {
                        kind = k, target = store.Target, enabled, count = entries.Count, bytes = total, newest = newest?.Name,
                        newestTime = Format.IsoUtc(newest?.Time), ageSeconds = age is { } a ? Math.Round(a.TotalSeconds) : (double?)null,
                    });
                    var ageText = age is { } a2 ? Format.Age(a2) : "-";
                    rows.Add([k, store.Target, entries.Count.ToString(CultureInfo.InvariantCulture), Format.Bytes(total), newest?.Name ?? "-",
                        enabled ? ageText : age is null ? "disabled" : $"{ageText} (disabled)"]);
                }
            }

            var backlog = agent.Replicator?.RefreshBacklog();
            var (clusterView, clusterError) = await ClusterStatus.ReadAsync(agent, ct);
            var pitr = agent.Options.Pitr.Enabled ? Pitr.PitrStatus.Load(Path.Combine(agent.WalArchive.StateDirectory, "status.json")) : null;
            if (parse.GetValue(json))
            {
                await ctx.Out.WriteLineAsync(JsonSerializer.Serialize(new
                {
                    node = agent.Options.NodeName,
                    localRoot = agent.Local.Root,
                    s3 = agent.Options.S3.Enabled ? new { bucket = agent.Options.S3.Bucket } : null,
                    kinds,
                    errors = storeErrors,
                    uploadBacklog = backlog is null ? null : new
                    {
                        artifacts = backlog.Artifacts, bytes = backlog.Bytes,
                        oldestEnqueuedAt = Format.IsoUtc(backlog.OldestEnqueuedAt),
                    },
                    pitr = !agent.Options.Pitr.Enabled ? null : new
                    {
                        streaming = agent.Options.Pitr.Streaming,
                        receiverUp = pitr?.ReceiverUp ?? false,
                        checkedAt = Format.IsoUtc(pitr?.CheckedAt),
                        serverLsn = pitr?.ServerLsn, receivedLsn = pitr?.ReceivedLsn, storedLsn = pitr?.StoredLsn, storedLsnS3 = pitr?.StoredLsnS3,
                        lastReceivedAt = Format.IsoUtc(pitr?.LastReceivedAt), lastStoredAt = Format.IsoUtc(pitr?.LastStoredAt),
                        recoveryPoint = Format.IsoUtc(pitr?.RecoveryPoint), recoveryPointS3 = Format.IsoUtc(pitr?.RecoveryPointS3),
                        lagBytes = pitr?.LagBytes, slotRetainedBytes = pitr?.SlotRetainedBytes, timeline = pitr?.Timeline,
                        lastError = pitr?.LastError,
                    },
                    cluster = ClusterStatus.Json(agent, clusterView, clusterError),
                }, Json));
                return ExitCodes.Success;
            }

            await Format.TableAsync(ctx.Out, ["KIND", "TARGET", "COUNT", "SIZE", "NEWEST", "AGE"], rows);
            if (backlog is not null)
            {
                await ctx.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"S3 upload backlog: {backlog.Artifacts} artifacts, {Format.Bytes(backlog.Bytes)}{(backlog.OldestEnqueuedAt is { } o ? $", oldest queued {Format.Age(now - o)} ago" : "")}"));
            }
            else
            {
                await ctx.Out.WriteLineAsync("S3 replication: disabled (Backup:S3:Enabled is false)");
            }

            if (agent.Options.Pitr.Enabled)
            {
                await ctx.Out.WriteLineAsync(PitrLine(agent.Options.Pitr, pitr, now));
            }

            foreach (var line in ClusterStatus.Lines(agent, clusterView, clusterError, now))
            {
                await ctx.Out.WriteLineAsync(line);
            }

            return storeErrors.Count > 0 ? ExitCodes.Failed : ExitCodes.Success;
        }));
        return command;
    }

    public static Command Replicate(VerbContext ctx)
    {
        var reconcile = new Option<bool>("--reconcile") { Description = "First compare both stores and queue every local artifact S3 lacks" };
        var json = new Option<bool>("--json") { Description = "Machine-readable output (stable field names)" };
        var command = new Command("replicate", "Copy queued local artifacts to S3 now, verifying each copy; exits 1 when S3 cannot be reached.") { reconcile, json };
        command.SetAction((parse, ct) => ctx.RunAsync(parse, daemon: false, async agent =>
        {
            var replicator = agent.Replicator ?? throw new InvalidOperationException("S3 replication is disabled: set Backup:S3:Enabled to true");
            if (parse.GetValue(json))
            {
                // The fields of backup --json's "s3", and the error also when S3 could not be used at all.
                try
                {
                    if (parse.GetValue(reconcile))
                    {
                        await replicator.ReconcileAsync(ct);
                    }

                    var done = await replicator.DrainAsync(ct);
                    await ctx.Out.WriteLineAsync(JsonSerializer.Serialize(new
                    {
                        reconciled = parse.GetValue(reconcile), replicated = done.Uploaded, alreadyPresent = done.AlreadyPresent, failed = done.Failed,
                        backlogArtifacts = done.Backlog.Artifacts, backlogBytes = done.Backlog.Bytes, error = done.Failed > 0 ? replicator.LastError : null,
                    }, Json));
                    return done.Failed > 0 ? ExitCodes.Failed : ExitCodes.Success;
                }
                catch (StoreException ex)
                {
                    var backlog = replicator.RefreshBacklog();
                    await ctx.Out.WriteLineAsync(JsonSerializer.Serialize(new
                    {
                        reconciled = parse.GetValue(reconcile), replicated = 0, alreadyPresent = 0, failed = 0,
                        backlogArtifacts = backlog.Artifacts, backlogBytes = backlog.Bytes, error = VerbContext.FirstLine(ex.Message),
                    }, Json));
                    throw;
                }
            }

            if (parse.GetValue(reconcile))
            {
                await replicator.ReconcileAsync(ct);
            }

            var pass = await replicator.DrainAsync(ct);
            await ctx.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"replicated {pass.Uploaded}, already present {pass.AlreadyPresent}, failed {pass.Failed}; backlog {pass.Backlog.Artifacts} artifacts, {Format.Bytes(pass.Backlog.Bytes)}"));
            return pass.Failed > 0 ? ExitCodes.Failed : ExitCodes.Success;
        }));
        return command;
    }

    public static Command Import(VerbContext ctx)
    {
        var kind = new Argument<string>("kind") { Description = "wal, config, database or secrets" };
        kind.CompletionSources.Add(BackupKinds.Wal, BackupKinds.Config, BackupKinds.Database, BackupKinds.Secrets);
        var file = new Argument<FileInfo>("file") { Description = "The file to store, under its own name (e.g. a manual pg_dump -Fc taken before maintenance)" };
        var json = new Option<bool>("--json") { Description = "Machine-readable output (stable field names)" };
        var command = new Command("import", "Store an existing file as an artifact (checksummed, 0600, queued for S3), once it checks like a fresh backup of its kind (a .dump reads to the end with pg_restore, a .tar.gz decompresses to its end, a .gpg file is a whole OpenPGP message).") { kind, file, json };
        command.SetAction((parse, ct) => ctx.RunAsync(parse, daemon: false, async agent =>
        {
            var k = KindsFrom(parse.GetValue(kind)).Single();
            if (k == BackupKinds.Pitr)
            {
                throw new ArgumentException("import does not take pitr: WAL files go in with `veloz-backup pg-wal-push FILE` (checked like PostgreSQL's archive_command), base backups with `backup pitr`");
            }
            var source = parse.GetValue(file)!;
            if (!source.Exists)
            {
                throw new ArgumentException($"no such file: {source.FullName}");
            }

            // Checked like a fresh backup of its kind (a dump with pg_restore, …) once stored and before it is queued: a
            // refused file is removed again, so nothing is stored. The source is read once (it may be a pipe). An
            // artifact already stored under that name is not checked again: identical bytes store nothing new.
            var logger = agent.LoggerFactory.CreateLogger("VelozBackupAgent.Import");
            var known = await agent.Local.StatAsync(k, source.Name, ct) is not null;
            await using var input = source.OpenRead();
            var stored = await agent.Repository.StoreAsync(k, source.Name, input, new Replication.ArtifactWriteOptions
            {
                Validate = known ? null : (artifact, token) =>
                    Sources.ImportCheck.CheckAsync(k, agent.Local.PathOf(artifact.Kind, artifact.Name), source.FullName, agent.Options, agent.Local, logger, token),
            }, ct);
            var info = stored.Artifact;
            var why = await NotPickedByLatestAsync(agent, k, info.Name, ct);
            if (parse.GetValue(json))
            {
                await ctx.Out.WriteLineAsync(JsonSerializer.Serialize(new
                {
                    kind = k, name = info.Name, path = agent.Local.PathOf(k, info.Name), bytes = info.Size, sha256 = info.Sha256, warning = why,
                }, Json));
            }
            else
            {
                await ctx.Out.WriteLineAsync($"stored {k}/{info.Name} ({Format.Bytes(info.Size)}, sha256 {info.Sha256}) in {agent.Local.PathOf(k, info.Name)}");
            }

            if (why is not null)
            {
                await ctx.Error.WriteLineAsync($"veloz-backup: warning: {why}");
            }

            return ExitCodes.Success;
        }));
        return command;
    }

    /// <summary>
    /// Why <c>restore KIND</c> with no SOURCE (latest) will never choose the artifact just imported, or null when it
    /// will: its name lacks the time a restore sorts by, or a newer artifact of the kind is stored (and stays newer:
    /// retention removes the older first). Only for what a restore chooses among: WAL segments come with a manifest,
    /// a dump's globals with the dump.
    /// </summary>
    private static async Task<string?> NotPickedByLatestAsync(AgentContext agent, string kind, string name, CancellationToken ct)
    {
        if ((kind == BackupKinds.Wal && !name.EndsWith(".json", StringComparison.Ordinal)) ||
            (kind == BackupKinds.Database && name.EndsWith(".sql.gpg", StringComparison.Ordinal)))
        {
            return null;
        }

        var byName = $"restore it by name: veloz-backup restore {kind} {agent.Local.PathOf(kind, name)}";
        try
        {
            var sources = new Restore.RestoreSources(agent.Options, agent.Local, remote: null, s3Factory: null);
            var (prefix, suffix) = sources.PatternOf(kind);
            var entries = await BackupCatalog.ListAsync(agent.Local, kind, ct);
            Restore.ArtifactRef? latest;
            try
            {
                latest = sources.NewestIn(entries, agent.Local, kind, at: null);
            }
            catch (Restore.RestoreException)
            {
                // Dumps of several databases and none of the configured one: latest picks none of them.
                latest = null;
            }

            if (latest?.Name == name)
            {
                return null;
            }

            return latest is not null && ArtifactName.TryParse(name, out _, out _, out _, out _) && name.EndsWith(suffix, StringComparison.Ordinal)
                ? $"latest will never pick {kind}/{name}: {latest.Name} is newer ({byName})"
                : $"latest will never pick {kind}/{name}: it takes only names like {prefix}_YYYYMMDD_HHMMSS{suffix} ({byName})";
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException)
        {
            // No pattern to judge by (a database connection string that does not parse): the import itself stands.
            return null;
        }
    }

    /// <summary>
    /// The bash completion script. It asks the binary itself for the candidates (System.CommandLine's
    /// <c>[suggest:POSITION]</c> directive), so they always match the installed version.
    /// </summary>
    internal const string BashCompletion = """
        # bash completion for veloz-backup: verbs, sub-verbs, options and their allowed values, asked of the binary
        # itself (System.CommandLine's [suggest] directive), so they always match the installed version.
        #   veloz-backup completion bash > /etc/bash_completion.d/veloz-backup    # every user, from the next shell
        #   source <(veloz-backup completion bash)                                # this shell (or in ~/.bashrc)
        _veloz_backup() {
            local line="${COMP_LINE:0:COMP_POINT}"
            line="${line#"${COMP_WORDS[0]}"}"
            line="${line#"${line%%[![:space:]]*}"}"
            local IFS=$'\n'
            COMPREPLY=($("${COMP_WORDS[0]}" "[suggest:${#line}]" "$line" 2>/dev/null | grep -v -e '^/' -e '^-?$'))
        }
        complete -o default -F _veloz_backup veloz-backup

        """;

    /// <summary>The zsh completion script: the same question to the binary as bash's, answered with compadd.</summary>
    internal const string ZshCompletion = """
        #compdef veloz-backup
        # zsh completion for veloz-backup: verbs, sub-verbs, options and their allowed values, asked of the binary
        # itself (System.CommandLine's [suggest] directive), so they always match the installed version.
        #   veloz-backup completion zsh > "${fpath[1]}/_veloz-backup"    # every user, from the next shell (compinit)
        #   source <(veloz-backup completion zsh)                        # this shell (or in ~/.zshrc, after compinit)
        _veloz_backup() {
            local line="${BUFFER[1,CURSOR]}"
            line="${line#"${line%%[![:space:]]*}"}"
            line="${line#"${words[1]}"}"
            line="${line#"${line%%[![:space:]]*}"}"
            local -a candidates
            candidates=(${(f)"$("${words[1]}" "[suggest:${#line}]" "$line" 2>/dev/null | grep -v -e '^/' -e '^-\{0,1\}$')"})
            if (( ${#candidates} )); then
                compadd -Q -- "${candidates[@]}"
            else
                _files
            fi
        }
        if [[ "${zsh_eval_context[-1]}" == loadautofunc ]]; then
            _veloz_backup "$@"
        else
            compdef _veloz_backup veloz-backup
        fi

        """;

    public static Command Completion(VerbContext ctx)
    {
        var shell = new Argument<string>("shell") { Description = "bash or zsh" };
        shell.AcceptOnlyFromAmong("bash", "zsh");
        var command = new Command("completion",
            "Print the shell completion script: `veloz-backup completion bash > /etc/bash_completion.d/veloz-backup`, or `completion zsh` into a directory of $fpath as _veloz-backup.") { shell };
        command.SetAction(async (parse, ct) =>
        {
            // Needs no configuration: it only prints.
            await ctx.Out.WriteAsync((parse.GetValue(shell) == "zsh" ? ZshCompletion : BashCompletion).AsMemory(), ct);
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>One line on the WAL stream: up or why not, how far received and stored, and how old that is.</summary>
    internal static string PitrLine(Configuration.PitrOptions options, Pitr.PitrStatus? status, DateTimeOffset now)
    {
        if (!options.Streaming)
        {
            return "PITR: WAL arrives through archive_command (veloz-backup pg-wal-push); no receiver runs";
        }

        if (status is null)
        {
            return "PITR: the WAL receiver has not reported yet (is the daemon, veloz-backup run, running?)";
        }

        string Ago(DateTimeOffset? t) => t is { } v ? Format.Age(now - v) + " ago" : "never";
        var state = status.ReceiverUp ? $"receiver up since {Ago(status.UpSince)}" : $"receiver DOWN: {status.LastError ?? "not started"}";
        var s3 = status.StoredLsnS3 is { } s ? $", S3 {s} (recovery point {Ago(status.RecoveryPointS3)})" : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"PITR: {state}; server {status.ServerLsn ?? "-"}, received {status.ReceivedLsn ?? "-"} ({Ago(status.LastReceivedAt)}), stored {status.StoredLsn ?? "-"} (recovery point {Ago(status.RecoveryPoint)}){s3}; slot {options.Slot} holds {Format.Bytes(status.SlotRetainedBytes)}; last poll {Ago(status.CheckedAt)}");
    }

    private static IReadOnlyList<string> KindsFrom(string? kind, bool orAll = false)
    {
        if (string.IsNullOrEmpty(kind))
        {
            return BackupKinds.All;
        }

        if (BackupKinds.IsKnown(kind))
        {
            return [kind];
        }

        IEnumerable<string> allowed = orAll ? [.. BackupKinds.All, "all"] : BackupKinds.All;
        throw new ArgumentException(Suggestions.Closest(kind, allowed) is { } guess
            ? $"unknown kind '{kind}'; did you mean '{guess}'?"
            : $"unknown kind '{kind}': use one of {string.Join(", ", allowed)}");
    }

    private static List<IArtifactStore> SelectStores(AgentContext agent, string target) => target switch
    {
        "local" => [agent.Local],
        "s3" => [agent.Remote ?? throw new InvalidOperationException("S3 is disabled: set Backup:S3:Enabled to true")],
        _ => agent.Stores.ToList(),
    };
}
