using System.ComponentModel;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Pitr;

/// <summary>
/// The long-running <c>pg_receivewal</c>: started with arguments as a list and credentials in its environment only,
/// its stderr drained line by line into the log (progress at Information, errors at Warning) and the last lines kept
/// to explain an exit. <see cref="StopAsync"/> asks it to stop with SIGINT (it then flushes and closes its file
/// cleanly) before it kills.
/// </summary>
internal sealed partial class ReceiverProcess : IAsyncDisposable
{
    private const int KeptLines = 30;
    private const int SigInt = 2;
    private readonly Process _process;
    private readonly ILogger _logger;
    private readonly Task _stderr;
    private readonly List<string> _lines = [];
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ReceiverProcess(Process process, ILogger logger)
    {
        _process = process;
        _logger = logger;
        _process.EnableRaisingEvents = true;
        _process.Exited += (_, _) => _exited.TrySetResult();
        if (_process.HasExited)
        {
            _exited.TrySetResult();
        }

        _stderr = Task.Run(DrainAsync);
    }

    public int ProcessId => _process.Id;

    /// <summary>Completes when the process has exited and its stderr is drained.</summary>
    public Task Exited => Task.WhenAll(_exited.Task, _stderr);

    public bool HasExited => _exited.Task.IsCompleted;

    public int ExitCode => _process.ExitCode;

    /// <summary>The last stderr lines, oldest first.</summary>
    public string Stderr
    {
        get
        {
            lock (_lines)
            {
                return string.Join('\n', _lines);
            }
        }
    }

    public static ReceiverProcess Start(string fileName, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string?> environment, string? installHint, ILogger logger)
    {
        var path = ChildProcess.ResolveExecutable(fileName)
            ?? throw new WalArchiveException(PitrFailure.Tools, $"pg_receivewal not found: {fileName}" + (installHint is null ? "" : $" ({installHint})"));
        var info = new ProcessStartInfo(path)
        {
            UseShellExecute = false,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        ChildEnvironment.Apply(info, InheritedVariables.Libpq, environment);

        try
        {
            var process = Process.Start(info) ?? throw new WalArchiveException(PitrFailure.Tools, $"pg_receivewal could not be started: {path}");
            process.StandardInput.Close();
            _ = process.StandardOutput.ReadToEndAsync();
            return new ReceiverProcess(process, logger);
        }
        catch (Win32Exception ex)
        {
            throw new WalArchiveException(PitrFailure.Tools, $"pg_receivewal could not be started: {path}: {ex.Message}", ex);
        }
    }

    /// <summary>SIGINT, then up to <paramref name="grace"/> for it to exit, then SIGKILL.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (HasExited)
        {
            await Exited;
            return;
        }

        Processes.Signal(_process.Id, SigInt);
        try
        {
            await Exited.WaitAsync(grace);
        }
        catch (TimeoutException)
        {
            Kill();
            await Exited.WaitAsync(TimeSpan.FromSeconds(10));
        }
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        try
        {
            await Exited.WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException)
        {
            // Killed; nothing more to wait for.
        }

        _process.Dispose();
    }

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
            // Gone already.
        }
    }

    private async Task DrainAsync()
    {
        while (await _process.StandardError.ReadLineAsync() is { } line)
        {
            if (line.Length == 0)
            {
                continue;
            }

            if (line.Contains("error", StringComparison.OrdinalIgnoreCase) || line.Contains("FATAL", StringComparison.Ordinal) || line.Contains("warning", StringComparison.OrdinalIgnoreCase))
            {
                Log.Problem(_logger, line);
            }
            else
            {
                Log.Progress(_logger, line);
            }

            lock (_lines)
            {
                if (_lines.Count == KeptLines)
                {
                    _lines.RemoveAt(0);
                }

                _lines.Add(line);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(LogEvents.Pitr.ReceiverOutput, LogLevel.Information, "{Line}")]
        public static partial void Progress(ILogger logger, string line);

        [LoggerMessage(LogEvents.Pitr.ReceiverWarning, LogLevel.Warning, "{Line}")]
        public static partial void Problem(ILogger logger, string line);
    }
}
