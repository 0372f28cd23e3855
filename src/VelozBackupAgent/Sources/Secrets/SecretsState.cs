using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using VelozBackupAgent.Sources.Archives;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Sources.Secrets;

/// <summary>
/// What the last successful secrets backup was made of, so a change-triggered run can tell whether there
/// is anything new — without keeping anything derived from the plaintext. The fingerprint is a SHA-256 over
/// metadata only: each entry's relative path, type, permission bits, owner, size, modification time,
/// status-change time and inode, plus the recipients' key fingerprints. Content changes always move the
/// ctime (which user space cannot set back), so nothing is missed; a content hash — even a keyed one whose
/// key sits on the same disk — would let whoever reads the state directory test guesses of a secret.
/// The file (<c>&lt;state&gt;/secrets/last-backup</c>, 0600) holds that fingerprint, the artifact's name and
/// its SHA-256; it only counts while that artifact is still in the store with those bytes.
/// </summary>
internal sealed class SecretsState
{
    private const string Header = "veloz-backup secrets state v1";

    private readonly string _directory;

    public SecretsState(string stateDirectory) => _directory = Path.Combine(stateDirectory, "secrets");

    public string FilePath => Path.Combine(_directory, "last-backup");

    /// <summary>The metadata fingerprint of a listing encrypted to <paramref name="recipientFingerprints"/>.</summary>
    public static string Fingerprint(IEnumerable<SourceEntry> entries, IEnumerable<string> recipientFingerprints) =>
        Fingerprint(entries, recipientFingerprints, []);

    /// <summary>
    /// As above, plus one line per secrets command (<see cref="SecretCommands.SaltedHashes"/>): a command has no
    /// metadata to go by, so its output's SHA-256 counts — only ever salted and stretched, and only inside this hash.
    /// </summary>
    public static string Fingerprint(IEnumerable<SourceEntry> entries, IEnumerable<string> recipientFingerprints, IEnumerable<string> commandLines)
    {
        ArgumentNullException.ThrowIfNull(commandLines);
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(recipientFingerprints);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes(Header + "\n"));
        foreach (var e in entries)
        {
            var s = e.Status;
            var line = string.Create(CultureInfo.InvariantCulture,
                $"{e.Kind} {Hex(e.RelativePath)} {Hex(e.LinkTarget ?? "")} {s.Mode} {s.Uid} {s.Gid} {s.Size} {s.MtimeNs} {s.CtimeNs} {s.Device} {s.Inode}\n");
            hash.AppendData(Encoding.UTF8.GetBytes(line));
        }

        foreach (var fingerprint in recipientFingerprints.Order(StringComparer.Ordinal))
        {
            hash.AppendData(Encoding.UTF8.GetBytes($"recipient {fingerprint}\n"));
        }

        foreach (var line in commandLines)
        {
            hash.AppendData(Encoding.UTF8.GetBytes(line + "\n"));
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>The recorded (fingerprint, artifact name, artifact SHA-256), or null when there is none or it is unreadable.</summary>
    public (string Fingerprint, string Artifact, string Sha256)? Read()
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(FilePath);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        string? Value(string key) => lines.FirstOrDefault(l => l.StartsWith(key + " ", StringComparison.Ordinal))?[(key.Length + 1)..].Trim();
        return lines.Length > 0 && lines[0] == Header && Value("fingerprint") is { } f && Value("artifact") is { } a && Value("sha256") is { } h
            ? (f, a, h)
            : null;
    }

    /// <summary>Records a successful backup: written to a temporary file and renamed, so it is whole or absent.</summary>
    public void Save(string fingerprint, ArtifactInfo artifact)
    {
        ArgumentNullException.ThrowIfNull(artifact);
        PrivateFiles.CreateDirectory(_directory);
        var salt = ReadSalt() is { } s ? $"salt {Convert.ToHexStringLower(s)}\n" : "";
        PrivateFiles.ReplaceAtomically(FilePath, $"{Header}\nfingerprint {fingerprint}\nartifact {artifact.Name}\nsha256 {artifact.Sha256}\n{salt}");
    }

    /// <summary>Where the commands' spools go while a run needs them (0700; the files in it are nameless, see <see cref="EncryptedSpool"/>).</summary>
    public string SpoolDirectory => Path.Combine(_directory, "spool");

    /// <summary>
    /// The random salt of the commands' hashes: the one recorded in the state file, else a new one (recorded
    /// with the next <see cref="Save"/>). A new salt only costs one write a change-triggered run would have skipped.
    /// </summary>
    public byte[] Salt()
    {
        if (_salt is null)
        {
            _salt = ReadSalt() ?? RandomNumberGenerator.GetBytes(32);
        }

        return _salt;
    }

    private byte[]? _salt;

    private byte[]? ReadSalt()
    {
        if (_salt is not null)
        {
            return _salt;
        }

        try
        {
            var line = File.ReadAllLines(FilePath).FirstOrDefault(l => l.StartsWith("salt ", StringComparison.Ordinal));
            return line is null ? null : Convert.FromHexString(line[5..].Trim());
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    private static string Hex(string text) => Convert.ToHexStringLower(Encoding.UTF8.GetBytes(text));
}
