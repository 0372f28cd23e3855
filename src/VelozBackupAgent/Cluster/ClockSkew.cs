namespace VelozBackupAgent.Cluster;

/// <summary>What one more measurement of the clock skew changed: nothing, the node became skewed, or it is back within bounds.</summary>
public enum SkewChange
{
    None,
    Began,
    Ended,
}

/// <summary>
/// The clock-skew judgement of <c>Backup:Cluster:MaxClockSkew</c>: a node's clock against the database server's (every
/// node's common reference), skewed when further off than the bound in either direction. Pure: the measurement's three
/// instants come from the caller, so a test steps a FakeTimeProvider instead of waiting.
/// </summary>
public sealed class ClockSkew(TimeSpan max)
{
    /// <summary>The bound (Backup:Cluster:MaxClockSkew).</summary>
    public TimeSpan Max { get; } = max;

    /// <summary>Whether the last measurement given to <see cref="Observe"/> was past the bound.</summary>
    public bool Skewed { get; private set; }

    /// <summary>
    /// This node's clock minus the server's, in seconds: <paramref name="server"/>'s time against the middle of the
    /// round trip from <paramref name="before"/> to <paramref name="after"/> (this node's clock), so the network adds at
    /// most half of the round trip.
    /// </summary>
    public static double Measure(DateTimeOffset before, DateTimeOffset server, DateTimeOffset after) =>
        (before + ((after - before) / 2) - server).TotalSeconds;

    /// <summary>Whether <paramref name="seconds"/> of skew is past <paramref name="max"/> (either way).</summary>
    public static bool IsSkewed(double seconds, TimeSpan max) => Math.Abs(seconds) > max.TotalSeconds;

    /// <summary>Judges one measurement; says when the node became skewed or came back, so each is logged once.</summary>
    public SkewChange Observe(double seconds)
    {
        var skewed = IsSkewed(seconds, Max);
        var change = skewed == Skewed ? SkewChange.None : skewed ? SkewChange.Began : SkewChange.Ended;
        Skewed = skewed;
        return change;
    }

    /// <summary>The live nodes of <paramref name="view"/> whose last check-in measured a skew past <paramref name="max"/>.</summary>
    public static IReadOnlyList<ClusterNode> SkewedNodes(ClusterView view, TimeSpan max)
    {
        ArgumentNullException.ThrowIfNull(view);
        return [.. view.Nodes.Where(n => n.Alive && IsSkewed(n.SkewSeconds, max))];
    }
}
