using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Npgsql;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace VelozBackupAgent.IntegrationTests.Cluster;

/// <summary>
/// Point-in-time recovery across a WAL receiver failover: two real agents (<c>Backup:Cluster:Enabled</c>) on one real
/// PostgreSQL 15 and one s3rver, the holder of the replication slot SIGKILLed, and a scratch restore to a moment after
/// the kill on the surviving node, whose local store lacks the WAL the dead node archived: the shared prefix in S3
/// (<c>Backup:Cluster:SharedPrefix</c>) supplies it. Then the same restore from S3 alone.
/// </summary>
public sealed partial class ClusterPitrTests(ITestOutputHelper output)
{
    private const string Shared = "cluster";
    private static readonly string[] Two = ["node-a", "node-b"];

    [Fact]
    public async Task After_the_receiver_holder_is_killed_a_pitr_restore_to_a_moment_after_the_kill_has_the_rows_from_before_and_after_it()
    {
        await using var bed = await ClusterBed.CreateAsync();
        foreach (var node in Two)
        {
            await bed.WriteConfigAsync(node, b => bed.WithPitr(b));
            bed.Start(node);
        }

        await bed.WaitForAsync(async () => (await bed.LiveNodesAsync()).Count == 2, TimeSpan.FromSeconds(60), "both nodes checked in");
        string? holder = null;
        await bed.WaitForAsync(async () => (holder = await bed.ReceiverHolderAsync()) is not null, TimeSpan.FromSeconds(30), "one node streaming");
        // A new cluster takes its first dump and base backup at start-up on one node: let those finish, so this test's
        // own base backup below is not refused as busy on the node that runs them.
        await bed.WaitForAsync(async () => await bed.Pg.ScalarAsync<long>(
            "SELECT count(*) FROM veloz_quartz.veloz_runs WHERE kind IN ('database', 'pitr') AND outcome <> 'running'", ClusterBed.DatabaseName) == 2,
            TimeSpan.FromSeconds(120), "the cluster's first dump and base backup done");
        var standby = Two.Single(n => n != holder);

        // The base backup on the standby: the node that restores later holds the base, but not the WAL the holder archived.
        var backup = await VelozBackupBinary.RunAsync(["backup", "pitr", "--config", bed.ConfigPath(standby)], timeout: TimeSpan.FromMinutes(3));
        backup.ExitCode.Should().Be(0, backup.StdOut + backup.StdErr);
        var before = await bed.Orders.CommitAsync();
        var completed = (await bed.Pg.SwitchWalAsync()).CompletedSegment;
        await bed.WaitForAsync(async () => HasSegment(bed, holder!, completed) && await AllInS3Async(bed, holder!), TimeSpan.FromSeconds(90),
            $"{holder} archived {completed} (the commit before the kill) and copied its WAL to s3://{bed.Bucket}/{Shared}/pitr/");

        var clock = Stopwatch.StartNew();
        await bed.KillAsync(holder!);
        string? next = null;
        await bed.WaitForAsync(async () => (next = await bed.ReceiverHolderAsync()) is not null && next != holder, TimeSpan.FromSeconds(30), $"another node streaming after {holder} was killed");
        var failover = clock.Elapsed;
        next.Should().Be(standby);

        // After the kill: a commit to keep, the target, a commit past the target, and the segment they are in completed.
        var after = await bed.Orders.CommitAsync();
        var target = await bed.Pg.ScalarAsync<DateTimeOffset>("SELECT clock_timestamp()");
        var later = await bed.Orders.CommitAsync();
        var afterSegment = (await bed.Pg.SwitchWalAsync()).CompletedSegment;
        await bed.WaitForAsync(() => Task.FromResult(HasSegment(bed, next!, afterSegment)), TimeSpan.FromSeconds(60), $"{next} archived {afterSegment}");
        var archived = clock.Elapsed;
        await bed.WaitForAsync(() => AllInS3Async(bed, next!), TimeSpan.FromSeconds(90), $"{next}'s base backup and WAL in s3://{bed.Bucket}/{Shared}/pitr/");
        var inS3 = clock.Elapsed;
        (await bed.Node(next!).StopAsync()).Should().Be(0, bed.Consoles());

        // The layout: PostgreSQL's artifacts under the shared prefix only, none under a node's name.
        var keys = await bed.S3KeysAsync();
        keys.Should().Contain([$"{Shared}/pitr/{completed}", $"{Shared}/pitr/{afterSegment}"]);
        keys.Where(k => Two.Any(n => k.StartsWith($"{n}/pitr/", StringComparison.Ordinal) || k.StartsWith($"{n}/database/", StringComparison.Ordinal)))
            .Should().BeEmpty("the database-wide kinds are not under a node's prefix in a cluster");
        HasSegment(bed, next!, completed).Should().BeFalse($"{next} never archived {completed} itself: the restore has to take it from S3");

        var time = target.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.ffffff", CultureInfo.InvariantCulture);
        var scratch = Path.Combine(bed.Root, "scratch-failover");
        clock.Restart();
        var r = await VelozBackupBinary.RunAsync(["restore", "pitr", "--target-time", time, "--target-dir", scratch, "--config", bed.ConfigPath(next!)], timeout: TimeSpan.FromMinutes(3));
        var restored = clock.Elapsed;
        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        r.StdOut.Should().Contain($"and S3 (s3, the cluster's shared prefix)");
        (await IdsInScratchAsync(bed, scratch, r.StdOut)).Should().Contain([before.Id, after.Id], "rows from before and after the kill are restored").And.NotContain(later.Id);

        // verify on that node checks the same view: no gap in the WAL of the local store and S3 together.
        var verify = await VelozBackupBinary.RunAsync(["verify", "--config", bed.ConfigPath(next!)], timeout: TimeSpan.FromMinutes(3));
        verify.StdOut.Should().Contain("PASS  WAL continuity (local+s3: no gap from the newest base backup to the newest WAL)", verify.StdOut + verify.StdErr);

        // From S3 alone: the restoring node's local PITR store is empty.
        Directory.Delete(Path.Combine(bed.LocalRoot(next!), BackupKinds.Pitr), recursive: true);
        var fromS3 = Path.Combine(bed.Root, "scratch-s3");
        clock.Restart();
        r = await VelozBackupBinary.RunAsync(["restore", "pitr", "--target-time", time, "--target-dir", fromS3, "--config", bed.ConfigPath(next!)], timeout: TimeSpan.FromMinutes(3));
        var restoredFromS3 = clock.Elapsed;
        r.ExitCode.Should().Be(0, r.StdOut + r.StdErr);
        (await IdsInScratchAsync(bed, fromS3, r.StdOut)).Should().Contain([before.Id, after.Id]).And.NotContain(later.Id);

        var line = string.Create(CultureInfo.InvariantCulture,
            $"{holder} killed: {next} streaming after {failover.TotalSeconds:0.0} s, archived {afterSegment} after {archived.TotalSeconds:0.0} s, all in S3 after {inS3.TotalSeconds:0.0} s; scratch restore {restored.TotalSeconds:0.0} s (local+S3), {restoredFromS3.TotalSeconds:0.0} s (S3 only)");
        output.WriteLine(line);
        File.AppendAllText(Path.Combine(Path.GetTempPath(), "veloz-cluster-pitr.txt"), $"{TimeProvider.System.GetUtcNow().UtcDateTime:u} {line}\n");
    }

    /// <summary>Whether <paramref name="node"/>'s local store holds the whole segment (with its sidecar).</summary>
    private static bool HasSegment(ClusterBed bed, string node, string segment)
    {
        var path = Path.Combine(bed.LocalRoot(node), BackupKinds.Pitr, segment);
        return File.Exists(path) && File.Exists(path + ".sha256");
    }

    /// <summary>Whether every whole segment and base backup file in <paramref name="node"/>'s local store is in S3 under the shared prefix.</summary>
    private static async Task<bool> AllInS3Async(ClusterBed bed, string node)
    {
        var dir = Path.Combine(bed.LocalRoot(node), BackupKinds.Pitr);
        var local = Directory.Exists(dir)
            ? Directory.EnumerateFiles(dir).Select(Path.GetFileName).OfType<string>()
                .Where(n => (WholeSegment().IsMatch(n) || n.StartsWith("base_", StringComparison.Ordinal)) && File.Exists(Path.Combine(dir, n + ".sha256"))).ToList()
            : [];
        try
        {
            // Complete copies only: the sidecar is written last (of the encrypted object when Backup:S3:Encrypt is on); an
            // object without it is not an artifact yet (its verification may still fail, or be cut off by a stop, and remove it).
            var keys = await RawKeysAsync(bed, $"{Shared}/pitr/");
            return local.All(n => keys.Contains($"{Shared}/pitr/{n}.enc.gpg.sha256") || (keys.Contains($"{Shared}/pitr/{n}") && keys.Contains($"{Shared}/pitr/{n}.sha256")));
        }
        catch (Amazon.S3.AmazonS3Exception)
        {
            // s3rver answers a listing that races an upload it is writing with "internal error": ask again at the next poll.
            return false;
        }
    }

    /// <summary>Every key under <paramref name="prefix"/>, sidecars included.</summary>
    private static async Task<HashSet<string>> RawKeysAsync(ClusterBed bed, string prefix)
    {
        using var client = bed.S3.CreateClient();
        var keys = new HashSet<string>(StringComparer.Ordinal);
        string? token = null;
        do
        {
            var page = await client.ListObjectsV2Async(new Amazon.S3.Model.ListObjectsV2Request { BucketName = bed.Bucket, Prefix = prefix, ContinuationToken = token });
            keys.UnionWith((page.S3Objects ?? []).Select(o => o.Key));
            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token is not null);
        return keys;
    }

    /// <summary>Starts the kept scratch copy as the server's user on the port the restore printed, reads the order ids, stops it.</summary>
    private static async Task<IReadOnlyList<long>> IdsInScratchAsync(ClusterBed bed, string directory, string restoreOutput)
    {
        var port = int.Parse(PortRegex().Match(restoreOutput).Groups["port"].Value, CultureInfo.InvariantCulture);
        var pgCtl = bed.Pg.Tool("pg_ctl");
        var log = Path.Combine(Path.GetDirectoryName(bed.Pg.LogFile)!, Path.GetFileName(directory) + "-inspect.log");
        var start = await bed.Pg.RunAsOsUserAsync(pgCtl, "-D", directory, "-l", log, "-w", "start");
        start.ExitCode.Should().Be(0, start.StdErr + (File.Exists(log) ? await File.ReadAllTextAsync(log) : ""));
        try
        {
            var writer = new OrdersWriter(new NpgsqlConnectionStringBuilder(bed.Pg.ConnectionString(ClusterBed.DatabaseName)) { Port = port }.ConnectionString);
            return await writer.IdsAsync();
        }
        finally
        {
            await bed.Pg.RunAsOsUserAsync(pgCtl, "-D", directory, "-m", "fast", "-w", "stop");
        }
    }

    [GeneratedRegex("^[0-9A-F]{24}$")]
    private static partial Regex WholeSegment();

    [GeneratedRegex(@"listens on 127\.0\.0\.1:(?<port>\d+)")]
    private static partial Regex PortRegex();
}
