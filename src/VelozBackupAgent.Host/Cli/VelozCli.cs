using System.CommandLine;
using System.CommandLine.Parsing;
using System.Reflection;
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
    /// <summary>The version <c>--version</c> prints: the informational version (with the commit), as System.CommandLine prints it.</summary>
    internal static string InformationalVersion()
    {
        var assembly = typeof(VelozCli).Assembly;
        return assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? assembly.GetName().Version?.ToString() ?? "unknown";
    }

    public static async Task<int> RunAsync(string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        stdout ??= Console.Out;
        stderr ??= Console.Error;
        if (args is ["--version"])
        {
            // What System.CommandLine would print, without building the command tree (the whole cost of this verb).
            await stdout.WriteLineAsync(InformationalVersion());
            return ExitCodes.Success;
        }

        // [suggest:N] "line" is the shell completion asking for candidates (`completion bash|zsh`): System.CommandLine
        // answers it from the command tree, and a half-typed line is no usage error. Overrides in the line are taken
        // out first, as they are from a command line, or the parser would take them for unknown words.
        var completing = args.Length > 0 && args[0].StartsWith("[suggest", StringComparison.Ordinal);
        if (completing)
        {
            args = CompletionRequest(args);
        }

        var (verbArgs, overrides) = completing ? (args, []) : SplitOverrides(args);

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
        root.Subcommands.Add(Verbs.Completion(commands));

        var parse = root.Parse(verbArgs);
        if (!completing && (parse.Errors.Count > 0 || StrayOption(parse) is not null))
        {
            // A mistyped verb or option is one line with the likely word, not the parser's "Required command was not
            // provided" and "Unrecognized command or argument" pair.
            if (UnknownWord(parse) is { } line)
            {
                await stderr.WriteLineAsync($"veloz-backup: {line}");
                return ExitCodes.Usage;
            }

            foreach (var error in parse.Errors)
            {
                await stderr.WriteLineAsync($"veloz-backup: {error.Message}");
            }

            await stderr.WriteLineAsync("Try 'veloz-backup --help'.");
            return ExitCodes.Usage;
        }

        return await parse.InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
    }

    /// <summary>
    /// For a parse that failed on a word it did not know: <c>unknown verb 'restor'; did you mean 'restore'?</c> (or
    /// the verbs there are), the same for a sub-verb (<c>restore databse</c>) and an option (<c>--jsn</c>); null
    /// when the failure is something else (a missing argument, a value not among those allowed).
    /// </summary>
    internal static string? UnknownWord(ParseResult parse)
    {
        var result = parse.CommandResult;
        var command = result.Command;
        var path = new List<string>();
        for (SymbolResult? r = result; r is CommandResult c && c.Parent is not null; r = c.Parent)
        {
            path.Insert(0, c.Command.Name);
        }

        var verb = string.Join(' ', path);
        // The first word it did not know, in the order typed: "stauts --json" is about stauts, not --json.
        var unmatched = parse.UnmatchedTokens.ToHashSet(StringComparer.Ordinal);
        var typed = parse.Tokens.Where(t => t.Type == TokenType.Argument && (unmatched.Contains(t.Value) || IsStrayOption(t)))
            .Select(t => t.Value).FirstOrDefault();
        if (typed is null)
        {
            // "veloz-backup" or "veloz-backup restore" alone: a verb is missing.
            return command.Subcommands.Count > 0 && command.Action is null && parse.Errors.Count == 1
                ? $"{(verb.Length == 0 ? "" : verb + ": ")}missing verb: use one of {string.Join(", ", Visible(command))}"
                : null;
        }

        if (typed.StartsWith('-'))
        {
            var options = new List<string>();
            for (SymbolResult? r = result; r is CommandResult c; r = c.Parent)
            {
                foreach (var option in c.Command.Options.Where(o => !o.Hidden && (ReferenceEquals(c, result) || o.Recursive)))
                {
                    options.Add(option.Name);
                    options.AddRange(option.Aliases);
                }
            }

            var name = typed.Split('=', 2)[0];
            var closest = Suggestions.Closest(name, options.Where(o => o.StartsWith("--", StringComparison.Ordinal)));
            var where = verb.Length == 0 ? "" : $" for '{verb}'";
            return closest is null
                ? $"unknown option '{name}'{where}: see 'veloz-backup {(verb.Length == 0 ? "" : verb + " ")}--help'"
                : $"unknown option '{name}'{where}; did you mean '{closest}'?";
        }

        if (command.Subcommands.Count == 0 || command.Arguments.Count > 0)
        {
            // A word too many ("status extra"): one line, when that is all that is wrong.
            return parse.Errors.Count == parse.UnmatchedTokens.Count
                ? $"unexpected argument '{typed}'{(verb.Length == 0 ? "" : $" for '{verb}'")}: see 'veloz-backup {(verb.Length == 0 ? "" : verb + " ")}--help'"
                : null;
        }

        var prefix = verb.Length == 0 ? "" : verb + " ";
        var verbs = Visible(command);
        var guess = Suggestions.Closest(typed, verbs.Concat(command.Subcommands.Where(s => !s.Hidden).SelectMany(s => s.Aliases)));
        if (guess is not null && command.Subcommands.FirstOrDefault(s => s.Aliases.Contains(guess)) is { } aliased)
        {
            guess = aliased.Name;
        }

        return guess is null
            ? $"unknown verb '{prefix}{typed}': use one of {string.Join(", ", verbs)}"
            : $"unknown verb '{prefix}{typed}'; did you mean '{prefix}{guess}'?";

        static List<string> Visible(Command command) => [.. command.Subcommands.Where(s => !s.Hidden).Select(s => s.Name)];
    }

    /// <summary>
    /// A word that looks like an option but was taken as an argument's value (<c>list --jsn</c> reads <c>--jsn</c> as
    /// the optional KIND): no argument of this command line starts with <c>--</c>, so it is a mistyped option.
    /// </summary>
    private static string? StrayOption(ParseResult parse) => parse.Tokens.Where(IsStrayOption).Select(t => t.Value).FirstOrDefault();

    private static bool IsStrayOption(Token token) =>
        token.Type == TokenType.Argument && token.Value.Length > 2 && token.Value.StartsWith("--", StringComparison.Ordinal);

    /// <summary>
    /// <c>[suggest:N]</c> and the line up to the cursor with every <c>--Backup:Key=value</c> (or <c>--Backup:Key value</c>)
    /// override before the cursor taken out and N moved back to match: <c>backup --Backup:LocalRoot=/x da</c> completes
    /// like <c>backup da</c>. The cursor inside an override word leaves nothing to complete but that word.
    /// </summary>
    internal static string[] CompletionRequest(string[] args)
    {
        var directive = args[0];
        var colon = directive.IndexOf(':', StringComparison.Ordinal);
        var line = args.Length > 1 ? args[1] : "";
        if (colon < 0 || !directive.EndsWith(']') ||
            !int.TryParse(directive.AsSpan(colon + 1, directive.Length - colon - 2), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var position))
        {
            position = line.Length;
        }

        position = Math.Clamp(position, 0, line.Length);
        var prefix = line[..position];
        var words = prefix.Split(' ');
        var kept = new List<string>();
        var prefixOf = "--" + BackupOptions.SectionName + ":";
        for (var i = 0; i < words.Length; i++)
        {
            var word = words[i];
            var last = i == words.Length - 1;
            if (!last && word.StartsWith(prefixOf, StringComparison.OrdinalIgnoreCase))
            {
                // "--Backup:Key value": the value goes too, once it is typed (followed by a space).
                if (!word.Contains('=', StringComparison.Ordinal) && i + 1 < words.Length - 1)
                {
                    i++;
                }
                else if (!word.Contains('=', StringComparison.Ordinal))
                {
                    // The cursor is in the override's value: nothing of ours to complete.
                    kept.Clear();
                    kept.Add("--Backup:");
                    break;
                }

                continue;
            }

            kept.Add(word);
        }

        var stripped = string.Join(' ', kept);
        return [string.Create(System.Globalization.CultureInfo.InvariantCulture, $"[suggest:{stripped.Length}]"), stripped + line[position..], .. args.Skip(2)];
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

    internal static string FirstLine(string message)
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
