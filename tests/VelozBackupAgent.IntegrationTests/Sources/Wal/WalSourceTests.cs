using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Sources;
using ChildProcess = VelozBackupAgent.IntegrationTests.Infrastructure.ChildProcess;
using VelozBackupAgent.Sources.Wal;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.IntegrationTests.Sources.Wal;

/// <summary>Scheduled and change-triggered runs of the WAL source on a real directory and a real local store.</summary>
public sealed class WalSourceTests : IDisposable
{
    private readonly WalTestBed _bed = new();

    public void Dispose() => _bed.Dispose();

    [Fact]
    public async Task A_first_sync_stores_every_segment_a_snapshot_of_the_active_file_and_a_manifest()
    {
        var one = _bed.WriteSegment(1, 5000);
        var two = _bed.WriteSegment(2, 7000);
        var three = _bed.WriteSegment(3, 1);
        File.WriteAllText(_bed.ActivePath, "order 4 new\norder 4 filled\n");

        var result = await _bed.SyncAsync();

        result.Outcome.Should().Be(BackupOutcome.Succeeded, result.Detail);
        result.Detail.Should().Contain("3 new segments");
        _bed.Stored(WalTestBed.Segment(1)).Should().Equal(one);
        _bed.Stored(WalTestBed.Segment(2)).Should().Equal(two);
        _bed.Stored(WalTestBed.Segment(3)).Should().Equal(three);
        _bed.Snapshots().Should().ContainSingle().Which.Should().MatchRegex(@"^orders_current_\d{8}_\d{6}\.wal$");
        _bed.Stored(_bed.Snapshots()[0]).Should().Equal(File.ReadAllBytes(_bed.ActivePath));

        var manifest = await _bed.ManifestAsync(_bed.Manifests().Single());
        manifest.Node.Should().Be("veloz-test");
        manifest.Directory.Should().Be(_bed.WalDir);
        manifest.Trigger.Should().Be("Scheduled");
        manifest.Segments.Should().Equal(
            new WalManifestSegment(WalTestBed.Segment(1), 5000, WalTestBed.Sha(one)),
            new WalManifestSegment(WalTestBed.Segment(2), 7000, WalTestBed.Sha(two)),
            new WalManifestSegment(WalTestBed.Segment(3), 1, WalTestBed.Sha(three)));
        manifest.Active.Should().Be(new WalManifestActive("orders_current.wal", _bed.Snapshots()[0], 27, WalTestBed.Sha(File.ReadAllBytes(_bed.ActivePath))));
        manifest.Pending.Should().BeEmpty();
        manifest.Conflicts.Should().BeEmpty();
        manifest.Unreadable.Should().BeEmpty();

        // Every artifact is checked by sha256sum by hand, as the break-glass steps do.
        var check = await ChildProcess.RunAsync("bash", ["-c", "sha256sum -c --strict *.sha256"], workingDirectory: _bed.StoreDir);
        check.ExitCode.Should().Be(0, check.StdOut + check.StdErr);
        check.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Should().HaveCount(5).And.OnlyContain(l => l.EndsWith(": OK", StringComparison.Ordinal));

        File.GetUnixFileMode(_bed.IndexPath).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    [Fact]
    public async Task A_sync_with_nothing_new_reads_nothing_and_only_writes_its_manifest()
    {
        for (var i = 1; i <= 50; i++)
        {
            _bed.WriteSegment(i, 10_000);
        }

        File.WriteAllText(_bed.ActivePath, "order 51\n");
        _bed.Age(_bed.ActivePath, TimeSpan.FromMinutes(1));
        (await _bed.SyncAsync()).Outcome.Should().Be(BackupOutcome.Succeeded);
        var before = _bed.Source.Status;
        before.SourceBytesRead.Should().Be(50 * 10_000 + 9);

        var again = await _bed.SyncAsync();
        var change = await _bed.SyncAsync(BackupTrigger.Change);

        again.Outcome.Should().Be(BackupOutcome.Succeeded);
        again.Artifacts.Should().ContainSingle().Which.Name.Should().StartWith("wal-manifest_");
        change.Outcome.Should().Be(BackupOutcome.Unchanged, change.Detail);
        change.Detail.Should().Be("nothing new");
        var after = _bed.Source.Status;
        after.SourceBytesRead.Should().Be(before.SourceBytesRead, "unchanged segments and an unchanged active file are never re-read");
        after.SourceFilesOpened.Should().Be(before.SourceFilesOpened);
        (await _bed.ManifestAsync(_bed.Manifests()[^1])).Segments.Should().HaveCount(50);
    }

    [Fact]
    public async Task A_segment_deleted_from_the_source_stays_in_the_store_and_in_the_earlier_manifest()
    {
        var contents = Enumerable.Range(1, 3).Select(i => _bed.WriteSegment(i, 3000)).ToList();
        File.WriteAllText(_bed.ActivePath, "order 4\n");
        await _bed.SyncAsync();
        var before = _bed.Manifests().Single();

        File.Delete(Path.Combine(_bed.WalDir, WalTestBed.Segment(2)));
        var result = await _bed.SyncAsync();

        result.Outcome.Should().Be(BackupOutcome.Succeeded);
        var after = _bed.Manifests().Single(m => m != before);
        (await _bed.ManifestAsync(before)).Segments.Select(s => s.Name).Should().Equal(WalTestBed.Segment(1), WalTestBed.Segment(2), WalTestBed.Segment(3));
        (await _bed.ManifestAsync(after)).Segments.Select(s => s.Name).Should().Equal(WalTestBed.Segment(1), WalTestBed.Segment(3));
        _bed.Stored(WalTestBed.Segment(2)).Should().Equal(contents[1], "a deletion in the source is never copied into the backup");
        _bed.StoredSha(WalTestBed.Segment(2)).Should().Be(WalTestBed.Sha(contents[1]));

        // Break-glass: the directory as it was at the earlier sync, with jq, cp and sha256sum only.
        var restored = Path.Combine(_bed.Scratch, "restored");
        Directory.CreateDirectory(restored);
        var script = """
            set -euo pipefail
            M="$BACKUP/wal/$MANIFEST"
            jq -r '.segments[] | "\(.sha256)  \(.name)"' "$M" > "$RESTORE/SHA256SUMS"
            jq -r '.segments[].name' "$M" | while read -r n; do cp "$BACKUP/wal/$n" "$RESTORE/$n"; done
            A=$(jq -r '.active.artifact // empty' "$M")
            if [ -n "$A" ]; then
              cp "$BACKUP/wal/$A" "$RESTORE/$(jq -r '.active.file' "$M")"
              echo "$(jq -r '.active.sha256' "$M")  $(jq -r '.active.file' "$M")" >> "$RESTORE/SHA256SUMS"
            fi
            cd "$RESTORE" && sha256sum -c --strict SHA256SUMS && rm SHA256SUMS
            """;
        var run = await ChildProcess.RunAsync("bash", ["-c", script], new Dictionary<string, string?>
        {
            ["BACKUP"] = _bed.Options.LocalRoot, ["MANIFEST"] = before, ["RESTORE"] = restored,
        });
        run.ExitCode.Should().Be(0, run.StdErr);
        Directory.GetFiles(restored).Select(Path.GetFileName).Order(StringComparer.Ordinal).Should()
            .Equal(WalTestBed.Segment(1), WalTestBed.Segment(2), WalTestBed.Segment(3), "orders_current.wal");
        File.ReadAllBytes(Path.Combine(restored, WalTestBed.Segment(2))).Should().Equal(contents[1]);
        File.ReadAllText(Path.Combine(restored, "orders_current.wal")).Should().Be("order 4\n");
    }

    [Fact]
    public async Task The_sed_fallback_of_the_break_glass_steps_makes_the_same_checksum_list_as_jq()
    {
        for (var i = 1; i <= 4; i++)
        {
            _bed.WriteSegment(i, 100 * i);
        }

        await _bed.SyncAsync();
        var manifest = Path.Combine(_bed.StoreDir, _bed.Manifests().Single());
        var jq = await ChildProcess.RunAsync("jq", ["-r", """.segments[] | "\(.sha256)  \(.name)" """, manifest]);
        var sed = await ChildProcess.RunAsync("sed", ["-n", """s/.*"name":"\([^"]*\)","size":[0-9]*,"sha256":"\([0-9a-f]*\)".*/\2  \1/p""", manifest]);
        jq.ExitCode.Should().Be(0, jq.StdErr);
        sed.StdOut.Should().Be(jq.StdOut);
        sed.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Should().HaveCount(4);
    }

    [Fact]
    public async Task A_stored_segment_changed_in_the_source_is_an_alarm_the_stored_copy_is_kept_and_others_still_ship()
    {
        var original = _bed.WriteSegment(1, 4096);
        _bed.WriteSegment(2, 4096);
        await _bed.SyncAsync();

        // Same size, one byte different, a new mtime: only reading it can tell.
        var tampered = (byte[])original.Clone();
        tampered[100] ^= 0xff;
        _bed.WriteSegment(1, content: tampered, age: TimeSpan.FromSeconds(30));
        var three = _bed.WriteSegment(3, 2048);

        var result = await _bed.SyncAsync();

        result.Outcome.Should().Be(BackupOutcome.Succeeded, result.Detail);
        result.Detail.Should().Contain($"ALARM: 1 stored segment changed in the source, stored copies kept: {WalTestBed.Segment(1)}");
        _bed.Stored(WalTestBed.Segment(1)).Should().Equal(original);
        _bed.StoredSha(WalTestBed.Segment(1)).Should().Be(WalTestBed.Sha(original));
        _bed.Stored(WalTestBed.Segment(3)).Should().Equal(three);
        var manifest = await _bed.ManifestAsync(_bed.Manifests()[^1]);
        manifest.Conflicts.Should().Equal(new WalManifestConflict(WalTestBed.Segment(1), 4096, WalTestBed.Sha(original), 4096, WalTestBed.Sha(tampered)));
        manifest.Segments.Select(s => s.Name).Should().Equal(WalTestBed.Segment(2), WalTestBed.Segment(3));
        _bed.Source.Status.ConflictsDetected.Should().Be(1);
        _bed.Source.Status.Conflicts.Should().Equal(WalTestBed.Segment(1));
        _bed.Logs.WithEvent(LogEvents.Wal.Conflict).Should().ContainSingle().Which.Level.Should().Be(LogLevel.Error);

        // Still an alarm at the next sync, without counting it again or re-reading the file.
        var read = _bed.Source.Status.SourceBytesRead;
        var next = await _bed.SyncAsync();
        next.Detail.Should().Contain("ALARM");
        _bed.Source.Status.ConflictsDetected.Should().Be(1);
        _bed.Source.Status.SourceBytesRead.Should().Be(read);
        _bed.Logs.WithEvent(LogEvents.Wal.Conflict).Should().HaveCount(1);

        // Put back as it was: the conflict is over.
        _bed.WriteSegment(1, content: original, age: TimeSpan.FromSeconds(20));
        var healed = await _bed.SyncAsync();
        healed.Detail.Should().NotContain("ALARM");
        _bed.Source.Status.Conflicts.Should().BeEmpty();
        _bed.Logs.WithEvent(4402).Should().ContainSingle();
        (await _bed.ManifestAsync(_bed.Manifests()[^1])).Segments.Select(s => s.Name).Should().Contain(WalTestBed.Segment(1));
    }

    [Fact]
    public async Task A_stored_segment_that_grew_in_the_source_is_an_alarm_found_without_reading_it()
    {
        var original = _bed.WriteSegment(1, 4096);
        await _bed.SyncAsync();
        var read = _bed.Source.Status.SourceBytesRead;
        File.AppendAllText(Path.Combine(_bed.WalDir, WalTestBed.Segment(1)), "appended after sealing");
        _bed.Age(Path.Combine(_bed.WalDir, WalTestBed.Segment(1)), TimeSpan.FromSeconds(10));

        var result = await _bed.SyncAsync(BackupTrigger.Change);

        result.Detail.Should().Contain("ALARM");
        _bed.Source.Status.SourceBytesRead.Should().Be(read, "the sizes already differ");
        _bed.Stored(WalTestBed.Segment(1)).Should().Equal(original);
        (await _bed.SyncAsync()).Outcome.Should().Be(BackupOutcome.Succeeded);
        (await _bed.ManifestAsync(_bed.Manifests()[^1])).Conflicts.Should().ContainSingle()
            .Which.Should().Be(new WalManifestConflict(WalTestBed.Segment(1), 4096, WalTestBed.Sha(original), 4096 + 22, null));
    }

    [Fact]
    public async Task A_touched_segment_is_read_once_to_tell_a_touch_from_a_change_and_is_no_alarm()
    {
        _bed.WriteSegment(1, 4096);
        await _bed.SyncAsync();
        var read = _bed.Source.Status.SourceBytesRead;
        _bed.Age(Path.Combine(_bed.WalDir, WalTestBed.Segment(1)), TimeSpan.FromSeconds(5));

        var result = await _bed.SyncAsync();

        result.Detail.Should().NotContain("ALARM");
        _bed.Source.Status.SourceBytesRead.Should().Be(read + 4096);
        await _bed.SyncAsync();
        _bed.Source.Status.SourceBytesRead.Should().Be(read + 4096, "the new mtime is remembered");
    }

    [Theory]
    [InlineData("deleted")]
    [InlineData("corrupt")]
    [InlineData("restart-without-index")]
    public async Task A_lost_or_corrupt_index_is_rebuilt_from_the_sidecars_without_re_reading_stored_or_source_data(string how)
    {
        for (var i = 1; i <= 20; i++)
        {
            _bed.WriteSegment(i, 8192);
        }

        await _bed.SyncAsync();
        var storedFiles = Directory.GetFiles(_bed.StoreDir).Where(f => f.EndsWith(".wal", StringComparison.Ordinal)).ToList();
        var atimeProof = AccessTimesAreRecorded(_bed.StoreDir);
        foreach (var f in storedFiles)
        {
            File.SetLastAccessTimeUtc(f, new DateTime(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        }

        switch (how)
        {
            case "deleted":
                File.Delete(_bed.IndexPath);
                break;
            case "corrupt":
                File.WriteAllText(_bed.IndexPath, "{\"version\":1,\"directory\":");
                break;
            default:
                File.Delete(_bed.IndexPath);
                _bed.Restart();
                break;
        }

        var read = _bed.Source.Status.SourceBytesRead;
        var opened = _bed.Source.Status.SourceFilesOpened;
        var result = await _bed.SyncAsync();

        result.Outcome.Should().Be(BackupOutcome.Succeeded, result.Detail);
        result.Artifacts.Should().ContainSingle().Which.Name.Should().StartWith("wal-manifest_");
        (await _bed.ManifestAsync(_bed.Manifests()[^1])).Segments.Should().HaveCount(20);
        _bed.Source.Status.SourceBytesRead.Should().Be(read, "the stored sidecars say what the segments hold");
        _bed.Source.Status.SourceFilesOpened.Should().Be(opened);
        if (atimeProof)
        {
            storedFiles.Should().OnlyContain(f => File.GetLastAccessTimeUtc(f).Year == 2001, "stored data is never re-read to rebuild the index");
        }

        if (how == "corrupt")
        {
            _bed.Logs.WithEvent(4405).Should().ContainSingle().Which.Message.Should().Contain("not valid JSON");
        }

        using var rebuilt = JsonDocument.Parse(File.ReadAllText(_bed.IndexPath));
        rebuilt.RootElement.GetProperty("segments").EnumerateObject().Should().HaveCount(20);
    }

    [Fact]
    public async Task A_restart_after_an_unsaved_index_update_neither_re_reads_segments_nor_snapshots_the_same_bytes_again()
    {
        _bed.WriteSegment(1, 4096);
        File.WriteAllText(_bed.ActivePath, "order 1\n");
        await _bed.SyncAsync();

        // A change-triggered run right after a sync defers writing the index; the agent then dies.
        _bed.WriteSegment(2, 4096);
        File.AppendAllText(_bed.ActivePath, "order 2\n");
        _bed.Age(_bed.ActivePath, TimeSpan.FromSeconds(10));
        var change = await _bed.SyncAsync(BackupTrigger.Change);
        change.Artifacts.Should().HaveCount(2);
        _bed.Restart();

        var result = await _bed.SyncAsync();

        result.Artifacts.Should().ContainSingle().Which.Name.Should().StartWith("wal-manifest_");
        _bed.Snapshots().Should().HaveCount(2);
        _bed.Source.Status.SourceBytesRead.Should().Be(16, "only the active file is compared with its newest snapshot, no segment is read");
    }

    [Fact]
    public async Task A_stored_copy_removed_from_the_store_by_hand_is_stored_again_by_the_scheduled_sync()
    {
        var one = _bed.WriteSegment(1, 4096);
        await _bed.SyncAsync();
        File.Delete(Path.Combine(_bed.StoreDir, WalTestBed.Segment(1) + ".sha256"));
        File.Delete(Path.Combine(_bed.StoreDir, WalTestBed.Segment(1)));

        var result = await _bed.SyncAsync();

        result.Detail.Should().Contain("1 new segment");
        _bed.Stored(WalTestBed.Segment(1)).Should().Equal(one);
        _bed.Logs.WithEvent(4410).Should().ContainSingle();
    }

    [Fact]
    public async Task A_missing_directory_fails_the_run_with_one_clear_line()
    {
        Directory.Delete(_bed.WalDir);

        var result = await _bed.SyncAsync();

        result.Outcome.Should().Be(BackupOutcome.Failed);
        result.Detail.Should().Be($"Backup:Wal:Directory does not exist: {_bed.WalDir}");
        _bed.StoredNames().Should().BeEmpty();
        (await _bed.SyncAsync(BackupTrigger.Change)).Detail.Should().Be($"Backup:Wal:Directory does not exist: {_bed.WalDir}");
    }

    [Fact]
    public async Task An_unreadable_segment_is_named_and_the_others_still_ship()
    {
        var one = _bed.WriteSegment(1, 1000);
        var three = _bed.WriteSegment(3, 3000);

        // A segment whose link points nowhere cannot be read, whoever runs the test (root reads any mode).
        var broken = Path.Combine(_bed.WalDir, WalTestBed.Segment(2));
        File.CreateSymbolicLink(broken, Path.Combine(_bed.Options.LocalRoot, "lost-disk", "orders.wal"));
        string? denied = null;
        if (Environment.UserName != "root")
        {
            _bed.WriteSegment(4, 10);
            denied = Path.Combine(_bed.WalDir, WalTestBed.Segment(4));
            File.SetUnixFileMode(denied, UnixFileMode.None);
        }

        var result = await _bed.SyncAsync();

        result.Outcome.Should().Be(BackupOutcome.Failed);
        result.Detail.Should().StartWith($"Backup:Wal:Directory: {(denied is null ? "1 WAL segment cannot be read and is" : "2 WAL segments cannot be read and are")} not backed up: {broken} (");
        result.Detail.Should().MatchRegex("everything else was stored \\(manifest wal-manifest_\\d{8}_\\d{6}\\.json\\)$");
        result.Detail.Should().NotContain("\n");
        _bed.Stored(WalTestBed.Segment(1)).Should().Equal(one);
        _bed.Stored(WalTestBed.Segment(3)).Should().Equal(three);
        var manifest = await _bed.ManifestAsync(_bed.Manifests().Single());
        manifest.Unreadable.Select(u => u.Name).Should().Contain(WalTestBed.Segment(2));
        manifest.Segments.Select(s => s.Name).Should().Equal(WalTestBed.Segment(1), WalTestBed.Segment(3));
        _bed.Source.Status.Unreadable.Should().Contain(WalTestBed.Segment(2));
        _bed.Logs.WithEvent(4403).Should().HaveCount(denied is null ? 1 : 2).And.OnlyContain(l => l.Level == LogLevel.Error);

        // The watcher's runs report it without failing, and nothing is logged again while it stays so.
        var change = await _bed.SyncAsync(BackupTrigger.Change);
        change.Outcome.Should().Be(BackupOutcome.Unchanged);
        change.Detail.Should().Contain("unreadable, not backed up: " + WalTestBed.Segment(2));
        _bed.Logs.WithEvent(4403).Should().HaveCount(denied is null ? 1 : 2);

        // Repaired: the next sync stores it and succeeds.
        File.Delete(broken);
        var two = _bed.WriteSegment(2, 2000);
        if (denied is not null)
        {
            File.SetUnixFileMode(denied, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        var repaired = await _bed.SyncAsync();
        repaired.Outcome.Should().Be(BackupOutcome.Succeeded, repaired.Detail);
        _bed.Stored(WalTestBed.Segment(2)).Should().Equal(two);
        _bed.Source.Status.Unreadable.Should().BeEmpty();
    }

    [Fact]
    public async Task A_segment_still_being_written_is_not_stored_until_it_has_settled()
    {
        var path = Path.Combine(_bed.WalDir, WalTestBed.Segment(1));
        File.WriteAllBytes(path, RandomNumberGenerator.GetBytes(1000));

        var early = await _bed.SyncAsync(BackupTrigger.Change);

        early.Outcome.Should().Be(BackupOutcome.Unchanged);
        early.Detail.Should().Be($"1 segment still being written: {WalTestBed.Segment(1)}");
        _bed.StoredNames().Should().BeEmpty();
        _bed.Source.Status.Settling.Should().Equal(WalTestBed.Segment(1));

        // The writer finishes, then nothing touches the file for the settle time.
        File.AppendAllText(path, "last record");
        _bed.Age(path, TimeSpan.FromSeconds(3));
        var settled = await _bed.SyncAsync(BackupTrigger.Change);

        settled.Outcome.Should().Be(BackupOutcome.Succeeded);
        _bed.Stored(WalTestBed.Segment(1)).Should().Equal(File.ReadAllBytes(path));
    }

    [Fact]
    public async Task A_scheduled_sync_waits_once_for_a_segment_that_just_appeared_so_its_manifest_lists_it()
    {
        var content = _bed.WriteSegment(1, 1000, age: TimeSpan.Zero);

        var result = await _bed.SyncAsync();

        result.Outcome.Should().Be(BackupOutcome.Succeeded, result.Detail);
        _bed.Stored(WalTestBed.Segment(1)).Should().Equal(content);
        (await _bed.ManifestAsync(_bed.Manifests().Single())).Segments.Should().ContainSingle();
        result.Duration.Should().BeGreaterThan(TimeSpan.FromSeconds(1.5), "it waited for the segment to settle");
    }

    [Fact]
    public async Task The_active_file_is_snapshotted_only_when_it_changed()
    {
        File.WriteAllText(_bed.ActivePath, "order 1\n");
        await _bed.SyncAsync();
        await _bed.SyncAsync();
        _bed.Snapshots().Should().HaveCount(1);

        File.AppendAllText(_bed.ActivePath, "order 2\n");
        var grown = await _bed.SyncAsync();
        grown.Detail.Should().MatchRegex(@"orders_current\.wal snapshot orders_current_\d{8}_\d{6}(-2)?\.wal \(16 bytes\)");
        _bed.Snapshots().Should().HaveCount(2);

        // Touched without a change: compared, not stored again.
        _bed.Age(_bed.ActivePath, TimeSpan.FromSeconds(1));
        await _bed.SyncAsync();
        _bed.Snapshots().Should().HaveCount(2);
        _bed.Snapshots().Select(s => File.ReadAllText(Path.Combine(_bed.StoreDir, s))).Should().BeEquivalentTo("order 1\n", "order 1\norder 2\n");
        (await _bed.ManifestAsync(_bed.Manifests()[^1])).Active!.Size.Should().Be(16);
    }

    [Fact]
    public async Task The_manifest_records_the_mode_most_WAL_files_have_and_the_directory_mode()
    {
        for (var i = 1; i <= 3; i++)
        {
            _bed.WriteSegment(i);
            File.SetUnixFileMode(Path.Combine(_bed.WalDir, WalTestBed.Segment(i)), i == 3 ? (UnixFileMode)0x1A0 : (UnixFileMode)0x180);
        }

        File.WriteAllText(_bed.ActivePath, "order 1\n");
        File.SetUnixFileMode(_bed.ActivePath, (UnixFileMode)0x180);
        File.SetUnixFileMode(_bed.WalDir, (UnixFileMode)0x1E8);

        (await _bed.SyncAsync()).Outcome.Should().Be(BackupOutcome.Succeeded);

        var manifest = await _bed.ManifestAsync(_bed.Manifests()[^1]);
        manifest.FileMode.Should().Be("0600", "three of the four files are 0600");
        manifest.DirectoryMode.Should().Be("0750");
    }

    [Fact]
    public async Task A_truncated_or_rotated_active_file_gets_a_fresh_snapshot_and_earlier_ones_are_kept()
    {
        File.WriteAllText(_bed.ActivePath, "order 1\norder 2\norder 3\n");
        await _bed.SyncAsync();

        // Rotated: sealed into a segment, a new active file started.
        File.Move(_bed.ActivePath, Path.Combine(_bed.WalDir, WalTestBed.Segment(1)));
        _bed.Age(Path.Combine(_bed.WalDir, WalTestBed.Segment(1)), TimeSpan.FromSeconds(10));
        File.WriteAllText(_bed.ActivePath, "order 4\n");
        var result = await _bed.SyncAsync();

        result.Outcome.Should().Be(BackupOutcome.Succeeded);
        _bed.Snapshots().Should().HaveCount(2);
        _bed.Stored(WalTestBed.Segment(1)).Should().Equal("order 1\norder 2\norder 3\n"u8.ToArray());
        var manifest = await _bed.ManifestAsync(_bed.Manifests()[^1]);
        File.ReadAllText(Path.Combine(_bed.StoreDir, manifest.Active!.Artifact)).Should().Be("order 4\n");
        _bed.Snapshots().Select(s => File.ReadAllText(Path.Combine(_bed.StoreDir, s))).Should().Contain("order 1\norder 2\norder 3\n");

        // A rotation is routine: logged at Debug, not as a warning.
        _bed.Logs.WithEvent(4407).Should().BeEmpty();
        var rotated = _bed.Logs.WithEvent(4414).Should().ContainSingle().Subject;
        rotated.Level.Should().Be(LogLevel.Debug);
        rotated.Message.Should().Contain("24 bytes at the last snapshot, 8 now");

        // Truncated in place, no segment sealed: that is worth a warning, and the new content is snapshotted.
        File.WriteAllText(_bed.ActivePath, "o5\n");
        await _bed.SyncAsync();
        var shrank = _bed.Logs.WithEvent(4407).Should().ContainSingle().Subject;
        shrank.Level.Should().Be(LogLevel.Warning);
        shrank.Message.Should().Contain("shrank from 8 to 3 bytes with no new segment sealed");
        _bed.Snapshots().Select(s => File.ReadAllText(Path.Combine(_bed.StoreDir, s))).Should().Contain("o5\n");

        // No active file at all (VeloZ stopped): the manifest says so.
        File.Delete(_bed.ActivePath);
        await _bed.SyncAsync();
        (await _bed.ManifestAsync(_bed.Manifests()[^1])).Active.Should().BeNull();
    }

    [Fact]
    public async Task Snapshots_of_an_active_file_growing_meanwhile_are_exact_prefixes_of_it()
    {
        // A real writer appending without pause while scheduled syncs snapshot the file.
        var stop = Path.Combine(_bed.Scratch, "stop");
        using var writer = ChildProcess.Start("bash", ["-c", """
            i=0
            while [ ! -e "$STOP" ]; do
              i=$((i+1))
              printf 'order %08d side=BUY qty=%d px=%d.%02d\n' "$i" $((i % 97)) $((i % 1000)) $((i % 100)) >> "$ACTIVE"
              if [ $((i % 50)) -eq 0 ]; then head -c 8192 /dev/urandom >> "$ACTIVE"; fi
            done
            """], new Dictionary<string, string?> { ["ACTIVE"] = _bed.ActivePath, ["STOP"] = stop });
        await WaitUntilAsync(() => File.Exists(_bed.ActivePath) && new FileInfo(_bed.ActivePath).Length > 10_000);

        for (var i = 0; i < 5; i++)
        {
            (await _bed.SyncAsync()).Outcome.Should().Be(BackupOutcome.Succeeded);
        }

        await File.WriteAllTextAsync(stop, "");
        await writer.WaitForExitAsync();
        var final = File.ReadAllBytes(_bed.ActivePath);
        var snapshots = _bed.Snapshots();
        snapshots.Should().HaveCountGreaterThan(1);
        var sizes = new List<long>();
        foreach (var name in snapshots)
        {
            var snapshot = _bed.Stored(name);
            snapshot.Length.Should().BeLessThanOrEqualTo(final.Length);
            snapshot.AsSpan().SequenceEqual(final.AsSpan(0, snapshot.Length)).Should().BeTrue($"{name} must be the first {snapshot.Length} bytes of the active file");
            _bed.StoredSha(name).Should().Be(WalTestBed.Sha(snapshot));
            sizes.Add(snapshot.Length);
        }

        sizes.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
    }

    [Fact]
    public async Task Reading_a_wal_file_takes_no_lock_that_could_make_VeloZ_fail()
    {
        File.WriteAllText(_bed.ActivePath, "order 1\n");
        using var handle = WalFile.OpenRead(_bed.ActivePath, new WalReadCounter());

        // What VeloZ would do if it locks its files: flock LOCK_EX|LOCK_NB.
        var flock = await ChildProcess.RunAsync("flock", ["--exclusive", "--nonblock", _bed.ActivePath, "true"]);

        flock.ExitCode.Should().Be(0, "a backup must never block the engine (.NET's own FileStream would hold LOCK_SH here)");
    }

    private static bool AccessTimesAreRecorded(string directory)
    {
        // On a noatime mount a read leaves no trace, and the atime half of the proof has nothing to say.
        var probe = Path.Combine(directory, ".atime-probe");
        File.WriteAllText(probe, "x");
        File.SetLastAccessTimeUtc(probe, new DateTime(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        _ = File.ReadAllText(probe);
        var recorded = File.GetLastAccessTimeUtc(probe).Year != 2001;
        File.Delete(probe);
        return recorded;
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = TimeProvider.System.GetTimestamp();
        while (!condition())
        {
            TimeProvider.System.GetElapsedTime(deadline).Should().BeLessThan(TimeSpan.FromSeconds(15), "the condition should hold within 15 s");
            await Task.Delay(50);
        }
    }
}
