using Serilog.Events;
using Serilog.Formatting;
using Serilog.Formatting.Display;

namespace VelozBackupAgent.Host.Daemon;

/// <summary>
/// Console lines for journald (stdout of a systemd service): no timestamp (the journal has its own), no
/// colours, and every line — an exception's stack trace too — prefixed with its syslog priority
/// (<c>&lt;3&gt;</c> error … <c>&lt;7&gt;</c> debug, sd-daemon(3)), so <c>journalctl -p warning</c> and the
/// journal's colouring work.
/// </summary>
internal sealed class JournalFormatter : ITextFormatter
{
    private readonly MessageTemplateTextFormatter _inner = new("{Message:lj}{NewLine}{Exception}", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>True when stdout/stderr go to the journal (systemd sets <c>JOURNAL_STREAM</c> for them).</summary>
    public static bool UnderJournal => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("JOURNAL_STREAM"));

    /// <summary>The syslog priority of a Serilog level.</summary>
    public static int Priority(LogEventLevel level) => level switch
    {
        LogEventLevel.Fatal => 2,
        LogEventLevel.Error => 3,
        LogEventLevel.Warning => 4,
        LogEventLevel.Information => 6,
        _ => 7,
    };

    public void Format(LogEvent logEvent, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(logEvent);
        ArgumentNullException.ThrowIfNull(output);
        using var buffer = new StringWriter(System.Globalization.CultureInfo.InvariantCulture);
        _inner.Format(logEvent, buffer);
        var prefix = $"<{Priority(logEvent.Level)}>";
        foreach (var line in buffer.ToString().Split('\n'))
        {
            var text = line.TrimEnd('\r');
            if (text.Length > 0)
            {
                output.Write(prefix);
                output.Write(text);
                output.Write('\n');
            }
        }
    }
}
