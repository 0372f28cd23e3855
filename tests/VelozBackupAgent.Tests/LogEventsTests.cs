using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using VelozBackupAgent.Storage;

namespace VelozBackupAgent.Tests;

/// <summary>
/// The log event ids of <see cref="LogEvents"/>: one id names one message. Read from the compiled assemblies (the
/// <c>[LoggerMessage]</c> attributes stay in the metadata) and from the sources (that the id is the table's constant,
/// not a literal that happens to match, and that nothing logs around the table).
/// </summary>
public sealed partial class LogEventsTests
{
    private static readonly Assembly[] Assemblies =
    [
        typeof(LogEvents).Assembly,             // VelozBackupAgent.Storage
        typeof(BackupKinds).Assembly,           // VelozBackupAgent
        Assembly.Load("veloz-backup"),          // the host (its types are internal to the tests)
    ];

    private static List<(string Method, int EventId)> Messages() =>
    [
        .. from assembly in Assemblies
           from type in assembly.GetTypes()
           from method in type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly)
           let attribute = method.GetCustomAttribute<LoggerMessageAttribute>()
           where attribute is not null
           select ($"{type.FullName}.{method.Name}", attribute.EventId),
    ];

    private static List<(string Name, int Value)> TableConstants() =>
    [
        .. from area in typeof(LogEvents).GetNestedTypes(BindingFlags.NonPublic | BindingFlags.Public)
           from field in area.GetFields(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static)
           where field.IsLiteral && field.FieldType == typeof(int)
           select ($"{area.Name}.{field.Name}", (int)field.GetRawConstantValue()!),
    ];

    [Fact]
    public void Every_message_of_the_three_assemblies_is_found()
    {
        // Guards the reflection itself: if the attributes were no longer in the metadata, every other test here
        // would pass on an empty list.
        Messages().Should().HaveCountGreaterThan(100);
        Messages().Select(m => m.Method).Should().Contain(m => m.StartsWith("VelozBackupAgent.Storage.S3.", StringComparison.Ordinal))
            .And.Contain(m => m.StartsWith("VelozBackupAgent.Host.", StringComparison.Ordinal))
            .And.Contain(m => m.StartsWith("VelozBackupAgent.Sources.", StringComparison.Ordinal));
    }

    [Fact]
    public void Every_message_has_an_event_id()
    {
        // LoggerMessageAttribute.EventId is -1 when the attribute names none.
        Messages().Where(m => m.EventId < 0).Select(m => m.Method).Should().BeEmpty("every [LoggerMessage] takes its id from LogEvents");
    }

    [Fact]
    public void No_two_messages_share_an_event_id()
    {
        var duplicates = Messages().Where(m => m.EventId >= 0).GroupBy(m => m.EventId).Where(g => g.Count() > 1)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(m => m.Method))}");
        duplicates.Should().BeEmpty();
    }

    [Fact]
    public void The_table_has_no_duplicate_and_every_id_in_it_is_used_by_one_message()
    {
        var table = TableConstants();
        table.Should().HaveCountGreaterThan(100);
        table.GroupBy(c => c.Value).Where(g => g.Count() > 1).Select(g => $"{g.Key}: {string.Join(", ", g.Select(c => c.Name))}")
            .Should().BeEmpty("two constants with one value would let two messages share an id");

        var used = Messages().Select(m => m.EventId).ToHashSet();
        table.Where(c => !used.Contains(c.Value)).Select(c => c.Name).Should().BeEmpty("an id in the table names a message");
        var known = table.Select(c => c.Value).ToHashSet();
        Messages().Where(m => !known.Contains(m.EventId)).Select(m => $"{m.EventId}: {m.Method}").Should().BeEmpty("every id comes from LogEvents");
    }

    [Fact]
    public void The_sources_name_the_table_and_do_not_log_around_it()
    {
        var src = Path.Combine(RepositoryRoot(), "src");
        var attributes = 0;
        var problems = new List<string>();
        foreach (var file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories).Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)))
        {
            var lines = File.ReadAllLines(file);
            for (var i = 0; i < lines.Length; i++)
            {
                var where = $"{Path.GetRelativePath(src, file)}:{i + 1}";
                if (lines[i].Contains("LoggerMessage(", StringComparison.Ordinal))
                {
                    attributes++;
                    if (!TableReference().IsMatch(lines[i]))
                    {
                        problems.Add($"{where}: [LoggerMessage] without a LogEvents id: {lines[i].Trim()}");
                    }
                }

                if (DirectLogCall().IsMatch(lines[i]))
                {
                    problems.Add($"{where}: logs without a [LoggerMessage] (and so without a LogEvents id): {lines[i].Trim()}");
                }
            }
        }

        attributes.Should().Be(Messages().Count, "every [LoggerMessage] in the sources is one in the assemblies");
        problems.Should().BeEmpty();
    }

    [GeneratedRegex(@"LoggerMessage\((EventId\s*=\s*)?LogEvents\.[A-Za-z0-9]+\.[A-Za-z0-9]+\s*,")]
    private static partial Regex TableReference();

    [GeneratedRegex(@"\.(Log|LogTrace|LogDebug|LogInformation|LogWarning|LogError|LogCritical)\(|LoggerMessage\.Define")]
    private static partial Regex DirectLogCall();

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "VelozBackupAgent.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("the repository root (VelozBackupAgent.sln) is not above the test assembly");
    }
}
