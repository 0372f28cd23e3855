using System.CommandLine;
using VelozBackupAgent.Catalog;
using VelozBackupAgent.Restore;
using VelozBackupAgent.Sources.Config;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Host.Cli;

/// <summary><c>diff config [A] [B]</c>: what changed between two verified configuration archives (or the live directory).</summary>
internal static class DiffVerbs
{
    public static Command Diff(VerbContext ctx)
    {
        var command = new Command("diff", "Compare backups of one kind.");
        command.Subcommands.Add(Config(ctx));
        return command;
    }

    private static Command Config(VerbContext ctx)
    {
        var a = new Argument<string?>("A") { Description = "The older side: an artifact name (config_YYYYMMDD_HHMMSS.tar.gz), latest, or live (default: the second newest archive)", Arity = ArgumentArity.ZeroOrOne };
        var b = new Argument<string?>("B") { Description = "The newer side, as A (default: the newest archive)", Arity = ArgumentArity.ZeroOrOne };
        var at = new Option<string?>("--at") { Description = "A is the archive in effect at this time (the newest at or before it); then the one argument given is B (default: the newest archive)" };
        var from = new Option<string?>("--from") { Description = "Read archives from local or s3 (default: local, then S3 for a name the local store lacks)" };
        from.AcceptOnlyFromAmong("local", "s3");
        var stat = new Option<bool>("--stat") { Description = "One line per changed path and a total instead of the diffs" };
        var json = new Option<bool>("--json") { Description = "The comparison as JSON (shape in the README)" };
        var command = new Command("config",
            "Unified diff of every changed file between two configuration archives, plus added/removed files and mode changes. " +
            "Each archive's checksum is verified before it is read (S3 copies are decrypted as restore does). Exit 0 whether or not they differ.")
        {
            a, b, at, from, stat, json,
        };
        command.SetAction((parse, ct) => ctx.RunAsync(parse, daemon: false, async agent =>
        {
            var sources = agent.CreateRestorer().Sources;
            var store = parse.GetValue(from);
            var atTime = RestoreVerbs.ParseTime(parse.GetValue(at));
            string? first = parse.GetValue(a), second = parse.GetValue(b);
            if (atTime is not null)
            {
                if (second is not null)
                {
                    throw new ArgumentException("--at picks A: give at most one argument (B) with it");
                }

                second = first ?? "latest";
                first = null;
            }

            ConfigTree left, right;
            if (first is null && second is null)
            {
                var (older, newer) = await TwoNewestAsync(sources, store, ct);
                left = await ReadAsync(sources, older, ct);
                right = await ReadAsync(sources, newer, ct);
            }
            else
            {
                left = first is null
                    ? await ReadAsync(sources, await sources.LatestAsync(BackupKinds.Config, atTime, store, ct), ct)
                    : await SideAsync(agent, sources, first, store, ct);
                right = await SideAsync(agent, sources, second ?? "latest", store, ct);
            }

            var changes = ConfigDiffer.Compare(left, right);
            var output = parse.GetValue(json)
                ? ConfigDiffReport.Json((left.Label, Source(left)), (right.Label, Source(right)), changes)
                : parse.GetValue(stat)
                    ? ConfigDiffReport.Stat(left.Label, right.Label, changes)
                    : ConfigDiffReport.Text(left.Label, right.Label, changes);
            await ctx.Out.WriteAsync(output);
            return ExitCodes.Success;
        }));
        return command;
    }

    private static readonly Dictionary<ConfigTree, string> Sources = new(ReferenceEqualityComparer.Instance);

    private static string Source(ConfigTree tree) => Sources.TryGetValue(tree, out var s) ? s : "live";

    private static async Task<(ArtifactRef Older, ArtifactRef Newer)> TwoNewestAsync(RestoreSources sources, string? from, CancellationToken ct)
    {
        IArtifactStore[] stores = from switch
        {
            "s3" => [sources.Remote ?? throw new ArgumentException("--from s3: S3 is disabled (Backup:S3:Enabled)")],
            "local" => [sources.Local],
            _ => sources.Remote is null ? [sources.Local] : [sources.Local, sources.Remote],
        };
        foreach (var store in stores)
        {
            var names = (await BackupCatalog.ListAsync(store, BackupKinds.Config, ct))
                .Where(e => e.Time is not null && e.Name.StartsWith("config_", StringComparison.Ordinal) && e.Name.EndsWith(".tar.gz", StringComparison.Ordinal))
                .Take(2).ToList();
            if (names.Count == 2)
            {
                return (new ArtifactRef(store, BackupKinds.Config, names[1].Name), new ArtifactRef(store, BackupKinds.Config, names[0].Name));
            }
        }

        throw new RestoreException("diff config needs two configuration backups and the store has fewer: name one side, or compare with live (diff config latest live)");
    }

    private static async Task<ConfigTree> SideAsync(AgentContext agent, RestoreSources sources, string token, string? from, CancellationToken ct)
    {
        if (token.Equals("live", StringComparison.OrdinalIgnoreCase))
        {
            var o = agent.Options;
            return await ConfigTree.ReadLiveAsync(o.Config.Root, o.Config.Include, o.Config.Exclude, o.Secrets.Directory, ct);
        }

        if (token.Equals("latest", StringComparison.OrdinalIgnoreCase))
        {
            return await ReadAsync(sources, await sources.LatestAsync(BackupKinds.Config, null, from, ct), ct);
        }

        if (token.Contains('/', StringComparison.Ordinal) || !token.StartsWith("config_", StringComparison.Ordinal) || !token.EndsWith(".tar.gz", StringComparison.Ordinal))
        {
            throw new ArgumentException($"not a configuration artifact name: '{token}' (expected config_YYYYMMDD_HHMMSS.tar.gz, latest or live)");
        }

        IArtifactStore[] stores = from switch
        {
            "s3" => [sources.Remote ?? throw new ArgumentException("--from s3: S3 is disabled (Backup:S3:Enabled)")],
            "local" => [sources.Local],
            _ => sources.Remote is null ? [sources.Local] : [sources.Local, sources.Remote],
        };
        foreach (var store in stores)
        {
            if (await store.StatAsync(BackupKinds.Config, token, ct) is not null)
            {
                return await ReadAsync(sources, new ArtifactRef(store, BackupKinds.Config, token), ct);
            }
        }

        throw new RestoreException($"no configuration backup {token} in {string.Join(" or ", stores.Select(s => s is Storage.Local.LocalArtifactStore ? "the local store" : $"S3 ({s.Target})"))}");
    }

    /// <summary>Verifies (stages) the archive, then reads it with the restore's entry rules.</summary>
    private static async Task<ConfigTree> ReadAsync(RestoreSources sources, ArtifactRef artifact, CancellationToken ct)
    {
        using var staged = await StageForDiffAsync(sources, artifact, ct);
        var input = new FileStream(staged.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        await using (input)
        {
            var tree = await ConfigTree.ReadArchiveAsync(input, artifact.Name, ct);
            Sources[tree] = artifact.Store is Storage.Local.LocalArtifactStore ? "local" : "s3";
            return tree;
        }
    }

    /// <summary>The restore's verification, with diff's own words: nothing is restored here, the archive is not compared.</summary>
    private static async Task<StagedArtifact> StageForDiffAsync(RestoreSources sources, ArtifactRef artifact, CancellationToken ct)
    {
        try
        {
            return await sources.StageAsync(artifact, ct);
        }
        catch (RestoreIntegrityException ex) when (ex.Message.Contains("; refusing to restore from it", StringComparison.Ordinal))
        {
            throw new RestoreIntegrityException(ex.Message.Replace("; refusing to restore from it", "; refusing to compare it", StringComparison.Ordinal), ex);
        }
    }
}
