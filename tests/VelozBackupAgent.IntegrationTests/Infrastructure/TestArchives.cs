using System.Formats.Tar;
using System.IO.Compression;

namespace VelozBackupAgent.IntegrationTests.Infrastructure;

/// <summary>Real archives for tests that store files by hand (import checks what it stores).</summary>
public static class TestArchives
{
    /// <summary>A complete .tar.gz with one file of <paramref name="bytes"/> pseudo-random (incompressible) bytes.</summary>
    public static async Task WriteTarGzAsync(string path, int bytes = 100, int seed = 1)
    {
        var content = new byte[bytes];
        new Random(seed).NextBytes(content);
        await using var file = File.Create(path);
        await using var gzip = new GZipStream(file, CompressionLevel.Fastest);
        await using var tar = new TarWriter(gzip, TarEntryFormat.Pax, leaveOpen: true);
        await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.RegularFile, "config.yaml") { DataStream = new MemoryStream(content) });
    }

    /// <summary>Copies the first <paramref name="fraction"/> of <paramref name="source"/> to <paramref name="target"/>: a file cut short.</summary>
    public static void Truncate(string source, string target, double fraction = 0.5)
    {
        var bytes = File.ReadAllBytes(source);
        File.WriteAllBytes(target, bytes[..(int)(bytes.Length * fraction)]);
    }
}
