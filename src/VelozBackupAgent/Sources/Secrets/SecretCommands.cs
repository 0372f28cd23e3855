using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;

namespace VelozBackupAgent.Sources.Secrets;

/// <summary>One command's output, spooled encrypted (see <see cref="EncryptedSpool"/>).</summary>
internal sealed record SecretCommandOutput(string Name, EncryptedSpool Spool)
{
    /// <summary>Where it sits in the archive.</summary>
    public string EntryName => $"{SecretCommands.Directory}/{Name}.out";
}

/// <summary>
/// Runs <c>Backup:Secrets:Commands</c>: each program without a shell, its arguments as a list, with the
/// allow-listed environment (<see cref="ChildEnvironment"/>) plus only the variables it names, taken from the
/// agent's environment. Its stdout goes straight into an <see cref="EncryptedSpool"/> (never a log, never a
/// plaintext file); its stderr is logged line by line (bounded). A command that exits non-zero, cannot be
/// started or outlives its timeout (its process tree is then killed) fails the whole secrets run, naming it.
/// </summary>
internal static class SecretCommands
{
    /// <summary>The archive directory that holds the outputs.</summary>
    public const string Directory = "commands";

    private const string Key = $"{BackupOptions.SectionName}:{nameof(BackupOptions.Secrets)}:{nameof(SecretsOptions.Commands)}";

    /// <summary>Runs every command in order; on any failure the spools made so far are disposed and the failure propagates.</summary>
    public static async Task<List<SecretCommandOutput>> RunAllAsync(SecretsOptions options, string spoolDirectory, ILogger logger, CancellationToken cancellationToken)
    {
        var outputs = new List<SecretCommandOutput>();
        try
        {
            foreach (var command in options.Commands)
            {
                outputs.Add(new SecretCommandOutput(command.Name, await RunAsync(command, spoolDirectory, logger, cancellationToken).ConfigureAwait(false)));
            }

            return outputs;
        }
        catch
        {
            Dispose(outputs);
            throw;
        }
    }

    public static void Dispose(IEnumerable<SecretCommandOutput> outputs)
    {
        foreach (var output in outputs)
        {
            output.Spool.Dispose();
        }
    }

    /// <summary>The plaintext SHA-256s of the outputs made slow and salted: what <see cref="SecretsState"/> may keep.</summary>
    public static IEnumerable<string> SaltedHashes(IEnumerable<SecretCommandOutput> outputs, byte[] salt) =>
        outputs.Select(o => $"command {Convert.ToHexStringLower(System.Text.Encoding.UTF8.GetBytes(o.Name))} {o.Spool.Length} {SaltedHash(o.Spool.Sha256, salt)}");

    /// <summary>
    /// PBKDF2-SHA256 (100 000 rounds) of the output's SHA-256 under the state's random salt: whoever can read
    /// <c>.state</c> cannot look the output up in a table, and each guess of a whole output costs them those rounds.
    /// </summary>
    public static string SaltedHash(byte[] sha256, byte[] salt) =>
        Convert.ToHexStringLower(Rfc2898DeriveBytes.Pbkdf2(sha256, salt, 100_000, HashAlgorithmName.SHA256, 32));

    private static async Task<EncryptedSpool> RunAsync(SecretCommandOptions command, string spoolDirectory, ILogger logger, CancellationToken cancellationToken)
    {
        var environment = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var name in command.Environment)
        {
            // Only for this command; every other child's environment is the allow-list alone.
            if (System.Environment.GetEnvironmentVariable(name) is { } value)
            {
                environment[name] = value;
            }
        }

        var display = $"secrets command {command.Name}";
        var spec = new ChildProcessSpec(command.Command, [.. command.Arguments], display)
        {
            Environment = environment,
            Inherit = InheritedVariables.Common,
            MaxLoggedErrorLines = 50,
            InstallHint = $"check {Key} '{command.Name}' Command",
        };

        var spool = EncryptedSpool.Create(spoolDirectory);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(command.Timeout);
            await using var child = ChildProcess.Start(spec, logger);
            await using var kill = timeout.Token.Register(child.KillTree);
            try
            {
                await spool.FillAsync(child.Output, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or BackupSourceException && timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                // Disposing the child (below) kills its whole process tree.
                throw new BackupSourceException($"{display} did not finish within {command.Timeout} ({Key} Timeout); killed it and its children; nothing stored");
            }
            catch (BackupSourceException ex)
            {
                throw new BackupSourceException($"{ex.Message}; nothing stored", ex);
            }

            return spool;
        }
        catch
        {
            spool.Dispose();
            throw;
        }
    }
}
