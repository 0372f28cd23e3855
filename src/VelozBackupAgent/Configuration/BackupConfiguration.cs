using Microsoft.Extensions.Configuration;

namespace VelozBackupAgent.Configuration;

/// <summary>A configuration that cannot be used; the message names every key that is wrong.</summary>
public sealed class BackupConfigurationException : Exception
{
    public BackupConfigurationException() { }
    public BackupConfigurationException(string message) : base(message) { }
    public BackupConfigurationException(string message, Exception innerException) : base(message, innerException) { }

    public IReadOnlyList<string> Problems { get; init; } = [];
}

/// <summary>Binds and validates the <c>Backup</c> section, the same way for the daemon and every CLI verb.</summary>
public static class BackupConfiguration
{
    /// <summary>
    /// Binds the section and returns the options, or throws <see cref="BackupConfigurationException"/>
    /// listing every problem (unknown keys, values that do not convert, values that do not make sense).
    /// </summary>
    public static BackupOptions Load(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var options = new BackupOptions();
        var section = configuration.GetSection(BackupOptions.SectionName);
        var unconvertible = ConfigValueProblems.Find(section, typeof(BackupOptions)).ToList();
        if (unconvertible.Count > 0)
        {
            // Every value that does not convert, at once and with its format; the binder would stop at the first.
            var problems = BackupOptionsValidator.UnknownKeys(section, typeof(BackupOptions)).Concat(unconvertible).ToList();
            throw new BackupConfigurationException(Describe(problems)) { Problems = problems };
        }

        try
        {
            configuration.GetSection(BackupOptions.SectionName).Bind(options);
        }
        catch (InvalidOperationException ex)
        {
            // The binder names the key: "Failed to convert configuration value '7 days' at 'Backup:Wal:Retention' to type 'System.TimeSpan'."
            var problems = BackupOptionsValidator.UnknownKeys(configuration.GetSection(BackupOptions.SectionName), typeof(BackupOptions))
                .Append(ex.Message.TrimEnd('.')).ToList();
            throw new BackupConfigurationException(Describe(problems), ex) { Problems = problems };
        }

        ApplyListDefaults(configuration.GetSection(BackupOptions.SectionName), options);
        var found = BackupOptionsValidator.Collect(options, configuration);
        if (found.Count > 0)
        {
            throw new BackupConfigurationException(Describe(found)) { Problems = found };
        }

        return options;
    }

    /// <summary>The seeds' configuration file set, used when <c>Backup:Config:Include</c> is not set at all.</summary>
    public static IReadOnlyList<string> DefaultConfigInclude { get; } = ["config.yaml", "strategies/*.yaml", "risk_limits.yaml", ".env"];

    /// <summary>Used when <c>Backup:Config:Exclude</c> is not set at all (<c>*.secret</c> is excluded regardless).</summary>
    public static IReadOnlyList<string> DefaultConfigExclude { get; } = ["**/*.secret"];

    // The binder appends to a list that already has items, so list defaults cannot live in the property
    // initialisers: they are applied here, only when the key is absent.
    private static void ApplyListDefaults(IConfigurationSection backup, BackupOptions options)
    {
        if (!backup.GetSection("Config:Include").GetChildren().Any())
        {
            foreach (var glob in DefaultConfigInclude)
            {
                options.Config.Include.Add(glob);
            }
        }

        if (!backup.GetSection("Config:Exclude").GetChildren().Any())
        {
            foreach (var glob in DefaultConfigExclude)
            {
                options.Config.Exclude.Add(glob);
            }
        }
    }

    private static string Describe(IReadOnlyList<string> problems) => string.Join("; ", problems);
}
