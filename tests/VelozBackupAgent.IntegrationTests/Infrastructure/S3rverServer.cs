using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Amazon.Runtime;
using Amazon.S3;
using VelozBackupAgent.Storage.S3;

namespace VelozBackupAgent.IntegrationTests.Infrastructure;

/// <summary>
/// A real s3rver (tools/s3rver, pinned) as a child process on a free loopback port with a temporary data
/// directory. <see cref="Stop"/> and <see cref="StartAsync"/> bring it down and back on the same port and
/// directory, so tests can take S3 away and return it. The binary comes from <c>VELOZ_TEST_S3RVER</c>, or
/// is found by walking up from the test assembly to <c>tools/s3rver/node_modules/.bin/s3rver</c>.
/// </summary>
public sealed class S3rverServer : IAsyncDisposable, IDisposable
{
    /// <summary>s3rver's built-in credentials.</summary>
    public const string AccessKey = "S3RVER";
    public const string SecretKey = "S3RVER";

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(20);

    private readonly string _binary;
    private readonly string _directory;
    private Process? _process;

    private S3rverServer(string binary, string directory, int port)
    {
        _binary = binary;
        _directory = directory;
        Port = port;
    }

    public int Port { get; }

    public string ServiceUrl => $"http://127.0.0.1:{Port}";

    public string DataDirectory => _directory;

    /// <summary>Starts a new server on a free port with an empty data directory.</summary>
    public static async Task<S3rverServer> StartNewAsync()
    {
        var directory = Directory.CreateTempSubdirectory("veloz-s3rver-").FullName;
        var server = new S3rverServer(FindBinary(), directory, FreePort());
        try
        {
            await server.StartAsync();
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>(Re)starts the process on the same port and directory and waits until the port answers.</summary>
    public async Task StartAsync()
    {
        if (_process is { HasExited: false })
        {
            return;
        }

        var info = new ProcessStartInfo(_binary)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in new[] { "--address", "127.0.0.1", "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--directory", _directory })
        {
            info.ArgumentList.Add(argument);
        }

        // VELOZ_TEST_S3RVER_LOG=FILE keeps s3rver's request log there, for debugging; otherwise it is silent.
        var log = Environment.GetEnvironmentVariable("VELOZ_TEST_S3RVER_LOG");
        if (string.IsNullOrEmpty(log))
        {
            info.ArgumentList.Add("--silent");
        }

        // Without the legacy provider, listings that need a continuation token fail with a 500.
        info.Environment["NODE_OPTIONS"] = "--openssl-legacy-provider";
        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {_binary}");
        var stderr = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null && !string.IsNullOrEmpty(log))
            {
                lock (stderr)
                {
                    File.AppendAllText(log, e.Data + Environment.NewLine);
                }
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (stderr)
                {
                    stderr.AppendLine(e.Data);
                }
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        using var deadline = new CancellationTokenSource(StartTimeout);
        while (true)
        {
            if (process.HasExited)
            {
                string error;
                lock (stderr)
                {
                    error = stderr.ToString();
                }

                throw new InvalidOperationException($"s3rver exited with {process.ExitCode} on start: {error}");
            }

            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, Port, deadline.Token);
                return;
            }
            catch (SocketException)
            {
                // Not listening yet: poll again shortly, until the deadline.
                await Task.Delay(50, deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"s3rver did not answer on port {Port} within {StartTimeout.TotalSeconds} s");
            }
        }
    }

    /// <summary>Kills the process; the data directory stays for a later <see cref="StartAsync"/>.</summary>
    public void Stop()
    {
        if (_process is null)
        {
            return;
        }

        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }

        _process.Dispose();
        _process = null;
    }

    /// <summary>A client for this server with s3rver's credentials, path-style, SDK retries off.</summary>
    public AmazonS3Client CreateClient() =>
        S3ArtifactStore.CreateClient(Options("unused", "unused"), new BasicAWSCredentials(AccessKey, SecretKey));

    /// <summary>Store options for this server: path-style, no aws-chunked uploads, fast retries.</summary>
    public S3StoreOptions Options(string bucket, string prefix = "veloz-1") => new()
    {
        Bucket = bucket,
        Prefix = prefix,
        ServiceUrl = ServiceUrl,
        ForcePathStyle = true,
        ChunkedUpload = false,
        PartSizeBytes = S3StoreOptions.MinPartSizeBytes,
        MaxRetries = 2,
        RetryBaseDelay = TimeSpan.FromMilliseconds(10),
        RetryMaxDelay = TimeSpan.FromMilliseconds(50),
    };

    public async Task CreateBucketAsync(string bucket)
    {
        using var client = CreateClient();
        await client.PutBucketAsync(bucket);
    }

    public void Dispose()
    {
        Stop();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp directory.
        }
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    private static int FreePort() => Infrastructure.TestPorts.Free();

    private static string FindBinary()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable("VELOZ_TEST_S3RVER");
        if (!string.IsNullOrEmpty(fromEnvironment))
        {
            return File.Exists(fromEnvironment)
                ? fromEnvironment
                : throw new FileNotFoundException($"VELOZ_TEST_S3RVER names {fromEnvironment}, which does not exist");
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tools", "s3rver", "node_modules", ".bin", "s3rver");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException("s3rver not found: run `npm ci` in tools/s3rver, or set VELOZ_TEST_S3RVER to the s3rver binary");
    }
}
