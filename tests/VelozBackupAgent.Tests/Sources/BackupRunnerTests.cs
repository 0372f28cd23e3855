using Microsoft.Extensions.Time.Testing;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Local;

namespace VelozBackupAgent.Tests.Sources;

public sealed class BackupRunnerTests : IDisposable
{
    private readonly string _state = Directory.CreateTempSubdirectory("veloz-runner-").FullName;
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 23, 10, 0, 0, TimeSpan.Zero));

    public void Dispose() => Directory.Delete(_state, recursive: true);

    [Fact]
    public async Task A_failing_kind_is_a_failed_result_and_the_other_kinds_still_run()
    {
        var good = new ScriptedSource("config", _ => Task.FromResult(new BackupOutput([new ArtifactInfo("config", "config_20261123_100000.tar.gz", 10, new string('a', 64))])));
        var bad = new ScriptedSource("database", _ => throw new BackupSourceException("pg_dump not found: /nope/pg_dump"));
        var runner = new BackupRunner([good, bad], _state, _clock);

        var failed = await runner.RunAsync("database", BackupTrigger.Scheduled);
        var succeeded = await runner.RunAsync("config", BackupTrigger.Scheduled);

        failed.Outcome.Should().Be(BackupOutcome.Failed);
        failed.Detail.Should().Be("pg_dump not found: /nope/pg_dump");
        succeeded.Outcome.Should().Be(BackupOutcome.Succeeded);
        succeeded.Bytes.Should().Be(10);
        runner.LastResult("database")!.Outcome.Should().Be(BackupOutcome.Failed);
    }

    [Fact]
    public async Task Unexpected_exceptions_are_caught_too_and_nothing_written_is_unchanged()
    {
        var runner = new BackupRunner([
            new ScriptedSource("wal", _ => throw new InvalidOperationException("boom")),
            new ScriptedSource("config", _ => Task.FromResult(BackupOutput.Nothing("no change"))),
        ], _state, _clock);

        (await runner.RunAsync("wal", BackupTrigger.Change)).Should().Match<BackupRunResult>(r => r.Outcome == BackupOutcome.Failed && r.Detail!.Contains("boom"));
        (await runner.RunAsync("config", BackupTrigger.Change)).Outcome.Should().Be(BackupOutcome.Unchanged);
    }

    [Fact]
    public async Task A_second_run_of_the_same_kind_while_one_is_running_is_busy_not_queued()
    {
        var release = new TaskCompletionSource();
        var started = new TaskCompletionSource();
        var source = new ScriptedSource("database", async _ =>
        {
            started.SetResult();
            await release.Task;
            return BackupOutput.Nothing();
        });
        var runner = new BackupRunner([source], _state, _clock);

        var first = runner.RunAsync("database", BackupTrigger.Scheduled);
        await started.Task;
        var second = await runner.RunAsync("database", BackupTrigger.Manual);
        release.SetResult();

        second.Outcome.Should().Be(BackupOutcome.Busy);
        (await first).Outcome.Should().Be(BackupOutcome.Unchanged);
        source.Runs.Should().Be(1);
    }

    [Fact]
    public async Task A_lock_held_by_another_holder_makes_the_run_busy_and_names_the_holder()
    {
        var runner = new BackupRunner([new ScriptedSource("config", _ => Task.FromResult(BackupOutput.Nothing()))], _state, _clock);
        using (var held = KindLock.TryAcquire(_state, "config", out _))
        {
            held.Should().NotBeNull();
            var busy = await runner.RunAsync("config", BackupTrigger.Manual);
            busy.Outcome.Should().Be(BackupOutcome.Busy);
            busy.Detail.Should().Contain($"pid {Environment.ProcessId}");
        }

        (await runner.RunAsync("config", BackupTrigger.Manual)).Outcome.Should().Be(BackupOutcome.Unchanged);
    }

    [Fact]
    public async Task A_backup_in_progress_is_visible_through_the_lock_file_and_gone_when_it_ends()
    {
        var started = new TaskCompletionSource();
        var release = new TaskCompletionSource();
        var runner = new BackupRunner([new ScriptedSource("database", async _ =>
        {
            started.SetResult();
            await release.Task;
            return BackupOutput.Nothing();
        })], _state, _clock);

        KindLock.BackupRunningSince(_state, "database").Should().BeNull();
        var run = runner.RunAsync("database", BackupTrigger.Scheduled);
        await started.Task;
        // Millisecond precision in the file.
        KindLock.BackupRunningSince(_state, "database").Should().Be(DateTimeOffset.FromUnixTimeMilliseconds(_clock.GetUtcNow().ToUnixTimeMilliseconds()));
        if (!OperatingSystem.IsWindows())
        {
            File.GetUnixFileMode(Path.Combine(_state, "locks", "database.lock.pid")).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        release.SetResult();
        await run;
        KindLock.BackupRunningSince(_state, "database").Should().BeNull();
        File.Exists(Path.Combine(_state, "locks", "database.lock.pid")).Should().BeFalse("the holder removes its pid file before it lets go");
    }

    [Fact]
    public void A_lock_taken_for_something_else_or_left_by_a_dead_or_newer_process_is_no_backup_in_progress()
    {
        using (KindLock.TryAcquire(_state, "wal", out _))
        {
            KindLock.BackupRunningSince(_state, "wal").Should().BeNull("a restore or the pruner holds it, not a backup");
        }

        var pidFile = Path.Combine(_state, "locks", "wal.lock.pid");
        // Process start times are real time, so this test reads the real clock.
        var realNow = TimeProvider.System.GetUtcNow();
        var when = realNow.AddMinutes(-1).ToUnixTimeMilliseconds();
        File.WriteAllText(pidFile, $"{int.MaxValue}\nbackup {when}\n");
        KindLock.BackupRunningSince(_state, "wal").Should().BeNull("the holder is dead");
        using var young = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("sleep", "30") { UseShellExecute = false })!;
        try
        {
            File.WriteAllText(pidFile, $"{young.Id}\nbackup {realNow.AddMinutes(-10).ToUnixTimeMilliseconds()}\n");
            KindLock.BackupRunningSince(_state, "wal").Should().BeNull("the pid was reused by a process younger than the run");
            File.WriteAllText(pidFile, $"{young.Id}\nbackup {TimeProvider.System.GetUtcNow().AddSeconds(5).ToUnixTimeMilliseconds()}\n");
            KindLock.BackupRunningSince(_state, "wal").Should().NotBeNull("a live holder that started before the run");
            File.WriteAllText(pidFile, "junk\nbackup x\n");
            KindLock.BackupRunningSince(_state, "wal").Should().BeNull();
        }
        finally
        {
            young.Kill();
        }
    }

    [Fact]
    public async Task Cancellation_is_a_failed_run_that_says_so()
    {
        using var cts = new CancellationTokenSource();
        var runner = new BackupRunner([new ScriptedSource("database", async ct =>
        {
            await cts.CancelAsync();
            ct.ThrowIfCancellationRequested();
            return BackupOutput.Nothing();
        })], _state, _clock);

        var result = await runner.RunAsync("database", BackupTrigger.Scheduled, cts.Token);
        result.Outcome.Should().Be(BackupOutcome.Failed);
        result.Detail.Should().StartWith("cancelled");
    }

    [Fact]
    public async Task Duration_comes_from_the_injected_clock()
    {
        var runner = new BackupRunner([new ScriptedSource("config", _ =>
        {
            _clock.Advance(TimeSpan.FromSeconds(42));
            return Task.FromResult(BackupOutput.Nothing());
        })], _state, _clock);

        var result = await runner.RunAsync("config", BackupTrigger.Manual);
        result.StartedAt.Should().Be(new DateTimeOffset(2026, 11, 23, 10, 0, 0, TimeSpan.Zero));
        result.Duration.Should().Be(TimeSpan.FromSeconds(42));
    }

    [Fact]
    public async Task Names_in_the_same_second_get_a_sequence_suffix()
    {
        var root = Path.Combine(_state, "store");
        Directory.CreateDirectory(root);
        var store = new LocalArtifactStore(root);
        var now = _clock.GetUtcNow();

        var first = await ArtifactNameAllocator.AllocateAsync(store, "config", "config", ".tar.gz", now);
        using (var content = new MemoryStream([1]))
        {
            await store.WriteAsync("config", first, content);
        }

        var second = await ArtifactNameAllocator.AllocateAsync(store, "config", "config", ".tar.gz", now);
        first.Should().Be("config_20261123_100000.tar.gz");
        second.Should().Be("config_20261123_100000-2.tar.gz");
    }

    private sealed class ScriptedSource(string kind, Func<CancellationToken, Task<BackupOutput>> run) : IBackupSource
    {
        private int _runs;

        public string Kind => kind;

        public int Runs => _runs;

        public Task<BackupOutput> RunAsync(BackupTrigger trigger, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _runs);
            return run(cancellationToken);
        }
    }
}
