namespace VelozBackupAgent.Tests.Sources.Wal;

/// <summary>
/// A clock the test moves by hand, wall time and monotonic timestamps alike (the shared FakeTimeProvider
/// only fakes the wall clock; the settle rule also measures how long a file stayed unchanged).
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
