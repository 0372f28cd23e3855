using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using VelozBackupAgent.IntegrationTests.Infrastructure;
using VelozBackupAgent.Sources;
using VelozBackupAgent.Storage.Local;
using ChildProcess = VelozBackupAgent.Sources.ChildProcess;

namespace VelozBackupAgent.IntegrationTests.Sources;

/// <summary>The child-process and producer streams every source is built on, with real processes and a real store.</summary>
public sealed class ChildProcessTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-child-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static ChildProcessSpec Sh(string script) => new("sh", ["-c", script], "sh");

    [Fact]
    public async Task Output_of_a_successful_child_streams_into_the_store_intact()
    {
        var store = new LocalArtifactStore(_root);
        await using var child = ChildProcess.Start(Sh("head -c 5000000 /dev/zero | tr '\\0' 'x'"), NullLogger.Instance);

        var info = await store.WriteAsync("database", "x.dump", child.Output);

        info.Size.Should().Be(5_000_000);
        info.Sha256.Should().Be(Convert.ToHexStringLower(SHA256.HashData(Enumerable.Repeat((byte)'x', 5_000_000).ToArray())));
    }

    [Fact]
    public async Task A_child_that_fails_after_writing_leaves_no_artifact_and_reports_its_error_line()
    {
        var store = new LocalArtifactStore(_root);
        await using var child = ChildProcess.Start(Sh("head -c 100000 /dev/zero; echo 'pg_dump: error: query failed: disk on fire' >&2; exit 1"), NullLogger.Instance);

        var write = () => store.WriteAsync("database", "x.dump", child.Output);

        (await write.Should().ThrowAsync<BackupSourceException>()).Which.Message
            .Should().Be("sh failed (exit code 1): pg_dump: error: query failed: disk on fire");
        Directory.EnumerateFileSystemEntries(Path.Combine(_root, "database")).Should().BeEmpty();
    }

    [Fact]
    public async Task Secrets_travel_in_the_environment_not_on_the_command_line()
    {
        var spec = Sh("tr '\\0' ' ' < /proc/$$/cmdline; echo; printf %s \"$PGPASSWORD\"") with
        {
            Environment = new Dictionary<string, string?> { ["PGPASSWORD"] = "s3cr3t-canary" },
        };
        await using var child = ChildProcess.Start(spec, NullLogger.Instance);

        var lines = (await child.ReadAllTextAsync()).Split('\n');
        lines[0].Should().NotContain("s3cr3t-canary");
        lines[1].Should().Be("s3cr3t-canary");
    }

    [Fact]
    public async Task A_child_gets_the_allow_list_not_the_agents_environment()
    {
        // scripts/test.sh exports AWS_SECRET_ACCESS_KEY and VELOZ_TEST_PG_CONNECTION (with a password) to this process.
        System.Environment.GetEnvironmentVariable("AWS_SECRET_ACCESS_KEY").Should().NotBeNullOrEmpty("run with ./scripts/test.sh");
        await using var child = ChildProcess.Start(new ChildProcessSpec("/bin/cat", ["/proc/self/environ"], "cat") { Inherit = InheritedVariables.Libpq }, NullLogger.Instance);

        var names = (await child.ReadAllTextAsync()).Split('\0', StringSplitOptions.RemoveEmptyEntries).Select(e => e.Split('=', 2)[0]).ToList();

        names.Should().Contain("PATH").And.Contain("HOME");
        names.Should().NotContain(n => n.StartsWith("AWS_", StringComparison.Ordinal) || n.StartsWith("VELOZ_", StringComparison.Ordinal) || n.StartsWith("DOTNET_", StringComparison.Ordinal) || n == "GNUPGHOME");
        names.Should().OnlyContain(n => ChildEnvironment.Inherits(n, InheritedVariables.Libpq));
    }

    [Fact]
    public async Task A_missing_binary_is_one_line_with_the_hint()
    {
        var spec = new ChildProcessSpec("/nonexistent/bin/pg_dump", [], "pg_dump") { InstallHint = "install postgresql-client-15 or set Backup:Database:BinDirectory" };
        var start = () => ChildProcess.Start(spec, NullLogger.Instance);
        start.Should().Throw<BackupSourceException>().WithMessage("pg_dump not found: /nonexistent/bin/pg_dump (install postgresql-client-15 or set Backup:Database:BinDirectory)");
    }

    [Fact]
    public async Task A_stdin_pump_that_breaks_fails_the_output_even_when_the_child_exits_zero()
    {
        var store = new LocalArtifactStore(_root);
        await using var child = ChildProcess.Start(Sh("cat") with { RedirectInput = true }, NullLogger.Instance);
        child.PumpInput(async (stdin, ct) =>
        {
            await stdin.WriteAsync(new byte[64 * 1024], ct);
            throw new UnauthorizedAccessException("tar: secrets/api.key: permission denied");
        }, CancellationToken.None);

        var write = () => store.WriteAsync("secrets", "s.gpg", child.Output);

        (await write.Should().ThrowAsync<BackupSourceException>()).Which.Message.Should().Contain("permission denied");
        Directory.EnumerateFileSystemEntries(Path.Combine(_root, "secrets")).Should().BeEmpty();
    }

    [Fact]
    public async Task Disposing_kills_a_child_still_running()
    {
        var child = ChildProcess.Start(Sh("sleep 600"), NullLogger.Instance);
        var pid = child.ProcessId;
        await child.DisposeAsync();

        File.Exists($"/proc/{pid}/status").Should().BeFalse("the child was killed and reaped");
    }

    [Fact]
    public async Task A_producer_failure_reaches_the_reader_and_no_artifact_is_left()
    {
        var store = new LocalArtifactStore(_root);
        await using var stream = ProducerStream.Start(async (output, ct) =>
        {
            await output.WriteAsync(new byte[10 * 1024 * 1024], ct);
            throw new IOException("config.yaml: read error");
        }, CancellationToken.None);

        var write = () => store.WriteAsync("config", "c.tar.gz", stream);

        await write.Should().ThrowAsync<IOException>().WithMessage("config.yaml: read error");
        Directory.EnumerateFileSystemEntries(Path.Combine(_root, "config")).Should().BeEmpty();
    }

    [Fact]
    public async Task A_producer_streams_far_more_than_its_buffer()
    {
        var store = new LocalArtifactStore(_root);
        const long Size = 64L * 1024 * 1024;
        await using var stream = ProducerStream.Start((output, ct) => new GeneratedStream(Size, seed: 7).CopyToAsync(output, ct), CancellationToken.None);

        var info = await store.WriteAsync("config", "big.tar.gz", stream);

        info.Size.Should().Be(Size);
        info.Sha256.Should().Be(GeneratedStream.Sha256Of(Size, seed: 7));
    }
}
