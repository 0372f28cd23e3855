using System.Reflection;
using System.Runtime.Versioning;
using VelozBackupAgent.Storage;
using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Tests.Platform;

/// <summary>
/// Everything OS-specific stays in one place: every native call of the store layer and the domain is declared in
/// <c>VelozBackupAgent.Storage.Platform</c>, on a class marked with the systems it runs on, so the platform-compatibility
/// analyzer (CA1416, an error in this build) refuses an unguarded call of it anywhere.
/// </summary>
public sealed class PlatformBoundaryTests
{
    private const BindingFlags All = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly;

    public static TheoryData<string> Assemblies => new() { typeof(IArtifactStore).Assembly.GetName().Name!, typeof(BackupKinds).Assembly.GetName().Name! };

    [Theory]
    [MemberData(nameof(Assemblies))]
    public void Every_native_call_is_declared_in_Platform_on_a_class_marked_with_its_systems(string assemblyName)
    {
        var assembly = Assembly.Load(new AssemblyName(assemblyName));
        var natives = assembly.GetTypes()
            .SelectMany(t => t.GetMethods(All).Where(m => (m.Attributes & MethodAttributes.PinvokeImpl) != 0).Select(m => (Type: Outermost(t), Method: m)))
            .ToList();

        var misplaced = natives
            .Where(n => n.Type.Namespace != typeof(FileSync).Namespace || n.Type.GetCustomAttributes<SupportedOSPlatformAttribute>().FirstOrDefault() is null)
            .Select(n => $"{n.Type.FullName}.{n.Method.Name}");
        misplaced.Should().BeEmpty();
        if (assembly == typeof(FileSync).Assembly)
        {
            natives.Select(n => n.Type.Name).Distinct().Should().BeEquivalentTo("LibC", "Kernel32");
        }
    }

    [Fact]
    public void The_store_layer_has_its_native_calls_and_the_linux_only_ones_are_marked_linux()
    {
        var libc = typeof(FileSync).Assembly.GetType("VelozBackupAgent.Storage.Platform.LibC", throwOnError: true)!;
        libc.GetCustomAttributes<SupportedOSPlatformAttribute>().Select(a => a.PlatformName).Should().BeEquivalentTo("linux", "macos", "freebsd");
        foreach (var name in new[] { "Statx", "StatxBuffers", "RenameAt2", "Fdatasync", "SyncFileRange" })
        {
            libc.GetMethod(name, All)!.GetCustomAttributes<SupportedOSPlatformAttribute>().Select(a => a.PlatformName).Should().Equal(["linux"], name);
        }

        var kernel32 = typeof(FileSync).Assembly.GetType("VelozBackupAgent.Storage.Platform.Kernel32", throwOnError: true)!;
        kernel32.GetCustomAttributes<SupportedOSPlatformAttribute>().Select(a => a.PlatformName).Should().Equal("windows");
    }

    private static Type Outermost(Type type)
    {
        while (type.DeclaringType is { } outer)
        {
            type = outer;
        }

        return type;
    }
}
