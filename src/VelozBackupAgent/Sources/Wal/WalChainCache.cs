using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using VelozBackupAgent.Storage.Checksums;
using VelozBackupAgent.Storage.Local;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Sources.Wal;

/// <summary>
/// What <c>&lt;state&gt;/wal-chain.json</c> says about the newest manifest its writer stored: its name and SHA-256, its
/// depth, the digest of the segment list it resolves to (<see cref="WalChainCache.SegmentsDigest"/>), and every
/// manifest of its chain (itself first, back to the full manifest) with the SHA-256 of its bytes.
/// </summary>
/// <param name="Version">Format version, 1.</param>
/// <param name="Directory">The WAL directory the manifests describe.</param>
/// <param name="Store">The local store they are in.</param>
/// <param name="Name">The newest manifest's artifact name.</param>
/// <param name="Sha256">The SHA-256 of its bytes.</param>
/// <param name="Depth">0 for a full manifest, else its delta depth.</param>
/// <param name="SegmentsSha256">Digest of the segments it resolves to.</param>
/// <param name="Chain">Itself, its parent, … back to the full manifest, each with the SHA-256 of its bytes.</param>
internal sealed record WalChainCacheDocument(int Version, string Directory, string Store, string Name, string Sha256, int Depth, string SegmentsSha256, IReadOnlyList<WalManifestParent> Chain);

/// <summary>
/// <c>&lt;state&gt;/wal-chain.json</c>: lets a new process (a CLI <c>backup wal</c>) write a sync with nothing new as a
/// delta without reading back and resolving the manifest chain (parsing the full manifest is most of a no-op's cost).
/// Trusted only when everything it says is proved by the store as it is now (<see cref="VerifyAsync"/>): the newest
/// manifest is the one it names, and every manifest of the chain still has the bytes (SHA-256) it recorded — so the
/// chain resolves to exactly the segments it resolved to when the file was written, whose digest it holds. A sync
/// whose segments have that digest is then a delta with nothing added or removed. Anything else (no file, a file that
/// does not parse, whose own checksum fails, another directory or store, another newest manifest, a changed or missing
/// manifest of the chain, other segments) and the chain is resolved as without it. Written atomically (temporary file,
/// fsync, rename), mode 0600; its first line is the SHA-256 of the rest.
/// </summary>
internal static class WalChainCache
{
    public const string FileName = "wal-chain.json";

    private const int CurrentVersion = 1;

    /// <summary>
    /// SHA-256 over every segment in name order (ordinal), one <c>name \t size \t sha256 \n</c> line each: equal digests,
    /// equal segment lists.
    /// </summary>
    public static string SegmentsDigest(IEnumerable<WalManifestSegment> segments)
    {
        ArgumentNullException.ThrowIfNull(segments);
        var ordered = segments.ToList();
        ordered.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[512];
        foreach (var s in ordered)
        {
            var line = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{s.Name}\t{s.Size}\t{s.Sha256}\n");
            var count = Encoding.UTF8.GetByteCount(line);
            if (count > buffer.Length)
            {
                buffer = new byte[count];
            }

            Encoding.UTF8.GetBytes(line, buffer);
            hash.AppendData(buffer, 0, count);
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>The document, or null when there is none or it cannot be trusted as written (unreadable, malformed, checksum wrong).</summary>
    public static WalChainCacheDocument? Load(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        var newline = Array.IndexOf(bytes, (byte)'\n');
        if (newline != 64)
        {
            return null;
        }

        var recorded = Encoding.ASCII.GetString(bytes, 0, 64);
        var body = bytes.AsSpan(newline + 1);
        if (!string.Equals(recorded, Convert.ToHexStringLower(SHA256.HashData(body)), StringComparison.Ordinal))
        {
            return null;
        }

        WalChainCacheDocument? document;
        try
        {
            document = JsonSerializer.Deserialize(body, WalJsonContext.Default.WalChainCacheDocument);
        }
        catch (JsonException)
        {
            return null;
        }

        if (document is null || document.Version != CurrentVersion || document.Chain is not { Count: > 0 } chain
            || !string.Equals(chain[0].Name, document.Name, StringComparison.Ordinal)
            || !string.Equals(chain[0].Sha256, document.Sha256, StringComparison.Ordinal)
            || document.Depth != chain.Count - 1
            || !Sha256Sidecar.IsSha256Hex(document.SegmentsSha256 ?? "")
            || chain.Any(l => l is null || string.IsNullOrEmpty(l.Name) || !Sha256Sidecar.IsSha256Hex(l.Sha256 ?? "")))
        {
            return null;
        }

        return document;
    }

    /// <summary>Writes <paramref name="document"/> atomically (temporary file, fsync, rename, fsync of the directory), mode 0600.</summary>
    public static void Save(string path, WalChainCacheDocument document)
    {
        ArgumentNullException.ThrowIfNull(document);
        var directory = Path.GetDirectoryName(path)!;
        PrivateFiles.CreateDirectory(directory);
        var body = JsonSerializer.SerializeToUtf8Bytes(document, WalJsonContext.Default.WalChainCacheDocument);
        var temp = path + "." + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture) + ".tmp";
        try
        {
            using (var stream = PrivateFiles.Open(temp, FileMode.Create))
            {
                stream.Write(Encoding.ASCII.GetBytes(Convert.ToHexStringLower(SHA256.HashData(body)) + "\n"));
                stream.Write(body);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
            FileSync.FsyncDirectory(directory);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    /// <summary>Removes the file (best effort): it no longer describes the newest manifest.</summary>
    public static void Delete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A stale file is never trusted anyway: VerifyAsync checks it against the store.
        }
    }

    /// <summary>
    /// True when <paramref name="document"/> is proved by the store as it is now: it describes
    /// <paramref name="directory"/> in <paramref name="store"/>, <paramref name="newest"/> (the store's newest manifest,
    /// whose sidecar says <paramref name="newestSidecarSha"/>) is the one it names with that checksum, and every manifest
    /// of its chain, opened by <paramref name="open"/> (null: not in the store), has the bytes it recorded.
    /// </summary>
    public static async Task<bool> VerifyAsync(WalChainCacheDocument document, string directory, string store, string newest, string newestSidecarSha,
        Func<string, CancellationToken, Task<Stream?>> open, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(document);
        ArgumentNullException.ThrowIfNull(open);
        if (!string.Equals(document.Directory, directory, StringComparison.Ordinal) || !string.Equals(document.Store, store, StringComparison.Ordinal)
            || !string.Equals(document.Name, newest, StringComparison.Ordinal) || !string.Equals(document.Sha256, newestSidecarSha, StringComparison.Ordinal))
        {
            return false;
        }

        foreach (var link in document.Chain)
        {
            var input = await open(link.Name, cancellationToken).ConfigureAwait(false);
            if (input is null)
            {
                return false;
            }

            string sha;
            await using (input.ConfigureAwait(false))
            {
                sha = Convert.ToHexStringLower(await SHA256.HashDataAsync(input, cancellationToken).ConfigureAwait(false));
            }

            if (!string.Equals(sha, link.Sha256, StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    public static WalChainCacheDocument Describe(string directory, string store, WalChainTip tip, string segmentsSha256)
    {
        ArgumentNullException.ThrowIfNull(tip);
        return new WalChainCacheDocument(CurrentVersion, directory, store, tip.Name, tip.Sha256, tip.Depth, segmentsSha256, tip.Chain);
    }
}
