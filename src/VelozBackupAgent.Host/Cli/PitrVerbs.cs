using System.CommandLine;
using VelozBackupAgent.Pitr;

namespace VelozBackupAgent.Host.Cli;

/// <summary>The verbs PostgreSQL itself runs: <c>pg-wal-push</c> as its archive_command.</summary>
internal static class PitrVerbs
{
    public static Command PgWalGet(VerbContext ctx)
    {
        var file = new Argument<string>("file") { Description = "The WAL file PostgreSQL asks for (%f: a segment or a .history file)" };
        var path = new Argument<string>("path") { Description = "Where PostgreSQL wants it (%p)" };
        var staged = new Option<string?>("--staged")
        {
            Description = "Take it only from this directory, which restore pitr prepared and verified (no configuration or store access needed; what is not there is the end of WAL)",
        };
        var command = new Command("pg-wal-get",
            "PostgreSQL's restore_command: restore_command = 'veloz-backup pg-wal-get %f %p'. Finds the file in the local store, then S3 " +
            "(a segment stored in pieces is assembled and padded), verifies its checksum and writes it to %p. Exit 0: restored; 1: not stored " +
            "(PostgreSQL's end of WAL); 126: stored but corrupt, or no store answered (PostgreSQL then aborts recovery rather than end it early).") { file, path, staged };
        command.SetAction(async (parse, ct) =>
        {
            var name = parse.GetValue(file)!;
            var target = parse.GetValue(path)!;
            if (parse.GetValue(staged) is { } directory)
            {
                // Runs as the server's user during a restore: no configuration to read, no store to reach.
                var (result, line) = await WalFetch.FromStagedAsync(directory, name, target, ct);
                if (result != WalFetchResult.Restored)
                {
                    await ctx.Error.WriteLineAsync($"veloz-backup pg-wal-get: {line}");
                }

                return WalFetch.ExitCode(result);
            }

            // Any failure outside the fetch itself (a configuration error, say) must not read as "not stored", which
            // would end the recovery early at a wrong point: it is 126, and PostgreSQL aborts instead.
            int? exit = null;
            await ctx.RunAsync(parse, daemon: false, async agent =>
            {
                var (result, line) = await WalFetch.FromStoresAsync([.. agent.Stores], name, target, ct);
                if (result != WalFetchResult.Restored)
                {
                    await ctx.Error.WriteLineAsync($"veloz-backup pg-wal-get: {line}");
                }

                exit = WalFetch.ExitCode(result);
                return exit.Value;
            });
            return exit ?? WalFetch.ExitCode(WalFetchResult.Failed);
        });
        return command;
    }

    public static Command PgWalPush(VerbContext ctx)
    {
        var path = new Argument<string>("path") { Description = "The WAL file PostgreSQL archives (%p: a segment, a .history, a .backup or a .partial file)" };
        var command = new Command("pg-wal-push",
            "PostgreSQL's archive_command for servers that do not stream WAL to the agent: archive_command = 'veloz-backup pg-wal-push %p'. " +
            "Exits 0 only once the file is durably in the local store (checksummed, queued for S3); an identical file pushed again exits 0; " +
            "a different file under a stored name is refused (exit 1), never overwritten.") { path };
        command.SetAction((parse, ct) => ctx.RunAsync(parse, daemon: false, async agent =>
        {
            if (!agent.Options.Pitr.Enabled)
            {
                throw new InvalidOperationException("point-in-time recovery is disabled (Backup:Pitr:Enabled is false): the WAL file was not stored");
            }

            var file = new FileInfo(parse.GetValue(path)!);
            if (!file.Exists)
            {
                throw new ArgumentException($"no such file: {file.FullName}");
            }

            // A segment's own size is the cluster's segment size (its page header must agree); other files use the default.
            var segmentSize = WalFileName.TryParse(file.Name, out _) || file.Name.EndsWith(".partial", StringComparison.Ordinal) ? file.Length : 16L * 1024 * 1024;
            try
            {
                WalFileName.ValidateSegmentSize(segmentSize);
            }
            catch (ArgumentException)
            {
                throw new WalArchiveException(PitrFailure.Other, $"{file.Name} has {file.Length} bytes: not a WAL segment (a power of two from 1 MiB to 1 GiB); not stored");
            }

            var stored = await agent.WalArchive.StoreFileAsync(file.FullName, segmentSize, ct);
            await ctx.Out.WriteLineAsync($"stored pitr/{stored.Artifact.Name} ({Format.Bytes(stored.Artifact.Size)}, sha256 {stored.Artifact.Sha256})");
            return ExitCodes.Success;
        }));
        return command;
    }
}
