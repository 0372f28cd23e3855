namespace VelozBackupAgent.Tests.Sources.Wal;

/// <summary>
/// A clock the test moves by hand, wall time and monotonic timestamps alike, and the wall clock alone
/// (<see cref="StepWallClock"/>): kept beside Microsoft's FakeTimeProvider because that one derives its timestamps
/// from its wall clock, so it cannot step the system clock without moving the monotonic one the settle rule measures.
/// </summary>
internal sealed class SteppedClock(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;
    private long _ticks;

    public override DateTimeOffset GetUtcNow() => _now;

    public override long GetTimestamp() => _ticks;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public void Advance(TimeSpan by)
    {
        _now += by;
        _ticks += by.Ticks;
    }

    /// <summary>Moves the wall clock only, as when the system clock is stepped.</summary>
    public void StepWallClock(TimeSpan by) => _now += by;
}
