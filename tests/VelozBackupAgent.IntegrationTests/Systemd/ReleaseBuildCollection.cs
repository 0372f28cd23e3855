namespace VelozBackupAgent.IntegrationTests.Systemd;

/// <summary>
/// Tests that build the agent in Release (the install script's publish, the demo) share obj/Release:
/// they run one at a time.
/// </summary>
[CollectionDefinition(Name)]
public sealed class ReleaseBuildCollection
{
    public const string Name = "Release builds of the agent";
}
