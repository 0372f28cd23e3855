using VelozBackupAgent.Storage.Platform;

namespace VelozBackupAgent.Storage.Local;

/// <summary>
/// Files (0600) and directories (0700) only the agent's user may read, whatever the process umask: the one way the
/// agent creates anything under <c>Backup:LocalRoot</c> (artifacts, <c>.state/**</c>), its log file and its reports.
/// On Windows the same calls give the owner-only ACL that means 0600/0700 there (<see cref="OwnerOnlyAccess"/>).
/// </summary>
/// <remarks>
/// A mode passed to <c>open(2)</c>/<c>mkdir(2)</c> is only an upper bound (the umask takes bits away), and
/// <see cref="Directory.CreateDirectory(string, UnixFileMode)"/> gives the mode to the last directory only, its
/// missing parents get 0777 minus the umask. So every directory made here is made one level at a time and
/// chmod'ed, and every file opened for writing is fchmod'ed through its handle, before anything is written to it.
/// </remarks>
internal static class PrivateFiles
{
    /// <summary>rw------- (0600).</summary>
    public const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>rwx------ (0700).</summary>
    public const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>
    /// Creates <paramref name="path"/> and every missing parent with mode 0700. An existing <paramref name="path"/>
    /// is tightened to 0700 when <paramref name="tighten"/> (the default); existing parents are left as they are.
    /// </summary>
    public static void CreateDirectory(string path, bool tighten = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full))
        {
            if (tighten && !OwnerOnlyAccess.IsDirectoryOwnerOnly(full, DirectoryMode))
            {
                OwnerOnlyAccess.ApplyToDirectory(full, DirectoryMode);
            }

            return;
        }

        var missing = new Stack<string>();
        for (var d = full; !string.IsNullOrEmpty(d) && !Directory.Exists(d); d = Path.GetDirectoryName(d))
        {
            missing.Push(d);
        }

        foreach (var d in missing)
        {
            // The parent exists now: one level, its mode (on Windows its owner-only ACL) set exactly (another
            // process may have made it first).
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(d);
            }
            else
            {
                Directory.CreateDirectory(d, DirectoryMode);
            }

            OwnerOnlyAccess.ApplyToDirectory(d, DirectoryMode);
        }
    }

    /// <summary>
    /// Opens <paramref name="path"/> like <see cref="FileStream"/> does; a file it creates is 0600, and a file opened
    /// for writing is made 0600 (through the handle) before the caller writes to it.
    /// </summary>
    public static FileStream Open(string path, System.IO.FileMode mode, FileAccess access = FileAccess.Write, FileShare share = FileShare.None,
        FileOptions options = FileOptions.None, int bufferSize = 4096)
    {
        var fileOptions = new FileStreamOptions { Mode = mode, Access = access, Share = share, Options = options, BufferSize = bufferSize };
        var creates = mode is System.IO.FileMode.Create or System.IO.FileMode.CreateNew or System.IO.FileMode.OpenOrCreate or System.IO.FileMode.Append;
        if (!OperatingSystem.IsWindows() && creates)
        {
            fileOptions.UnixCreateMode = FileMode;
        }

        var stream = new FileStream(path, fileOptions);
        if ((access & FileAccess.Write) != 0)
        {
            try
            {
                if (!OwnerOnlyAccess.IsFileOwnerOnly(stream, FileMode))
                {
                    OwnerOnlyAccess.ApplyToFile(stream, FileMode);
                }
            }
            catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
            {
                // A file of another user that we may write but not chmod (or re-ACL): its owner chose its mode.
            }
        }

        return stream;
    }

    /// <summary>Creates or truncates <paramref name="path"/> (0600) and writes <paramref name="text"/> (UTF-8, no BOM).</summary>
    public static void WriteAllText(string path, string text, bool flushToDisk = false)
    {
        using var file = Open(path, System.IO.FileMode.Create);
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        file.Write(bytes);
        file.Flush(flushToDisk);
    }

    /// <summary>Creates or truncates <paramref name="path"/> (0600) and writes <paramref name="bytes"/>.</summary>
    public static async Task WriteAllBytesAsync(string path, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken = default)
    {
        var file = Open(path, System.IO.FileMode.Create, options: FileOptions.Asynchronous);
        await using (file.ConfigureAwait(false))
        {
            await file.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Replaces <paramref name="path"/> with <paramref name="text"/> atomically: a 0600 temporary file beside it
    /// (<c>&lt;path&gt;.&lt;pid&gt;.tmp</c>), fsynced, renamed over it. Readers see the old or the new content, never half.
    /// </summary>
    public static void ReplaceAtomically(string path, string text)
    {
        var temp = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{path}.{Environment.ProcessId}.tmp");
        try
        {
            WriteAllText(temp, text, flushToDisk: true);
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            try
            {
                File.Delete(temp);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Best effort: the original exception says what went wrong.
            }

            throw;
        }
    }
}
