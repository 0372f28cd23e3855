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

        // Values that do not convert are found first, each with its key, its value and the accepted format (the binder
        // would stop at the first and say only "to type 'System.TimeSpan'"). They are then left out of the binding, so
        // their defaults stand in and the validator still reports every other problem of the same start, in one message.
        var unconvertible = ConfigValueProblems.FindByKey(section, typeof(BackupOptions)).ToList();
        var bindFrom = unconvertible.Count == 0 ? section : Without(configuration, unconvertible.Select(u => u.Key)).GetSection(BackupOptions.SectionName);
        try
        {
            bindFrom.Bind(options);
        }
        catch (InvalidOperationException ex)
        {
            // A conversion ConfigValueProblems does not foresee; the binder names the key:
            // "Failed to convert configuration value '7 days' at 'Backup:Wal:Retention' to type 'System.TimeSpan'."
            var problems = BackupOptionsValidator.UnknownKeys(section, typeof(BackupOptions))
                .Concat(unconvertible.Select(u => u.Problem)).Append(ex.Message.TrimEnd('.')).Distinct().ToList();
            throw new BackupConfigurationException(Describe(problems), ex) { Problems = problems };
        }

        ApplyListDefaults(configuration.GetSection(BackupOptions.SectionName), options);
        var found = BackupOptionsValidator.Collect(options, configuration);
        if (unconvertible.Count > 0)
        {
            // Unknown keys first (Collect starts with them), then the values that do not convert, then the rest.
            var unknown = BackupOptionsValidator.UnknownKeys(section, typeof(BackupOptions)).ToList();
            found = [.. unknown, .. unconvertible.Select(u => u.Problem), .. found.Skip(unknown.Count)];
        }

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

    /// <summary>A copy of <paramref name="configuration"/> without the values at <paramref name="keys"/> (and below them).</summary>
    private static IConfiguration Without(IConfiguration configuration, IEnumerable<string> keys)
    {
        var drop = keys.ToList();
        bool Dropped(string key) => drop.Exists(d => string.Equals(key, d, StringComparison.OrdinalIgnoreCase)
                                                     || key.StartsWith(d + ConfigurationPath.KeyDelimiter, StringComparison.OrdinalIgnoreCase));
        var kept = configuration.AsEnumerable().Where(kv => kv.Value is not null && !Dropped(kv.Key));
        return new ConfigurationBuilder().AddInMemoryCollection(kept).Build();
    }

    private static string Describe(IReadOnlyList<string> problems) => string.Join("; ", problems);
}
