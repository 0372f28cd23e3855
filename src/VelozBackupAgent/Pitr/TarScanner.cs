using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Pitr;

/// <summary>A WAL range a backup manifest lists.</summary>
public sealed record WalRange(uint Timeline, Lsn Start, Lsn End);

/// <summary>What a base backup's <c>backup_label</c> says.</summary>
public sealed record BackupLabel(Lsn StartLsn, string StartWalFile, uint StartTimeline, Lsn CheckpointLsn, string? StartTime, string? Label, string? BackupFrom)
{
    /// <summary>Parses backup_label; <see cref="FormatException"/> for junk.</summary>
    public static BackupLabel Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0)
            {
                fields[line[..colon].Trim()] = line[(colon + 1)..].Trim();
            }
        }

        if (!fields.TryGetValue("START WAL LOCATION", out var start))
        {
            throw new FormatException("backup_label has no START WAL LOCATION");
        }

        var m = Regex.Match(start, @"^(?<lsn>[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}) \(file (?<file>[0-9A-F]{24})\)$");
        if (!m.Success || !Lsn.TryParse(m.Groups["lsn"].Value, out var startLsn))
        {
            throw new FormatException($"backup_label START WAL LOCATION is not readable: '{start}'");
        }

        var checkpoint = fields.TryGetValue("CHECKPOINT LOCATION", out var c) && Lsn.TryParse(c, out var cl) ? cl : Lsn.Invalid;
        if (!fields.TryGetValue("START TIMELINE", out var tl) || !uint.TryParse(tl, NumberStyles.None, CultureInfo.InvariantCulture, out var timeline) || timeline == 0)
        {
            throw new FormatException("backup_label has no readable START TIMELINE");
        }

        return new BackupLabel(startLsn, m.Groups["file"].Value, timeline, checkpoint,
            fields.GetValueOrDefault("START TIME"), fields.GetValueOrDefault("LABEL"), fields.GetValueOrDefault("BACKUP FROM"));
    }
}

/// <summary>What <see cref="TarScanner"/> found once the stream ended.</summary>
public sealed record TarScanResult(BackupLabel? Label, ulong? SystemIdentifier, string? ManifestSha256, IReadOnlyList<WalRange> WalRanges, int Entries, long TarBytes, bool Ended, IReadOnlyList<string> Problems);

/// <summary>
/// Passes a tar stream through unchanged while following its 512-byte structure, so a base backup's facts are read
/// from the very bytes stored, without a second read: <c>backup_label</c>, the system identifier at the start of
/// <c>global/pg_control</c>, and the SHA-256 and WAL ranges of <c>backup_manifest</c> (only its last 1 MiB is kept).
/// </summary>
public sealed partial class TarScanner : ReadOnlyStream
{
    private const int Block = 512;
    private const int LabelCap = 64 * 1024;
    private const int TailCap = 1 << 20;

    private readonly Stream _inner;
    private readonly byte[] _header = new byte[Block];
    private readonly List<string> _problems = [];
    private int _headerFill;
    private long _entryLeft;
    private long _padLeft;
    private string? _entryName;
    private string? _longName;
    private bool _longNameEntry;
    private bool _paxEntry;
    private MemoryStream? _capture;
    private int _captureCap;
    private IncrementalHash? _manifestHash;
    private byte[]? _tail;
    private long _tailWritten;
    private int _zeroBlocks;
    private bool _ended;
    private long _bytes;
    private int _entries;
    private BackupLabel? _label;
    private ulong? _systemIdentifier;
    private string? _manifestSha;
    private List<WalRange> _ranges = [];
    private bool _eof;

    public TarScanner(Stream inner) => _inner = inner;

    /// <summary>What was found; complete once the underlying stream ended.</summary>
    public TarScanResult Result
    {
        get
        {
            var problems = new List<string>(_problems);
            if (_eof && (_entryLeft > 0 || _headerFill > 0))
            {
                problems.Add("the archive is truncated in the middle of an entry");
            }

            return new TarScanResult(_label, _systemIdentifier, _manifestSha, _ranges, _entries, _bytes, _ended, problems);
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var read = _inner.Read(buffer);
        Scan(buffer[..read], read == 0 && buffer.Length > 0);
        return read;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await _inner.ReadAsync(buffer, cancellationToken);
        Scan(buffer.Span[..read], read == 0 && buffer.Length > 0);
        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _manifestHash?.Dispose();
            _capture?.Dispose();
        }

        base.Dispose(disposing);
    }

    private void Scan(ReadOnlySpan<byte> data, bool eof)
    {
        _bytes += data.Length;
        if (eof)
        {
            _eof = true;
        }

        while (!data.IsEmpty)
        {
            if (_entryLeft > 0)
            {
                var take = (int)Math.Min(_entryLeft, data.Length);
                Content(data[..take]);
                _entryLeft -= take;
                data = data[take..];
                if (_entryLeft == 0)
                {
                    EndEntry();
                }

                continue;
            }

            if (_padLeft > 0)
            {
                var take = (int)Math.Min(_padLeft, data.Length);
                _padLeft -= take;
                data = data[take..];
                continue;
            }

            if (_ended)
            {
                // Anything after the end-of-archive blocks is padding (pg_basebackup pads to a record boundary).
                return;
            }

            var copy = Math.Min(Block - _headerFill, data.Length);
            data[..copy].CopyTo(_header.AsSpan(_headerFill));
            _headerFill += copy;
            data = data[copy..];
            if (_headerFill == Block)
            {
                _headerFill = 0;
                Header();
            }
        }
    }

    private void Header()
    {
        if (_header.AsSpan().IndexOfAnyExcept((byte)0) < 0)
        {
            if (++_zeroBlocks == 2)
            {
                _ended = true;
            }

            return;
        }

        _zeroBlocks = 0;
        if (!ChecksumOk())
        {
            _problems.Add($"a tar header has a wrong checksum (after {_entries} entries)");
            _ended = true;
            return;
        }

        var size = ParseSize(_header.AsSpan(124, 12));
        var type = (char)_header[156];
        var name = Text(_header.AsSpan(0, 100));
        if (_header.AsSpan(257, 5).SequenceEqual("ustar"u8))
        {
            var prefix = Text(_header.AsSpan(345, 155));
            if (prefix.Length > 0)
            {
                name = prefix + "/" + name;
            }
        }

        _longNameEntry = type == 'L';
        _paxEntry = type is 'x' or 'g';
        if (_longName is not null && !_longNameEntry && !_paxEntry)
        {
            name = _longName;
            _longName = null;
        }

        _entryName = name.StartsWith("./", StringComparison.Ordinal) ? name[2..] : name;
        if (!_longNameEntry && !_paxEntry)
        {
            _entries++;
        }

        _entryLeft = size;
        _padLeft = (Block - (size % Block)) % Block;
        BeginEntry(size);
        if (size == 0)
        {
            EndEntry();
        }
    }

    private void BeginEntry(long size)
    {
        _capture = null;
        if (_longNameEntry || _paxEntry)
        {
            _capture = new MemoryStream();
            _captureCap = 64 * 1024;
            return;
        }

        switch (_entryName)
        {
            case "backup_label":
                _capture = new MemoryStream();
                _captureCap = LabelCap;
                break;
            case "global/pg_control":
                _capture = new MemoryStream();
                _captureCap = 8;
                break;
            case "backup_manifest":
                _manifestHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                _tail = new byte[(int)Math.Min(TailCap, Math.Max(size, 1))];
                _tailWritten = 0;
                break;
            default:
                break;
        }
    }

    private void Content(ReadOnlySpan<byte> data)
    {
        if (_capture is not null && _capture.Length < _captureCap)
        {
            _capture.Write(data[..(int)Math.Min(data.Length, _captureCap - _capture.Length)]);
        }

        if (_manifestHash is not null && _tail is not null)
        {
            _manifestHash.AppendData(data);
            foreach (var b in data)
            {
                _tail[_tailWritten % _tail.Length] = b;
                _tailWritten++;
            }
        }
    }

    private void EndEntry()
    {
        _padLeft = _padLeft == 0 ? 0 : _padLeft;
        if (_longNameEntry && _capture is not null)
        {
            _longName = Encoding.UTF8.GetString(_capture.ToArray()).TrimEnd('\0');
        }
        else if (_paxEntry && _capture is not null)
        {
            _longName = PaxPath(Encoding.UTF8.GetString(_capture.ToArray())) ?? _longName;
        }
        else if (_entryName == "backup_label" && _capture is not null)
        {
            try
            {
                _label = BackupLabel.Parse(Encoding.UTF8.GetString(_capture.ToArray()));
            }
            catch (FormatException ex)
            {
                _problems.Add(ex.Message);
            }
        }
        else if (_entryName == "global/pg_control" && _capture is { Length: 8 })
        {
            _systemIdentifier = BitConverter.ToUInt64(_capture.ToArray(), 0);
        }
        else if (_entryName == "backup_manifest" && _manifestHash is not null && _tail is not null)
        {
            _manifestSha = Convert.ToHexStringLower(_manifestHash.GetHashAndReset());
            _manifestHash.Dispose();
            _manifestHash = null;
            _ranges = ParseRanges(TailText());
            if (_ranges.Count == 0)
            {
                _problems.Add("the backup manifest's WAL-Ranges could not be read");
            }

            _tail = null;
        }

        _capture = null;
        _longNameEntry = _paxEntry = false;
    }

    private string TailText()
    {
        var length = (int)Math.Min(_tailWritten, _tail!.Length);
        var bytes = new byte[length];
        var start = _tailWritten > _tail.Length ? (int)(_tailWritten % _tail.Length) : 0;
        for (var i = 0; i < length; i++)
        {
            bytes[i] = _tail[(start + i) % _tail.Length];
        }

        return Encoding.UTF8.GetString(bytes);
    }

    internal static List<WalRange> ParseRanges(string tail)
    {
        var ranges = new List<WalRange>();
        var at = tail.LastIndexOf("\"WAL-Ranges\"", StringComparison.Ordinal);
        if (at < 0)
        {
            return ranges;
        }

        foreach (Match m in RangeRegex().Matches(tail[at..]))
        {
            if (uint.TryParse(m.Groups["tl"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var tl)
                && Lsn.TryParse(m.Groups["start"].Value, out var start) && Lsn.TryParse(m.Groups["end"].Value, out var end))
            {
                ranges.Add(new WalRange(tl, start, end));
            }
        }

        return ranges;
    }

    private static string? PaxPath(string records)
    {
        foreach (var record in records.Split('\n'))
        {
            var space = record.IndexOf(' ', StringComparison.Ordinal);
            if (space > 0 && record[(space + 1)..].StartsWith("path=", StringComparison.Ordinal))
            {
                return record[(space + 6)..];
            }
        }

        return null;
    }

    private bool ChecksumOk()
    {
        var recorded = Text(_header.AsSpan(148, 8)).Trim();
        if (!long.TryParse(recorded, NumberStyles.None, CultureInfo.InvariantCulture, out _))
        {
            try
            {
                _ = Convert.ToInt64(recorded, 8);
            }
            catch (FormatException)
            {
                return false;
            }
        }

        long sum = 0;
        for (var i = 0; i < Block; i++)
        {
            sum += i is >= 148 and < 156 ? (byte)' ' : _header[i];
        }

        try
        {
            return Convert.ToInt64(recorded, 8) == sum;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private static long ParseSize(ReadOnlySpan<byte> field)
    {
        if ((field[0] & 0x80) != 0)
        {
            long value = field[0] & 0x7F;
            for (var i = 1; i < field.Length; i++)
            {
                value = (value << 8) | field[i];
            }

            return value;
        }

        var text = Text(field).Trim();
        return text.Length == 0 ? 0 : Convert.ToInt64(text, 8);
    }

    private static string Text(ReadOnlySpan<byte> field)
    {
        var end = field.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? field : field[..end]).Trim('\0');
    }

    [GeneratedRegex("\\{\\s*\"Timeline\"\\s*:\\s*(?<tl>\\d+)\\s*,\\s*\"Start-LSN\"\\s*:\\s*\"(?<start>[0-9A-Fa-f]+/[0-9A-Fa-f]+)\"\\s*,\\s*\"End-LSN\"\\s*:\\s*\"(?<end>[0-9A-Fa-f]+/[0-9A-Fa-f]+)\"\\s*\\}")]
    private static partial Regex RangeRegex();
}
