using VelozBackupAgent.Storage.Checksums;

namespace VelozBackupAgent.Storage;

/// <summary>Rules every store applies to kinds and names, so no name can reach outside its folder.</summary>
public static class ArtifactNames
{
    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="kind"/> is a plain lower-case folder name.</summary>
    public static void ValidateKind(string kind)
    {
        if (string.IsNullOrEmpty(kind) || kind.Length > 64 || !kind.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-' or '_'))
        {
            throw new ArgumentException($"invalid artifact kind '{kind}': use lower-case letters, digits, '-' and '_'", nameof(kind));
        }
    }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> unless <paramref name="name"/> is a plain file name: no
    /// separators, not hidden, not a sidecar, at most 200 characters of letters, digits, '.', '-', '_'.
    /// </summary>
    public static void ValidateName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 200 || name[0] == '.'
            || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_')
            || name.EndsWith(Sha256Sidecar.Suffix, StringComparison.Ordinal))
        {
            throw new ArgumentException($"invalid artifact name '{name}'", nameof(name));
        }
    }

    public static void Validate(string kind, string name)
    {
        ValidateKind(kind);
        ValidateName(name);
    }
}
