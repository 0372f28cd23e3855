using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace VelozBackupAgent.Configuration;

/// <summary>
/// Values the binder cannot convert to their property's type, found before binding and described with the key,
/// the value and the format that is accepted (<c>Backup:StopGrace is not a duration: 'abc' (write hh:mm:ss or
/// d.hh:mm:ss …)</c>). The binder itself stops at the first such value and says only "to type 'System.TimeSpan'".
/// </summary>
internal static class ConfigValueProblems
{
    /// <summary>Every value under <paramref name="section"/> that does not convert to its property of <paramref name="type"/>.</summary>
    public static IEnumerable<string> Find(IConfigurationSection section, Type type) => FindByKey(section, type).Select(f => f.Problem);

    /// <summary>As <see cref="Find"/>, with the full key (<c>Backup:Wal:Retention</c>) of each value that does not convert.</summary>
    public static IEnumerable<(string Key, string Problem)> FindByKey(IConfigurationSection section, Type type)
    {
        ArgumentNullException.ThrowIfNull(section);
        var properties = type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(pr => pr.GetIndexParameters().Length == 0)
            .GroupBy(pr => pr.Name, StringComparer.OrdinalIgnoreCase)
            .ToDictionary(g => g.Key, g => g.First(), StringComparer.OrdinalIgnoreCase);
        foreach (var child in section.GetChildren())
        {
            if (!properties.TryGetValue(child.Key, out var property))
            {
                continue; // unknown keys are reported by BackupOptionsValidator.UnknownKeys
            }

            var propertyType = property.PropertyType;
            var t = Nullable.GetUnderlyingType(propertyType) ?? propertyType;
            if (IsList(t, out var element))
            {
                foreach (var item in child.GetChildren())
                {
                    if (item.Value is { } v && IsScalar(element) && !Converts(child, item.Key, element))
                    {
                        yield return (item.Path, Describe(item.Path, v, element));
                    }
                }

                continue;
            }

            if (IsScalar(t))
            {
                if (child.Value is { } value && !Converts(section, child.Key, propertyType))
                {
                    yield return (child.Path, Describe(child.Path, value, t));
                }

                continue;
            }

            if (child.Value is { Length: > 0 } scalar && !child.GetChildren().Any())
            {
                yield return (child.Path, $"{child.Path} is a group of settings, not a value: '{scalar}' (write it as \"{child.Key}\": {{ … }} in appsettings.json, or set its keys, e.g. --{child.Path}:<Key>=…)");
                continue;
            }

            foreach (var problem in FindByKey(child, t))
            {
                yield return problem;
            }
        }
    }

    /// <summary>The accepted format of a value of <paramref name="type"/>, for messages.</summary>
    internal static string Describe(string key, string value, Type type)
    {
        if (type == typeof(TimeSpan))
        {
            return $"{key} is not a duration: '{value}' (write hh:mm:ss or d.hh:mm:ss, e.g. 00:00:20 for 20 seconds or 7.00:00:00 for 7 days)";
        }

        if (type == typeof(bool))
        {
            return $"{key} must be true or false: '{value}'";
        }

        if (type.IsEnum)
        {
            return $"{key} must be one of {string.Join(", ", Enum.GetNames(type))}: '{value}'";
        }

        if (type == typeof(int) || type == typeof(long) || type == typeof(short) || type == typeof(uint) || type == typeof(ulong) || type == typeof(ushort) || type == typeof(byte))
        {
            var min = type.GetField("MinValue")!.GetValue(null);
            var max = type.GetField("MaxValue")!.GetValue(null);
            return $"{key} must be a whole number (from {min} to {max}): '{value}'";
        }

        if (type == typeof(double) || type == typeof(float) || type == typeof(decimal))
        {
            return $"{key} must be a number such as 1.5 (a '.' before the decimals): '{value}'";
        }

        if (type == typeof(Uri))
        {
            return $"{key} must be a URL such as http://127.0.0.1:9464: '{value}'";
        }

        if (type == typeof(DateTimeOffset) || type == typeof(DateTime))
        {
            return $"{key} must be a time in ISO 8601 such as 2026-02-14T12:00:00Z: '{value}'";
        }

        return $"{key} has a value that is not a {type.Name}: '{value}'";
    }

    /// <summary>The binder's own conversion (TypeConverter, invariant culture), so the verdict is exactly the binder's.</summary>
    private static bool Converts(IConfiguration parent, string key, Type type)
    {
        try
        {
            _ = parent.GetValue(type, key);
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static bool IsList(Type t, out Type element)
    {
        element = typeof(object);
        if (t.IsGenericType && t.GetGenericTypeDefinition() is var d && (d == typeof(IList<>) || d == typeof(List<>) || d == typeof(IReadOnlyList<>) || d == typeof(ICollection<>)))
        {
            element = t.GetGenericArguments()[0];
            return true;
        }

        if (t.IsArray)
        {
            element = t.GetElementType()!;
            return true;
        }

        return false;
    }

    private static bool IsScalar(Type t)
    {
        t = Nullable.GetUnderlyingType(t) ?? t;
        return t.IsPrimitive || t.IsEnum || t == typeof(string) || t == typeof(TimeSpan) || t == typeof(Uri) || t == typeof(decimal)
               || t == typeof(DateTimeOffset) || t == typeof(DateTime) || t == typeof(Guid);
    }
}
