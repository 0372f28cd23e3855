using VelozBackupAgent.Catalog;
using VelozBackupAgent.Sources.Database;

namespace VelozBackupAgent.Retention;

/// <summary>
/// Retention of the cluster globals stored beside each dump (<c>globals_YYYYMMDD_HHMMSS[-N].sql.gpg</c>): a globals
/// artifact is not a series of its own, it goes with the dump of the same time and sequence. So a globals file is
/// never kept while its dump goes (the "newest of a series is kept" rule would otherwise keep the newest globals
/// for ever after its dump aged out), and a dump that is kept — the newest, however old — keeps its globals. A
/// globals file whose dump is gone (deleted by hand) no longer pairs with anything a restore would pick, and goes
/// by its own age.
/// </summary>
internal static class DumpCompanions
{
    /// <summary>The globals artifacts of the database kind, and everything else.</summary>
    public static (List<CatalogEntry> Companions, List<CatalogEntry> Others) Split(IReadOnlyList<CatalogEntry> entries)
    {
        var companions = new List<CatalogEntry>();
        var rest = new List<CatalogEntry>();
        foreach (var e in entries)
        {
            (e.Kind == BackupKinds.Database && e.Time is not null && ClusterGlobals.IsGlobalsName(e.Name) ? companions : rest).Add(e);
        }

        return (companions, rest);
    }

    /// <summary>The companions to delete, given what retention deletes of the rest.</summary>
    public static IEnumerable<CatalogEntry> ToDelete(IReadOnlyList<CatalogEntry> companions, IReadOnlyList<CatalogEntry> rest, IReadOnlySet<CatalogEntry> deleting, DateTimeOffset cutoff)
    {
        foreach (var companion in companions)
        {
            var dumps = rest.Where(e => e.Time == companion.Time && e.Sequence == companion.Sequence && e.Name.EndsWith(".dump", StringComparison.Ordinal)).ToList();
            if (dumps.Count > 0 ? dumps.All(deleting.Contains) : companion.Time < cutoff)
            {
                yield return companion;
            }
        }
    }
}
