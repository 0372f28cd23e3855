using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace VelozBackupAgent.Pitr;

/// <summary>
/// Keeps the last bytes of a stream in a fixed ring, handing every byte that falls out of it to <c>evicted</c> (in order),
/// so a 100 MB manifest costs one megabyte, not a hundred.
/// </summary>
internal sealed class TailBuffer(int capacity, Action<ReadOnlySpan<byte>> evicted)
{
    private readonly byte[] _ring = new byte[capacity];
    private int _start;
    private int _count;

    public void Append(ReadOnlySpan<byte> data)
    {
        if (capacity == 0)
        {
            evicted(data);
            return;
        }

        if (data.Length >= capacity)
        {
            Evict(_count);
            evicted(data[..^capacity]);
            data[^capacity..].CopyTo(_ring);
            _start = 0;
            _count = capacity;
            return;
        }

        Evict(Math.Max(0, _count + data.Length - capacity));
        var end = (_start + _count) % capacity;
        var first = Math.Min(data.Length, capacity - end);
        data[..first].CopyTo(_ring.AsSpan(end));
        data[first..].CopyTo(_ring);
        _count += data.Length;
    }

    public byte[] ToArray()
    {
        var bytes = new byte[_count];
        var first = Math.Min(_count, capacity - _start);
        _ring.AsSpan(_start, first).CopyTo(bytes);
        _ring.AsSpan(0, _count - first).CopyTo(bytes.AsSpan(first));
        return bytes;
    }

    private void Evict(int n)
    {
        if (n == 0)
        {
            return;
        }

        var first = Math.Min(n, capacity - _start);
        evicted(_ring.AsSpan(_start, first));
        evicted(_ring.AsSpan(0, n - first));
        _start = (_start + n) % capacity;
        _count -= n;
    }
}

/// <summary>
/// Reads what matters from the end of a backup_manifest: its WAL-Ranges, and its Manifest-Checksum, which covers every byte
/// up to the line that holds it (as pg_verifybackup checks it).
/// </summary>
internal static partial class ManifestTail
{
    /// <param name="tail">The manifest's last bytes.</param>
    /// <param name="size">The manifest's whole size.</param>
    /// <param name="before">A hash that has seen every manifest byte before <paramref name="tail"/>; finished here.</param>
    public static (IReadOnlyList<WalRange> Ranges, List<string> Problems) Read(byte[] tail, long size, IncrementalHash before)
    {
        var problems = new List<string>();
        if (ChecksumProblem(tail, size, before) is { } checksum)
        {
            problems.Add(checksum);
        }

        var (ranges, problem) = WalRanges(tail);
        if (problem is not null)
        {
            problems.Add(problem);
        }

        return (ranges, problems);
    }

    private static string? ChecksumProblem(byte[] tail, long size, IncrementalHash before)
    {
        var last = Array.LastIndexOf(tail, (byte)'\n');
        var penultimate = last <= 0 ? -1 : Array.LastIndexOf(tail, (byte)'\n', last - 1);
        if (last != tail.Length - 1 || penultimate < 0)
        {
            return size > tail.Length && last == tail.Length - 1
                ? "backup_manifest: its last line is too long to check its Manifest-Checksum"
                : "backup_manifest does not end with a Manifest-Checksum line";
        }

        var line = Encoding.UTF8.GetString(tail, penultimate + 1, last - penultimate - 1);
        var match = ChecksumLine().Match(line);
        if (!match.Success)
        {
            return "backup_manifest has no Manifest-Checksum on its last line";
        }

        before.AppendData(tail, 0, penultimate + 1);
        var actual = Convert.ToHexStringLower(before.GetHashAndReset());
        return string.Equals(actual, match.Groups[1].Value, StringComparison.OrdinalIgnoreCase)
            ? null
            : $"backup_manifest: its Manifest-Checksum {match.Groups[1].Value} does not match its content ({actual})";
    }

    private static (IReadOnlyList<WalRange>, string?) WalRanges(byte[] tail)
    {
        var key = "\"WAL-Ranges\""u8;
        var at = tail.AsSpan().LastIndexOf(key);
        if (at < 0)
        {
            return ([], "backup_manifest: no WAL-Ranges found at its end");
        }

        var rest = tail.AsSpan(at + key.Length);
        rest = rest.TrimStart(" \t\r\n"u8);
        if (rest.IsEmpty || rest[0] != ':')
        {
            return ([], "backup_manifest: WAL-Ranges is not followed by ':'");
        }

        try
        {
            return (ParseRanges(rest[1..].TrimStart(" \t\r\n"u8)), null);
        }
        catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException)
        {
            return ([], $"backup_manifest: cannot read WAL-Ranges: {PitrText.OneLine(ex.Message)}");
        }
    }

    /// <summary>The array, read up to its closing bracket (what follows it is the rest of the manifest, not read).</summary>
    private static List<WalRange> ParseRanges(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 4 });
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
        {
            throw new FormatException("it is not an array");
        }

        var ranges = new List<WalRange>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw new FormatException("an element is not an object");
            }

            uint? timeline = null;
            Lsn? start = null, end = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.GetString();
                reader.Read();
                switch (name)
                {
                    case "Timeline":
                        timeline = reader.TokenType == JsonTokenType.Number && reader.TryGetUInt32(out var t) && t > 0 ? t : throw new FormatException("Timeline is not a timeline id");
                        break;
                    case "Start-LSN":
                        start = Lsn.Parse(reader.TokenType == JsonTokenType.String ? reader.GetString()! : "");
                        break;
                    case "End-LSN":
                        end = Lsn.Parse(reader.TokenType == JsonTokenType.String ? reader.GetString()! : "");
                        break;
                    default:
                        reader.Skip();
                        break;
                }
            }

            if (timeline is null || start is null || end is null || end < start)
            {
                throw new FormatException("a range lacks Timeline, Start-LSN or End-LSN, or ends before it starts");
            }

            ranges.Add(new WalRange(timeline.Value, start.Value, end.Value));
        }

        if (ranges.Count == 0)
        {
            throw new FormatException("the array is empty");
        }

        return ranges;
    }

    [GeneratedRegex("^\"Manifest-Checksum\"\\s*:\\s*\"([0-9a-fA-F]{64})\"\\s*}\\s*$")]
    private static partial Regex ChecksumLine();
}
