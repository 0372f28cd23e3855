using System.Globalization;
using System.Text;

namespace VelozBackupAgent.Storage.Checksums;

/// <summary>
/// The <c>&lt;name&gt;.sha256</c> sidecar, in the format <c>sha256sum</c> writes and <c>sha256sum -c</c>
/// reads: 64 lower-case hex digits, two spaces (text mode), the file name, a newline.
/// </summary>
public static class Sha256Sidecar
{
    /// <summary>The suffix appended to an artifact's name to name its sidecar.</summary>
    public const string Suffix = ".sha256";

    public static string SidecarName(string artifactName) => artifactName + Suffix;

    public static string Format(string sha256Hex, string artifactName)
    {
        if (!IsSha256Hex(sha256Hex))
        {
            throw new ArgumentException($"not a SHA-256 hex digest: '{sha256Hex}'", nameof(sha256Hex));
        }

        return string.Create(CultureInfo.InvariantCulture, $"{sha256Hex}  {artifactName}\n");
    }

    public static byte[] FormatBytes(string sha256Hex, string artifactName) => Encoding.UTF8.GetBytes(Format(sha256Hex, artifactName));

    /// <summary>
    /// Parses a sidecar and checks that it names <paramref name="artifactName"/>. Returns the digest, or
    /// throws <see cref="ArtifactIntegrityException"/> when the sidecar is malformed or names another file.
    /// </summary>
    public static string Parse(string text, string artifactName)
    {
        var line = text.TrimEnd('\n', '\r');
        if (line.Contains('\n', StringComparison.Ordinal))
        {
            throw new ArtifactIntegrityException($"checksum sidecar of {artifactName} has more than one line");
        }

        // sha256sum writes "<hex>  <name>" (text mode) or "<hex> *<name>" (binary mode).
        if (line.Length < 66 || line[64] != ' ' || (line[65] != ' ' && line[65] != '*'))
        {
            throw new ArtifactIntegrityException($"checksum sidecar of {artifactName} is not in sha256sum format");
        }

        var hex = line[..64];
        var named = line[66..];
        if (!IsSha256Hex(hex.ToLowerInvariant()))
        {
            throw new ArtifactIntegrityException($"checksum sidecar of {artifactName} does not hold a SHA-256 digest");
        }

        if (!string.Equals(named, artifactName, StringComparison.Ordinal))
        {
            throw new ArtifactIntegrityException($"checksum sidecar of {artifactName} names another file: '{named}'");
        }

        return hex.ToLowerInvariant();
    }

    public static bool IsSha256Hex(string? value) =>
        value is { Length: 64 } && value.All(c => c is (>= '0' and <= '9') or (>= 'a' and <= 'f'));
}
