using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace VelozBackupAgent.Sources.Database;

/// <summary>One role as a <c>pg_dumpall --globals-only</c> script defines it.</summary>
internal sealed class GlobalsRole
{
    public GlobalsRole(string name, int line)
    {
        Name = name;
        Line = line;
    }

    /// <summary>The role's name, exactly (case and quotes resolved).</summary>
    public string Name { get; }

    /// <summary>The line of its <c>CREATE ROLE</c>.</summary>
    public int Line { get; }

    /// <summary>Attribute keywords in the order written (<c>NOSUPERUSER</c>, <c>INHERIT</c>, <c>LOGIN</c>, …), upper case.</summary>
    public List<string> Flags { get; } = [];

    /// <summary><c>CONNECTION LIMIT n</c>, when given.</summary>
    public int? ConnectionLimit { get; set; }

    /// <summary>The password hash (<c>SCRAM-SHA-256$…</c> or <c>md5…</c>); null when the script has none.</summary>
    public string? PasswordHash { get; set; }

    /// <summary><c>VALID UNTIL '…'</c>, when given.</summary>
    public string? ValidUntil { get; set; }

    /// <summary><c>ALTER ROLE … SET</c> settings, in order.</summary>
    public List<GlobalsSetting> Settings { get; } = [];

    /// <summary><c>COMMENT ON ROLE … IS '…'</c>, when given.</summary>
    public string? Comment { get; set; }

    public bool IsSuperuser => Flags.LastOrDefault(f => f is "SUPERUSER" or "NOSUPERUSER") == "SUPERUSER";

    public bool CanLogin => Flags.LastOrDefault(f => f is "LOGIN" or "NOLOGIN") == "LOGIN";
}

/// <summary><c>ALTER ROLE r SET parameter TO value[, …]</c>.</summary>
/// <param name="Parameter">The setting's name (e.g. <c>search_path</c>, <c>myapp.tenant</c>).</param>
/// <param name="Values">Its value(s) as text; written back as string literals.</param>
internal sealed record GlobalsSetting(string Parameter, IReadOnlyList<string> Values);

/// <summary><c>GRANT role TO member [WITH …]</c>.</summary>
/// <param name="Role">The role granted.</param>
/// <param name="Member">The role it is granted to.</param>
/// <param name="Options">Membership options as written back, e.g. <c>ADMIN OPTION</c> or (PostgreSQL 16+) <c>INHERIT FALSE</c>.</param>
/// <param name="Line">Where it is in the script.</param>
internal sealed record GlobalsMembership(string Role, string Member, IReadOnlyList<string> Options, int Line)
{
    public override string ToString() => $"{Role} TO {Member}";
}

/// <summary><c>GRANT SET|ALTER SYSTEM|ALL ON PARAMETER p[, …] TO grantee [WITH GRANT OPTION]</c> (PostgreSQL 15+).</summary>
internal sealed record GlobalsParameterGrant(IReadOnlyList<string> Privileges, IReadOnlyList<string> Parameters, string Grantee, bool WithGrantOption);

/// <summary>A globals script that is not one <c>pg_dumpall --globals-only</c> writes: its line and why, for one line on the terminal.</summary>
internal sealed class GlobalsScriptException : Exception
{
    public GlobalsScriptException()
    {
    }

    public GlobalsScriptException(string message)
        : base(message)
    {
    }

    public GlobalsScriptException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// A <c>pg_dumpall --globals-only</c> script, parsed into roles, memberships and parameter grants, so a restore
/// never executes the file: it runs statements it builds itself from the parsed names and values
/// (<see cref="GlobalsSql"/>). Only the statement shapes pg_dumpall writes are accepted — <c>CREATE ROLE</c>,
/// <c>ALTER ROLE … WITH …</c> / <c>… SET …</c>, <c>COMMENT ON ROLE</c>, <c>GRANT role TO member</c>,
/// <c>GRANT … ON PARAMETER</c>, the tablespace statements (recorded, never run), <c>SECURITY LABEL</c> (noted,
/// never run), <c>SET</c>/<c>RESET</c>, comments and psql's <c>\restrict</c>/<c>\unrestrict</c> lines (ignored).
/// Anything else — a <c>DROP TABLE</c>, a <c>SELECT</c>, another psql meta-command, an <c>E'…'</c> or dollar-quoted
/// string — refuses the whole file with its line number (<see cref="GlobalsScriptException"/>), before anything
/// could have run.
/// </summary>
internal sealed partial class GlobalsScript
{
    /// <summary>The comment line the agent writes above a dump taken with <c>--no-role-passwords</c>.</summary>
    public const string NoPasswordsMarker = "-- veloz-backup: --no-role-passwords";

    private static readonly HashSet<string> RoleFlags = new(StringComparer.OrdinalIgnoreCase)
    {
        "SUPERUSER", "NOSUPERUSER", "INHERIT", "NOINHERIT", "CREATEROLE", "NOCREATEROLE", "CREATEDB", "NOCREATEDB",
        "LOGIN", "NOLOGIN", "REPLICATION", "NOREPLICATION", "BYPASSRLS", "NOBYPASSRLS",
    };

    private readonly List<GlobalsRole> _roles = [];
    private readonly Dictionary<string, GlobalsRole> _byName = new(StringComparer.Ordinal);
    private readonly List<GlobalsMembership> _memberships = [];
    private readonly List<GlobalsParameterGrant> _parameterGrants = [];
    private readonly List<string> _tablespaces = [];
    private readonly List<string> _notRestored = [];

    private GlobalsScript()
    {
    }

    /// <summary>Roles in the order the script creates them.</summary>
    public IReadOnlyList<GlobalsRole> Roles => _roles;

    public IReadOnlyList<GlobalsMembership> Memberships => _memberships;

    public IReadOnlyList<GlobalsParameterGrant> ParameterGrants => _parameterGrants;

    /// <summary>Tablespaces the script creates; the agent reports them and never creates them.</summary>
    public IReadOnlyList<string> Tablespaces => _tablespaces;

    /// <summary>Accepted statements the agent does not restore (security labels, parameter revokes), one phrase each.</summary>
    public IReadOnlyList<string> NotRestored => _notRestored;

    /// <summary>True when the agent's header says the dump was taken with <c>--no-role-passwords</c>.</summary>
    public bool WithoutRolePasswords { get; private set; }

    /// <summary>Statements read (comments, blank lines and meta-commands not counted).</summary>
    public int Statements { get; private set; }

    public GlobalsRole? Role(string name) => _byName.GetValueOrDefault(name);

    /// <summary>Parses <paramref name="text"/>; throws <see cref="GlobalsScriptException"/> for anything pg_dumpall --globals-only does not write.</summary>
    public static GlobalsScript Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var script = new GlobalsScript();
        foreach (var statement in Tokenizer.Statements(text, () => script.WithoutRolePasswords = true))
        {
            script.Statements++;
            script.Accept(statement);
        }

        return script;
    }

    private void Accept(Statement s)
    {
        var c = new Cursor(s);
        if (c.Word("SET") || c.Word("RESET"))
        {
            // Session settings (client_encoding, standard_conforming_strings, SESSION AUTHORIZATION): never run.
            return;
        }

        if (c.Word("CREATE"))
        {
            if (c.Word("ROLE"))
            {
                CreateRole(c, s);
                return;
            }

            if (c.Word("TABLESPACE"))
            {
                // Never run: a tablespace's directory belongs to the server it was made on.
                _tablespaces.Add(c.Identifier());
                return;
            }
        }
        else if (c.Word("ALTER"))
        {
            if (c.Word("ROLE"))
            {
                AlterRole(c, s);
                return;
            }

            if (c.Word("TABLESPACE"))
            {
                c.Identifier();
                return;
            }
        }
        else if (c.Word("GRANT"))
        {
            Grant(c, s);
            return;
        }
        else if (c.Word("REVOKE"))
        {
            var on = c.SkipTo("ON");
            if (on && c.Word("PARAMETER"))
            {
                _notRestored.Add("REVOKE … ON PARAMETER " + string.Join(", ", ParameterList(c)));
                return;
            }

            if (on && c.Word("TABLESPACE"))
            {
                return;
            }
        }
        else if (c.Word("COMMENT"))
        {
            c.Expect("ON");
            if (c.Word("ROLE"))
            {
                var role = Existing(c.Identifier(), s, "COMMENT ON ROLE");
                c.Expect("IS");
                role.Comment = c.Word("NULL") ? null : c.String();
                c.End();
                return;
            }

            if (c.Word("TABLESPACE"))
            {
                return;
            }
        }
        else if (c.Word("SECURITY"))
        {
            c.Expect("LABEL");
            if (c.Word("FOR"))
            {
                c.Identifier();
            }

            c.Expect("ON");
            if (c.Word("ROLE"))
            {
                _notRestored.Add("SECURITY LABEL ON ROLE " + c.Identifier());
                return;
            }

            if (c.Word("TABLESPACE"))
            {
                return;
            }
        }

        throw Refuse(s);
    }

    private void CreateRole(Cursor c, Statement s)
    {
        var name = c.Identifier();
        if (_byName.ContainsKey(name))
        {
            throw new GlobalsScriptException($"line {s.Line}: role {name} is created twice ({s.Excerpt})");
        }

        var role = new GlobalsRole(name, s.Line);
        _ = c.Word("WITH");
        RoleOptions(c, s, role);
        _roles.Add(role);
        _byName[name] = role;
    }

    private void AlterRole(Cursor c, Statement s)
    {
        var role = Existing(c.Identifier(), s, "ALTER ROLE");
        if (c.Word("SET"))
        {
            var parameter = Parameter(c);
            if (!c.Word("TO") && !c.Symbol("="))
            {
                throw Refuse(s);
            }

            var values = new List<string>();
            do
            {
                values.Add(c.SettingValue());
            }
            while (c.Symbol(","));
            c.End();
            role.Settings.Add(new GlobalsSetting(parameter, values));
            return;
        }

        var with = c.Word("WITH");
        if (!with && c.AtEnd)
        {
            throw Refuse(s);
        }

        RoleOptions(c, s, role);
    }

    private static void RoleOptions(Cursor c, Statement s, GlobalsRole role)
    {
        while (!c.AtEnd)
        {
            if (c.PeekWord() is { } flag && RoleFlags.Contains(flag))
            {
                c.Next();
                role.Flags.Add(flag.ToUpperInvariant());
            }
            else if (c.Word("CONNECTION"))
            {
                c.Expect("LIMIT");
                role.ConnectionLimit = c.Integer();
            }
            else if (c.Word("ENCRYPTED") || c.PeekWord() is { } p && p.Equals("PASSWORD", StringComparison.OrdinalIgnoreCase))
            {
                c.Expect("PASSWORD");
                role.PasswordHash = c.Word("NULL") ? null : PasswordHash(c.String(), role.Name, s);
            }
            else if (c.Word("VALID"))
            {
                c.Expect("UNTIL");
                role.ValidUntil = c.String();
            }
            else
            {
                throw Refuse(s);
            }
        }
    }

    private void Grant(Cursor c, Statement s)
    {
        if (c.WordAfter("ON") is { } on)
        {
            if (on.Equals("TABLESPACE", StringComparison.OrdinalIgnoreCase))
            {
                // GRANT CREATE ON TABLESPACE …: never run, like the tablespace itself.
                return;
            }

            if (!on.Equals("PARAMETER", StringComparison.OrdinalIgnoreCase))
            {
                throw Refuse(s);
            }

            var privileges = new List<string>();
            do
            {
                if (c.Word("SET"))
                {
                    privileges.Add("SET");
                }
                else if (c.Word("ALTER"))
                {
                    c.Expect("SYSTEM");
                    privileges.Add("ALTER SYSTEM");
                }
                else if (c.Word("ALL"))
                {
                    _ = c.Word("PRIVILEGES");
                    privileges.Add("ALL");
                }
                else
                {
                    throw Refuse(s);
                }
            }
            while (c.Symbol(","));

            c.Expect("ON");
            c.Expect("PARAMETER");
            var parameters = ParameterList(c);
            c.Expect("TO");
            var grantees = IdentifierList(c);
            var withGrant = false;
            if (c.Word("WITH"))
            {
                c.Expect("GRANT");
                c.Expect("OPTION");
                withGrant = true;
            }

            GrantedBy(c);
            c.End();
            foreach (var grantee in grantees)
            {
                _parameterGrants.Add(new GlobalsParameterGrant(privileges, parameters, grantee, withGrant));
            }

            return;
        }

        var granted = IdentifierList(c);
        c.Expect("TO");
        var members = IdentifierList(c);
        var options = new List<string>();
        if (c.Word("WITH"))
        {
            do
            {
                var option = c.PeekWord()?.ToUpperInvariant();
                if (option is not ("ADMIN" or "INHERIT" or "SET"))
                {
                    throw Refuse(s);
                }

                c.Next();
                var value = c.PeekWord()?.ToUpperInvariant();
                if (value is not ("OPTION" or "TRUE" or "FALSE"))
                {
                    throw Refuse(s);
                }

                c.Next();
                options.Add($"{option} {value}");
            }
            while (c.Symbol(","));
        }

        // GRANTED BY is dropped: the restoring user grants, as it does everything else.
        GrantedBy(c);
        c.End();
        foreach (var role in granted)
        {
            foreach (var member in members)
            {
                _memberships.Add(new GlobalsMembership(role, member, options, s.Line));
            }
        }
    }

    private static void GrantedBy(Cursor c)
    {
        if (c.Word("GRANTED"))
        {
            c.Expect("BY");
            c.Identifier();
        }
    }

    private static List<string> IdentifierList(Cursor c)
    {
        var list = new List<string>();
        do
        {
            list.Add(c.Identifier());
        }
        while (c.Symbol(","));
        return list;
    }

    private static List<string> ParameterList(Cursor c)
    {
        var list = new List<string>();
        do
        {
            list.Add(Parameter(c));
        }
        while (c.Symbol(","));
        return list;
    }

    /// <summary>A setting's name: <c>work_mem</c>, <c>"myapp.tenant"</c> or <c>myapp.tenant</c>.</summary>
    private static string Parameter(Cursor c)
    {
        var name = new StringBuilder(c.Identifier());
        while (c.Symbol("."))
        {
            name.Append('.').Append(c.Identifier());
        }

        var text = name.ToString();
        return ParameterName().IsMatch(text)
            ? text
            : throw new GlobalsScriptException($"line {c.Line}: '{text}' is not a configuration parameter name");
    }

    private GlobalsRole Existing(string name, Statement s, string what) =>
        _byName.GetValueOrDefault(name)
        ?? throw new GlobalsScriptException($"line {s.Line}: {what} {name} names a role the file does not create ({s.Excerpt}); pg_dumpall creates every role it alters");

    private static string PasswordHash(string value, string role, Statement s) =>
        ScramHash().IsMatch(value) || Md5Hash().IsMatch(value)
            ? value
            : throw new GlobalsScriptException($"line {s.Line}: the PASSWORD of role {role} is not a SCRAM-SHA-256 or md5 hash, which is all pg_dumpall writes");

    private static GlobalsScriptException Refuse(Statement s) =>
        new($"line {s.Line}: {s.Excerpt} is not a statement pg_dumpall --globals-only writes");

    [GeneratedRegex(@"^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$")]
    private static partial Regex ScramHash();

    [GeneratedRegex("^md5[0-9a-f]{32}$")]
    private static partial Regex Md5Hash();

    [GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)*$")]
    private static partial Regex ParameterName();

    private enum TokenKind
    {
        Word,
        QuotedIdentifier,
        String,
        Number,
        Symbol,
    }

    private readonly record struct Token(TokenKind Kind, string Text);

    private sealed record Statement(List<Token> Tokens, int Line, string Excerpt);

    /// <summary>Walks one statement's tokens; every mismatch refuses the statement.</summary>
    private sealed class Cursor(Statement statement)
    {
        private int _position;

        public bool AtEnd => _position >= statement.Tokens.Count;

        public int Line => statement.Line;

        public string? PeekWord() => !AtEnd && statement.Tokens[_position].Kind == TokenKind.Word ? statement.Tokens[_position].Text : null;

        public void Next() => _position++;

        public bool Word(string word)
        {
            if (PeekWord() is { } w && w.Equals(word, StringComparison.OrdinalIgnoreCase))
            {
                _position++;
                return true;
            }

            return false;
        }

        public bool Symbol(string symbol)
        {
            if (!AtEnd && statement.Tokens[_position] is { Kind: TokenKind.Symbol } t && t.Text == symbol)
            {
                _position++;
                return true;
            }

            return false;
        }

        /// <summary>The word right after the next <paramref name="word"/> further on (nothing consumed); null when there is none.</summary>
        public string? WordAfter(string word)
        {
            for (var i = _position; i + 1 < statement.Tokens.Count; i++)
            {
                if (statement.Tokens[i].Kind == TokenKind.Word && statement.Tokens[i].Text.Equals(word, StringComparison.OrdinalIgnoreCase))
                {
                    return statement.Tokens[i + 1].Kind == TokenKind.Word ? statement.Tokens[i + 1].Text : "";
                }
            }

            return null;
        }

        /// <summary>Moves past the next occurrence of <paramref name="word"/>; false (and nothing consumed) when there is none.</summary>
        public bool SkipTo(string word)
        {
            for (var i = _position; i < statement.Tokens.Count; i++)
            {
                if (statement.Tokens[i].Kind == TokenKind.Word && statement.Tokens[i].Text.Equals(word, StringComparison.OrdinalIgnoreCase))
                {
                    _position = i + 1;
                    return true;
                }
            }

            return false;
        }

        public void Expect(string word)
        {
            if (!Word(word))
            {
                throw Refuse(statement);
            }
        }

        public void End()
        {
            if (!AtEnd)
            {
                throw Refuse(statement);
            }
        }

        /// <summary>A name: unquoted (folded to lower case, as PostgreSQL does) or "quoted".</summary>
        public string Identifier()
        {
            if (!AtEnd && statement.Tokens[_position] is { Kind: TokenKind.Word or TokenKind.QuotedIdentifier } t)
            {
                _position++;
                return t.Kind == TokenKind.Word ? t.Text.ToLowerInvariant() : t.Text;
            }

            throw Refuse(statement);
        }

        public string String()
        {
            if (!AtEnd && statement.Tokens[_position] is { Kind: TokenKind.String } t)
            {
                _position++;
                return t.Text;
            }

            throw Refuse(statement);
        }

        public int Integer()
        {
            if (!AtEnd && statement.Tokens[_position] is { Kind: TokenKind.Number } t
                && int.TryParse(t.Text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n))
            {
                _position++;
                return n;
            }

            throw Refuse(statement);
        }

        /// <summary>One value of a setting: a string, a number or a bare word (never DEFAULT, which would mean "reset").</summary>
        public string SettingValue()
        {
            if (!AtEnd && statement.Tokens[_position] is { Kind: TokenKind.String or TokenKind.Number or TokenKind.Word or TokenKind.QuotedIdentifier } t
                && !(t.Kind == TokenKind.Word && t.Text.Equals("DEFAULT", StringComparison.OrdinalIgnoreCase)))
            {
                _position++;
                return t.Kind == TokenKind.Word ? t.Text.ToLowerInvariant() : t.Text;
            }

            throw Refuse(statement);
        }
    }

    /// <summary>
    /// Splits the script into statements of tokens. Knows exactly what pg_dumpall writes: <c>--</c> comments,
    /// 'strings' with '' doubled (standard_conforming_strings on), "identifiers" with "" doubled, words,
    /// integers, a few symbols, and psql's <c>\restrict</c>/<c>\unrestrict</c> lines. Everything else refuses.
    /// </summary>
    private static class Tokenizer
    {
        public static IEnumerable<Statement> Statements(string text, Action noPasswords)
        {
            var tokens = new List<Token>();
            var line = 1;
            var statementLine = 0;
            var statementStart = -1;
            var lastTokenEnd = -1;
            var i = 0;
            while (i < text.Length)
            {
                var ch = text[i];
                if (ch == '\n')
                {
                    line++;
                    i++;
                    continue;
                }

                if (char.IsWhiteSpace(ch))
                {
                    i++;
                    continue;
                }

                if (ch == '-' && At(text, i + 1) == '-')
                {
                    var end = LineEnd(text, i);
                    if (text.AsSpan(i, end - i).TrimEnd().StartsWith(NoPasswordsMarker, StringComparison.Ordinal))
                    {
                        noPasswords();
                    }

                    i = end;
                    continue;
                }

                if (ch == '\\')
                {
                    // psql meta-commands run on the client (\! runs a shell): only pg_dump's \restrict pair, alone on its line.
                    var end = LineEnd(text, i);
                    var command = text[i..end].Trim();
                    if (tokens.Count > 0 || !OnlyWhitespaceBefore(text, i) || !MetaCommand().IsMatch(command))
                    {
                        throw new GlobalsScriptException($"line {line}: the psql meta-command {Excerpt(command)} is not one pg_dumpall --globals-only writes");
                    }

                    i = end;
                    continue;
                }

                if (tokens.Count == 0)
                {
                    statementLine = line;
                    statementStart = i;
                }

                if (ch == ';')
                {
                    yield return new Statement(tokens, statementLine, Excerpt(text[statementStart..(i + 1)]));
                    tokens = [];
                    i++;
                    continue;
                }

                var start = i;
                if (ch == '\'')
                {
                    if (tokens.Count > 0 && lastTokenEnd == i && tokens[^1].Kind == TokenKind.Word)
                    {
                        // E'…', U&'…', B'…', X'…': prefixed strings pg_dumpall does not write with standard_conforming_strings on.
                        throw new GlobalsScriptException($"line {line}: {Excerpt(text[statementStart..LineEnd(text, i)])} uses a prefixed string literal, which pg_dumpall --globals-only does not write");
                    }

                    var (value, next, lines) = Quoted(text, i, '\'', line);
                    tokens.Add(new Token(TokenKind.String, value));
                    line += lines;
                    i = next;
                }
                else if (ch == '"')
                {
                    var (value, next, lines) = Quoted(text, i, '"', line);
                    if (value.Length == 0)
                    {
                        throw new GlobalsScriptException($"line {line}: an empty quoted identifier");
                    }

                    tokens.Add(new Token(TokenKind.QuotedIdentifier, value));
                    line += lines;
                    i = next;
                }
                else if (char.IsAsciiLetter(ch) || ch == '_' || ch > 127)
                {
                    while (i < text.Length && (char.IsAsciiLetterOrDigit(text[i]) || text[i] is '_' or '$' || text[i] > 127))
                    {
                        i++;
                    }

                    tokens.Add(new Token(TokenKind.Word, text[start..i]));
                }
                else if (char.IsAsciiDigit(ch) || (ch == '-' && char.IsAsciiDigit(At(text, i + 1))))
                {
                    i++;
                    while (i < text.Length && char.IsAsciiDigit(text[i]))
                    {
                        i++;
                    }

                    tokens.Add(new Token(TokenKind.Number, text[start..i]));
                }
                else if (ch is ',' or '=' or '.' or '(' or ')')
                {
                    tokens.Add(new Token(TokenKind.Symbol, ch.ToString()));
                    i++;
                }
                else
                {
                    // $$ quoting, /* comments */, operators: nothing pg_dumpall --globals-only writes.
                    throw new GlobalsScriptException($"line {line}: {Excerpt(text[statementStart..LineEnd(text, i)])} has '{ch}', which pg_dumpall --globals-only does not write there");
                }

                lastTokenEnd = i;
            }

            if (tokens.Count > 0)
            {
                throw new GlobalsScriptException($"line {statementLine}: {Excerpt(text[statementStart..])} does not end with ';': the file is cut short");
            }
        }

        private static (string Value, int Next, int Lines) Quoted(string text, int open, char quote, int line)
        {
            var value = new StringBuilder();
            var lines = 0;
            var i = open + 1;
            while (true)
            {
                if (i >= text.Length)
                {
                    throw new GlobalsScriptException($"line {line}: a {(quote == '\'' ? "string" : "quoted name")} is never closed: the file is cut short");
                }

                if (text[i] == quote)
                {
                    if (At(text, i + 1) == quote)
                    {
                        value.Append(quote);
                        i += 2;
                        continue;
                    }

                    return (value.ToString(), i + 1, lines);
                }

                if (text[i] == '\0')
                {
                    throw new GlobalsScriptException($"line {line + lines}: a NUL character");
                }

                if (text[i] == '\n')
                {
                    lines++;
                }

                value.Append(text[i]);
                i++;
            }
        }

        private static char At(string text, int i) => i < text.Length ? text[i] : '\0';

        private static int LineEnd(string text, int i)
        {
            var end = text.IndexOf('\n', i);
            return end < 0 ? text.Length : end;
        }

        private static bool OnlyWhitespaceBefore(string text, int i)
        {
            for (var j = i - 1; j >= 0 && text[j] != '\n'; j--)
            {
                if (!char.IsWhiteSpace(text[j]))
                {
                    return false;
                }
            }

            return true;
        }

        /// <summary>Single-line, at most 80 characters, string literals masked (they may hold a password hash): what a refusal quotes.</summary>
        private static string Excerpt(string text)
        {
            var flat = WhiteSpace().Replace(StringLiteral().Replace(text, "'…'"), " ").Trim();
            return flat.Length <= 80 ? flat : flat[..77] + "...";
        }
    }

    [GeneratedRegex(@"^\\(restrict|unrestrict) [A-Za-z0-9]+$")]
    private static partial Regex MetaCommand();

    [GeneratedRegex(@"\s+")]
    private static partial Regex WhiteSpace();

    [GeneratedRegex("'(?:[^']|'')*'?")]
    private static partial Regex StringLiteral();
}

/// <summary>
/// The statements a restore runs, built from a parsed <see cref="GlobalsScript"/>: every name double-quoted,
/// every value a string literal with quotes doubled (the session sets <c>standard_conforming_strings = on</c>),
/// every keyword from a fixed list. Nothing of the file's text is passed through.
/// </summary>
internal static class GlobalsSql
{
    /// <summary>Run first on the restoring session, so <see cref="Literal"/> needs no backslash escaping.</summary>
    public const string SessionSetup = "SET standard_conforming_strings = on";

    public static string Identifier(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Contains('\0', StringComparison.Ordinal)
            ? throw new ArgumentException("a name with a NUL character", nameof(name))
            : "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
    }

    public static string Literal(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return value.Contains('\0', StringComparison.Ordinal)
            ? throw new ArgumentException("a value with a NUL character", nameof(value))
            : "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";
    }

    /// <summary><c>CREATE ROLE</c>, its attributes and password hash, its settings and its comment, for one role missing on the server.</summary>
    public static IReadOnlyList<string> CreateRole(GlobalsRole role)
    {
        ArgumentNullException.ThrowIfNull(role);
        var name = Identifier(role.Name);
        var statements = new List<string> { $"CREATE ROLE {name}" };
        // One keyword per attribute (LOGIN/NOLOGIN…), the last one written: PostgreSQL refuses "conflicting or redundant options".
        var attributes = role.Flags.Select((f, i) => (Key: f.StartsWith("NO", StringComparison.Ordinal) ? f[2..] : f, Flag: f, Index: i))
            .GroupBy(f => f.Key, StringComparer.Ordinal).Select(g => g.Last()).OrderBy(f => f.Index).Select(f => f.Flag).ToList();
        if (role.ConnectionLimit is { } limit)
        {
            attributes.Add(string.Create(CultureInfo.InvariantCulture, $"CONNECTION LIMIT {limit}"));
        }

        if (role.PasswordHash is { } hash)
        {
            attributes.Add("PASSWORD " + Literal(hash));
        }

        if (role.ValidUntil is { } until)
        {
            attributes.Add("VALID UNTIL " + Literal(until));
        }

        if (attributes.Count > 0)
        {
            statements.Add($"ALTER ROLE {name} WITH {string.Join(' ', attributes)}");
        }

        foreach (var setting in role.Settings)
        {
            statements.Add($"ALTER ROLE {name} SET {Identifier(setting.Parameter)} TO {string.Join(", ", setting.Values.Select(Literal))}");
        }

        if (role.Comment is { } comment)
        {
            statements.Add($"COMMENT ON ROLE {name} IS {Literal(comment)}");
        }

        return statements;
    }

    public static string Grant(GlobalsMembership membership)
    {
        ArgumentNullException.ThrowIfNull(membership);
        var with = membership.Options.Count == 0 ? "" : " WITH " + string.Join(", ", membership.Options);
        return $"GRANT {Identifier(membership.Role)} TO {Identifier(membership.Member)}{with}";
    }

    public static string Grant(GlobalsParameterGrant grant)
    {
        ArgumentNullException.ThrowIfNull(grant);
        var with = grant.WithGrantOption ? " WITH GRANT OPTION" : "";
        return $"GRANT {string.Join(", ", grant.Privileges)} ON PARAMETER {string.Join(", ", grant.Parameters.Select(Identifier))} TO {Identifier(grant.Grantee)}{with}";
    }
}
