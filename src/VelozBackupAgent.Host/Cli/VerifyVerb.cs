using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using VelozBackupAgent.Verification;

namespace VelozBackupAgent.Host.Cli;

/// <summary><c>verify</c>: the seeds' Backup Verification Checklist as a report with an exit code.</summary>
internal static class VerifyVerb
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static Command Verify(VerbContext ctx)
    {
        var testRestore = new Option<bool>("--test-restore", "-t") { Description = "Also restore every kind into scratch locations (a scratch database, a temp directory; secrets compared in memory) and time it against the RTOs" };
        var readData = new Option<bool>("--read-data") { Description = "Also download and re-hash every S3 copy (local copies are always re-hashed)" };
        var report = new Option<string?>("--report", "-r") { Description = "Also write the report to this file (mode 0600)" };
        var json = new Option<bool>("--json") { Description = "Machine-readable output (stable field names)" };
        var command = new Command("verify",
            "Run the backup verification checklist: freshness of each kind against its objective, the S3 copy, every checksum, " +
            "with PITR the WAL stream, base backups and WAL continuity, a test restore (--test-restore; with PITR also a scratch point-in-time restore) " +
            "and recovery time against the RTOs. Exit 0 when nothing fails, 3 when a check fails.")
        {
            testRestore, readData, report, json,
        };
        command.SetAction((parse, ct) => ctx.RunAsync(parse, daemon: false, async agent =>
        {
            var verifier = agent.CreateVerifier();
            // On a terminal (never with --json): bytes and rate of each artifact re-hashed (every S3 copy with --read-data), on stderr.
            var progress = parse.GetValue(json) ? null : ProgressPrinter.For(ctx, agent.Time);
            if (progress is { Live: true })
            {
                verifier.Progress = progress;
            }

            var request = new VerifyRequest(parse.GetValue(testRestore), parse.GetValue(readData));
            var result = progress is { Live: true } ? await progress.RunAsync(() => verifier.RunAsync(request, ct)) : await verifier.RunAsync(request, ct);
            var text = parse.GetValue(json) ? ToJson(result, agent.Options.NodeName) : ToText(result, agent.Options.NodeName);
            await ctx.Out.WriteAsync(text);
            if (parse.GetValue(report) is { } file)
            {
                WriteReport(file, text);
            }

            if (!result.Passed)
            {
                var failed = result.Checks.Where(c => c.Status == CheckStatus.Fail).Select(c => c.Item);
                await ctx.Error.WriteLineAsync($"veloz-backup: verify failed: {string.Join(", ", failed)}");
            }

            return result.Passed ? ExitCodes.Success : ExitCodes.VerifyFailed;
        }));
        return command;
    }

    internal static string ToText(VerifyReport report, string node)
    {
        var b = new StringBuilder();
        b.Append(CultureInfo.InvariantCulture, $"VelozBackupAgent backup verification, node {node}, {Format.IsoUtc(report.Time)}\n");
        foreach (var c in report.Checks)
        {
            b.Append(CultureInfo.InvariantCulture, $"{c.Status.ToString().ToUpperInvariant(),-4}  {c.Item}: {c.Detail}\n");
        }

        var pass = report.Checks.Count(c => c.Status == CheckStatus.Pass);
        var fail = report.Checks.Count(c => c.Status == CheckStatus.Fail);
        var skip = report.Checks.Count(c => c.Status == CheckStatus.Skip);
        b.Append(LeftoversLine(report.Leftovers)).Append('\n');
        b.Append(CultureInfo.InvariantCulture, $"result: {(report.Passed ? "PASS" : "FAIL")} ({pass} passed, {fail} failed, {skip} skipped)\n");
        return b.ToString();
    }

    /// <summary>One line: how many files interrupted writes left, how many bytes, and which (the first three).</summary>
    internal static string LeftoversLine(IReadOnlyList<Storage.Local.Leftover> leftovers)
    {
        if (leftovers.Count == 0)
        {
            return "leftovers: none (no interrupted write left anything in the local store)";
        }

        var bytes = leftovers.Sum(l => l.Size);
        var examples = string.Join(", ", leftovers.Take(3).Select(l => $"{l.Kind}/{l.Name}")) + (leftovers.Count > 3 ? ", …" : "");
        var kinds = string.Join(", ", leftovers.Select(l => l.Kind).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal));
        return string.Create(CultureInfo.InvariantCulture,
            $"leftovers: {leftovers.Count} {(leftovers.Count == 1 ? "file" : "files")} of interrupted writes, {bytes} bytes ({Format.Bytes(bytes)}): {examples}; the next backup of {kinds} (or the daemon's next start) removes them");
    }

    private static string ToJson(VerifyReport report, string node) =>
        JsonSerializer.Serialize(new
        {
            node,
            time = Format.IsoUtc(report.Time),
            passed = report.Passed,
            checks = report.Checks.Select(c => new { item = c.Item, status = c.Status, detail = c.Detail }),
            testRestore = report.TestRestore,
            leftovers = new { count = report.Leftovers.Count, bytes = report.Leftovers.Sum(l => l.Size), files = report.Leftovers.Select(l => $"{l.Kind}/{l.Name}") },
        }, Json) + "\n";

    private static void WriteReport(string path, string text)
    {
        // 0600 also when the file already existed with a wider mode, and whatever the umask.
        using var file = Storage.Local.PrivateFiles.Open(path, FileMode.Create);
        using var writer = new StreamWriter(file, Encoding.UTF8);
        writer.Write(text);
    }
}
