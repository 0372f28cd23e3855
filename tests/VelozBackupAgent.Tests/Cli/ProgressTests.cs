using Microsoft.Extensions.Time.Testing;
using VelozBackupAgent.Host.Cli;
using VelozBackupAgent.Restore;

namespace VelozBackupAgent.Tests.Cli;

/// <summary>The counting behind the terminal's progress, and that without a terminal the output is the step lines alone.</summary>
public sealed class ProgressTests
{
    private static readonly DateTimeOffset Start = new(2026, 12, 2, 20, 0, 0, TimeSpan.Zero);

    [Fact]
    public void The_rate_is_bytes_since_the_first_report_over_the_clocks_time()
    {
        var clock = new FakeTimeProvider(Start);
        var rate = new TransferRate(clock);
        rate.Observe("downloading a.dump", 1024).Should().BeNull("nothing measured yet");
        clock.Advance(TimeSpan.FromSeconds(2));
        rate.Observe("downloading a.dump", 1024 + (20L << 20)).Should().Be(10 << 20);
        clock.Advance(TimeSpan.FromSeconds(2));
        rate.Observe("downloading a.dump", 1024 + (30L << 20)).Should().Be(7.5 * (1 << 20));

        rate.Observe("verifying a.dump", 0).Should().BeNull("a new step starts its own measurement");
        clock.Advance(TimeSpan.FromSeconds(1));
        rate.Observe("verifying a.dump", 5L << 20).Should().Be(5 << 20);
    }

    [Fact]
    public void Without_a_terminal_only_the_step_lines_are_printed_as_before()
    {
        var output = new StringWriter();
        var progress = new ProgressPrinter(output, new FakeTimeProvider(Start), view: null);
        progress.Line("config: verifying local config/config_20261202_200000.tar.gz");
        progress.Report(new TransferProgress("verifying config_20261202_200000.tar.gz", 10, 100));
        progress.Report(new ObjectProgress("pg_restore a.dump", 3, 12));
        progress.Line("config: putting config_20261202_200000.tar.gz in place");

        progress.Live.Should().BeFalse();
        output.ToString().Should().Be(
            "-> config: verifying local config/config_20261202_200000.tar.gz" + Environment.NewLine +
            "-> config: putting config_20261202_200000.tar.gz in place" + Environment.NewLine);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_view_gets_steps_bytes_with_their_rate_and_objects(bool showsSteps)
    {
        var clock = new FakeTimeProvider(Start);
        var output = new StringWriter();
        var view = new RecordingView(showsSteps);
        var progress = new ProgressPrinter(output, clock, view);

        var result = await progress.RunAsync(() =>
        {
            progress.Line("database: verifying local database/a.dump");
            progress.Report(new TransferProgress("verifying a.dump", 0, 4L << 20));
            clock.Advance(TimeSpan.FromSeconds(1));
            progress.Report(new TransferProgress("verifying a.dump", 2L << 20, 4L << 20));
            progress.Report(new ObjectProgress("pg_restore a.dump", 5, 12));
            return Task.FromResult(42);
        });

        result.Should().Be(42);
        view.Ran.Should().BeTrue();
        view.Events.Should().Equal(
            "step database: verifying local database/a.dump",
            "bytes verifying a.dump 0 4194304 -",
            "bytes verifying a.dump 2097152 4194304 2097152",
            "objects pg_restore a.dump 5 12");
        output.ToString().Should().Be(showsSteps ? "" : "-> database: verifying local database/a.dump" + Environment.NewLine,
            "the step lines go to stdout unless the view on the same terminal shows them");
    }

    [Fact]
    public void The_view_texts_say_how_much_of_what_and_how_fast()
    {
        ProgressPrinter.BytesText(12L << 20, 40L << 20, 8 << 20).Should().Be("12.0 MiB of 40.0 MiB, 8.0 MiB/s");
        ProgressPrinter.BytesText(512, null, null).Should().Be("512 B");
        ProgressPrinter.ObjectsText(7, 340).Should().Be("7 of 340 objects");
    }

    private sealed class RecordingView(bool showsSteps) : IProgressView
    {
        public List<string> Events { get; } = [];

        public bool Ran { get; private set; }

        public bool ShowsSteps => showsSteps;

        public async Task<T> RunAsync<T>(Func<Task<T>> body)
        {
            Ran = true;
            return await body();
        }

        public void Step(string line) => Events.Add("step " + line);

        public void Bytes(string step, long done, long? total, double? bytesPerSecond) =>
            Events.Add(FormattableString.Invariant($"bytes {step} {done} {total} {(bytesPerSecond is { } r ? r.ToString(System.Globalization.CultureInfo.InvariantCulture) : "-")}"));

        public void Objects(string step, int done, int total) => Events.Add(FormattableString.Invariant($"objects {step} {done} {total}"));
    }
}
