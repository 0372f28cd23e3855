using System.Globalization;
using Spectre.Console;
using VelozBackupAgent.Restore;

namespace VelozBackupAgent.Host.Cli;

/// <summary>Where live progress is drawn (a terminal's stderr); the counting happens before, in <see cref="ProgressPrinter"/>.</summary>
internal interface IProgressView
{
    /// <summary>True when the view shows the step lines itself (stdout is the same terminal): then they are not printed.</summary>
    bool ShowsSteps { get; }

    /// <summary>Runs <paramref name="body"/> with the live display on; it ends (and stays on screen) when the body ends.</summary>
    Task<T> RunAsync<T>(Func<Task<T>> body);

    /// <summary>A step begins (the previous one is done).</summary>
    void Step(string line);

    /// <summary>A byte transfer: so far, in all (when known), bytes per second (once measurable).</summary>
    void Bytes(string step, long done, long? total, double? bytesPerSecond);

    /// <summary>Objects of a step (pg_restore's TOC entries) done of total.</summary>
    void Objects(string step, int done, int total);
}

/// <summary>Bytes per second of a transfer, measured from its first report with the agent's clock.</summary>
internal sealed class TransferRate(TimeProvider time)
{
    private string? _step;
    private long _started;
    private long _doneAtStart;

    /// <summary>The rate so far of <paramref name="step"/>; null at its first report (nothing measured yet).</summary>
    public double? Observe(string step, long done)
    {
        if (_step != step)
        {
            _step = step;
            _started = time.GetTimestamp();
            _doneAtStart = done;
            return null;
        }

        var seconds = time.GetElapsedTime(_started).TotalSeconds;
        return seconds <= 0 ? null : (done - _doneAtStart) / seconds;
    }
}

/// <summary>
/// Step lines (<c>-> verifying …</c>) on stdout and, when stderr is a terminal, live progress there: each step,
/// bytes and rate of downloads and checksums, pg_restore's objects. Without a terminal (a log, a pipe, a test) or
/// with <c>--json</c> there is no view, and the output is the step lines alone, as it always was.
/// </summary>
internal sealed class ProgressPrinter : IProgress<TransferProgress>, IProgress<ObjectProgress>
{
    private readonly TextWriter _output;
    private readonly IProgressView? _view;
    private readonly TransferRate _rate;
    private readonly Lock _gate = new();

    public ProgressPrinter(TextWriter output, TimeProvider time, IProgressView? view)
    {
        _output = output;
        _view = view;
        _rate = new TransferRate(time);
    }

    /// <summary>A Spectre.Console view when the verb writes to the real stderr and it is a terminal; none otherwise.</summary>
    public static ProgressPrinter For(VerbContext ctx, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var terminal = ReferenceEquals(ctx.Error, Console.Error) && !Console.IsErrorRedirected;
        var stdoutTerminal = ReferenceEquals(ctx.Out, Console.Out) && !Console.IsOutputRedirected;
        return new ProgressPrinter(ctx.Out, time, terminal ? SpectreProgressView.OnStderr(stdoutTerminal) : null);
    }

    public bool Live => _view is not null;

    /// <summary>Step lines from <paramref name="restorer"/>; with a view also pg_restore's objects.</summary>
    public void Attach(Restorer restorer)
    {
        ArgumentNullException.ThrowIfNull(restorer);
        restorer.Step += Line;
        if (_view is not null)
        {
            restorer.Database.Objects = this;
        }
    }

    public Task<T> RunAsync<T>(Func<Task<T>> body) => _view is null ? body() : _view.RunAsync(body);

    public void Line(string line)
    {
        lock (_gate)
        {
            if (_view is not { ShowsSteps: true })
            {
                _output.WriteLine("-> " + line);
            }

            _view?.Step(line);
        }
    }

    public void Report(TransferProgress value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (_view is null)
        {
            return;
        }

        lock (_gate)
        {
            _view.Bytes(value.Step, value.Done, value.Total, _rate.Observe(value.Step, value.Done));
        }
    }

    public void Report(ObjectProgress value)
    {
        ArgumentNullException.ThrowIfNull(value);
        lock (_gate)
        {
            _view?.Objects(value.Step, value.Done, value.Total);
        }
    }

    /// <summary>For a view: <c>12.0 MiB of 40.0 MiB, 8.0 MiB/s</c>.</summary>
    internal static string BytesText(long done, long? total, double? bytesPerSecond) =>
        Format.Bytes(done) + (total is > 0 ? " of " + Format.Bytes(total.Value) : "") +
        (bytesPerSecond is { } r ? ", " + Format.Bytes((long)r) + "/s" : "");

    internal static string ObjectsText(int done, int total) => string.Create(CultureInfo.InvariantCulture, $"{done} of {total} objects");
}

/// <summary>
/// Spectre.Console's live progress on stderr: one line per step, a bar for what has a total.
/// Spectre.Console (not hand-written <c>\r</c> lines): it redraws several tasks at once and knows each terminal's width and colours.
/// </summary>
internal sealed class SpectreProgressView(IAnsiConsole console, bool showSteps) : IProgressView
{
    private readonly Dictionary<string, ProgressTask> _tasks = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private ProgressContext? _context;
    private ProgressTask? _step;

    public static SpectreProgressView OnStderr(bool showSteps) =>
        // stderr was found to be a terminal; Spectre's own detection would look at stdout, which may be a file.
        new(AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(Console.Error), Interactive = InteractionSupport.Yes, Ansi = AnsiSupport.Yes,
        }), showSteps);

    public bool ShowsSteps => showSteps;

    public async Task<T> RunAsync<T>(Func<Task<T>> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        T result = default!;
        await console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new KnownPercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async context =>
            {
                lock (_gate)
                {
                    _context = context;
                }

                result = await body();
                lock (_gate)
                {
                    CompleteAll();
                }
            });
        return result;
    }

    public void Step(string line)
    {
        lock (_gate)
        {
            CompleteAll();
            if (showSteps && _context is not null)
            {
                _step = _context.AddTask(Markup.Escape(line), maxValue: 1);
                _step.IsIndeterminate = true;
            }
        }
    }

    public void Bytes(string step, long done, long? total, double? bytesPerSecond) =>
        Update(step, done, total ?? 0, ProgressPrinter.BytesText(done, total, bytesPerSecond));

    public void Objects(string step, int done, int total) => Update(step, done, total, ProgressPrinter.ObjectsText(done, total));

    private void Update(string step, double done, double total, string detail)
    {
        lock (_gate)
        {
            if (_context is null)
            {
                return;
            }

            if (!_tasks.TryGetValue(step, out var task))
            {
                task = _context.AddTask(Markup.Escape(step));
                _tasks[step] = task;
            }

            task.Description = Markup.Escape($"{step}: {detail}");
            // No total (a dump being written): an animated bar and no percentage until it is done.
            task.IsIndeterminate = total <= 0;
            task.MaxValue = total > 0 ? total : 1;
            task.Value = total > 0 ? Math.Min(done, total) : 0;
        }
    }

    /// <summary>The percentage, blank while the total is unknown (an indeterminate task would read 0%).</summary>
    private sealed class KnownPercentageColumn : ProgressColumn
    {
        private readonly PercentageColumn _inner = new();

        public override Spectre.Console.Rendering.IRenderable Render(Spectre.Console.Rendering.RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            task.IsIndeterminate ? Text.Empty : _inner.Render(options, task, deltaTime);
    }

    private void CompleteAll()
    {
        foreach (var task in _tasks.Values.Append(_step).OfType<ProgressTask>())
        {
            task.IsIndeterminate = false;
            task.Value = task.MaxValue;
            task.StopTask();
        }

        _tasks.Clear();
        _step = null;
    }
}
