using System.CommandLine;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Host.Cli;

/// <summary>Exit codes of every verb (the design's contract).</summary>
internal static class ExitCodes
{
    public const int Success = 0;
    public const int Failed = 1;
    public const int Usage = 2;
    public const int VerifyFailed = 3;
    public const int Interrupted = 130;
}

/// <summary>
/// The command line: <c>veloz-backup &lt;verb&gt; [options]</c>. Configuration overrides in the .NET form
/// (<c>--Backup:LocalRoot=/x</c> or <c>--Backup:LocalRoot /x</c>) may stand anywhere and are taken out
/// before the verbs are parsed.
/// </summary>
internal static class VelozCli
{
    public static async Task<int> RunAsync(string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        stdout ??= Console.Out;
        stderr ??= Console.Error;
        var (verbArgs, overrides) = SplitOverrides(args);

        var configOption = new Option<string?>("--config", "-c")
        {
            Description = $"appsettings.json to read (default: $VELOZ_BACKUP_CONFIG, then {AgentContext.SystemConfigPath}, then the one beside the binary)",
            Recursive = true,
        };

        var root = new RootCommand(
            "VelozBackupAgent: backs up the VeloZ order WAL, configuration, PostgreSQL database and encrypted secrets " +
            "to a local store and S3, and restores them.\n" +
            "Any setting can be overridden as --Backup:<Key>=<value> (e.g. --Backup:LocalRoot=/srv/backup) or Backup__<Key> in the environment.\n" +
            "Exit codes: 0 success, 1 the operation failed, 2 bad usage or configuration, 3 verify found a failing check.");
        var verboseOption = new Option<bool>("--verbose", "-v")
        {
            Description = "Also print log lines on stderr (they always go to the log file)",
            Recursive = true,
        };
        root.Options.Add(configOption);
        root.Options.Add(verboseOption);

        var commands = new VerbContext(configOption, verboseOption, overrides, stdout, stderr);
        root.Subcommands.Add(Verbs.Run(commands));
        root.Subcommands.Add(Verbs.Backup(commands));
        root.Subcommands.Add(Verbs.Prune(commands));
        root.Subcommands.Add(Verbs.List(commands));
        root.Subcommands.Add(Verbs.Status(commands));
        root.Subcommands.Add(Verbs.Replicate(commands));
        root.Subcommands.Add(Verbs.Import(commands));
        root.Subcommands.Add(RestoreVerbs.Restore(commands));
        root.Subcommands.Add(VerifyVerb.Verify(commands));
        root.Subcommands.Add(DiffVerbs.Diff(commands));
        root.Subcommands.Add(PitrVerbs.PgWalPush(commands));
        root.Subcommands.Add(PitrVerbs.PgWalGet(commands));

        var parse = root.Parse(verbArgs);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                await stderr.WriteLineAsync($"veloz-backup: {error.Message}");
            }

            await stderr.WriteLineAsync("Try 'veloz-backup --help'.");
            return ExitCodes.Usage;
        }

        return await parse.InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
    }

    /// <summary>Separates <c>--Backup:Key=value</c> / <c>--Backup:Key value</c> overrides from the verb's arguments.</summary>
    internal static (string[] VerbArgs, List<string> Overrides) SplitOverrides(IReadOnlyList<string> args)
    {
        var verbArgs = new List<string>();
        var overrides = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var a = args[i];
            if (a.StartsWith("--" + BackupOptions.SectionName + ":", StringComparison.OrdinalIgnoreCase))
            {
                if (a.Contains('=', StringComparison.Ordinal))
                {
                    overrides.Add(a);
                }
                else if (i + 1 < args.Count)
                {
                    overrides.Add(a + "=" + args[++i]);
                }
                else
                {
                    overrides.Add(a + "=");
                }
            }
            else
            {
                verbArgs.Add(a);
            }
        }

        return (verbArgs.ToArray(), overrides);
    }
}

/// <summary>What every verb's action shares: how to build the agent and where to write.</summary>
internal sealed class VerbContext(Option<string?> configOption, Option<bool> verboseOption, IReadOnlyList<string> overrides, TextWriter stdout, TextWriter stderr)
{
    public TextWriter Out { get; } = stdout;
    public TextWriter Error { get; } = stderr;

    /// <summary>
    /// Builds the agent and runs <paramref name="body"/>, turning every expected failure into one line on
    /// stderr and the design's exit code. Unexpected exceptions still print one line (and the log has the rest).
    /// </summary>
    public async Task<int> RunAsync(ParseResult parse, bool daemon, Func<AgentContext, Task<int>> body)
    {
        AgentContext? agent = null;
        try
        {
            agent = AgentContext.Create(parse.GetValue(configOption), overrides, daemon, parse.GetValue(verboseOption));
            return await body(agent);
        }
        catch (BackupConfigurationException ex)
        {
            await Error.WriteLineAsync($"veloz-backup: configuration error: {ex.Message}");
            return ExitCodes.Usage;
        }
        catch (ArgumentException ex)
        {
            await Error.WriteLineAsync($"veloz-backup: {FirstLine(ex.Message)}");
            return ExitCodes.Usage;
        }
        catch (OperationCanceledException)
        {
            await Error.WriteLineAsync("veloz-backup: interrupted");
            return ExitCodes.Interrupted;
        }
        catch (Restore.RestoreException ex)
        {
            await Error.WriteLineAsync($"veloz-backup: {FirstLine(ex.Message)}");
            return ExitCodes.Failed;
        }
        catch (Sources.BackupSourceException ex)
        {
            await Error.WriteLineAsync($"veloz-backup: {FirstLine(ex.Message)}");
            return ExitCodes.Failed;
        }
        catch (StoreException ex)
        {
            await Error.WriteLineAsync($"veloz-backup: {FirstLine(ex.Message)}");
            return ExitCodes.Failed;
        }
        catch (Pitr.WalArchiveException ex)
        {
            await Error.WriteLineAsync($"veloz-backup: {FirstLine(ex.Message)}");
            return ExitCodes.Failed;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            await Error.WriteLineAsync($"veloz-backup: {FirstLine(ex.Message)}");
            return ExitCodes.Failed;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A failure nothing above expected (a library's own exception type, say) is still one line and exit 1, never
            // a crash with a stack trace (exit 134); the stack goes to the log file.
            if (agent is not null)
            {
                CliLog.Unexpected(agent.LoggerFactory.CreateLogger("veloz-backup"), ex);
            }

            await Error.WriteLineAsync($"veloz-backup: unexpected {ex.GetType().Name}: {FirstLine(ex.Message)}");
            return ExitCodes.Failed;
        }
        finally
        {
            if (agent is not null)
            {
                await agent.DisposeAsync();
            }
        }
    }

    private static string FirstLine(string message)
    {
        var line = message.Split('\n')[0].Trim();
        // ArgumentException appends " (Parameter 'x')", which means nothing to an operator.
        var parameter = line.IndexOf(" (Parameter '", StringComparison.Ordinal);
        return parameter > 0 ? line[..parameter] : line;
    }
}

internal static partial class CliLog
{
    [Microsoft.Extensions.Logging.LoggerMessage(LogEvents.Cli.Unexpected, Microsoft.Extensions.Logging.LogLevel.Error, "unexpected failure")]
    public static partial void Unexpected(Microsoft.Extensions.Logging.ILogger logger, Exception exception);
}
