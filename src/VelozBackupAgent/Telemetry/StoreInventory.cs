using VelozBackupAgent.Catalog;
using VelozBackupAgent.Scheduling;

namespace VelozBackupAgent.Telemetry;

/// <summary>Counts of one kind in one store, as the metrics report them.</summary>
/// <param name="Artifacts">How many artifacts.</param>
/// <param name="Bytes">Their total size.</param>
/// <param name="NewestRun">The time in the name of the newest artifact that marks a run (<see cref="BackupSchedule.MarksRun"/>).</param>
internal readonly record struct KindTotals(int Artifacts, long Bytes, DateTimeOffset? NewestRun);

/// <summary>
/// What one store holds, per kind, kept in memory so a scrape never lists a store: filled by a catalog listing
/// (<see cref="BackupCatalog.ListAsync"/>, at start-up and then on a cadence) and kept exact in between by the
/// events of this process (artifacts stored, uploaded, pruned). Events that arrive while a listing of that
/// kind runs are replayed over its result, so a listing never loses or double-counts them: adding and removing
/// by name is idempotent.
/// </summary>
internal sealed class StoreInventory(string target)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, KindState> _kinds = new(StringComparer.Ordinal);

    /// <summary>local or s3.</summary>
    public string Target { get; } = target;

    /// <summary>True once every kind was listed at least once.</summary>
    public bool Complete
    {
        get
        {
            lock (_gate)
            {
                return BackupKinds.All.All(k => _kinds.TryGetValue(k, out var s) && s.Listed);
            }
        }
    }

    public void Added(string kind, string name, long size)
    {
        lock (_gate)
        {
            var state = State(kind);
            state.Journal?.Add((true, name, size));
            state.Set(kind, name, size);
        }
    }

    public void Removed(string kind, string name)
    {
        lock (_gate)
        {
            var state = State(kind);
            state.Journal?.Add((false, name, 0));
            state.Remove(kind, name);
        }
    }

    /// <summary>A listing of <paramref name="kind"/> starts: events from now on are also journaled.</summary>
    public void BeginListing(string kind)
    {
        lock (_gate)
        {
            State(kind).Journal = [];
        }
    }

    /// <summary>The listing finished: its entries replace what was known, then the journaled events are applied again.</summary>
    public void CompleteListing(string kind, IEnumerable<CatalogEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        lock (_gate)
        {
            var state = State(kind);
            var journal = state.Journal ?? [];
            state.Clear();
            foreach (var entry in entries)
            {
                state.Set(kind, entry.Name, entry.Size);
            }

            foreach (var (added, name, size) in journal)
            {
                if (added)
                {
                    state.Set(kind, name, size);
                }
                else
                {
                    state.Remove(kind, name);
                }
            }

            state.Journal = null;
            state.Listed = true;
        }
    }

    /// <summary>The listing failed: what was known stays.</summary>
    public void AbandonListing(string kind)
    {
        lock (_gate)
        {
            State(kind).Journal = null;
        }
    }

    public KindTotals Totals(string kind)
    {
        lock (_gate)
        {
            var state = State(kind);
            return new KindTotals(state.Sizes.Count, state.Bytes, state.NewestRun);
        }
    }

    private KindState State(string kind)
    {
        if (!_kinds.TryGetValue(kind, out var state))
        {
            state = new KindState();
            _kinds[kind] = state;
        }

        return state;
    }

    private sealed class KindState
    {
        public Dictionary<string, long> Sizes { get; } = new(StringComparer.Ordinal);
        public long Bytes { get; private set; }
        public DateTimeOffset? NewestRun { get; private set; }
        public List<(bool Added, string Name, long Size)>? Journal { get; set; }
        public bool Listed { get; set; }

        public void Set(string kind, string name, long size)
        {
            if (Sizes.TryGetValue(name, out var old))
            {
                Bytes -= old;
            }

            Sizes[name] = size;
            Bytes += size;
            if (BackupSchedule.MarksRun(kind, name, out var time) && (NewestRun is null || time > NewestRun))
            {
                NewestRun = time;
            }
        }

        public void Remove(string kind, string name)
        {
            if (!Sizes.Remove(name, out var old))
            {
                return;
            }

            Bytes -= old;
            if (BackupSchedule.MarksRun(kind, name, out var time) && time == NewestRun)
            {
                // The newest run-marking artifact went (retention keeps it, but a hand may not): look again.
                NewestRun = null;
                foreach (var other in Sizes.Keys)
                {
                    if (BackupSchedule.MarksRun(kind, other, out var t) && (NewestRun is null || t > NewestRun))
                    {
                        NewestRun = t;
                    }
                }
            }
        }

        public void Clear()
        {
            Sizes.Clear();
            Bytes = 0;
            NewestRun = null;
        }
    }
}
