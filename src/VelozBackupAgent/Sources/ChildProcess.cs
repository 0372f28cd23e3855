using System.ComponentModel;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Storage.Platform;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Sources;

/// <summary>How to start a child (pg_dump, pg_restore, gpg): arguments as a list, never a shell line.</summary>
/// <param name="FileName">An absolute path, or a bare name looked up on PATH.</param>
/// <param name="Arguments">Each argument as the child sees it (no shell, no quoting).</param>
/// <param name="DisplayName">How errors name the tool, e.g. <c>pg_dump</c>.</param>
public sealed record ChildProcessSpec(string FileName, IReadOnlyList<string> Arguments, string DisplayName)
{
    /// <summary>Variables added to (or, with a null value, removed from) the allow-listed environment (<see cref="Inherit"/>). Secrets go here, never into <see cref="Arguments"/>.</summary>
    public IReadOnlyDictionary<string, string?> Environment { get; init; } = new Dictionary<string, string?>();

    /// <summary>Which of the agent's variables the child inherits besides the common ones (<see cref="ChildEnvironment"/>); nothing else is.</summary>
    public InheritedVariables Inherit { get; init; }

    /// <summary>Whether the caller writes the child's stdin (<see cref="ChildProcess.PumpInput"/>); otherwise stdin is empty.</summary>
    public bool RedirectInput { get; init; }

    /// <summary>How to fix it when the binary is missing, e.g. "install postgresql-client-15 or set Backup:Database:BinDirectory".</summary>
    public string? InstallHint { get; init; }

    /// <summary>How many stderr lines are logged (each cut at 1000 characters); null logs every line whole. The last lines are kept for the error message either way.</summary>
    public int? MaxLoggedErrorLines { get; init; }

    /// <summary>Sees each stderr line first; a line it answers true for (progress chatter) is neither logged nor kept for the error message.</summary>
    public Func<string, bool>? ErrorLineFilter { get; init; }
}

/// <summary>
/// A child process whose stdout is read as a stream. Its stderr is drained to the log line by line (so
/// the child never blocks on a full pipe) and the last lines are kept for the error message. Reading
/// <see cref="Output"/> to its end waits for the exit and throws <see cref="BackupSourceException"/> when the
/// exit code is not zero, or when the stdin pump failed: a store writing from this stream then aborts the
/// write, so a failed dump or encryption never becomes an artifact. Disposing kills a child still running.
/// </summary>
public sealed partial class ChildProcess : IAsyncDisposable
{
    private const int KeptErrorLines = 20;

    private readonly Process _process;
    private readonly ILogger _logger;
    private readonly Task _errorPump;
    private readonly List<string> _errorLines = [];
    private Task? _inputPump;
    private volatile bool _killedForFailedPump;

    private readonly int? _maxLoggedErrorLines;

    private readonly Func<string, bool>? _errorLineFilter;

    private ChildProcess(Process process, string displayName, ILogger logger, int? maxLoggedErrorLines = null, Func<string, bool>? errorLineFilter = null)
    {
        _errorLineFilter = errorLineFilter;
        _maxLoggedErrorLines = maxLoggedErrorLines;
        _process = process;
        _logger = logger;
        DisplayName = displayName;
        _errorPump = Task.Run(DrainErrorsAsync);
        Output = new ChildOutputStream(this, process.StandardOutput.BaseStream);
    }

    public string DisplayName { get; }

    /// <summary>The child's stdout. EOF is only reported after the child exited with 0.</summary>
    public Stream Output { get; }

    public int ProcessId => _process.Id;

    /// <summary>Starts the child. A missing binary is a <see cref="BackupSourceException"/> naming it.</summary>
    public static ChildProcess Start(ChildProcessSpec spec, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var path = ResolveExecutable(spec.FileName)
            ?? throw new BackupSourceException($"{spec.DisplayName} not found: {spec.FileName}" + (spec.InstallHint is null ? "" : $" ({spec.InstallHint})"));
        var info = new ProcessStartInfo(path)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var argument in spec.Arguments)
        {
            info.ArgumentList.Add(argument);
        }

        ChildEnvironment.Apply(info, spec.Inherit, spec.Environment);

        Process process;
        try
        {
            process = Process.Start(info) ?? throw new BackupSourceException($"{spec.DisplayName} could not be started: {path}");
        }
        catch (Win32Exception ex)
        {
            throw new BackupSourceException($"{spec.DisplayName} could not be started: {path}: {ex.Message}", ex);
        }

        if (!spec.RedirectInput)
        {
            process.StandardInput.Close();
        }

        return new ChildProcess(process, spec.DisplayName, logger, spec.MaxLoggedErrorLines, spec.ErrorLineFilter);
    }

    /// <summary>
    /// Feeds the child's stdin from <paramref name="write"/> on a background task and closes stdin when it
    /// returns. If it throws, the child is killed and reading <see cref="Output"/> fails with that error, so a
    /// producer that broke half-way can never pass for a complete (e.g. encrypted) stream.
    /// </summary>
    public void PumpInput(Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(write);
        if (_inputPump is not null)
        {
            throw new InvalidOperationException("stdin already has a pump");
        }

        var stdin = _process.StandardInput.BaseStream;
        _inputPump = Task.Run(async () =>
        {
            try
            {
                await write(stdin, cancellationToken).ConfigureAwait(false);
                await stdin.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                // When the child is still running, the pump's failure is the reason it stops: that, not the
                // kill's exit code, is what EnsureSucceededAsync reports.
                _killedForFailedPump = !HasExited();
                Kill();
                throw;
            }
            finally
            {
                try
                {
                    await stdin.DisposeAsync().ConfigureAwait(false);
                }
                catch (IOException)
                {
                    // The child already closed its end; its exit code says why.
                }
            }
        }, CancellationToken.None);
    }

    /// <summary>Waits for the child to exit and throws unless it exited 0 (and the stdin pump, if any, succeeded).</summary>
    public async Task EnsureSucceededAsync(CancellationToken cancellationToken = default)
    {
        await _process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        await _errorPump.ConfigureAwait(false);
        // The pump's own failure is why the child was killed, and what the operator needs to read; a broken
        // pipe, though, means the child went first, and its exit code and stderr say why.
        if (_killedForFailedPump && _inputPump is not null)
        {
            try
            {
                await _inputPump.ConfigureAwait(false);
            }
            catch (IOException)
            {
            }
            catch (Exception ex) when (ex is not BackupSourceException and not OperationCanceledException)
            {
                throw new BackupSourceException($"feeding {DisplayName} failed: {ex.Message}", ex);
            }
        }

        if (_process.ExitCode != 0)
        {
            throw new BackupSourceException($"{DisplayName} failed (exit code {_process.ExitCode}): {ErrorSummary()}");
        }

        await AwaitInputPumpAsync().ConfigureAwait(false);
    }

    private async Task AwaitInputPumpAsync()
    {
        if (_inputPump is not null)
        {
            try
            {
                await _inputPump.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not BackupSourceException and not OperationCanceledException)
            {
                throw new BackupSourceException($"feeding {DisplayName} failed: {ex.Message}", ex);
            }
        }
    }

    /// <summary>Reads stdout to the end (discarding it) and checks the exit code; for children whose output is not the artifact.</summary>
    public async Task<string> ReadAllTextAsync(CancellationToken cancellationToken = default)
    {
        using var reader = new StreamReader(Output, leaveOpen: true);
        return await reader.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The most telling stderr line: the first that reports an error, else the last one.</summary>
    public string ErrorSummary()
    {
        lock (_errorLines)
        {
            var error = _errorLines.FirstOrDefault(l => l.Contains("error", StringComparison.OrdinalIgnoreCase) || l.Contains("fatal", StringComparison.OrdinalIgnoreCase));
            return error ?? _errorLines.LastOrDefault() ?? "(no error output)";
        }
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        try
        {
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            await _errorPump.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Killed and gone as far as we can tell; nothing else to do.
        }

        if (_inputPump is not null)
        {
            try
            {
                await _inputPump.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // Its failure was reported through Output if anyone read to the end.
            }
        }

        _process.Dispose();
    }

    private bool HasExited()
    {
        try
        {
            return _process.HasExited;
        }
        catch (InvalidOperationException)
        {
            return true;
        }
    }

    /// <summary>Kills the child and its whole process tree (a timeout); reading <see cref="Output"/> then fails with its exit code.</summary>
    public void KillTree() => Kill();

    private void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }
    }

    private async Task DrainErrorsAsync()
    {
        string? line;
        var logged = 0;
        while ((line = await _process.StandardError.ReadLineAsync().ConfigureAwait(false)) is not null)
        {
            if (line.Length == 0 || (_errorLineFilter is not null && _errorLineFilter(line)))
            {
                continue;
            }

            if (_maxLoggedErrorLines is { } max)
            {
                line = line.Length > 1000 ? line[..1000] + "…" : line;
                if (logged < max)
                {
                    Log.ChildStderr(_logger, DisplayName, line);
                }
                else if (logged == max)
                {
                    Log.ChildStderr(_logger, DisplayName, $"(more than {max} lines on stderr; the rest is not logged)");
                }

                logged++;
            }
            else
            {
                Log.ChildStderr(_logger, DisplayName, line);
            }

            lock (_errorLines)
            {
                if (_errorLines.Count == KeptErrorLines)
                {
                    _errorLines.RemoveAt(KeptErrorLines / 2);
                }

                _errorLines.Add(line);
            }
        }
    }

    /// <inheritdoc cref="ExecutableLookup.Resolve(string)"/>
    public static string? ResolveExecutable(string fileName) => ExecutableLookup.Resolve(fileName);

    private sealed class ChildOutputStream(ChildProcess owner, Stream inner) : ReadOnlyStream
    {
        private bool _checked;

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var read = inner.Read(buffer);
            if (read == 0 && buffer.Length > 0)
            {
                CheckAtEnd(CancellationToken.None).GetAwaiter().GetResult();
            }

            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (read == 0 && buffer.Length > 0)
            {
                await CheckAtEnd(cancellationToken).ConfigureAwait(false);
            }

            return read;
        }

        private async Task CheckAtEnd(CancellationToken cancellationToken)
        {
            if (!_checked)
            {
                await owner.EnsureSucceededAsync(cancellationToken).ConfigureAwait(false);
                _checked = true;
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Sources.ChildStderr, LogLevel.Warning, "{Tool}: {Line}")]
        public static partial void ChildStderr(ILogger logger, string tool, string line);
    }
}
