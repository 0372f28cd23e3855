using System.Globalization;

namespace VelozBackupAgent.Pitr;

/// <summary>
/// A PostgreSQL WAL position (XLogRecPtr): a 64-bit byte offset into the WAL stream, written <c>%X/%X</c>
/// (high and low 32 bits in upper-case hex without padding, e.g. <c>16/B374D848</c>). Parsing also accepts
/// lower case, as <c>pg_lsn</c> input does.
/// </summary>
public readonly record struct Lsn(ulong Value) : IComparable<Lsn>
{
    /// <summary>InvalidXLogRecPtr: 0/0, which PostgreSQL uses for "no position".</summary>
    public static readonly Lsn Invalid = new(0);

    /// <summary>Parses <c>%X/%X</c>; throws <see cref="FormatException"/> (one line) for anything else.</summary>
    public static Lsn Parse(string text) =>
        TryParse(text, out var lsn) ? lsn : throw new FormatException($"{PitrText.Quote(text)} is not an LSN (expected %X/%X, e.g. 0/3000028)");

    /// <summary>Parses <c>%X/%X</c> with 1 to 8 hex digits on each side, nothing else around it.</summary>
    public static bool TryParse(string? text, out Lsn lsn) => TryParse(text.AsSpan(), out lsn);

    /// <inheritdoc cref="TryParse(string?, out Lsn)"/>
    public static bool TryParse(ReadOnlySpan<char> text, out Lsn lsn)
    {
        lsn = Invalid;
        var slash = text.IndexOf('/');
        if (slash < 0 || !TryParseHex32(text[..slash], out var high) || !TryParseHex32(text[(slash + 1)..], out var low))
        {
            return false;
        }

        lsn = new Lsn(((ulong)high << 32) | low);
        return true;
    }

    /// <summary><c>%X/%X</c>, as PostgreSQL prints it.</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{(uint)(Value >> 32):X}/{(uint)Value:X}");

    public int CompareTo(Lsn other) => Value.CompareTo(other.Value);

    public static bool operator <(Lsn left, Lsn right) => left.Value < right.Value;
    public static bool operator >(Lsn left, Lsn right) => left.Value > right.Value;
    public static bool operator <=(Lsn left, Lsn right) => left.Value <= right.Value;
    public static bool operator >=(Lsn left, Lsn right) => left.Value >= right.Value;

    /// <summary>The position <paramref name="bytes"/> further on (or back, when negative); throws <see cref="OverflowException"/> outside 0 … 2^64-1.</summary>
    public static Lsn operator +(Lsn lsn, long bytes) => lsn.Add(bytes);

    /// <summary>The distance in bytes from <paramref name="right"/> to <paramref name="left"/>; throws <see cref="OverflowException"/> when it does not fit a long.</summary>
    public static long operator -(Lsn left, Lsn right) => left.Subtract(right);

    /// <inheritdoc cref="op_Addition(Lsn, long)"/>
    public Lsn Add(long bytes) =>
        new(bytes >= 0 ? checked(Value + (ulong)bytes) : checked(Value - (ulong)(-(bytes + 1)) - 1));

    /// <inheritdoc cref="op_Subtraction(Lsn, Lsn)"/>
    public long Subtract(Lsn other) =>
        Value >= other.Value ? checked((long)(Value - other.Value)) : checked(-(long)(other.Value - Value - 1) - 1);

    private static bool TryParseHex32(ReadOnlySpan<char> digits, out uint value)
    {
        value = 0;
        if (digits.Length is < 1 or > 8)
        {
            return false;
        }

        foreach (var c in digits)
        {
            if (!char.IsAsciiHexDigit(c))
            {
                return false;
            }
        }

        return uint.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
    }
}
