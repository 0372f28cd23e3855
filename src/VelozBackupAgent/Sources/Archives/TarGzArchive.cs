using System.Buffers;
using System.Formats.Tar;
using System.IO.Compression;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Sources.Archives;

/// <summary>
/// Writes and compares the <c>.tar.gz</c> archives of the configuration and secrets kinds: POSIX pax tar
/// (long names, exact sizes, sub-second mtimes) in gzip, restorable with a plain <c>tar -xzf</c>. Entries
/// keep their relative path, permission bits, owner (id and, where known, name) and modification time;
/// symbolic links are stored as links. Everything streams: one file's data at a time, never whole files
/// in memory and never a temporary file.
/// </summary>
internal static class TarGzArchive
{
    private const int CompareBufferSize = 64 * 1024;

    /// <summary>
    /// Writes <paramref name="entries"/> (in their order) to <paramref name="destination"/>. On failure the
    /// archive is left unfinished (no end-of-archive marker, no gzip trailer), and the exception propagates:
    /// <see cref="BackupSourceException"/> for an unreadable file, <see cref="SourceChangedException"/> for a
    /// file that changed while it was read.
    /// </summary>
    public static Task WriteAsync(Stream destination, IReadOnlyList<SourceEntry> entries, OwnerNames owners, CancellationToken cancellationToken) =>
        WriteAsync(destination, entries, [], owners, cancellationToken);

    /// <summary>
    /// As above, then <paramref name="generated"/>: regular files that exist only as a stream (a secrets
    /// command's output), each a 0600 file owned by the agent, under a 0700 directory entry of its own.
    /// Each stream must be seekable (its length goes into the header before its data).
    /// </summary>
    public static async Task WriteAsync(Stream destination, IReadOnlyList<SourceEntry> entries, IReadOnlyList<GeneratedEntry> generated, OwnerNames owners, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(generated);
        ArgumentNullException.ThrowIfNull(entries);
        var gate = new CutOffStream(destination);
        var gzip = new GZipStream(gate, CompressionLevel.Optimal, leaveOpen: true);
        try
        {
            // leaveOpen: the writer owns nothing but the end-of-archive marker it writes when disposed, which
            // must only happen after the last entry went through.
            var tar = new TarWriter(gzip, TarEntryFormat.Pax, leaveOpen: true);
            foreach (var entry in entries)
            {
                cancellationToken.ThrowIfCancellationRequested();
                await WriteEntryAsync(tar, entry, owners, cancellationToken).ConfigureAwait(false);
            }

            var directories = new HashSet<string>(StringComparer.Ordinal);
            foreach (var item in generated)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var now = item.ModifiedAt;
                var (uid, gid) = (item.Uid, item.Gid);
                var parent = item.Name.Contains('/', StringComparison.Ordinal) ? item.Name[..item.Name.LastIndexOf('/')] : null;
                if (parent is not null && directories.Add(parent))
                {
                    var directory = new PaxTarEntry(TarEntryType.Directory, parent + "/")
                    {
                        Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute,
                        Uid = uid,
                        Gid = gid,
                        ModificationTime = now,
                    };
                    await tar.WriteEntryAsync(directory, cancellationToken).ConfigureAwait(false);
                }

                using var content = item.Open();
                var file = new PaxTarEntry(TarEntryType.RegularFile, item.Name)
                {
                    Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                    Uid = uid,
                    Gid = gid,
                    ModificationTime = now,
                    DataStream = content,
                };
                await tar.WriteEntryAsync(file, cancellationToken).ConfigureAwait(false);
            }

            await tar.DisposeAsync().ConfigureAwait(false);
            await gzip.DisposeAsync().ConfigureAwait(false);
        }
        catch
        {
            // Nothing more reaches the destination: no end-of-archive marker, no gzip trailer, so even a
            // consumer that ignored the failure would hold an archive that tar and gzip reject.
            gate.Cut();
            await gzip.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Compares a stored archive with the current tree: the same paths in the same order, with the same
    /// type, permission bits, owner ids, link targets and bytes. Modification times are ignored (a
    /// <c>touch</c> is not a change worth a backup). Reads the archive to its end when everything matched,
    /// so a checksum-verifying stream gets to verify it. Returns the first difference, or null.
    /// </summary>
    public static async Task<string?> FirstDifferenceAsync(Stream archive, IReadOnlyList<SourceEntry> entries, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(archive);
        ArgumentNullException.ThrowIfNull(entries);
        await using var gzip = new GZipStream(archive, CompressionMode.Decompress, leaveOpen: true);
        await using var reader = new TarReader(gzip, leaveOpen: true);
        foreach (var current in entries)
        {
            var stored = await reader.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false);
            if (stored is null)
            {
                return $"{current.RelativePath} is new";
            }

            var storedName = stored.Name.TrimEnd('/');
            if (!string.Equals(storedName, current.RelativePath, StringComparison.Ordinal))
            {
                return TreeOrder.Compare(storedName, current.RelativePath) < 0 ? $"{storedName} was removed" : $"{current.RelativePath} is new";
            }

            var difference = await DifferenceAsync(stored, current, cancellationToken).ConfigureAwait(false);
            if (difference is not null)
            {
                return $"{current.RelativePath} {difference}";
            }
        }

        if (await reader.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false) is { } extra)
        {
            return $"{extra.Name.TrimEnd('/')} was removed";
        }

        // The rest of the gzip member (its CRC is checked at its end), then whatever follows it.
        await gzip.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
        await archive.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
        return null;
    }

    private static async Task WriteEntryAsync(TarWriter tar, SourceEntry entry, OwnerNames owners, CancellationToken cancellationToken)
    {
        switch (entry.Kind)
        {
            case FileKind.Directory:
                await tar.WriteEntryAsync(NewEntry(TarEntryType.Directory, entry.RelativePath + "/", entry.Status, owners), cancellationToken).ConfigureAwait(false);
                break;

            case FileKind.SymbolicLink:
                var link = NewEntry(TarEntryType.SymbolicLink, entry.RelativePath, entry.Status, owners);
                link.LinkName = entry.LinkTarget!;
                await tar.WriteEntryAsync(link, cancellationToken).ConfigureAwait(false);
                break;

            case FileKind.Regular:
                using (var file = FileSnapshot.Open(entry))
                {
                    var regular = NewEntry(TarEntryType.RegularFile, entry.RelativePath, file.Status, owners);
                    regular.DataStream = file.Content;
                    await tar.WriteEntryAsync(regular, cancellationToken).ConfigureAwait(false);
                }

                break;

            default:
                throw new ArgumentException($"{entry.FullPath} is not a regular file, directory or symbolic link", nameof(entry));
        }
    }

    private static PaxTarEntry NewEntry(TarEntryType type, string name, FileStatus status, OwnerNames owners)
    {
        var entry = new PaxTarEntry(type, name)
        {
            Mode = status.Permissions,
            Uid = status.Uid,
            Gid = status.Gid,
            ModificationTime = status.ModifiedAt,
        };
        if (owners.User(status.Uid) is { } user)
        {
            entry.UserName = user;
        }

        if (owners.Group(status.Gid) is { } group)
        {
            entry.GroupName = group;
        }

        return entry;
    }

    private static async Task<string?> DifferenceAsync(TarEntry stored, SourceEntry current, CancellationToken cancellationToken)
    {
        var storedKind = stored.EntryType switch
        {
            TarEntryType.RegularFile or TarEntryType.V7RegularFile => FileKind.Regular,
            TarEntryType.Directory => FileKind.Directory,
            TarEntryType.SymbolicLink => FileKind.SymbolicLink,
            _ => FileKind.Other,
        };
        if (storedKind != current.Kind)
        {
            return "changed type";
        }

        if (current.Kind == FileKind.SymbolicLink)
        {
            return string.Equals(stored.LinkName, current.LinkTarget, StringComparison.Ordinal) ? null : "points elsewhere";
        }

        if (current.Kind == FileKind.Directory)
        {
            return MetadataDifference(stored, current.Status);
        }

        using var file = FileSnapshot.Open(current);
        var metadata = MetadataDifference(stored, file.Status);
        if (metadata is not null)
        {
            return metadata;
        }

        if (stored.Length != file.Status.Size)
        {
            return "changed size";
        }

        return await SameBytesAsync(stored.DataStream ?? Stream.Null, file.Content, cancellationToken).ConfigureAwait(false) ? null : "changed content";
    }

    private static string? MetadataDifference(TarEntry stored, FileStatus status)
    {
        if (stored.Mode != status.Permissions)
        {
            return "changed mode";
        }

        return stored.Uid != status.Uid || stored.Gid != status.Gid ? "changed owner" : null;
    }

    private static async Task<bool> SameBytesAsync(Stream stored, Stream current, CancellationToken cancellationToken)
    {
        var a = ArrayPool<byte>.Shared.Rent(CompareBufferSize);
        var b = ArrayPool<byte>.Shared.Rent(CompareBufferSize);
        try
        {
            while (true)
            {
                var n = await stored.ReadAtLeastAsync(a.AsMemory(0, CompareBufferSize), CompareBufferSize, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
                var m = await current.ReadAtLeastAsync(b.AsMemory(0, CompareBufferSize), CompareBufferSize, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
                if (n != m || !a.AsSpan(0, n).SequenceEqual(b.AsSpan(0, m)))
                {
                    return false;
                }

                if (n == 0)
                {
                    return true;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(a);
            ArrayPool<byte>.Shared.Return(b);
        }
    }
}

/// <summary>A file of an archive that exists only as a stream: its path in the archive and how to open it (seekable).</summary>
internal sealed record GeneratedEntry(string Name, Func<Stream> Open, int Uid, int Gid, DateTimeOffset ModifiedAt);

/// <summary>Passes writes through until <see cref="Cut"/>, then drops them.</summary>
internal sealed class CutOffStream(Stream inner) : Stream
{
    private bool _cut;

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public void Cut() => _cut = true;

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (!_cut)
        {
            inner.Write(buffer);
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        _cut ? ValueTask.CompletedTask : inner.WriteAsync(buffer, cancellationToken);

    public override void Flush()
    {
        if (!_cut)
        {
            inner.Flush();
        }
    }

    public override Task FlushAsync(CancellationToken cancellationToken) =>
        _cut ? Task.CompletedTask : inner.FlushAsync(cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}

/// <summary>The archive order: paths compared ordinally with <c>/</c> below every other character, so a directory comes right before its contents.</summary>
internal static class TreeOrder
{
    public static int Compare(string x, string y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        var n = Math.Min(x.Length, y.Length);
        for (var i = 0; i < n; i++)
        {
            if (x[i] != y[i])
            {
                return Rank(x[i]).CompareTo(Rank(y[i]));
            }
        }

        return x.Length.CompareTo(y.Length);
    }

    private static int Rank(char c) => c == '/' ? -1 : c;
}
