namespace VelozBackupAgent.Configuration;

/// <summary>
/// <c>Backup:Cluster</c>: several agents (one per node) sharing one PostgreSQL. Off by default: one node keeps the
/// in-memory scheduler and needs nothing. On, the database-wide jobs (the dump with its globals, the PITR base
/// backup, the restore drill) run in Quartz's clustered job store on that PostgreSQL, so each fire runs on exactly one
/// node; the node-local kinds (the order WAL, config, secrets) and the pruner stay on each node, under its own
/// <see cref="BackupOptions.NodeName"/> in S3. The WAL receiver runs on every node that has PITR streaming on, but the
/// replication slot takes one consumer: the others wait as standbys and take the slot within seconds of its holder's
/// death.
/// </summary>
public sealed class ClusterOptions
{
    /// <summary>Whether this agent is one of several sharing the database. Default false.</summary>
    public bool Enabled { get; set; }

    /// <summary>
    /// The PostgreSQL schema (in <c>Backup:Database:ConnectionString</c>'s database) that holds Quartz's <c>qrtz_*</c>
    /// tables and the agents' node table; created by the agent when missing (CREATE on the database), or created
    /// beforehand by an administrator. Default <c>veloz_quartz</c>.
    /// </summary>
    public string Schema { get; set; } = "veloz_quartz";

    /// <summary>How often each node records that it is alive (Quartz's check-in and the node table). Between 1 s and 5 min. Default 5 s.</summary>
    public TimeSpan CheckinInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long past a missed check-in the other nodes wait before they treat a node as dead and take over its fires.
    /// Keep it above the longest pause a node can have (a GC, a VM migration): a node that misses check-ins for longer
    /// may see its running job fired again elsewhere. At least twice <see cref="CheckinInterval"/>. Default 20 s.
    /// </summary>
    public TimeSpan CheckinMisfireThreshold { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// The S3 key prefix the database-wide kinds (<c>database</c>: the dumps and their globals; <c>pitr</c>: the base
    /// backups and the server's WAL) go under instead of each node's <see cref="BackupOptions.NodeName"/>, so every node
    /// archives into and restores from one catalog: one timeline of WAL whichever node held the receiver when a segment
    /// was written. The node-local kinds (order WAL, config, secrets) stay under the node's name. Letters, digits,
    /// '.', '-', '_' and inner '/'; the same on every node. Default <c>cluster</c>.
    /// </summary>
    public string SharedPrefix { get; set; } = "cluster";

    /// <summary>How far a node's clock may be from the database server's before it is reported (Quartz clustering needs the nodes within a second). Default 1 s.</summary>
    public TimeSpan MaxClockSkew { get; set; } = TimeSpan.FromSeconds(1);
}
