using System.Text;

namespace VelozBackupAgent.Pitr;

/// <summary>Small text helpers so every message of the PITR layer stays one readable line.</summary>
internal static class PitrText
{
    private const int MaxQuoted = 80;

    /// <summary>Quotes untrusted text for a one-line message: control characters escaped, long text cut.</summary>
    public static string Quote(string? text)
    {
        if (text is null)
        {
            return "null";
        }

        var builder = new StringBuilder(Math.Min(text.Length, MaxQuoted) + 2).Append('\'');
        foreach (var c in text.Length > MaxQuoted ? text[..MaxQuoted] : text)
        {
            if (char.IsControl(c))
            {
                builder.Append(c switch { '\n' => "\\n", '\r' => "\\r", '\t' => "\\t", _ => $"\\u{(int)c:X4}" });
            }
            else
            {
                builder.Append(c);
            }
        }

        if (text.Length > MaxQuoted)
        {
            builder.Append('…');
        }

        return builder.Append('\'').ToString();
    }

    /// <summary>Joins lines of an exception message into one.</summary>
    public static string OneLine(string message) =>
        message.ReplaceLineEndings(" ");

    /// <summary>"1 segment", "3 segments".</summary>
    public static string Count(long n, string noun) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{n} {noun}{(n == 1 ? "" : "s")}");

    /// <summary>0x2000: how offsets inside a segment are shown.</summary>
    public static string Hex(long offset) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"0x{offset:X}");
}
