using System.Text.Json;
using VelozBackupAgent.IntegrationTests.Infrastructure;

namespace VelozBackupAgent.IntegrationTests.Cli;

/// <summary>
/// The real binary's habits (issue 17): a mistyped word gets the likely one, <c>status</c> tells a kind switched off
/// from a stale one, <c>import</c> warns when <c>latest</c> will never choose what it stored, bash completion.
/// </summary>
public sealed class CliHabitsTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-habits-").FullName;
    private readonly string _files = Directory.CreateTempSubdirectory("veloz-habits-in-").FullName;

    public void Dispose()
    {
        Directory.Delete(_root, recursive: true);
        Directory.Delete(_files, recursive: true);
    }

    [Theory]
    [InlineData("restor", "unknown verb 'restor'; did you mean 'restore'?")]
    [InlineData("stauts --json", "unknown verb 'stauts'; did you mean 'status'?")]
    [InlineData("restore databse --yes", "unknown verb 'restore databse'; did you mean 'restore database'?")]
    [InlineData("diff confg", "unknown verb 'diff confg'; did you mean 'diff config'?")]
    [InlineData("backup databse", "unknown kind 'databse'; did you mean 'database'?")]
    [InlineData("backup al", "unknown kind 'al'; did you mean 'all'?")]
    [InlineData("list --jsn", "unknown option '--jsn' for 'list'; did you mean '--json'?")]
    [InlineData("prune --dryrun", "unknown option '--dryrun' for 'prune'; did you mean '--dry-run'?")]
    [InlineData("frobnicate", "unknown verb 'frobnicate': use one of run, backup, prune, list, status, replicate, import, restore, verify, diff, pg-wal-push, pg-wal-get, completion")]
    [InlineData("", "missing verb: use one of run, backup, prune, list, status, replicate, import, restore, verify, diff, pg-wal-push, pg-wal-get, completion")]
    [InlineData("restore", "restore: missing verb: use one of wal, config, database, secrets, pitr, full")]
    [InlineData("status extra", "unexpected argument 'extra' for 'status': see 'veloz-backup status --help'")]
    public async Task A_mistyped_word_is_one_line_with_the_likely_word_and_exit_2(string args, string line)
    {
        var r = await VelozBackupBinary.RunAsync([.. args.Split(' ', StringSplitOptions.RemoveEmptyEntries), $"--Backup:LocalRoot={_root}"]);

        r.ExitCode.Should().Be(2);
        r.ErrorLines.Should().ContainSingle().Which.Should().Be("veloz-backup: " + line);
        r.StdOut.Should().BeEmpty();
    }

    [Fact]
    public async Task Status_marks_a_disabled_kind_instead_of_showing_it_missing()
    {
        await TestArchives.WriteTarGzAsync(Path.Combine(_files, "config_20260214_120000.tar.gz"));
        (await VelozBackupBinary.RunAsync(["import", "config", Path.Combine(_files, "config_20260214_120000.tar.gz"), $"--Backup:LocalRoot={_root}"])).ExitCode.Should().Be(0);
        string[] settings = [$"--Backup:LocalRoot={_root}", "--Backup:Secrets:Enabled=false", "--Backup:Config:Enabled=false"];

        var r = await VelozBackupBinary.RunAsync(["status", .. settings]);

        r.ExitCode.Should().Be(0, r.StdErr);
        var rows = r.StdOut.Split('\n').Select(l => l.Split("  ", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).Where(c => c.Length >= 6).ToDictionary(c => c[0], c => c[5]);
        rows["secrets"].Should().Be("disabled");                       // nothing stored, nothing meant to be
        rows["config"].Should().EndWith(" (disabled)");                // the age of what is there, and why no newer
        rows["config"].Should().NotBe("disabled");
        rows["pitr"].Should().Be("disabled");                          // off by default
        rows["wal"].Should().Be("-");                                  // on, and nothing stored yet
        rows["database"].Should().Be("-");

        var json = await VelozBackupBinary.RunAsync(["status", "--json", .. settings]);
        json.ExitCode.Should().Be(0, json.StdErr);
        using var doc = JsonDocument.Parse(json.StdOut);
        var enabled = doc.RootElement.GetProperty("kinds").EnumerateArray().ToDictionary(k => k.GetProperty("kind").GetString()!, k => k.GetProperty("enabled").GetBoolean());
        enabled.Should().BeEquivalentTo(new Dictionary<string, bool> { ["secrets"] = false, ["config"] = false, ["pitr"] = false, ["wal"] = true, ["database"] = true });
    }

    [Fact]
    public async Task Import_warns_when_latest_will_never_pick_the_file_and_still_stores_it()
    {
        string[] names = ["config_20260214_120000.tar.gz", "config_20260101_000000.tar.gz", "before-upgrade.tar.gz", "config_20260301_000000.tar.gz"];
        foreach (var name in names)
        {
            await TestArchives.WriteTarGzAsync(Path.Combine(_files, name));
        }

        async Task<ProcessResult> Import(string name) =>
            await VelozBackupBinary.RunAsync(["import", "config", Path.Combine(_files, name), $"--Backup:LocalRoot={_root}"]);

        var first = await Import(names[0]);
        first.ExitCode.Should().Be(0, first.StdErr);
        first.StdErr.Should().BeEmpty("the newest of its kind is what latest picks");

        var older = await Import(names[1]);
        older.ExitCode.Should().Be(0, older.StdErr);
        older.StdOut.Should().StartWith("stored config/config_20260101_000000.tar.gz");
        older.ErrorLines.Should().ContainSingle().Which.Should().Be(
            "veloz-backup: warning: latest will never pick config/config_20260101_000000.tar.gz: config_20260214_120000.tar.gz is newer " +
            $"(restore it by name: veloz-backup restore config {Path.Combine(_root, "config", "config_20260101_000000.tar.gz")})");

        var untimed = await Import(names[2]);
        untimed.ExitCode.Should().Be(0, untimed.StdErr);
        untimed.ErrorLines.Should().ContainSingle().Which.Should().StartWith(
            "veloz-backup: warning: latest will never pick config/before-upgrade.tar.gz: it takes only names like config_YYYYMMDD_HHMMSS.tar.gz");

        var newest = await Import(names[3]);
        newest.ExitCode.Should().Be(0, newest.StdErr);
        newest.StdErr.Should().BeEmpty();

        Directory.GetFiles(Path.Combine(_root, "config"), "*.tar.gz").Select(Path.GetFileName).Should().BeEquivalentTo(names);
    }

    [Fact]
    public async Task Bash_completion_asks_the_binary_for_verbs_kinds_and_option_values()
    {
        var script = await VelozBackupBinary.RunAsync(["completion", "bash"]);
        script.ExitCode.Should().Be(0, script.StdErr);
        var file = Path.Combine(_files, "veloz-backup.bash");
        await File.WriteAllTextAsync(file, script.StdOut);

        // What bash sets before it calls the completion function, for each half-typed line; the binary is the apphost
        // built beside the tests, found on PATH as an operator's would be.
        var lines = new[] { "veloz-backup res", "veloz-backup restore da", "veloz-backup backup ", "veloz-backup list --target ", "veloz-backup list --js" };
        var probe = string.Join('\n', lines.Select(l => $$"""
            COMP_LINE='{{l}}'; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<<"$COMP_LINE"
            [[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')
            COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=(); _veloz_backup
            echo "${COMPREPLY[*]}"
            """));
        var bin = VelozBackupBinary.Directory;
        var r = await ChildProcess.RunAsync("bash", ["-c", $"source {file}\n{probe}\ncomplete -p veloz-backup"],
            new Dictionary<string, string?> { ["PATH"] = $"{bin}:{Environment.GetEnvironmentVariable("PATH")}", ["Backup__Log__File"] = "", ["VELOZ_BACKUP_CONFIG"] = null });

        r.ExitCode.Should().Be(0, r.StdErr);
        var answers = r.StdOut.Split('\n');
        answers[0].Should().Be("restore");
        answers[1].Should().Be("database");
        answers[2].Split(' ').Should().Contain(["all", "wal", "config", "database", "secrets", "pitr", "--no-upload"]);
        answers[3].Should().Be("all local s3");
        answers[4].Should().Be("--json");
        answers[5].Should().Be("complete -o default -F _veloz_backup veloz-backup");
    }

    [Fact]
    public async Task Bash_completion_is_not_confused_by_configuration_overrides_on_the_line()
    {
        var script = await VelozBackupBinary.RunAsync(["completion", "bash"]);
        var file = Path.Combine(_files, "veloz-backup.bash");
        await File.WriteAllTextAsync(file, script.StdOut);
        var lines = new[]
        {
            "veloz-backup --Backup:LocalRoot=/srv/backup res", "veloz-backup restore --Backup:LocalRoot /srv/backup da",
            "veloz-backup list --Backup:S3:Enabled=false --target ", "veloz-backup --Backup:LocalRoot=/x backup --Backup:NodeName=n1 ",
        };
        var probe = string.Join('\n', lines.Select(l => $$"""
            COMP_LINE='{{l}}'; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<<"$COMP_LINE"
            [[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')
            COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=(); _veloz_backup
            echo "${COMPREPLY[*]}"
            """));
        var bin = VelozBackupBinary.Directory;
        var r = await ChildProcess.RunAsync("bash", ["-c", $"source {file}\n{probe}"],
            new Dictionary<string, string?> { ["PATH"] = $"{bin}:{Environment.GetEnvironmentVariable("PATH")}", ["Backup__Log__File"] = "", ["VELOZ_BACKUP_CONFIG"] = null });

        r.ExitCode.Should().Be(0, r.StdErr);
        var answers = r.StdOut.Split('\n');
        answers[0].Should().Be("restore");
        answers[1].Should().Be("database");
        answers[2].Should().Be("all local s3");
        answers[3].Split(' ').Should().Contain(["all", "wal", "config", "database", "secrets", "pitr", "--no-upload"]);
    }

    [Fact]
    public async Task Zsh_completion_asks_the_binary_the_same_way()
    {
        var script = await VelozBackupBinary.RunAsync(["completion", "zsh"]);
        script.ExitCode.Should().Be(0, script.StdErr);
        script.StdOut.Should().StartWith("#compdef veloz-backup\n");
        var file = Path.Combine(_files, "_veloz-backup");
        await File.WriteAllTextAsync(file, script.StdOut);
        // What zsh sets before it calls the completion function; compadd (a builtin only inside a completion widget)
        // and compdef (from compinit) are stood in for by functions that print what they were given.
        var lines = new[] { "veloz-backup res", "veloz-backup restore da", "veloz-backup list --target ", "veloz-backup --Backup:LocalRoot=/x restore da" };
        var probe = string.Join('\n', lines.Select(l => $$"""
            BUFFER='{{l}}'; CURSOR=${#BUFFER}; words=(${(z)BUFFER}); _veloz_backup
            """));
        var bin = VelozBackupBinary.Directory;
        var r = await ChildProcess.RunAsync("zsh", ["-fc", $"compadd() {{ shift 2; print -r -- \"$*\" }}\ncompdef() {{ print -r -- \"compdef $*\" }}\n_files() {{ print files }}\nsource {file}\n{probe}"],
            new Dictionary<string, string?> { ["PATH"] = $"{bin}:{Environment.GetEnvironmentVariable("PATH")}", ["Backup__Log__File"] = "", ["VELOZ_BACKUP_CONFIG"] = null });

        r.ExitCode.Should().Be(0, r.StdErr);
        r.StdOut.Split('\n').Should().StartWith(["compdef _veloz_backup veloz-backup", "restore", "database", "all local s3", "database"]);
    }

    [Fact]
    public async Task Completion_for_another_shell_is_bad_usage()
    {
        var r = await VelozBackupBinary.RunAsync(["completion", "fish"]);
        r.ExitCode.Should().Be(2);
    }
}

/// <summary><c>--json</c> on the verbs that report (issue 17): one document with stable field names.</summary>
public sealed class CliJsonTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("veloz-json-").FullName;
    private readonly string _files = Directory.CreateTempSubdirectory("veloz-json-in-").FullName;

    public void Dispose()
    {
        Directory.Delete(_root, recursive: true);
        Directory.Delete(_files, recursive: true);
    }

    [Fact]
    public async Task Backup_json_has_one_entry_per_kind_with_outcome_and_artifacts()
    {
        var config = Directory.CreateDirectory(Path.Combine(_files, "etc")).FullName;
        await File.WriteAllTextAsync(Path.Combine(config, "config.yaml"), "exchange: binance\n");
        string[] settings = [$"--Backup:LocalRoot={_root}", $"--Backup:Config:Root={config}"];

        var r = await VelozBackupBinary.RunAsync(["backup", "config", "--json", .. settings]);

        r.ExitCode.Should().Be(0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var kind = doc.RootElement.GetProperty("kinds").EnumerateArray().Should().ContainSingle().Subject;
        kind.GetProperty("kind").GetString().Should().Be("config");
        kind.GetProperty("outcome").GetString().Should().Be("succeeded");
        var artifact = kind.GetProperty("artifacts").EnumerateArray().Should().ContainSingle().Subject.GetString();
        artifact.Should().MatchRegex(@"^config_\d{8}_\d{6}\.tar\.gz$");
        File.Exists(Path.Combine(_root, "config", artifact!)).Should().BeTrue();
        kind.GetProperty("bytes").GetInt64().Should().BePositive();
        doc.RootElement.GetProperty("s3").ValueKind.Should().Be(JsonValueKind.Null, "S3 is disabled");

        // A failing kind: the same document, exit 1 and the one line on stderr.
        var empty = Directory.CreateDirectory(Path.Combine(_files, "empty")).FullName;
        var failed = await VelozBackupBinary.RunAsync(["backup", "config", "--json", $"--Backup:LocalRoot={_root}", $"--Backup:Config:Root={empty}"]);
        failed.ExitCode.Should().Be(1);
        using var failedDoc = JsonDocument.Parse(failed.StdOut);
        failedDoc.RootElement.GetProperty("kinds")[0].GetProperty("outcome").GetString().Should().Be("failed");
        failed.ErrorLines.Should().ContainSingle().Which.Should().StartWith("veloz-backup: backup config failed: ");
    }

    [Fact]
    public async Task Import_json_names_what_was_stored_and_why_latest_will_not_pick_it()
    {
        var newer = Path.Combine(_files, "config_20261201_000000.tar.gz");
        var older = Path.Combine(_files, "config_20250101_000000.tar.gz");
        await TestArchives.WriteTarGzAsync(newer);
        await TestArchives.WriteTarGzAsync(older);

        var r = await VelozBackupBinary.RunAsync(["import", "config", newer, "--json", $"--Backup:LocalRoot={_root}"]);
        r.ExitCode.Should().Be(0, r.StdErr);
        using (var doc = JsonDocument.Parse(r.StdOut))
        {
            doc.RootElement.GetProperty("kind").GetString().Should().Be("config");
            doc.RootElement.GetProperty("name").GetString().Should().Be("config_20261201_000000.tar.gz");
            var path = doc.RootElement.GetProperty("path").GetString()!;
            path.Should().Be(Path.Combine(_root, "config", "config_20261201_000000.tar.gz"));
            doc.RootElement.GetProperty("bytes").GetInt64().Should().Be(new FileInfo(newer).Length);
            doc.RootElement.GetProperty("sha256").GetString().Should().Be((await File.ReadAllTextAsync(path + ".sha256"))[..64]);
            doc.RootElement.GetProperty("warning").ValueKind.Should().Be(JsonValueKind.Null);
        }

        var old = await VelozBackupBinary.RunAsync(["import", "config", older, "--json", $"--Backup:LocalRoot={_root}"]);
        old.ExitCode.Should().Be(0, old.StdErr);
        using var oldDoc = JsonDocument.Parse(old.StdOut);
        oldDoc.RootElement.GetProperty("warning").GetString().Should().StartWith("latest will never pick config/config_20250101_000000.tar.gz");
        old.ErrorLines.Should().ContainSingle().Which.Should().StartWith("veloz-backup: warning: latest will never pick");
    }

    [Fact]
    public async Task Replicate_json_has_the_fields_of_backups_s3_and_the_error_when_s3_is_down()
    {
        var file = Path.Combine(_files, "config_20261201_000000.tar.gz");
        await TestArchives.WriteTarGzAsync(file);
        (await VelozBackupBinary.RunAsync(["import", "config", file, $"--Backup:LocalRoot={_root}"])).ExitCode.Should().Be(0);
        await using var s3 = await S3rverServer.StartNewAsync();
        var bucket = "json-" + Guid.NewGuid().ToString("N")[..8];
        await s3.CreateBucketAsync(bucket);
        string[] settings =
        [
            $"--Backup:LocalRoot={_root}", "--Backup:S3:Enabled=true", $"--Backup:S3:Bucket={bucket}", $"--Backup:S3:ServiceUrl={s3.ServiceUrl}",
            "--Backup:S3:ForcePathStyle=true", "--Backup:S3:ChunkedUpload=false", "--Backup:S3:MaxRetries=1", "--Backup:S3:Encrypt=false",
        ];

        // Imported while S3 was off, so not queued: --reconcile finds that S3 lacks it.
        var r = await VelozBackupBinary.RunAsync(["replicate", "--reconcile", "--json", .. settings]);
        r.ExitCode.Should().Be(0, r.StdErr);
        using (var doc = JsonDocument.Parse(r.StdOut))
        {
            doc.RootElement.GetProperty("reconciled").GetBoolean().Should().BeTrue();
            doc.RootElement.GetProperty("replicated").GetInt32().Should().Be(1);
            doc.RootElement.GetProperty("failed").GetInt32().Should().Be(0);
            doc.RootElement.GetProperty("backlogArtifacts").GetInt32().Should().Be(0);
            doc.RootElement.GetProperty("error").ValueKind.Should().Be(JsonValueKind.Null);
        }

        s3.Stop();
        var down = await VelozBackupBinary.RunAsync(["replicate", "--reconcile", "--json", .. settings]);
        down.ExitCode.Should().Be(1);
        down.ErrorLines.Should().ContainSingle();
        using var downDoc = JsonDocument.Parse(down.StdOut);
        downDoc.RootElement.GetProperty("reconciled").GetBoolean().Should().BeTrue();
        downDoc.RootElement.GetProperty("error").GetString().Should().NotBeNullOrEmpty();
    }

    [Fact]
    public async Task Prune_json_lists_what_would_go()
    {
        foreach (var name in new[] { "config_20250101_000000.tar.gz", "config_20261201_000000.tar.gz" })
        {
            await TestArchives.WriteTarGzAsync(Path.Combine(_files, name));
            (await VelozBackupBinary.RunAsync(["import", "config", Path.Combine(_files, name), $"--Backup:LocalRoot={_root}"])).ExitCode.Should().Be(0);
        }

        var r = await VelozBackupBinary.RunAsync(["prune", "--dry-run", "--json", $"--Backup:LocalRoot={_root}"]);

        r.ExitCode.Should().Be(0, r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        doc.RootElement.GetProperty("dryRun").GetBoolean().Should().BeTrue();
        var deleted = doc.RootElement.GetProperty("deleted").EnumerateArray().Should().ContainSingle().Subject;
        deleted.GetProperty("kind").GetString().Should().Be("config");
        deleted.GetProperty("target").GetString().Should().Be("local");
        deleted.GetProperty("name").GetString().Should().Be("config_20250101_000000.tar.gz");
        deleted.GetProperty("time").GetString().Should().Be("2025-01-01T00:00:00Z");
        doc.RootElement.GetProperty("bytes").GetInt64().Should().Be(deleted.GetProperty("size").GetInt64());
        doc.RootElement.GetProperty("locked").GetArrayLength().Should().Be(0);
        doc.RootElement.GetProperty("refusals").GetArrayLength().Should().Be(0);
        doc.RootElement.GetProperty("errors").GetArrayLength().Should().Be(0);
        File.Exists(Path.Combine(_root, "config", "config_20250101_000000.tar.gz")).Should().BeTrue("a dry run deletes nothing");
    }
}
