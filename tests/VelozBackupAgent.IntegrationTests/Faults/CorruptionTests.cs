using Xunit.Abstractions;

namespace VelozBackupAgent.IntegrationTests.Faults;

/// <summary>
/// One flipped byte in a stored artifact, or in its sidecar: <c>verify --read-data</c> fails the checksum line naming
/// it and exits 3, and restoring it is refused in one line with nothing written. (A flipped byte in an S3 object is
/// covered by the S3 tests.)
/// </summary>
public sealed class CorruptionTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_flipped_byte_in_an_artifact_fails_verify_naming_it_and_its_restore_is_refused_in_one_line()
    {
        await using var bed = await FaultBed.CreateAsync(postgres: false, withS3: false);
        await BackUpAsync(bed);
        var victim = (await bed.ListAsync(BackupKinds.Config))[0].Name;
        var path = bed.LocalPath(BackupKinds.Config, victim);

        Flip(path, new FileInfo(path).Length / 2);

        await ExpectVerifyFailsNamingAsync(bed, victim);
        await ExpectRestoreRefusedAsync(bed, BackupKinds.Config, path);
    }

    [Fact]
    public async Task A_flipped_byte_in_a_sidecar_fails_verify_naming_it_and_its_restore_is_refused_in_one_line()
    {
        await using var bed = await FaultBed.CreateAsync(postgres: false, withS3: false);
        await BackUpAsync(bed);
        var victim = (await bed.ListAsync(BackupKinds.Secrets))[0].Name;
        var path = bed.LocalPath(BackupKinds.Secrets, victim);

        // A hex digit of the recorded hash, changed to another hex digit: still a well-formed sidecar.
        var sidecar = File.ReadAllBytes(path + ".sha256");
        sidecar[10] = (byte)(sidecar[10] == (byte)'0' ? '1' : '0');
        File.WriteAllBytes(path + ".sha256", sidecar);

        await ExpectVerifyFailsNamingAsync(bed, victim);
        await ExpectRestoreRefusedAsync(bed, BackupKinds.Secrets, path);
    }

    private async Task BackUpAsync(FaultBed bed)
    {
        foreach (var kind in bed.Kinds)
        {
            var r = await bed.RunAsync("backup", kind);
            r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        }

        var clean = await bed.RunAsync("verify", "--read-data");
        output.WriteLine(clean.StdOut);
        clean.StdOut.Should().MatchRegex("(?m)^PASS +Checksums valid", "before the flip every checksum holds");
    }

    private async Task ExpectVerifyFailsNamingAsync(FaultBed bed, string victim)
    {
        var r = await bed.RunAsync("verify", "--read-data");
        output.WriteLine(r.StdOut + r.StdErr);
        r.ExitCode.Should().Be(3, r.StdOut + r.StdErr);
        r.StdOut.Split('\n').Should().Contain(l => l.StartsWith("FAIL", StringComparison.Ordinal) && l.Contains("Checksums", StringComparison.Ordinal) && l.Contains(victim, StringComparison.Ordinal),
            "the checksum line fails and names the artifact");
    }

    private async Task ExpectRestoreRefusedAsync(FaultBed bed, string kind, string artifact)
    {
        var target = Path.Combine(bed.Root, "restored-" + kind);
        var r = await bed.RunAsync("restore", kind, artifact, "--target", target, "--no-service");
        output.WriteLine($"restore {kind}: exit {r.ExitCode}: {r.StdErr.Trim()}");
        r.ExitCode.Should().Be(1, r.StdOut + r.StdErr);
        r.ErrorLines.Should().ContainSingle().Which.Should().Contain(Path.GetFileName(artifact));
        (Directory.Exists(target) ? Directory.GetFileSystemEntries(target) : []).Should().BeEmpty("nothing of a corrupt artifact is written");
    }

    private static void Flip(string path, long offset)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        f.Position = offset;
        var b = f.ReadByte();
        f.Position = offset;
        f.WriteByte((byte)(b ^ 0x01));
    }
}
