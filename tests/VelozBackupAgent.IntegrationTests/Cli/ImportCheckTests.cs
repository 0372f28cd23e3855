using Npgsql;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.IntegrationTests.Restore;

namespace VelozBackupAgent.IntegrationTests.Cli;

/// <summary>
/// <c>import</c> checks a file like a fresh backup of its kind: a truncated pg_dump, tar.gz or gpg file is refused
/// with one line and exit 1, and nothing is stored (no artifact, no sidecar, nothing queued for S3).
/// </summary>
public sealed class ImportCheckTests
{
    private static void NothingStored(RestoreTestBed bed, string kind)
    {
        var dir = Path.Combine(bed.LocalRoot, kind);
        (Directory.Exists(dir) ? Directory.GetFiles(dir) : []).Should().BeEmpty("a refused import stores nothing");
        var queue = Path.Combine(bed.LocalRoot, ".state", "upload-queue", kind);
        (Directory.Exists(queue) ? Directory.GetFiles(queue) : []).Should().BeEmpty("nothing is queued for S3");
    }

    private static async Task<string> PgDumpAsync(PostgresDatabase database, string file)
    {
        var b = new NpgsqlConnectionStringBuilder(database.ConnectionString);
        var r = await ChildProcess.RunAsync(Path.Combine(TestEnvironment.PostgresBinDirectory, "pg_dump"), ["--format=custom", "--no-password", "-f", file],
            new Dictionary<string, string?> { ["PGHOST"] = b.Host, ["PGPORT"] = b.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), ["PGUSER"] = b.Username, ["PGPASSWORD"] = b.Password, ["PGDATABASE"] = b.Database });
        r.ExitCode.Should().Be(0, r.StdErr);
        return file;
    }

    [Fact]
    public async Task A_truncated_dump_is_refused_and_the_whole_one_is_stored()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        var whole = await PgDumpAsync(bed.Database, Path.Combine(bed.Root, "whole.dump"));
        // Cut in its data: pg_restore --list alone still reads the table of contents at the start.
        var cut = Path.Combine(bed.Root, "veloz_20260214_120000.dump");
        TestArchives.Truncate(whole, cut, 0.8);

        var r = await bed.RunAsync("import", "database", cut);

        r.ExitCode.Should().Be(1, r.StdOut);
        r.ErrorLines.Should().ContainSingle().Which.Should().StartWith($"veloz-backup: import refused: {cut} is not a complete database artifact: pg_restore cannot read it to the end")
            .And.EndWith("nothing was stored");
        NothingStored(bed, "database");

        File.Move(whole, cut, overwrite: true);
        var ok = await bed.RunAsync("import", "database", cut);
        ok.ExitCode.Should().Be(0, ok.StdErr);
        File.Exists(Path.Combine(bed.LocalRoot, "database", "veloz_20260214_120000.dump.sha256")).Should().BeTrue();
    }

    [Fact]
    public async Task A_truncated_config_archive_is_refused()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        var whole = Path.Combine(bed.Root, "whole.tar.gz");
        await TestArchives.WriteTarGzAsync(whole, 300_000);
        var cut = Path.Combine(bed.Root, "config_20260214_120000.tar.gz");
        TestArchives.Truncate(whole, cut, 0.5);

        var r = await bed.RunAsync("import", "config", cut);

        r.ExitCode.Should().Be(1, r.StdOut);
        r.ErrorLines.Should().ContainSingle().Which.Should().StartWith($"veloz-backup: import refused: {cut} is not a complete config artifact: ").And.EndWith("nothing was stored");
        NothingStored(bed, "config");
        File.Move(whole, cut, overwrite: true);
        (await bed.RunAsync("import", "config", cut)).ExitCode.Should().Be(0);
    }

    [Fact]
    public async Task A_truncated_or_foreign_secrets_file_is_refused_by_its_packet_structure_without_the_key()
    {
        await using var bed = await RestoreTestBed.CreateAsync(withS3: false);
        var plain = Path.Combine(bed.Root, "secrets.tar.gz");
        await TestArchives.WriteTarGzAsync(plain, 200_000);
        var whole = Path.Combine(bed.Root, "whole.gpg");
        var gpg = await ChildProcess.RunAsync("gpg", ["--batch", "--yes", "--trust-model", "always", "-r", TestEnvironment.GpgRecipient, "-o", whole, "--encrypt", plain],
            new Dictionary<string, string?> { ["GNUPGHOME"] = TestEnvironment.GnupgHome });
        gpg.ExitCode.Should().Be(0, gpg.StdErr);
        var name = Path.Combine(bed.Root, "secrets_20260214_120000.tar.gz.gpg");

        foreach (var (bytes, why) in new[] { (File.ReadAllBytes(whole)[..(int)(new FileInfo(whole).Length / 2)], "cut short"), (File.ReadAllBytes(plain), "not an OpenPGP packet header") })
        {
            await File.WriteAllBytesAsync(name, bytes);
            var r = await bed.RunAsync("import", "secrets", name);
            r.ExitCode.Should().Be(1, r.StdOut);
            r.ErrorLines.Should().ContainSingle().Which.Should().StartWith($"veloz-backup: import refused: {name} is not a complete secrets artifact: ").And.Contain(why);
            NothingStored(bed, "secrets");
        }

        File.Copy(whole, name, overwrite: true);
        var ok = await bed.RunAsync("import", "secrets", name);
        ok.ExitCode.Should().Be(0, ok.StdErr);
    }
}
