using System.Globalization;
using System.Text.RegularExpressions;

namespace VelozBackupAgent.Sources.Secrets;

/// <summary>One public key from <c>gpg --with-colons --fixed-list-mode --list-keys</c>.</summary>
/// <param name="Fingerprint">The primary key's fingerprint.</param>
/// <param name="Validity">Field 2 of the <c>pub</c> line: <c>e</c> expired, <c>r</c> revoked, <c>i</c> invalid, <c>d</c> disabled, …</param>
/// <param name="Capabilities">Field 12: upper-case letters are what the key as a whole can still do (<c>E</c>: encrypt).</param>
/// <param name="Expires">When the primary key expires (field 7), if it does.</param>
/// <param name="UserIds">The key's user ids.</param>
internal sealed record GpgKey(string Fingerprint, char Validity, string Capabilities, DateTimeOffset? Expires, IReadOnlyList<string> UserIds)
{
    /// <summary>Why gpg would not encrypt to this key, or null when it would.</summary>
    public string? Unusable => Validity switch
    {
        'r' => "revoked",
        'e' => Expires is { } at ? $"expired since {at.UtcDateTime:yyyy-MM-dd}" : "expired",
        'i' => "invalid",
        'd' => "disabled",
        _ when Capabilities.Contains('D', StringComparison.Ordinal) => "disabled",
        _ when !Capabilities.Contains('E', StringComparison.Ordinal) => "not usable for encryption (no valid encryption subkey: expired, revoked or never made)",
        _ => null,
    };

    /// <summary>How an operator recognises it: the first user id and the fingerprint.</summary>
    public string Describe() => UserIds.Count > 0 ? $"{UserIds[0]} ({Fingerprint})" : Fingerprint;
}

/// <summary>Reads gpg's machine-readable key listing (doc/DETAILS in GnuPG).</summary>
internal static partial class GpgKeyListing
{
    public static List<GpgKey> Parse(string colons)
    {
        ArgumentNullException.ThrowIfNull(colons);
        var keys = new List<GpgKey>();
        string[]? pub = null;
        string? fingerprint = null;
        var uids = new List<string>();
        var inPrimary = false;

        void Flush()
        {
            if (pub is not null && fingerprint is not null)
            {
                keys.Add(new GpgKey(fingerprint, Field(pub, 1) is { Length: > 0 } v ? v[0] : '-', Field(pub, 11), Expiry(Field(pub, 6)), [.. uids]));
            }

            pub = null;
            fingerprint = null;
            uids.Clear();
        }

        foreach (var raw in colons.Split('\n'))
        {
            var fields = raw.TrimEnd('\r').Split(':');
            switch (fields[0])
            {
                case "pub":
                    Flush();
                    pub = fields;
                    inPrimary = true;
                    break;
                case "fpr" when inPrimary && pub is not null && fingerprint is null:
                    fingerprint = Field(fields, 9);
                    break;
                case "uid" when pub is not null:
                    uids.Add(Unescape(Field(fields, 9)));
                    break;
                case "sub" or "ssb":
                    inPrimary = false;
                    break;
            }
        }

        Flush();
        return keys;
    }

    private static string Field(string[] fields, int index) => index < fields.Length ? fields[index] : "";

    private static DateTimeOffset? Expiry(string field) =>
        long.TryParse(field, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) && seconds > 0
            ? DateTimeOffset.FromUnixTimeSeconds(seconds)
            : null;

    /// <summary>gpg escapes ':', '\' and control characters in user ids as <c>\xNN</c>.</summary>
    private static string Unescape(string value) =>
        EscapeRegex().Replace(value, m => ((char)byte.Parse(m.Groups[1].ValueSpan, NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToString());

    [GeneratedRegex(@"\\x([0-9A-Fa-f]{2})")]
    private static partial Regex EscapeRegex();
}
