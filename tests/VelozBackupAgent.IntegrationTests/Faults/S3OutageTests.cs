using System.Diagnostics;
using System.Globalization;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace VelozBackupAgent.IntegrationTests.Faults;

/// <summary>
/// The real s3rver killed between uploads and in the middle of one (a multipart upload, the agent part-way through
/// reading the artifact), then started again: nothing local is harmed, the queue drains with <c>replicate</c>, and
/// every object in S3 has the local artifact's bytes.
/// </summary>
public sealed class S3OutageTests(ITestOutputHelper output)
{
    [Fact]
    public async Task S3_stopped_between_uploads_then_restarted_the_queue_drains_and_S3_holds_verified_copies()
    {
        await using var bed = await FaultBed.CreateAsync(postgres: false, withS3: true);
        (await bed.RunAsync("backup", "config")).ExitCode.Should().Be(0);

        bed.S3!.Stop();
        await bed.ChangeSourceAsync(BackupKinds.Config);
        foreach (var kind in new[] { BackupKinds.Config, BackupKinds.Wal, BackupKinds.Secrets })
        {
            var r = await bed.RunAsync("backup", kind);
            r.ExitCode.Should().Be(0, $"README: an S3 failure of `backup` is a warning, the artifact is queued: {r.StdOut}{r.StdErr}");
        }

        var down = await bed.RunAsync("replicate");
        down.ExitCode.Should().Be(1, "README: replicate exits 1 with one line when S3 cannot be used");
        down.ErrorLines.Should().ContainSingle();
        output.WriteLine("replicate while S3 is down: " + down.StdErr.Trim());
        (await bed.StatusAsync()).Backlog.Should().BeGreaterThanOrEqualTo(3, "the backlog holds what could not be copied");

        await bed.S3.StartAsync();
        var up = await bed.RunAsync("replicate");
        up.ExitCode.Should().Be(0, up.StdOut + up.StdErr);
        await ExpectDrainedAndVerifiedAsync(bed, [BackupKinds.Config, BackupKinds.Wal, BackupKinds.Secrets]);
    }

    [Fact]
    public async Task S3_stopped_during_an_upload_then_restarted_the_queue_drains_and_S3_holds_a_verified_copy()
    {
        await using var bed = await FaultBed.CreateAsync(postgres: false, withS3: true);
        var source = Path.Combine(bed.Root, "veloz_20261201_020000.dump");
        await using (var f = File.Create(source))
        {
            await new GeneratedStream(80L * 1024 * 1024).CopyToAsync(f);
        }

        var import = await bed.RunAsync("import", "database", source);
        import.ExitCode.Should().Be(0, import.StdErr);
        var artifact = bed.LocalPath(BackupKinds.Database, "veloz_20261201_020000.dump");
        var size = new FileInfo(artifact).Length;

        using var replicate = bed.Start("replicate");
        var stdout = replicate.StandardOutput.ReadToEndAsync();
        var stderr = replicate.StandardError.ReadToEndAsync();
        var clock = Stopwatch.StartNew();
        long position = 0;
        while (position < size / 5)
        {
            replicate.HasExited.Should().BeFalse("the upload of 80 MiB must still be running: " + await stderr);
            clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(90), "the upload never started");
            position = ReadPosition(replicate.Id, artifact) ?? 0;
            await Task.Delay(10);
        }

        bed.S3!.Stop();
        output.WriteLine($"s3rver stopped with the agent {position * 100 / size}% through reading the artifact ({FaultBed.Ms(clock.Elapsed)} after replicate started)");
        await replicate.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        output.WriteLine($"replicate exited {replicate.ExitCode}: {(await stderr).Trim()}");
        replicate.ExitCode.Should().Be(1, "README: replicate exits 1 with one line when S3 cannot be used: " + await stdout + await stderr);
        FaultBed.Hash(artifact).Should().Be(FaultBed.SidecarHash(artifact), "the local artifact is untouched");

        await bed.S3.StartAsync();
        var up = await bed.RunAsync("replicate");
        up.ExitCode.Should().Be(0, up.StdOut + up.StdErr);
        await ExpectDrainedAndVerifiedAsync(bed, [BackupKinds.Database]);
    }

    private static async Task ExpectDrainedAndVerifiedAsync(FaultBed bed, string[] kinds)
    {
        (await bed.StatusAsync()).Backlog.Should().Be(0, "the queue is drained");
        foreach (var kind in kinds)
        {
            var local = await bed.ListAsync(kind);
            var s3 = await bed.S3HashesAsync(kind);
            local.Should().NotBeEmpty();
            foreach (var a in local)
            {
                s3.Should().ContainKey(a.Name, $"{kind}/{a.Name} reached S3");
                s3[a.Name].Should().Be(a.Sha256, $"the S3 copy of {a.Name} has the local bytes");
            }
        }
    }

    /// <summary>The read offset of the open file <paramref name="path"/> in process <paramref name="pid"/>, from /proc/PID/fdinfo.</summary>
    private static long? ReadPosition(int pid, string path)
    {
        try
        {
            foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
            {
                if (new FileInfo(fd).LinkTarget != path)
                {
                    continue;
                }

                var pos = File.ReadAllLines($"/proc/{pid}/fdinfo/{Path.GetFileName(fd)}").First(l => l.StartsWith("pos:", StringComparison.Ordinal));
                return long.Parse(pos[4..].Trim(), CultureInfo.InvariantCulture);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return null;
    }
}
