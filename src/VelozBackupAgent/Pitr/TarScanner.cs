using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Pitr;

/// <summary>One WAL range of a backup manifest: the WAL of <see cref="Timeline"/> from <see cref="Start"/> to <see cref="End"/> the backup needs.</summary>
public sealed record WalRange(uint Timeline, Lsn Start, Lsn End);

/// <summary>What <see cref="TarScanner"/> saw in a base backup's tar stream.</summary>
/// <param name="Label">backup_label, parsed; null when absent or unreadable (then <see cref="Problems"/> says why).</param>
/// <param name="SystemIdentifier">The first 8 bytes of global/pg_control, little-endian.</param>
/// <param name="ManifestSha256">SHA-256 of the whole backup_manifest entry, lower-case hex.</param>
/// <param name="WalRanges">The manifest's WAL-Ranges; the last one's End and Timeline are the backup's stop LSN and timeline.</param>
/// <param name="Entries">Archive entries, not counting pax and GNU long-name headers.</param>
/// <param name="TarBytes">Bytes read through the scanner.</param>
/// <param name="Ended">True when the archive ended with its two zero blocks.</param>
/// <param name="Problems">One line each: bad header checksums, truncation, an unreadable manifest tail…</param>
public sealed record TarScanResult(
    BackupLabel? Label, ulong? SystemIdentifier, string? ManifestSha256, IReadOnlyList<WalRange> WalRanges, int Entries, long TarBytes, bool Ended, IReadOnlyList<string> Problems)
{
    /// <summary>Regular files directly under pg_wal/ (WAL fetched into the backup with <c>-X fetch</c>), by name.</summary>
    public IReadOnlyList<string> WalFiles { get; init; } = [];

    /// <summary>The stop LSN: the end of the manifest's last WAL range.</summary>
    public Lsn? StopLsn => WalRanges.Count > 0 ? WalRanges[^1].End : null;

    /// <summary>The stop timeline: the manifest's last WAL range's timeline.</summary>
    public uint? StopTimeline => WalRanges.Count > 0 ? WalRanges[^1].Timeline : null;
}

/// <summary>
/// A read-only pass-through stream over a tar byte stream: every byte read through it is returned unchanged, while it
/// follows the 512-byte tar structure on the fly (ustar, pax, GNU long names, base-256 sizes; headers split across reads
/// of any size) and keeps what a base backup's metadata needs: backup_label, the system identifier from pg_control, the
/// SHA-256 and WAL-Ranges of backup_manifest (from a 1 MiB ring buffer of its tail, never the whole manifest), and whether
/// the archive is whole. Read it to the end, then take <see cref="Result"/>.
/// </summary>
public sealed class TarScanner : ReadOnlyStream
{
    /// <summary>The most of backup_label kept.</summary>
    public const int LabelCap = 64 * 1024;

    /// <summary>How much of the manifest's end is kept to find its WAL-Ranges and Manifest-Checksum.</summary>
    public const int ManifestTailBytes = 1024 * 1024;

    private const int Block = 512;
    private const int MetaCap = 1024 * 1024; // pax and GNU long-name headers larger than this are not believed
    private const int MaxProblems = 20;

    private readonly Stream _inner;
    private readonly bool _leaveOpen;
    private readonly byte[] _header = new byte[Block];
    private readonly List<string> _problems = [];
    private readonly List<string> _walFiles = [];
    private int _headerFill;
    private State _state = State.Header;
    private long _remaining;
    private long _size;
    private int _padding;
    private long _offset;
    private long _entryOffset;
    private int _zeroBlocks;
    private int _entries;
    private bool _eof;
    private bool _trailingData;
    private string _name = "";
    private Capture _capture;
    private MemoryStream? _meta;
    private string? _longName;
    private Dictionary<string, string>? _pax;
    private MemoryStream? _label;
    private readonly byte[] _control = new byte[8];
    private int _controlFill;
    private ulong? _systemIdentifier;
    private IncrementalHash? _manifestHash;
    private IncrementalHash? _laggingHash;
    private TailBuffer? _tail;
    private string? _manifestSha;
    private IReadOnlyList<WalRange> _walRanges = [];

    /// <param name="inner">The tar stream.</param>
    /// <param name="leaveOpen">Keep <paramref name="inner"/> open when the scanner is disposed.</param>
    public TarScanner(Stream inner, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(inner);
        _inner = inner;
        _leaveOpen = leaveOpen;
    }

    private enum State
    {
        Header,
        Data,
        Padding,
        End,
        Broken,
    }

    private enum Capture
    {
        None,
        Label,
        Control,
        Manifest,
        LongName,
        Pax,
        GlobalPax,
    }

    /// <summary>True once the underlying stream has reported its end.</summary>
    public bool Completed => _eof;

    /// <summary>
    /// What was seen. Meant for after the end of the stream; taken earlier it says the archive was not read to its end.
    /// </summary>
    public TarScanResult Result
    {
        get
        {
            var problems = new List<string>(_problems);
            if (!_eof)
            {
                problems.Add("the archive was not read to its end");
            }
            else if (_state is not (State.End or State.Broken))
            {
                problems.Add(Truncation());
            }

            BackupLabel? label = null;
            if (_label is not null)
            {
                try
                {
                    label = BackupLabel.Parse(new UTF8Encoding(false, false).GetString(_label.GetBuffer(), 0, (int)_label.Length));
                }
                catch (FormatException ex)
                {
                    problems.Add(ex.Message);
                }
            }

            return new TarScanResult(label, _systemIdentifier, _manifestSha, _walRanges, _entries, _offset, _state == State.End, problems)
            {
                WalFiles = [.. _walFiles],
            };
        }
    }

    public override int Read(byte[] buffer, int offset, int count)
    {
        ValidateBufferArguments(buffer, offset, count);
        return Read(buffer.AsSpan(offset, count));
    }

    public override int Read(Span<byte> buffer)
    {
        var n = _inner.Read(buffer);
        Observe(buffer[..n], buffer.Length);
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        ValidateBufferArguments(buffer, offset, count);
        return ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var n = await _inner.ReadAsync(buffer, cancellationToken);
        Observe(buffer.Span[..n], buffer.Length);
        return n;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _manifestHash?.Dispose();
            _laggingHash?.Dispose();
            if (!_leaveOpen)
            {
                _inner.Dispose();
            }
        }

        base.Dispose(disposing);
    }

    private void Observe(ReadOnlySpan<byte> data, int requested)
    {
        if (data.IsEmpty)
        {
            _eof |= requested > 0;
            return;
        }

        while (!data.IsEmpty)
        {
            int n;
            switch (_state)
            {
                case State.Header:
                    n = Math.Min(Block - _headerFill, data.Length);
                    data[..n].CopyTo(_header.AsSpan(_headerFill));
                    _headerFill += n;
                    if (_headerFill == Block)
                    {
                        _headerFill = 0;
                        OnHeader(_offset + n - Block);
                    }

                    break;
                case State.Data:
                    n = (int)Math.Min(_remaining, data.Length);
                    OnData(data[..n]);
                    _remaining -= n;
                    if (_remaining == 0)
                    {
                        EndEntry();
                        _state = _padding > 0 ? State.Padding : State.Header;
                    }

                    break;
                case State.Padding:
                    n = Math.Min(_padding, data.Length);
                    _padding -= n;
                    _state = _padding > 0 ? State.Padding : State.Header;
                    break;
                case State.End:
                    // Zeros may pad the archive to a record size; anything else after the end is not part of it.
                    n = data.Length;
                    if (!_trailingData && data.ContainsAnyExcept((byte)0))
                    {
                        _trailingData = true;
                        Problem(Invariant($"non-zero bytes follow the end-of-archive marker (at offset {_offset + data.IndexOfAnyExcept((byte)0)})"));
                    }

                    break;
                default:
                    n = data.Length;
                    break;
            }

            _offset += n;
            data = data[n..];
        }
    }

    private void OnHeader(long at)
    {
        var header = _header.AsSpan();
        if (!header.ContainsAnyExcept((byte)0))
        {
            if (++_zeroBlocks == 2)
            {
                _state = State.End;
            }

            return;
        }

        if (_zeroBlocks == 1)
        {
            Problem(Invariant($"a lone zero block at offset {at - Block} inside the archive"));
        }

        _zeroBlocks = 0;
        if (!ChecksumMatches(header, out var stored, out var computed))
        {
            Break(Invariant($"the tar header at offset {at} has a bad checksum (stored {stored}, computed {computed}): the archive is corrupt from there"));
            return;
        }

        if (ParseNumber(header.Slice(124, 12)) is not { } size)
        {
            Break(Invariant($"the tar header at offset {at} has an unreadable size field"));
            return;
        }

        var type = (char)header[156];
        _entryOffset = at;
        _capture = Capture.None;
        switch (type)
        {
            case 'L':
            case 'x':
            case 'g':
                _name = type == 'L' ? "GNU long name" : "pax header";
                _capture = type switch { 'L' => Capture.LongName, 'x' => Capture.Pax, _ => Capture.GlobalPax };
                if (size > MetaCap)
                {
                    Break(Invariant($"the {_name} at offset {at} claims {size} bytes"));
                    return;
                }

                _meta = new MemoryStream((int)size);
                break;
            case 'K':
                _name = "GNU long link name";
                break;
            default:
                size = StartEntry(type, size);
                break;
        }

        _size = _remaining = size;
        _padding = (int)((Block - (size % Block)) % Block);
        if (size == 0)
        {
            EndEntry();
            _state = State.Header;
        }
        else
        {
            _state = State.Data;
        }
    }

    /// <summary>A real entry: its name (from a long-name or pax header before it, else the header), what to capture, its data size.</summary>
    private long StartEntry(char type, long size)
    {
        _entries++;
        var name = _longName ?? _pax?.GetValueOrDefault("path") ?? HeaderName(_header);
        if (_pax?.GetValueOrDefault("size") is { } paxSize)
        {
            if (long.TryParse(paxSize, NumberStyles.None, CultureInfo.InvariantCulture, out var s))
            {
                size = s;
            }
            else
            {
                Problem($"the pax size of {PitrText.Quote(name)} is not a number");
            }
        }

        _longName = null;
        _pax = null;
        _name = Normalize(name);

        // As tar readers do: links, devices, directories and FIFOs carry no data whatever their size field says.
        if (type is '1' or '2' or '3' or '4' or '5' or '6')
        {
            return 0;
        }

        if (type is '0' or '\0' or '7')
        {
            _capture = _name switch
            {
                "backup_label" => Capture.Label,
                "global/pg_control" => Capture.Control,
                "backup_manifest" => Capture.Manifest,
                _ => Capture.None,
            };
            if (_name.StartsWith("pg_wal/", StringComparison.Ordinal) && _name.IndexOf('/', 7) < 0 && _name.Length > 7)
            {
                _walFiles.Add(_name[7..]);
            }

            StartCapture(size);
        }

        return size;
    }

    private void StartCapture(long size)
    {
        switch (_capture)
        {
            case Capture.Label:
                if (_label is not null)
                {
                    Problem("backup_label appears twice; the last one counts");
                }

                _label = new MemoryStream((int)Math.Min(size, LabelCap));
                if (size > LabelCap)
                {
                    Problem(Invariant($"backup_label has {size} bytes; only the first {LabelCap} are read"));
                }

                break;
            case Capture.Control:
                _controlFill = 0;
                break;
            case Capture.Manifest:
                if (_manifestHash is not null)
                {
                    Problem("backup_manifest appears twice; the last one counts");
                }

                _manifestHash?.Dispose();
                _laggingHash?.Dispose();
                _manifestHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                _laggingHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var lagging = _laggingHash;
                _tail = new TailBuffer((int)Math.Min(size, ManifestTailBytes), evicted => lagging.AppendData(evicted));
                _manifestSha = null;
                _walRanges = [];
                break;
            default:
                break;
        }
    }

    private void OnData(ReadOnlySpan<byte> data)
    {
        switch (_capture)
        {
            case Capture.Label:
                var room = LabelCap - (int)_label!.Length;
                _label.Write(data[..Math.Min(room, data.Length)]);
                break;
            case Capture.Control:
                var take = Math.Min(_control.Length - _controlFill, data.Length);
                data[..take].CopyTo(_control.AsSpan(_controlFill));
                _controlFill += take;
                break;
            case Capture.Manifest:
                _manifestHash!.AppendData(data);
                _tail!.Append(data);
                break;
            case Capture.LongName:
            case Capture.Pax:
            case Capture.GlobalPax:
                _meta!.Write(data);
                break;
            default:
                break;
        }
    }

    private void EndEntry()
    {
        switch (_capture)
        {
            case Capture.Control:
                if (_controlFill < _control.Length)
                {
                    Problem("global/pg_control is shorter than 8 bytes");
                }
                else
                {
                    _systemIdentifier = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(_control);
                }

                break;
            case Capture.Manifest:
                _manifestSha = Convert.ToHexStringLower(_manifestHash!.GetHashAndReset());
                var (ranges, problems) = ManifestTail.Read(_tail!.ToArray(), _size, _laggingHash!);
                _walRanges = ranges;
                problems.ForEach(Problem);
                _tail = null;
                break;
            case Capture.LongName:
                _longName = CString(_meta!.ToArray());
                break;
            case Capture.Pax:
                _pax = ParsePax(_meta!.ToArray());
                break;
            case Capture.GlobalPax:
                ParsePax(_meta!.ToArray());
                break;
            default:
                break;
        }

        _meta = null;
        _capture = Capture.None;
    }

    private string Truncation()
    {
        return _state switch
        {
            State.Data => Invariant($"the archive is truncated in {PitrText.Quote(_name)} (offset {_entryOffset}): {_size - _remaining} of {_size} bytes"),
            State.Padding => Invariant($"the archive is truncated in the padding after {PitrText.Quote(_name)}"),
            _ when _headerFill > 0 => Invariant($"the archive is truncated inside a header at offset {_offset - _headerFill}"),
            _ when _offset == 0 => "the archive is empty",
            _ when _zeroBlocks == 1 => "the archive ends after only one of its two end-of-archive blocks",
            _ => Invariant($"the archive is truncated: it ends after {_entries} entries without its end-of-archive blocks"),
        };
    }

    private void Break(string problem)
    {
        Problem(problem);
        _state = State.Broken;
    }

    private void Problem(string problem)
    {
        if (_problems.Count < MaxProblems)
        {
            _problems.Add(problem);
        }
    }

    /// <summary>The header checksum: the sum of its bytes with the checksum field counted as spaces (unsigned, or signed as some old tars wrote it).</summary>
    private static bool ChecksumMatches(ReadOnlySpan<byte> header, out long stored, out long computed)
    {
        long unsigned = 0, signed = 0;
        for (var i = 0; i < Block; i++)
        {
            var b = i is >= 148 and < 156 ? (byte)' ' : header[i];
            unsigned += b;
            signed += (sbyte)b;
        }

        computed = unsigned;
        stored = ParseNumber(header.Slice(148, 8)) ?? -1;
        return stored == unsigned || stored == signed;
    }

    /// <summary>A numeric header field: octal digits (leading spaces allowed, ended by NUL or space), or base-256 when the first byte's high bit is set.</summary>
    internal static long? ParseNumber(ReadOnlySpan<byte> field)
    {
        if ((field[0] & 0x80) != 0)
        {
            if (field[0] == 0xFF)
            {
                return null; // negative
            }

            long value = field[0] & 0x7F;
            foreach (var b in field[1..])
            {
                if (value > (long.MaxValue >> 8))
                {
                    return null;
                }

                value = (value << 8) | b;
            }

            return value;
        }

        var i = 0;
        while (i < field.Length && field[i] == ' ')
        {
            i++;
        }

        long octal = 0;
        for (; i < field.Length && field[i] is not (0 or (byte)' '); i++)
        {
            if (field[i] is < (byte)'0' or > (byte)'7' || octal > (long.MaxValue >> 3))
            {
                return null;
            }

            octal = (octal << 3) | (long)(field[i] - '0');
        }

        return octal;
    }

    /// <summary>name (0, 100 bytes), joined with the ustar prefix (345, 155 bytes) in POSIX ustar headers. GNU headers use that space otherwise.</summary>
    private static string HeaderName(ReadOnlySpan<byte> header)
    {
        var name = CString(header[..100]);
        var posix = header.Slice(257, 6).SequenceEqual("ustar\0"u8);
        var prefix = posix ? CString(header.Slice(345, 155)) : "";
        return prefix.Length > 0 ? prefix + "/" + name : name;
    }

    private static string CString(ReadOnlySpan<byte> bytes)
    {
        var end = bytes.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? bytes : bytes[..end]);
    }

    private static string Normalize(string name)
    {
        while (name.StartsWith("./", StringComparison.Ordinal))
        {
            name = name[2..];
        }

        return name.TrimEnd('/');
    }

    /// <summary>pax records: <c>"%d %s=%s\n"</c>, the length counting the whole record.</summary>
    private Dictionary<string, string>? ParsePax(byte[] data)
    {
        var records = new Dictionary<string, string>(StringComparer.Ordinal);
        var at = 0;
        while (at < data.Length)
        {
            var space = Array.IndexOf(data, (byte)' ', at);
            if (space < 0 || !int.TryParse(data.AsSpan(at, space - at), NumberStyles.None, CultureInfo.InvariantCulture, out var length)
                || length <= space - at + 1 || at + length > data.Length || data[at + length - 1] != '\n')
            {
                Problem(Invariant($"a malformed pax header before offset {_entryOffset + Block} is ignored"));
                return null;
            }

            var record = Encoding.UTF8.GetString(data, space + 1, at + length - space - 2);
            var equals = record.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0)
            {
                records[record[..equals]] = record[(equals + 1)..];
            }

            at += length;
        }

        return records;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
