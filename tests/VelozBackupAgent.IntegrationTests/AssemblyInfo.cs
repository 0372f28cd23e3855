using System.Runtime.Versioning;

// The integration tests run real PostgreSQL, s3rver, gpg and POSIX tools: Linux only.
[assembly: SupportedOSPlatform("linux")]
