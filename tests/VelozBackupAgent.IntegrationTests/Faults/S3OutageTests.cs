using System.Diagnostics;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace VelozBackupAgent.IntegrationTests.Faults;

/// <summary>
/// The real s3rver killed between uploads and in the middle of one (a multipart upload of 32 parts, killed once two
/// are stored), then started again: nothing local is harmed, the queue drains with <c>replicate</c>, and
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

        // The README's exit code for a backup whose upload fails is checked at the end, so that the drain is tested too.
        var contract = new List<string>();
        foreach (var kind in new[] { BackupKinds.Config, BackupKinds.Wal, BackupKinds.Secrets })
        {
            var r = await bed.RunAsync("backup", kind);
            output.WriteLine($"backup {kind} while S3 is down: exit {r.ExitCode}: {r.StdErr.Trim()}");
            if (r.ExitCode != 0)
            {
                contract.Add($"backup {kind} exited {r.ExitCode}: {r.StdErr.Trim()}");
            }

            (await bed.ListAsync(kind)).Should().NotBeEmpty($"the local {kind} backup is stored whatever S3 does");
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
        contract.Should().BeEmpty("README: an S3 failure of `backup` is a warning (exit 0), the artifact is queued");
    }

    [Fact]
    public async Task S3_stopped_during_an_upload_then_restarted_the_queue_drains_and_S3_holds_a_verified_copy()
    {
        await using var bed = await FaultBed.CreateAsync(postgres: false, withS3: true);
        var source = Path.Combine(bed.Root, "veloz_20261201_020000.dump");
        await using (var f = File.Create(source))
        {
            await new GeneratedStream(160L * 1024 * 1024).CopyToAsync(f);
        }

        var import = await bed.RunAsync("import", "database", source);
        import.ExitCode.Should().Be(0, import.StdErr);
        File.Delete(source);
        var artifact = bed.LocalPath(BackupKinds.Database, "veloz_20261201_020000.dump");
        var size = new FileInfo(artifact).Length;

        // s3rver writes each part as uploads/<id>/<n> and <n>.md5: it is killed from the watcher's callback as soon
        // as the second part is stored, with the rest of the upload still to come.
        var parts = 0;
        var stopped = new TaskCompletionSource();
        var bucketDirectory = Path.Combine(bed.S3!.DataDirectory, bed.Bucket);
        using var watcher = new FileSystemWatcher(bucketDirectory, "*.md5") { IncludeSubdirectories = true };
        watcher.Created += (_, e) =>
        {
            if (Path.GetFileNameWithoutExtension(e.Name ?? "").Split('/').Last().All(char.IsAsciiDigit) && Interlocked.Increment(ref parts) == 2)
            {
                bed.S3.Stop();
                stopped.TrySetResult();
            }
        };
        watcher.EnableRaisingEvents = true;
        var clock = Stopwatch.StartNew();
        using var replicate = bed.Start("replicate");
        var stdout = replicate.StandardOutput.ReadToEndAsync();
        var stderr = replicate.StandardError.ReadToEndAsync();
        var first = await Task.WhenAny(stopped.Task, replicate.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(90)));
        first.Should().BeSameAs(stopped.Task, "s3rver must be stopped in the middle of the multipart upload: " + (replicate.HasExited ? await stdout + await stderr : "no part stored in 90 s"));
        output.WriteLine($"s3rver stopped after part {parts} of {size / (5 * 1024 * 1024)} was stored ({FaultBed.Ms(clock.Elapsed)} after replicate started)");
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
}
