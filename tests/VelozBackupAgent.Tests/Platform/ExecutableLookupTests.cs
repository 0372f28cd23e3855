using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Tests.Platform;

/// <summary>How a child's program is found: PATH and PATHEXT by the rules of each OS, with the file system passed in.</summary>
public sealed class ExecutableLookupTests
{
    private static Func<string, bool> Files(params string[] paths) => p => paths.Contains(p, StringComparer.Ordinal);

    [Fact]
    public void On_Linux_a_bare_name_is_searched_on_PATH_in_order_and_the_current_directory_never()
    {
        var exists = Files("/usr/lib/postgresql/15/bin/pg_dump", "/usr/bin/pg_dump", "./pg_dump", "bin/pg_dump");
        ExecutableLookup.Resolve("pg_dump", "/usr/local/bin:/usr/lib/postgresql/15/bin:/usr/bin", null, windows: false, exists)
            .Should().Be("/usr/lib/postgresql/15/bin/pg_dump");
        ExecutableLookup.Resolve("pg_dump", ".:bin::/usr/bin", null, windows: false, exists).Should().Be("/usr/bin/pg_dump");
        ExecutableLookup.Resolve("pg_dump", "/opt", null, windows: false, exists).Should().BeNull();
        ExecutableLookup.Resolve("pg_dump.exe", "/usr/bin", ".EXE", windows: false, exists).Should().BeNull();
    }

    [Fact]
    public void On_Linux_no_PATH_means_the_standard_directories()
    {
        ExecutableLookup.Resolve("gpg", null, null, windows: false, Files("/usr/bin/gpg")).Should().Be("/usr/bin/gpg");
    }

    [Fact]
    public void On_Linux_a_path_is_taken_as_given_when_it_exists()
    {
        ExecutableLookup.Resolve("/usr/lib/postgresql/15/bin/pg_dump", "", null, windows: false, Files("/usr/lib/postgresql/15/bin/pg_dump"))
            .Should().Be("/usr/lib/postgresql/15/bin/pg_dump");
        ExecutableLookup.Resolve("/usr/lib/postgresql/15/bin/pg_dump", "", null, windows: false, Files()).Should().BeNull();
    }

    [Fact]
    public void On_Windows_PATH_is_split_on_semicolons_and_a_name_without_extension_tries_PATHEXT_in_order()
    {
        var exists = Files(@"C:\Program Files\PostgreSQL\15\bin\pg_dump.exe", @"C:\Tools\gpg.bat", @"C:\Tools\gpg.exe");
        const string Path = @"C:\Windows\system32;""C:\Program Files\PostgreSQL\15\bin"";C:\Tools\";
        ExecutableLookup.Resolve("pg_dump", Path, ".COM;.EXE;.BAT;.CMD", windows: true, exists)
            .Should().Be(@"C:\Program Files\PostgreSQL\15\bin\pg_dump.exe");
        ExecutableLookup.Resolve("gpg", Path, ".COM;.EXE;.BAT;.CMD", windows: true, exists).Should().Be(@"C:\Tools\gpg.exe");
        ExecutableLookup.Resolve("gpg", Path, ".BAT;.EXE", windows: true, exists).Should().Be(@"C:\Tools\gpg.bat");
        ExecutableLookup.Resolve("gpg.exe", Path, ".BAT", windows: true, exists).Should().Be(@"C:\Tools\gpg.exe");
        ExecutableLookup.Resolve("gpg", Path, null, windows: true, exists).Should().Be(@"C:\Tools\gpg.exe", "PATHEXT unset means Windows's default .COM;.EXE;.BAT;.CMD");
    }

    [Fact]
    public void On_Windows_relative_PATH_entries_are_skipped_and_a_bare_name_without_a_listed_extension_is_not_run()
    {
        var exists = Files(@".\pg_dump.exe", @"bin\pg_dump.exe", @"C:\pg\pg_dump");
        ExecutableLookup.Resolve("pg_dump", @".;bin;C:\pg", ".EXE", windows: true, exists).Should().BeNull();
        ExecutableLookup.Resolve("pg_dump", @"\\server\share\pg", ".EXE", windows: true, Files(@"\\server\share\pg\pg_dump.exe"))
            .Should().Be(@"\\server\share\pg\pg_dump.exe");
    }
}
