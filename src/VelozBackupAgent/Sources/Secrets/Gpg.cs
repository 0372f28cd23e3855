using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;

namespace VelozBackupAgent.Sources.Secrets;

/// <summary>
/// The gpg binary as the secrets kind uses it: checking every configured recipient's public key before a
/// byte is encrypted, and starting the streaming encryption (stdin: the tar.gz, stdout: the artifact).
/// Arguments go as a list, never through a shell; <c>GNUPGHOME</c> goes through the child's environment.
/// </summary>
internal sealed class Gpg
{
    private const string RecipientsKey = $"{BackupOptions.SectionName}:{nameof(BackupOptions.Secrets)}:{nameof(SecretsOptions.Recipients)}";

    private readonly SecretsOptions _options;
    private readonly ILogger _logger;

    public Gpg(SecretsOptions options, ILogger logger)
    {
        _options = options;
        _logger = logger;
    }

    /// <summary>Where gpg looks for keys, for messages.</summary>
    public string Keyring => _options.GnupgHome is { Length: > 0 } home
        ? $"GNUPGHOME {home}"
        : Environment.GetEnvironmentVariable("GNUPGHOME") is { Length: > 0 } inherited ? $"GNUPGHOME {inherited}" : "the agent user's ~/.gnupg";

    /// <summary>Refuses to go on without a single recipient: secrets are never stored unencrypted.</summary>
    public void EnsureRecipientsConfigured()
    {
        if (_options.Recipients.All(string.IsNullOrWhiteSpace))
        {
            throw new BackupSourceException($"{RecipientsKey} is empty: refusing to back up secrets without encryption");
        }
    }

    /// <summary>
    /// Resolves each configured recipient to exactly one public key gpg will encrypt to. A recipient with no
    /// key, or whose keys are expired, revoked, disabled or cannot encrypt, or that matches several usable
    /// keys (gpg would pick one silently) is refused with one line naming it.
    /// </summary>
    public async Task<IReadOnlyList<GpgKey>> ResolveRecipientsAsync(CancellationToken cancellationToken)
    {
        EnsureRecipientsConfigured();
        var recipients = _options.Recipients.Select(r => r?.Trim() ?? "").ToList();

        var keys = new List<GpgKey>();
        for (var i = 0; i < recipients.Count; i++)
        {
            if (recipients[i].Length == 0)
            {
                throw new BackupSourceException($"{RecipientsKey}:{i} is blank: name a key by e-mail, key id or fingerprint");
            }

            var key = await ResolveAsync(recipients[i], cancellationToken).ConfigureAwait(false);
            if (!keys.Any(k => k.Fingerprint == key.Fingerprint))
            {
                keys.Add(key);
            }
        }

        return keys;
    }

    /// <summary>Starts <c>gpg --encrypt</c> to <paramref name="recipients"/> (by fingerprint: exactly the keys that were checked).</summary>
    public ChildProcess StartEncryption(IReadOnlyList<GpgKey> recipients)
    {
        // Already gzip-compressed: gpg's own compression would only burn CPU.
        List<string> arguments = ["--batch", "--no-tty", "--quiet", "--trust-model", "always", "--compress-algo", "none", "--encrypt"];
        foreach (var key in recipients)
        {
            arguments.Add("--recipient");
            arguments.Add(key.Fingerprint);
        }

        return ChildProcess.Start(Spec(arguments) with { RedirectInput = true }, _logger);
    }

    /// <summary>Starts <c>gpg --decrypt</c> (stdin: the artifact, stdout: the tar.gz) with the configured keyring.</summary>
    public ChildProcess StartDecryption() =>
        ChildProcess.Start(Spec(["--batch", "--no-tty", "--quiet", "--decrypt"]) with { RedirectInput = true }, _logger);

    private async Task<GpgKey> ResolveAsync(string recipient, CancellationToken cancellationToken)
    {
        string listing;
        await using (var gpg = ChildProcess.Start(Spec(["--batch", "--no-tty", "--with-colons", "--fixed-list-mode", "--trust-model", "always", "--list-keys", "--", recipient]), _logger))
        {
            try
            {
                listing = await gpg.ReadAllTextAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (BackupSourceException)
            {
                throw new BackupSourceException($"{RecipientsKey}: no public key for {recipient} in {Keyring} ({gpg.ErrorSummary()}); import it with gpg --import");
            }
        }

        var keys = GpgKeyListing.Parse(listing);
        if (keys.Count == 0)
        {
            throw new BackupSourceException($"{RecipientsKey}: no public key for {recipient} in {Keyring}; import it with gpg --import");
        }

        var usable = keys.Where(k => k.Unusable is null).ToList();
        if (usable.Count == 0)
        {
            var reasons = string.Join("; ", keys.Select(k => $"{k.Describe()} is {k.Unusable}"));
            throw new BackupSourceException($"{RecipientsKey}: cannot encrypt to {recipient}: {reasons}; refusing to back up secrets to a key that cannot decrypt them");
        }

        if (usable.Count > 1)
        {
            throw new BackupSourceException(
                $"{RecipientsKey}: {recipient} matches {usable.Count} usable keys ({string.Join(", ", usable.Select(k => k.Describe()))}); name the one to use by its fingerprint");
        }

        return usable[0];
    }

    private ChildProcessSpec Spec(IReadOnlyList<string> arguments)
    {
        var environment = new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            // English, parseable messages whatever the host's locale.
            ["LC_ALL"] = "C",
        };
        if (_options.GnupgHome is { Length: > 0 } home)
        {
            environment["GNUPGHOME"] = home;
        }

        return new ChildProcessSpec(_options.GpgPath, arguments, "gpg")
        {
            Environment = environment,
            Inherit = InheritedVariables.Gnupg,
            InstallHint = $"install gnupg (apt-get install gnupg) or set {BackupOptions.SectionName}:{nameof(BackupOptions.Secrets)}:{nameof(SecretsOptions.GpgPath)}",
        };
    }
}
