namespace VelozBackupAgent.Storage;

/// <summary>A store operation failed; the message is meant for the operator, in one line.</summary>
public class StoreException : Exception
{
    public StoreException() { }
    public StoreException(string message) : base(message) { }
    public StoreException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>True when retrying cannot help (missing bucket, access denied, conflict, corruption).</summary>
    public virtual bool IsPermanent => true;
}

/// <summary>A transient failure (network, throttling, server error): worth retrying later.</summary>
public sealed class StoreUnavailableException : StoreException
{
    public StoreUnavailableException() { }
    public StoreUnavailableException(string message) : base(message) { }
    public StoreUnavailableException(string message, Exception innerException) : base(message, innerException) { }

    public override bool IsPermanent => false;
}

/// <summary>The artifact does not exist in the store.</summary>
public sealed class ArtifactNotFoundException : StoreException
{
    public ArtifactNotFoundException() { }
    public ArtifactNotFoundException(string message) : base(message) { }
    public ArtifactNotFoundException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>An artifact of that name already exists with different content; nothing was overwritten.</summary>
public sealed class ArtifactConflictException : StoreException
{
    public ArtifactConflictException() { }
    public ArtifactConflictException(string message) : base(message) { }
    public ArtifactConflictException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>Stored bytes do not match their checksum (corruption, tampering, or a store that kept other bytes than were sent).</summary>
public sealed class ArtifactIntegrityException : StoreException
{
    public ArtifactIntegrityException() { }
    public ArtifactIntegrityException(string message) : base(message) { }
    public ArtifactIntegrityException(string message, Exception innerException) : base(message, innerException) { }
}
