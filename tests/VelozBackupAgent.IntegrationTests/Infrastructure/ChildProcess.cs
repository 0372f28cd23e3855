using System.Diagnostics;
using System.Text;

namespace VelozBackupAgent.IntegrationTests.Infrastructure;

/// <summary>The result of a child process run to completion.</summary>
public sealed record ProcessResult(int ExitCode, string StdOut, string StdErr)
{
    /// <summary>Non-empty stderr lines.</summary>
    public string[] ErrorLines => StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}

/// <summary>Runs real child processes (arguments as a list, never through a shell).</summary>
public static class ChildProcess
{
    public static async Task<ProcessResult> RunAsync(string file, IEnumerable<string> args, IDictionary<string, string?>? env = null, TimeSpan? timeout = null, string? stdin = null, string? workingDirectory = null)
    {
        using var p = Start(file, args, env, redirectStdin: stdin is not null, workingDirectory);
        if (stdin is not null)
        {
            await p.StandardInput.WriteAsync(stdin);
            p.StandardInput.Close();
        }

        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in time");
        }

        return new ProcessResult(p.ExitCode, await stdout, await stderr);
    }

    public static Process Start(string file, IEnumerable<string> args, IDictionary<string, string?>? env = null, bool redirectStdin = false, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            WorkingDirectory = workingDirectory ?? "",
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = redirectStdin,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        if (env is not null)
        {
            foreach (var (k, v) in env)
            {
                if (v is null)
                {
                    psi.Environment.Remove(k);
                }
                else
                {
                    psi.Environment[k] = v;
                }
            }
        }

        return Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
    }
}

/// <summary>
/// Runs the real veloz-backup binary: the executable <c>$VELOZ_BACKUP_BINARY</c> names (e.g. a Native AOT build:
/// <c>dotnet publish -c Release -p:PublishAot=true</c>), else the assembly built with the solution, through <c>dotnet</c>.
/// </summary>
public static class VelozBackupBinary
{
    /// <summary>The published executable the tests run, or null (then <c>dotnet veloz-backup.dll</c>).</summary>
    public static string? Published { get; } = Environment.GetEnvironmentVariable("VELOZ_BACKUP_BINARY") is { Length: > 0 } path
        ? (File.Exists(path) ? Path.GetFullPath(path) : throw new FileNotFoundException($"VELOZ_BACKUP_BINARY names no file: {path}", path))
        : null;

    public static string DllPath
    {
        get
        {
            var dll = Path.Combine(AppContext.BaseDirectory, "veloz-backup.dll");
            return File.Exists(dll) ? dll : throw new FileNotFoundException("veloz-backup.dll is not beside the tests", dll);
        }
    }

    /// <summary>The path that marks the agent's process (its executable, or its assembly on a <c>dotnet</c> command line).</summary>
    public static string AgentMarker => Published ?? DllPath;

    /// <summary>The directory holding the <c>veloz-backup</c> command (for PATH).</summary>
    public static string Directory => Path.GetDirectoryName(AgentMarker)!;

    /// <summary>The program to start and the arguments before the agent's own.</summary>
    public static (string File, string[] Prefix) Command => Published is { } exe ? (exe, []) : ("dotnet", [DllPath]);

    /// <summary>The command line as a shell word list (quoted), e.g. for archive_command.</summary>
    public static string ShellCommand => Published is { } exe ? $"'{exe}'" : $"dotnet '{DllPath}'";

    /// <summary>Runs <c>veloz-backup args…</c> with logging to a file disabled unless the test sets it.</summary>
    public static Task<ProcessResult> RunAsync(IEnumerable<string> args, IDictionary<string, string?>? env = null, TimeSpan? timeout = null)
    {
        var environment = new Dictionary<string, string?> { ["Backup__Log__File"] = "", ["VELOZ_BACKUP_CONFIG"] = null };
        if (env is not null)
        {
            foreach (var (k, v) in env)
            {
                environment[k] = v;
            }
        }

        var (file, prefix) = Command;
        return ChildProcess.RunAsync(file, [.. prefix, .. args], environment, timeout);
    }

    public static System.Diagnostics.Process Start(IEnumerable<string> args, IDictionary<string, string?>? env = null)
    {
        var environment = new Dictionary<string, string?> { ["Backup__Log__File"] = "", ["VELOZ_BACKUP_CONFIG"] = null };
        if (env is not null)
        {
            foreach (var (k, v) in env)
            {
                environment[k] = v;
            }
        }

        var (file, prefix) = Command;
        return ChildProcess.Start(file, [.. prefix, .. args], environment);
    }
}
