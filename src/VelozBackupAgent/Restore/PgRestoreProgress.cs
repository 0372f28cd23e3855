using System.Globalization;

namespace VelozBackupAgent.Restore;

/// <summary>Progress of a step made of objects (pg_restore's TOC entries): <paramref name="Done"/> of <paramref name="Total"/>.</summary>
/// <param name="Step">What is being done, e.g. <c>pg_restore veloz_….dump</c>.</param>
/// <param name="Done">Objects restored so far.</param>
/// <param name="Total">Objects in all.</param>
public sealed record ObjectProgress(string Step, int Done, int Total);

/// <summary>
/// Counts pg_restore's progress: the total from its table of contents (<c>pg_restore -l</c>: one line
/// <c>ID; OID OID TYPE …</c> per entry it will restore), done from its <c>--verbose</c> stderr lines. Serially each
/// entry prints one action line (<c>creating TABLE "public.orders"</c>, <c>processing data for table …</c>,
/// <c>executing SEQUENCE SET …</c>); with <c>--jobs</c> it names entries by id (<c>processing item 214 …</c> before the
/// parallel loop, <c>finished item 3354 …</c> in it) and repeats the action lines, which then are not counted.
/// </summary>
public sealed class PgRestoreCounter
{
    private static readonly string[] ChatterPrefixes =
    [
        "connecting ", "creating ", "processing ", "executing ", "launching ", "finished ", "entering ", "restoring ",
        "setting owner", "dropping ", "implied data-only", "disabling triggers", "enabling triggers", "reconnecting",
        "transferring dependency", "skipping ",
    ];

    private readonly HashSet<int> _toc;
    private readonly HashSet<int> _seen = [];
    private bool _byId;
    private int _serial;

    public PgRestoreCounter(IEnumerable<int> toc) => _toc = [.. toc];

    /// <summary>The entries the TOC lists.</summary>
    public int Total => _toc.Count;

    /// <summary>Entries restored so far (never more than <see cref="Total"/>).</summary>
    public int Done => Math.Min(Total, _byId ? _seen.Count : _serial);

    /// <summary>The entry ids of a <c>pg_restore -l</c> listing (comment lines start with <c>;</c>).</summary>
    public static IReadOnlyList<int> ParseToc(string listing)
    {
        ArgumentNullException.ThrowIfNull(listing);
        var ids = new List<int>();
        foreach (var raw in listing.Split('\n'))
        {
            var line = raw.Trim();
            var semicolon = line.IndexOf(';', StringComparison.Ordinal);
            if (semicolon > 0 && int.TryParse(line.AsSpan(0, semicolon), NumberStyles.None, CultureInfo.InvariantCulture, out var id))
            {
                ids.Add(id);
            }
        }

        return ids;
    }

    /// <summary>
    /// Takes one stderr line. True when it was verbose chatter (counted or not), which is then neither logged nor
    /// kept for the error message; false for anything else (errors, warnings, details), which is.
    /// </summary>
    public bool Observe(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        const string Prefix = "pg_restore: ";
        if (!line.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var text = line.AsSpan(Prefix.Length);
        var chatter = false;
        foreach (var p in ChatterPrefixes)
        {
            chatter |= text.StartsWith(p, StringComparison.Ordinal);
        }

        if (!chatter)
        {
            return false;
        }

        if (Id(text, "processing item ") is { } started)
        {
            _byId = true;
            Mark(started);
        }
        else if (Id(text, "finished item ") is { } finished)
        {
            _byId = true;
            Mark(finished);
        }
        else if (text.StartsWith("launching item ", StringComparison.Ordinal) || text.StartsWith("entering main parallel loop", StringComparison.Ordinal))
        {
            _byId = true;
        }
        else if (!_byId && (text.StartsWith("creating ", StringComparison.Ordinal) || text.StartsWith("processing data for table ", StringComparison.Ordinal) ||
                            text.StartsWith("executing ", StringComparison.Ordinal)))
        {
            _serial++;
        }

        return true;
    }

    private void Mark(int id)
    {
        if (_toc.Contains(id))
        {
            _seen.Add(id);
        }
    }

    private static int? Id(ReadOnlySpan<char> text, string prefix)
    {
        if (!text.StartsWith(prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var rest = text[prefix.Length..];
        var end = rest.IndexOf(' ');
        return int.TryParse(end < 0 ? rest : rest[..end], NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : null;
    }
}
