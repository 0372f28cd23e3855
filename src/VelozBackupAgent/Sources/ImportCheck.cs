using System.Buffers.Binary;
using System.Formats.Tar;
using System.IO.Compression;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Configuration;
using VelozBackupAgent.Sources.Database;
using VelozBackupAgent.Sources.Wal;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Sources;

/// <summary>
/// <c>veloz-backup import</c> checks a file the way a fresh backup of its kind is checked, before anything is
/// stored: a truncated or foreign file must not become an artifact that only fails on the day it is restored.
/// </summary>
/// <remarks>
/// By the file's name: <c>.dump</c> with <c>pg_restore --list</c> (header and table of contents) and then
/// <c>pg_restore --file=/dev/null</c> (every data block, to the end); <c>.gpg</c> by its OpenPGP packet structure
/// (<see cref="OpenPgpPackets"/>: no key needed, a cut anywhere shows); <c>.tar.gz</c>/<c>.tgz</c> read to the end
/// (gzip trailer, tar headers, the end-of-archive blocks); a WAL manifest parsed; a VeloZ WAL segment compared with
/// the size and SHA-256 any stored manifest records for it. Any other name is refused: no restore would use it.
/// </remarks>
internal static class ImportCheck
{
    /// <summary>
    /// Throws <see cref="BackupSourceException"/> (one line naming <paramref name="source"/>, ending in "nothing was
    /// stored") unless the file at <paramref name="path"/> is fit to store as <paramref name="kind"/>.
    /// </summary>
    public static async Task CheckAsync(string kind, string path, string source, BackupOptions options, IArtifactStore local, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(local);
        var name = Path.GetFileName(path);
        try
        {
            if (name.EndsWith(".gpg", StringComparison.Ordinal) && kind is BackupKinds.Database or BackupKinds.Secrets)
            {
                await using var input = OpenRead(path);
                OpenPgpPackets.CheckEncryptedMessage(input);
            }
            else if (name.EndsWith(".dump", StringComparison.Ordinal) && kind == BackupKinds.Database)
            {
                await CheckDumpAsync(path, options.Database, logger, cancellationToken).ConfigureAwait(false);
            }
            else if ((name.EndsWith(".tar.gz", StringComparison.Ordinal) || name.EndsWith(".tgz", StringComparison.Ordinal)) && kind is BackupKinds.Config)
            {
                await CheckTarGzAsync(path, cancellationToken).ConfigureAwait(false);
            }
            else if (kind == BackupKinds.Wal && name.EndsWith(".json", StringComparison.Ordinal))
            {
                await using var input = OpenRead(path);
                _ = await WalManifest.ReadAsync(input, cancellationToken).ConfigureAwait(false);
            }
            else if (kind == BackupKinds.Wal)
            {
                await CheckWalSegmentAsync(path, local, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                throw new ImportRefusedException(kind switch
                {
                    BackupKinds.Database => "a database artifact is a pg_dump -Fc archive (.dump) or encrypted globals (.sql.gpg)",
                    BackupKinds.Config => "a configuration artifact is a .tar.gz",
                    BackupKinds.Secrets => "a secrets artifact is gpg-encrypted (.tar.gz.gpg)",
                    _ => $"{kind} takes no imported files",
                });
            }
        }
        catch (ImportRefusedException ex)
        {
            throw new BackupSourceException($"import refused: {source} is not a complete {kind} artifact: {ex.Message}; nothing was stored", ex);
        }
        catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or FormatException or System.Text.Json.JsonException)
        {
            throw new BackupSourceException($"import refused: {source} is not a complete {kind} artifact: {FirstLine(ex.Message)}; nothing was stored", ex);
        }
    }

    private static FileStream OpenRead(string path) =>
        new(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);

    private static async Task CheckDumpAsync(string path, DatabaseOptions database, ILogger logger, CancellationToken cancellationToken)
    {
        var pgRestore = database.BinDirectory is { Length: > 0 } bin ? Path.Combine(bin, "pg_restore") : "pg_restore";
        const string Hint = "install postgresql-client (or set Backup:Database:BinDirectory)";
        try
        {
            // The table of contents first (what a fresh dump gets), then every data block: --list alone reads only
            // the start of the file, and a dump cut in its data still lists.
            _ = await DatabaseSource.CheckReadableAsync(pgRestore, path, Hint, logger, cancellationToken).ConfigureAwait(false);
            await using var child = ChildProcess.Start(new ChildProcessSpec(pgRestore, ["--file=/dev/null", path], "pg_restore") { InstallHint = Hint }, logger);
            await child.EnsureSucceededAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (BackupSourceException ex)
        {
            throw new ImportRefusedException($"pg_restore cannot read it to the end ({FirstLine(ex.Message)})", ex);
        }
    }

    /// <summary>Reads the whole archive: every tar header (checksummed), every entry's data, the end-of-archive blocks, the gzip trailer.</summary>
    internal static async Task CheckTarGzAsync(string path, CancellationToken cancellationToken)
    {
        uint trailerSize;
        await using (var file = OpenRead(path))
        {
            if (file.Length < 18)
            {
                throw new ImportRefusedException($"{file.Length} bytes is shorter than an empty gzip stream");
            }

            var trailer = new byte[4];
            file.Seek(-4, SeekOrigin.End);
            await file.ReadExactlyAsync(trailer, cancellationToken).ConfigureAwait(false);
            trailerSize = BinaryPrimitives.ReadUInt32LittleEndian(trailer);
        }

        await using var input = OpenRead(path);
        await using var gzip = new GZipStream(input, CompressionMode.Decompress);
        var counted = new TailStream(gzip);
        try
        {
            await using var tar = new TarReader(counted, leaveOpen: true);
            while (await tar.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false) is { } entry)
            {
                if (entry.DataStream is { } data)
                {
                    await data.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (EndOfStreamException) when (counted.Length == 0)
        {
            // An empty archive (a gzip of nothing), which tar -t lists as empty too.
        }

        // TarReader stops at the first zero block: the rest of the stream must decompress too.
        await counted.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
        if ((uint)counted.Length != trailerSize)
        {
            throw new ImportRefusedException($"it decompresses to {counted.Length} bytes but its gzip trailer records {trailerSize} (cut short, or not one gzip stream)");
        }

        if (counted.Length > 0 && (counted.Length % 512 != 0 || !counted.EndsWithZeroBlocks))
        {
            throw new ImportRefusedException("the tar archive has no end-of-archive blocks (cut short)");
        }
    }

    private static async Task CheckWalSegmentAsync(string path, IArtifactStore local, CancellationToken cancellationToken)
    {
        var name = Path.GetFileName(path);
        var size = new FileInfo(path).Length;
        if (size == 0)
        {
            throw new ImportRefusedException("it is empty");
        }

        // A VeloZ segment has no structure the agent knows; a stored manifest that lists it says what it must be
        // (the newest manifests first: each lists every sealed segment the WAL directory held at its sync).
        var manifests = new List<string>();
        await foreach (var artifact in local.ListWithoutChecksumsAsync(BackupKinds.Wal, cancellationToken).ConfigureAwait(false))
        {
            if (artifact.Name.StartsWith(WalNaming.ManifestPrefix, StringComparison.Ordinal) && artifact.Name.EndsWith(WalNaming.ManifestSuffix, StringComparison.Ordinal))
            {
                manifests.Add(artifact.Name);
            }
        }

        foreach (var manifestName in manifests.Order(StringComparer.Ordinal).Reverse().Take(200))
        {
            WalManifest manifest;
            try
            {
                var stream = await local.OpenReadAsync(BackupKinds.Wal, manifestName, cancellationToken).ConfigureAwait(false);
                await using (stream.ConfigureAwait(false))
                {
                    manifest = await WalManifest.ReadAsync(stream, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is StoreException or InvalidDataException or System.Text.Json.JsonException)
            {
                continue; // verify reports a bad manifest; it cannot vouch for anything here
            }

            // A delta manifest lists the segments new at its sync under added; every segment is in the manifest of the sync
            // that first saw it, or in a full manifest.
            if (manifest.Segments.Concat(manifest.Added ?? []).FirstOrDefault(seg => seg.Name == name) is not { } listed)
            {
                continue;
            }

            if (listed.Size != size)
            {
                throw new ImportRefusedException($"it has {size} bytes, but {manifestName} records {listed.Size} for it");
            }

            string sha;
            await using (var input = OpenRead(path))
            {
                sha = Convert.ToHexStringLower(await System.Security.Cryptography.SHA256.HashDataAsync(input, cancellationToken).ConfigureAwait(false));
            }

            if (!string.Equals(sha, listed.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                throw new ImportRefusedException($"its sha256 is {sha}, but {manifestName} records {listed.Sha256} for it");
            }

            return;
        }
    }

    private static string FirstLine(string message) => message.Split('\n')[0].Trim().TrimEnd('.');

    /// <summary>Counts what is read and keeps the last 1024 bytes (the tar end-of-archive blocks).</summary>
    private sealed class TailStream(Stream inner) : Stream
    {
        private readonly byte[] _tail = new byte[1024];
        private int _tailFill;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => Position;
        public override long Position { get; set; }

        public bool EndsWithZeroBlocks => _tailFill == _tail.Length && _tail.All(b => b == 0);

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var n = inner.Read(buffer);
            Keep(buffer[..n]);
            return n;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            Keep(buffer.Span[..n]);
            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        private void Keep(ReadOnlySpan<byte> read)
        {
            Position += read.Length;
            if (read.Length >= _tail.Length)
            {
                read[^_tail.Length..].CopyTo(_tail);
                _tailFill = _tail.Length;
                return;
            }

            var keep = Math.Min(_tailFill, _tail.Length - read.Length);
            Array.Copy(_tail, _tailFill - keep, _tail, 0, keep);
            read.CopyTo(_tail.AsSpan(keep));
            _tailFill = keep + read.Length;
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>Why an imported file is not a complete artifact of its kind.</summary>
internal sealed class ImportRefusedException : Exception
{
    public ImportRefusedException() { }
    public ImportRefusedException(string message) : base(message) { }
    public ImportRefusedException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>
/// The OpenPGP packet structure of an encrypted message (RFC 4880 §4), walked without the key: session-key packets,
/// then one encrypted-data packet that ends exactly at the end of the file. A file cut anywhere ends inside a packet
/// or where another length header must follow, so it shows without decrypting.
/// </summary>
internal static class OpenPgpPackets
{
    private const int TagPublicKeySessionKey = 1;
    private const int TagSymmetricSessionKey = 3;
    private const int TagSymmetricallyEncrypted = 9;
    private const int TagEncryptedProtected = 18;
    private const int TagAead = 20;
    private const int TagMarker = 10;

    /// <summary>Throws <see cref="ImportRefusedException"/> unless <paramref name="input"/> is a whole binary OpenPGP encrypted message.</summary>
    public static void CheckEncryptedMessage(Stream input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var sessionKeys = 0;
        var encrypted = 0;
        long offset = 0;
        while (true)
        {
            var first = input.ReadByte();
            if (first < 0)
            {
                break;
            }

            if (encrypted > 0)
            {
                throw new ImportRefusedException($"there is data after the encrypted packet, at byte {offset}");
            }

            if ((first & 0x80) == 0)
            {
                throw new ImportRefusedException(offset == 0 && first == '-'
                    ? "it is ASCII-armored; the agent stores binary OpenPGP (gpg --dearmor it)"
                    : $"byte {offset} is not an OpenPGP packet header (not a gpg-encrypted file)");
            }

            offset++;
            int tag;
            if ((first & 0x40) != 0)
            {
                tag = first & 0x3F;
                offset = SkipNewFormatBody(input, offset, tag);
            }
            else
            {
                tag = (first >> 2) & 0x0F;
                var lengthType = first & 0x03;
                if (lengthType == 3)
                {
                    throw new ImportRefusedException("its encrypted packet has an indeterminate length, so a cut could not be seen");
                }

                var length = ReadBigEndian(input, 1 << lengthType, ref offset);
                offset = Skip(input, offset, length, tag);
            }

            switch (tag)
            {
                case TagPublicKeySessionKey or TagSymmetricSessionKey:
                    sessionKeys++;
                    break;
                case TagSymmetricallyEncrypted or TagEncryptedProtected or TagAead:
                    encrypted++;
                    break;
                case TagMarker:
                    break;
                default:
                    throw new ImportRefusedException($"it holds an OpenPGP packet of type {tag}, which an encrypted message does not (it is not gpg --encrypt output)");
            }
        }

        if (offset == 0)
        {
            throw new ImportRefusedException("it is empty");
        }

        if (sessionKeys == 0 || encrypted == 0)
        {
            throw new ImportRefusedException(encrypted == 0 ? "it ends before its encrypted data (cut short)" : "it has no session-key packet (not encrypted to a key)");
        }
    }

    private static long SkipNewFormatBody(Stream input, long offset, int tag)
    {
        while (true)
        {
            var o1 = ReadByteOrCut(input, ref offset);
            long length;
            var partial = false;
            if (o1 < 192)
            {
                length = o1;
            }
            else if (o1 < 224)
            {
                length = ((o1 - 192) << 8) + ReadByteOrCut(input, ref offset) + 192;
            }
            else if (o1 == 255)
            {
                length = ReadBigEndian(input, 4, ref offset);
            }
            else
            {
                length = 1L << (o1 & 0x1F);
                partial = true;
            }

            offset = Skip(input, offset, length, tag);
            if (!partial)
            {
                return offset;
            }
        }
    }

    private static long Skip(Stream input, long offset, long length, int tag)
    {
        var buffer = new byte[64 * 1024];
        var left = length;
        while (left > 0)
        {
            var n = input.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (n == 0)
            {
                throw new ImportRefusedException($"it ends at byte {offset + length - left}, inside an OpenPGP packet (type {tag}) that needs {left} more bytes: cut short");
            }

            left -= n;
        }

        return offset + length;
    }

    private static int ReadByteOrCut(Stream input, ref long offset)
    {
        var b = input.ReadByte();
        if (b < 0)
        {
            throw new ImportRefusedException($"it ends at byte {offset}, where another OpenPGP length header must follow: cut short");
        }

        offset++;
        return b;
    }

    private static long ReadBigEndian(Stream input, int bytes, ref long offset)
    {
        long value = 0;
        for (var i = 0; i < bytes; i++)
        {
            value = (value << 8) | (uint)ReadByteOrCut(input, ref offset);
        }

        return value;
    }
}
