using VelozBackupAgent.Restore;

namespace VelozBackupAgent.Tests.Restore;

/// <summary>pg_restore's objects done of total, from real PostgreSQL 15 output (a dump of two tables, a sequence, a view, an index).</summary>
public sealed class PgRestoreCounterTests
{
    private const string Toc = """
        ;
        ; Archive created at 2026-12-02 20:10:00 UTC
        ;     dbname: postgres
        ;     TOC Entries: 17
        ;
        ; Selected TOC Entries:
        ;
        214; 1259 16384 TABLE public orders postgres
        216; 1259 16392 TABLE public pos postgres
        215; 1259 16391 SEQUENCE public pos_id_seq postgres
        3364; 0 0 SEQUENCE OWNED BY public pos_id_seq postgres
        217; 1259 16399 VIEW public v postgres
        3205; 2604 16395 DEFAULT public pos id postgres
        3354; 0 16384 TABLE DATA public orders postgres
        3356; 0 16392 TABLE DATA public pos postgres
        3365; 0 0 SEQUENCE SET public pos_id_seq postgres
        3207; 2606 16390 CONSTRAINT public orders orders_pkey postgres
        3210; 2606 16397 CONSTRAINT public pos pos_pkey postgres
        3208; 1259 16398 INDEX public orders_x_idx postgres
        """;

    private const string Serial = """
        pg_restore: connecting to database for restore
        pg_restore: creating TABLE "public.orders"
        pg_restore: creating TABLE "public.pos"
        pg_restore: creating SEQUENCE "public.pos_id_seq"
        pg_restore: creating SEQUENCE OWNED BY "public.pos_id_seq"
        pg_restore: creating VIEW "public.v"
        pg_restore: creating DEFAULT "public.pos id"
        pg_restore: processing data for table "public.orders"
        pg_restore: processing data for table "public.pos"
        pg_restore: executing SEQUENCE SET pos_id_seq
        pg_restore: creating CONSTRAINT "public.orders orders_pkey"
        pg_restore: creating CONSTRAINT "public.pos pos_pkey"
        pg_restore: creating INDEX "public.orders_x_idx"
        """;

    private const string Parallel = """
        pg_restore: connecting to database for restore
        pg_restore: processing item 3359 ENCODING ENCODING
        pg_restore: processing item 3360 STDSTRINGS STDSTRINGS
        pg_restore: processing item 214 TABLE orders
        pg_restore: creating TABLE "public.orders"
        pg_restore: processing item 216 TABLE pos
        pg_restore: creating TABLE "public.pos"
        pg_restore: processing item 215 SEQUENCE pos_id_seq
        pg_restore: creating SEQUENCE "public.pos_id_seq"
        pg_restore: processing item 3364 SEQUENCE OWNED BY pos_id_seq
        pg_restore: creating SEQUENCE OWNED BY "public.pos_id_seq"
        pg_restore: processing item 217 VIEW v
        pg_restore: creating VIEW "public.v"
        pg_restore: processing item 3205 DEFAULT pos id
        pg_restore: creating DEFAULT "public.pos id"
        pg_restore: entering main parallel loop
        pg_restore: launching item 3354 TABLE DATA orders
        pg_restore: launching item 3356 TABLE DATA pos
        pg_restore: processing data for table "public.orders"
        pg_restore: processing data for table "public.pos"
        pg_restore: finished item 3354 TABLE DATA orders
        pg_restore: launching item 3207 CONSTRAINT orders orders_pkey
        pg_restore: creating CONSTRAINT "public.orders orders_pkey"
        pg_restore: finished item 3356 TABLE DATA pos
        pg_restore: launching item 3210 CONSTRAINT pos pos_pkey
        pg_restore: creating CONSTRAINT "public.pos pos_pkey"
        pg_restore: finished item 3207 CONSTRAINT orders orders_pkey
        pg_restore: launching item 3208 INDEX orders_x_idx
        pg_restore: creating INDEX "public.orders_x_idx"
        pg_restore: finished item 3210 CONSTRAINT pos pos_pkey
        pg_restore: launching item 3365 SEQUENCE SET pos_id_seq
        pg_restore: executing SEQUENCE SET pos_id_seq
        pg_restore: finished item 3208 INDEX orders_x_idx
        pg_restore: finished item 3365 SEQUENCE SET pos_id_seq
        pg_restore: finished main parallel loop
        """;

    [Fact]
    public void The_total_is_the_entries_the_toc_lists_not_its_comment_lines()
    {
        PgRestoreCounter.ParseToc(Toc).Should().HaveCount(12).And.StartWith(214).And.EndWith(3208);
        new PgRestoreCounter(PgRestoreCounter.ParseToc(Toc)).Total.Should().Be(12);
    }

    [Theory]
    [InlineData(Serial)]
    [InlineData(Parallel)]
    public void Every_entry_is_counted_once_serially_and_with_jobs(string verbose)
    {
        var counter = new PgRestoreCounter(PgRestoreCounter.ParseToc(Toc));
        var seen = new List<int>();
        foreach (var line in verbose.Split('\n'))
        {
            counter.Observe(line).Should().BeTrue($"'{line}' is verbose chatter");
            seen.Add(counter.Done);
        }

        counter.Done.Should().Be(12);
        seen.Should().BeInAscendingOrder().And.Contain(6, "the pre-data entries count before the data");
    }

    [Fact]
    public void Serial_counting_follows_the_action_lines()
    {
        var counter = new PgRestoreCounter(PgRestoreCounter.ParseToc(Toc));
        foreach (var line in Serial.Split('\n').Take(4))
        {
            counter.Observe(line);
        }

        counter.Done.Should().Be(3, "a connect line and three creates");
    }

    [Theory]
    [InlineData("pg_restore: error: could not execute query: ERROR:  role \"veloz\" does not exist")]
    [InlineData("pg_restore: warning: errors ignored on restore: 1")]
    [InlineData("pg_restore: while PROCESSING TOC:")]
    [InlineData("Command was: ALTER TABLE public.orders OWNER TO veloz;")]
    public void Errors_and_warnings_are_not_chatter_so_they_stay_in_the_log_and_the_message(string line)
    {
        var counter = new PgRestoreCounter([1]);
        counter.Observe(line).Should().BeFalse();
        counter.Done.Should().Be(0);
    }

    [Fact]
    public void Done_never_passes_the_total()
    {
        var counter = new PgRestoreCounter([1, 2]);
        for (var i = 0; i < 5; i++)
        {
            counter.Observe("pg_restore: creating TABLE \"public.t\"");
        }

        counter.Done.Should().Be(2);
    }
}
