namespace VelozBackupAgent.Restore;

/// <summary>
/// A restore that cannot go on, with one line an operator at 3 a.m. understands (what, where, what to do).
/// Whatever the restore was about to replace is untouched when this is thrown before the swap.
/// </summary>
public class RestoreException : Exception
{
    public RestoreException() { }
    public RestoreException(string message) : base(message) { }
    public RestoreException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>An artifact whose bytes do not match their recorded checksum, or an archive that tries to escape its directory.</summary>
public sealed class RestoreIntegrityException : RestoreException
{
    public RestoreIntegrityException() { }
    public RestoreIntegrityException(string message) : base(message) { }
    public RestoreIntegrityException(string message, Exception innerException) : base(message, innerException) { }
}
