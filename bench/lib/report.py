#!/usr/bin/env python3
"""Turns bench/run.sh's raw measurements (res/<ROW>.tsv: "wall_s cpu_s rss_kib" per run, res/P2.json) into the
Markdown report: printed on stdout and written to --out. Every row of the harness appears, measured, failed
(with why) or n/a (with why), so a reader (and the integration test) can see that none went missing."""
import argparse
import json
import math
import os
import re
import statistics

ROWS = [
    # id, group, tool, baselines (ids) for the ratio column
    ("P1-cp", "P1", "`cp -r` (physical limit; nothing fsynced)", []),
    ("P1-cp-fsync", "P1", "`cp -r` then `sync` of every file (physical limit, durable)", ["P1-cp"]),
    ("P1-rsync", "P1", "seeds: `rsync -a`", ["P1-cp"]),
    ("P1-agent", "P1", "agent `backup wal --no-upload` (sha256, fsync, sidecars, manifest)", ["P1-cp", "P1-cp-fsync", "P1-rsync"]),
    ("P3-pg_dump", "P3", "`pg_dump -Fc > file` (physical limit)", []),
    ("P3-agent", "P3", "agent `backup database`, local only (dump, sha256, fsync, `pg_restore --list`)", ["P3-pg_dump"]),
    ("P4-seeds", "P4", "seeds: `pg_dump -Fc > file; aws s3 cp`", ["P3-pg_dump"]),
    ("P4-agent", "P4", "agent `backup database`, local + S3 (overlapped upload, verified)", ["P4-seeds", "P3-pg_dump"]),
    ("P6-rsync", "P6", "seeds: `rsync -a`, nothing new", []),
    ("P6-agent", "P6", "agent `backup wal --no-upload`, nothing new (lists, writes a manifest)", ["P6-rsync"]),
    ("P6-agent-start", "P6", "for scale: the agent's process start alone (`veloz-backup --version`)", ["P6-rsync"]),
    ("P6-first-rsync", "P6", "seeds: `rsync -a`, first sync of the segments (fresh destination)", []),
    ("P6-first-agent", "P6", "agent `backup wal --no-upload`, first sync (fresh store: sha256, sidecars, group commit, manifest)",
     ["P6-first-rsync"]),
    ("P6-inproc", "P6", "agent daemon's own sync with nothing new, one a second: mean per sync from its duration histogram "
     "(no process start; CPU column: the daemon's CPU per sync)", ["P6-rsync"]),
    ("R1-seeds", "R1", "seeds: `aws s3 cp` + `createdb` + `pg_restore`", []),
    ("R1-agent", "R1", "agent `restore database latest --from s3 --into NAME --no-service --yes`", ["R1-seeds"]),
    ("R2-seeds", "R2", "seeds' full_restore.sh steps from S3 (secrets, config, database, WAL by `aws s3 sync`)", []),
    ("R2-agent", "R2", "agent `restore full --yes --source s3://bench/veloz-1 --no-service`", ["R2-seeds"]),
    ("R3-hand", "R3", "by hand (README's break-glass): `aws s3 cp --recursive` + `sha256sum -c` + pieces assembled + `tar -xzf` + "
     "`restore_command = 'cp …'`, `recovery.signal`, `pg_ctl start` on a free port, wait for promotion, stop", []),
    ("R3-agent", "R3", "agent `restore pitr --from s3 --target-dir DIR` (to the end of the WAL; temporary server, stopped again)",
     ["R3-hand", "R1-agent", "R1-seeds"]),
]
P8_ROWS = [
    # id, tool, baselines; the output column is each run's file size (res/<ROW>.size)
    ("P8-pg_dump", "`pg_dump -Fc veloz > file` (P3's baseline: the database's rows, logically)", []),
    ("P8-basebackup", "`pg_basebackup -D - -Ft -X fetch -c fast > file` (physical limit: the agent's own command, uncompressed, not fsynced)", []),
    ("P8-basebackup-dir", "`pg_basebackup -Ft -D dir -X fetch -c fast` (uncompressed, fsynced)", ["P8-basebackup"]),
    ("P8-basebackup-gzip", "for scale: `pg_basebackup -D - -Ft -X fetch -c fast \\| gzip -1 > file` (the agent's output format, in a shell)", ["P8-basebackup"]),
    ("P8-agent", "agent `backup pitr --no-upload` (streamed through gzip, sha256, fsync, tar checks, metadata)",
     ["P8-basebackup", "P8-basebackup-dir", "P8-basebackup-gzip", "P8-pg_dump"]),
]
P9_SETTINGS = [5, 1]
P9_STAGES = [
    ("received", "(a) received and flushed into the spool by pg_receivewal (the slot's `restart_lsn`)", "local", 1.0),
    ("local", "(b) stored in the local store: a piece or segment with its checksum sidecar", "local", 1.0),
    ("s3", "(c) stored in S3: object and sidecar", "S3", 6.0),
]
DAY = 86400.0
RESTORE_ROWS = {"R1-agent", "R2-agent"}
NA_RESTORE = "n/a (restore verb not available)"


def load(res, row):
    path = os.path.join(res, row + ".tsv")
    if not os.path.exists(path):
        return []
    runs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            p = line.split()
            if len(p) >= 3:
                runs.append((float(p[0]), float(p[1]), int(p[2]), float(p[3]) if len(p) > 3 else float("nan")))
    return runs


def fmt_s(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return "%.2f s" % v if v < 100 else "%.0f s" % v


def fmt_mib(kib):
    return "%.0f MiB" % (kib / 1024.0) if kib else "-"


def fmt_ratio(r):
    return "×%.3f" % r if r < 0.1 else "×%.2f" % r if r < 10 else "×%.1f" % r if r < 100 else "×%.0f" % r


def fmt_lat(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return "%.0f ms" % (v * 1000) if v < 0.1 else "%.3f s" % v if v < 10 else "%.1f s" % v if v < 100 else "%.0f s" % v if v < 3600 else "%.1f h" % (v / 3600)


def fmt_size(b):
    b = int(b)
    return "%.1f GiB" % (b / 2 ** 30) if b >= 2 ** 30 else "%.0f MiB" % (b / 2 ** 20)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--res", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", required=True)
    ap.add_argument("--reps", type=int, required=True)
    ap.add_argument("--p6-reps", type=int, required=True)
    ap.add_argument("--p1-reps", type=int, default=0)
    ap.add_argument("--restore-available", default="0")
    ap.add_argument("--failed", default="")
    ap.add_argument("--p7", default="")
    ap.add_argument("--p7-window", type=float, default=0)
    ap.add_argument("--p7-settle", type=float, default=0)
    ap.add_argument("--fact", action="append", default=[])
    ap.add_argument("--only", default="", help="the groups this run was limited to (comma-separated); empty: all")
    a = ap.parse_args()
    only = set(g for g in a.only.split(",") if g)

    def sel(*groups):
        return not only or any(g in only for g in groups)

    def writer_for(*groups):
        """The line writer of a section: L.append when the run includes one of its groups, else a sink."""
        return L.append if sel(*groups) else (lambda line: None)
    facts = dict(f.split("=", 1) for f in a.fact)
    failed = dict(line.split("\t", 1) for line in a.failed.splitlines() if "\t" in line)
    restore = a.restore_available == "1"

    med = {}
    runs_of = {}
    for row, *_ in ROWS + [(r[0], None, None, None) for r in P8_ROWS] + [(r, None, None, None) for r in ("P5-P1-small", "P5-P3-small", "P5-P4-small", "P2-cron-rsync", "P2-cron-sync")]:
        runs = load(a.res, row)
        runs_of[row] = runs
        if runs and row not in failed:
            loads = [r[3] for r in runs if r[3] == r[3]]
            med[row] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), max(r[2] for r in runs),
                        statistics.median(loads) if loads else None)

    ratios = {}  # (row, base) -> wall-clock ratio
    cpu_ratios = {}  # (row, base) -> CPU-time ratio

    def ratio_cell(row, bases):
        """The ratio column of a measured row (and the ratios it records for the headline)."""
        t, cpu = med[row][0], med[row][1]
        parts = []
        for b in bases:
            if b in med and med[b][0] > 0:
                r = t / med[b][0]
                ratios[(row, b)] = r
                c = ""
                if med[b][1] > 0:
                    cpu_ratios[(row, b)] = cpu / med[b][1]
                    c = " / " + fmt_ratio(cpu / med[b][1])
                parts.append("%s%s vs %s" % (fmt_ratio(r), c, b))
        return "; ".join(parts) if parts else ("base" if not bases else "-")

    def failed_or_missing(row, tool, empty_cols):
        """The line of a row that failed or did not run, else None."""
        if row in failed:
            return "| %s | %s | %d | FAILED: %s |%s" % (row, tool, len(runs_of[row]), failed[row].replace("|", "/")[:300], " |" * empty_cols)
        if row not in med:
            return "| %s | %s | 0 | not run |%s" % (row, tool, " |" * empty_cols)
        return None
    L = []
    w = L.append
    w("# VelozBackupAgent benchmark: the agent against the seeds' pipeline")
    w("")
    w("Generated by `bench/run.sh`%s (%s run, %s). Each row ran %d times (P1, P6: %d%s), the rows of a group alternating "
      "and their order reversed every other round; the table shows medians. **Ratio = this row's median time ÷ the "
      "named row's** (below 1: faster; ×1.10: 10 %% slower), in wall-clock time and, after the slash, in CPU time "
      "(user+sys of the whole process tree, GNU time), which a busy machine disturbs much less. Peak RSS is the largest "
      "process of the tree. Load is the machine's 1-minute load average at the end of the row's runs (median): "
      "2 cores, so anything above 2 means the rows shared the CPU with other work."
      % (" --quick" if a.mode == "quick" else "", a.mode, "commit " + facts.get("commit", "?"), a.reps, a.p6_reps,
         "" if restore else "; the seeds' restores once, as the agent has no restore verb to pair them with yet"))
    if a.p1_reps and a.p1_reps != a.p6_reps:
        L[-1] = L[-1].replace("(P1, P6: %d;" % a.p6_reps, "(P1: %d, P6: %d;" % (a.p1_reps, a.p6_reps))
    if only:
        L[-1] += (" **Only the groups %s ran** (`--only %s`): the other groups' rows and sections are left out, and "
                  "what a group needs (the databases, the restore source) was made as in a full run." % (", ".join(sorted(only)), ",".join(sorted(only))))
    w("")
    w("## Machine")
    w("")
    w("| | |")
    w("|---|---|")
    for k, label in [("cpu", "CPU"), ("cores", "cores"), ("ram", "RAM"), ("disk", "disk (work directory)"), ("kernel", "kernel"),
                     ("os", "OS"), ("agent", "agent"), ("dotnet", ".NET SDK"), ("postgres", "PostgreSQL"), ("rsync", "rsync"),
                     ("aws", "AWS CLI"), ("node", "Node"), ("s3rver", "s3rver"), ("coreutils", "cp"), ("gnutime", "time")]:
        w("| %s | %s |" % (label, facts.get(k, "?")))
    w("| load average (1, 5, 15 min) | %s at start, %s at end; the machine is shared with other jobs: compare rows within this run |"
      % (facts.get("load_start", "?"), facts.get("load_end", "?")))
    w("| run time | %s s |" % facts.get("duration", "?"))
    w("")
    w("## Data")
    w("")
    w = writer_for("P1", "P5")
    w("- P1: %s (%s), random bytes, generated from fixed seeds; P5 repeats the agent on %s (%s)." % (
        facts.get("p1"), fmt_size(facts.get("p1_bytes", 0)), facts.get("p1_small"), fmt_size(facts.get("p1_small_bytes", 0))))
    w = writer_for("P2")
    w("- P2: %s; each is appended to `orders_current.wal` in 8 even steps and sealed by renaming it." % facts.get("p2"))
    w = writer_for("P3", "P4", "P5", "P8", "R1", "R2", "R3")
    if sel("P3", "P4", "P5"):
        w("- P3/P4: %s; `pg_dump -Fc` is %s. P5 repeats the agent on %s." % (
            facts.get("db"), "%.0f MiB" % (int(facts["dump_bytes"]) / 2 ** 20) if facts.get("dump_bytes") else "?", facts.get("db_small")))
    else:
        w("- The database (R1's, R3's): %s, generated in %s." % (facts.get("db"), facts.get("db_generated", "?")))
    w("  `trades` holds random ids, symbols, sides, quantities, prices, venues, times and client references, so the dump does not compress to nothing.")
    w = writer_for("P6", "P7")
    w("- P6/P7: %s (segment size does not matter to a no-op sync)." % facts.get("p6"))
    w = writer_for("P8")
    w("- P8: the same cluster once P5 is done with the small database (dropped): %s, the realistic database and the system ones." % facts.get("cluster", "?"))
    w = writer_for("P9")
    w("- P9: %s per setting into `p9_orders` (bigserial id, sequence number, md5 text, commit time) in a database of its own." % facts.get("p9", "?"))
    w = writer_for("R3")
    w("- R3: the whole cluster (%s: the realistic database and the system ones), a base backup by the daemon plus the "
      "WAL of %s trades added after it, from S3." % (facts.get("cluster", "?"), facts.get("r3_extra", "?")))
    w = L.append
    w("- S3 is s3rver on loopback (path-style); PostgreSQL 15 a throwaway cluster on loopback (default settings, fsync on).")
    w("")
    w("## Results")
    w("")
    w("| Row | Tool | Runs | Median | CPU | Peak RSS | Load | Ratio: wall / CPU |")
    w("|---|---|---|---|---|---|---|---|")
    group_titles = {
        "P1": "P1 WAL shipping to the local store, %s" % facts.get("p1"),
        "P3": "P3 daily dump, local",
        "P4": "P4 daily dump, local + S3",
        "P6": "P6 sync with nothing new, %s" % facts.get("p6"),
        "R1": "R1 restore the database from S3 into a new database",
        "R2": "R2 restore everything from S3 (site failure)",
        "R3": "R3 point-in-time recovery of the cluster from S3 to the end of the WAL (see below)",
    }
    last_group = None
    for row, group, tool, bases in ROWS:
        if not sel(group):
            continue
        if group != last_group:
            w("| **%s** | | | | | | | |" % group_titles[group])
            last_group = group
        if row in RESTORE_ROWS and not restore:
            w("| %s | %s | 0 | %s | | | | |" % (row, tool, NA_RESTORE))
            continue
        line = failed_or_missing(row, tool, 4)
        if line:
            w(line)
            continue
        t, cpu, rss, load1 = med[row]
        w("| %s | %s | %d | %s | %s | %s | %s | %s |" % (row, tool, len(runs_of[row]), fmt_s(t), fmt_s(cpu), fmt_mib(rss),
                                                        "%.1f" % load1 if load1 is not None else "-", ratio_cell(row, bases)))
    w("")

    # ---- P8
    w = writer_for("P8")
    w("## P8 base backup of the cluster (`pitr`)")
    w("")
    w("The cluster holds the realistic database (P3's) and the system databases: %s. Output is the file written (median "
      "of the runs): the agent's and the gzip row's are compressed, the bare `pg_basebackup` rows are the plain tar." % facts.get("cluster", "?"))
    w("")
    w("| Row | Tool | Runs | Median | CPU | Peak RSS | Load | Output | Ratio: wall / CPU |")
    w("|---|---|---|---|---|---|---|---|---|")
    sizes = {}
    for row, _, _ in P8_ROWS:
        path = os.path.join(a.res, row + ".size")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                vals = [int(x) for x in f.read().split()]
            if vals:
                sizes[row] = statistics.median(vals)
    for row, tool, bases in P8_ROWS:
        line = failed_or_missing(row, tool, 5)
        if line:
            w(line)
            continue
        t, cpu, rss, load1 = med[row]
        out = fmt_size(sizes[row]) if row in sizes else "-"
        if row in sizes and row != "P8-basebackup" and sizes.get("P8-basebackup"):
            out += " (×%.2f of the tar)" % (sizes[row] / sizes["P8-basebackup"])
        w("| %s | %s | %d | %s | %s | %s | %s | %s | %s |" % (row, tool, len(runs_of[row]), fmt_s(t), fmt_s(cpu), fmt_mib(rss),
                                                             "%.1f" % load1 if load1 is not None else "-", out, ratio_cell(row, bases)))
    w("")
    w("Every run's output was checked: the agent's archive and metadata with `sha256sum -c` of their sidecars and the "
      "archive's `tar -tzf` listing `backup_label` and `backup_manifest`; the bare tars' listings likewise; the dump with "
      "`pg_restore --list`. CPU is the client's process tree (pg_basebackup or pg_dump, gzip, the agent); the server "
      "process that reads the data files (walsender, backend) is not in it, and it is the same for every row. `-D -` "
      "writes to stdout and fsyncs nothing; `-D dir` fsyncs its files, as the agent does its store. A base backup copies "
      "the cluster's files as they are (tables and indexes, plus the WAL to make them consistent), a dump the rows "
      "alone (indexes as their definitions), so their sizes differ by nature; what the base buys is that WAL replays "
      "onto it (P9).")
    w("")

    # ---- P2
    w = writer_for("P2")
    w("## P2 WAL recovery point (daemon running, writer sealing at a steady rate)")
    w("")
    w("Latency from a segment's sealing (the rename) to its presence, checksum-verified: the `.sha256` sidecar exists and "
      "names the segment's true SHA-256 (in S3: sidecar object, object of the right size with matching `x-amz-meta-sha256`). "
      "Every stored copy was afterwards read back in full and hashed. The daemon's `Backup:Wal:SettleTime` is the default 2 s "
      "(a segment is read only once unwritten that long), so about 2 s is the design's floor.")
    w("")
    w("| Row | Path | Segments | p50 | p99 | max | Verified |")
    w("|---|---|---|---|---|---|---|")
    p2 = {}
    try:
        with open(os.path.join(a.res, "P2.json"), encoding="utf-8") as f:
            p2 = json.load(f)
    except (OSError, ValueError):
        pass
    for row, target, label in [("P2-local", "local", "agent daemon → local store"), ("P2-s3", "s3", "agent daemon → S3 (s3rver)")]:
        d = p2.get(target)
        if row in failed or not d:
            w("| %s | %s | | FAILED: %s | | | |" % (row, label, failed.get(row, "no result").replace("|", "/")[:300]))
            continue
        w("| %s | %s | %d | %s | %s | %s | %d of %d%s |" % (row, label, d["arrived"], fmt_s(d["p50"]), fmt_s(d["p99"]), fmt_s(d["max"]),
                                                         d["verified"], p2["count"], "; " + "; ".join(d["errors"]) if d["errors"] else ""))
    d_rsync = med.get("P2-cron-rsync", (None,))[0]
    d_sync = med.get("P2-cron-sync", (None,))[0]
    for row, label, d in [("P2-cron-local", "seeds' `*/5` cron → /backup/wal (rsync)", d_rsync),
                          ("P2-cron-s3", "seeds' `*/5` cron → S3 (rsync, then `aws s3 sync`)", (d_rsync or 0) + (d_sync or 0) if d_sync is not None else None)]:
        if d is None:
            w("| %s | %s | | FAILED: the seeds' script did not run | | | none |" % (row, label))
            continue
        w("| %s | %s | model | %s | %s | %s | none (the seeds never check a checksum) |" % (row, label, fmt_s(150 + d), fmt_s(297 + d), fmt_s(300 + d)))
    w("")
    partial = sum((p2.get(t) or {}).get("partial_reads", 0) for t in ("local", "s3"))
    if partial:
        w("The pollers saw %d incomplete sidecar(s) mid-write and polled again: s3rver writes an object's bytes straight "
          "into place, so a GET racing its PUT can read part of it (S3 itself never shows a partial object)." % partial)
        w("")
    w("The cron rows are a model, not a sampled run: a segment sealed at a uniformly random moment waits for the next "
      "5-minute fire (p50 150 s, p99 297 s, max 300 s), then for the run itself, measured here once on the P2 segments: "
      "`rsync -a --delete` %s, `aws s3 sync --delete` %s." % (fmt_s(d_rsync), fmt_s(d_sync)))
    if p2.get("local") and p2["local"].get("p50") == p2["local"].get("p50") and d_rsync is not None:
        ratios[("P2-local", "P2-cron-local")] = p2["local"]["p50"] / (150 + d_rsync)
    if p2.get("s3") and p2["s3"].get("p50") == p2["s3"].get("p50") and d_sync is not None:
        ratios[("P2-s3", "P2-cron-s3")] = p2["s3"]["p50"] / (150 + d_rsync + d_sync)
    w("")

    # ---- P9
    w = writer_for("P9")
    w("## P9 database recovery point (daemon streaming WAL, a writer committing 20 a second)")
    w("")
    w("`veloz-backup run` with `Backup:Pitr` on (pg_receivewal `--synchronous` through a slot) and S3 on, after its "
      "start-up base backup was stored locally and in S3. A writer commits one `INSERT` per transaction, %s for each "
      "setting of `Backup:Pitr:ShipPartialEvery`, and records when each COMMIT returned and `pg_current_wal_insert_lsn()` "
      "read right after it, after a warm-up of unmeasured commits (the larger of 5 s and two ticks: the daemon is "
      "steady by then, and the piece a restarted receiver stores first, up to the end of its last page, lies behind the "
      "measured commits). Latency is from COMMIT to the first moment that commit's WAL position is covered: (a) by the "
      "slot's `restart_lsn` (what pg_receivewal has flushed), (b) by the complete artifacts in `<LocalRoot>/pitr/` "
      "(a whole segment, or the chain of `<segment>.<start>-<end>.partial` pieces from offset 0), (c) by the same "
      "artifacts complete in the bucket (their sidecar object, written last, asked for by GET; every object of the "
      "window was afterwards read back and hashed). The two settings ran one after the other (5 s first), "
      "on the same store and slot." % facts.get("p9", "?"))
    w("")
    w("| Row | Setting | Stage | Commits | p50 | p99 | max | Goal (issue) |")
    w("|---|---|---|---|---|---|---|---|")
    p9 = {}
    for every in P9_SETTINGS:
        try:
            with open(os.path.join(a.res, "P9-%ds.json" % every), encoding="utf-8") as f:
                p9[every] = json.load(f)
        except (OSError, ValueError):
            pass

    def verdict(d, goal):
        if d["max"] <= goal:
            return "met (every commit)"
        if d["p99"] <= goal:
            return "met at p99, not at max"
        if d["p50"] <= goal:
            return "met at p50 only"
        return "missed"

    for every in P9_SETTINGS:
        for stage, label, where, goal in P9_STAGES:
            row = "P9-%ds-%s" % (every, stage)
            d = (p9.get(every) or {}).get(stage)
            if row in failed or not d:
                w("| %s | %d s | %s | | FAILED: %s | | | |" % (row, every, label, failed.get(row, "no result").replace("|", "/")[:300]))
                continue
            w("| %s | %d s | %s | %d | %s | %s | %s | %s |" % (row, every, label, d["seen"], fmt_lat(d["p50"]), fmt_lat(d["p99"]),
                                                            fmt_lat(d["max"]), "%s ≤ %.0f s: %s" % (where, goal, verdict(d, goal))))
    dump_local = med.get("P3-pg_dump", (None,))[0]
    dump_s3 = med.get("P4-seeds", (None,))[0]
    w("| P9-runbook | | the runbook's RPO for database corruption (`Backup:Pitr:FreshnessObjective`) | objective | | | %s | |" % fmt_lat(300))
    for row, label, d in [("P9-dump-local", "seeds' daily `pg_dump -Fc > file`: a commit waits for the next dump, then for the dump", dump_local),
                          ("P9-dump-s3", "seeds' daily `pg_dump -Fc > file; aws s3 cp`: the same, then the copy", dump_s3)]:
        if d is None:
            w("| %s | daily | %s | model | FAILED: its dump row did not run | | | |" % (row, label))
            continue
        w("| %s | daily | %s | model | %s | %s | %s | |" % (row, label, fmt_lat(DAY / 2 + d), fmt_lat(DAY * 0.99 + d), fmt_lat(DAY + d)))
    w("")
    w("The daily rows are a model, like P2's cron rows: a commit at a uniformly random moment waits for the next daily "
      "dump (p50 12 h, p99 23.8 h, max 24 h), then for the dump itself, measured in this run (P3-pg_dump %s; P4-seeds, "
      "dump and `aws s3 cp`, %s); the runbook's 5 minutes is the objective the daemon alerts on, not a measurement."
      % (fmt_s(dump_local), fmt_s(dump_s3)))
    w("")
    if p9:
        lines = []
        for stage, where, goal in (("local", "local", 1.0), ("s3", "S3", 6.0)):
            per = ["%s with %d s (p99 %s, max %s)" % (verdict(p9[e][stage], goal), e, fmt_lat(p9[e][stage]["p99"]),
                                                     fmt_lat(p9[e][stage]["max"])) for e in P9_SETTINGS if e in p9 and p9[e].get(stage)]
            lines.append("- ≤ %.0f s %s, (%s): %s." % (goal, where, "b" if stage == "local" else "c", "; ".join(per)))
        per = ["%s with %d s (max %s)" % (verdict(p9[e]["received"], 1.0), e, fmt_lat(p9[e]["received"]["max"]))
               for e in P9_SETTINGS if e in p9 and p9[e].get("received")]
        lines.append("- ≤ 1 s local by (a) alone: %s. But the spool is pg_receivewal's working file: not checksummed, not "
                     "in the store, and nothing restores from it, so (a) is durable on this disk without being a backup; "
                     "the goal is met as a backup only where (b) meets it." % "; ".join(per))
        w("The issue's goals, per setting:")
        w("")
        for line in lines:
            w(line)
        w("")
        notes = []
        for e in P9_SETTINGS:
            d = p9.get(e)
            if not d or not d.get("local"):
                continue
            notes.append("with %d s, (b) p50 %s and max %s, max − setting %+.0f ms; (c) − (b) at p50 %+.0f ms"
                         % (e, fmt_lat(d["local"]["p50"]), fmt_lat(d["local"]["max"]), 1000 * (d["local"]["max"] - e),
                            1000 * (d["s3"]["p50"] - d["local"]["p50"]) if d.get("s3") else float("nan")))
        w("(b) is bounded by `ShipPartialEvery`: the receiver stores the newly flushed part of the segment once per tick, so "
          "a commit waits about half a tick on average and a whole tick at worst, plus the store itself (fsyncs); the next "
          "tick is counted from the end of the previous poll, so the period is the setting plus the poll's own time. "
          "(c) adds the upload, which the replicator starts as soon as a piece is stored: %s." % "; ".join(notes))
        w("")
        res = []
        for stage, name in (("received", "the slot"), ("local", "the local store"), ("s3", "the bucket")):
            r = [p9[e][stage]["resolution"] for e in P9_SETTINGS if e in p9 and p9[e].get(stage, {}).get("resolution")]
            if r:
                res.append("%s every %s (p99 %s, max %s)" % (name, fmt_lat(max(x["p50"] for x in r)), fmt_lat(max(x["p99"] for x in r)),
                                                            fmt_lat(max(x["max"] for x in r))))
        w("Resolution: each stage was sampled in its own thread as fast as it answered (at least 20 a second was the aim): "
          "%s, between the start of one sample and the end of the next. A latency is taken at the end of the first sample "
          "started after COMMIT that covers the commit, so it overstates by at most one such interval; (a)'s latencies are "
          "of the order of its resolution, i.e. the WAL was flushed by pg_receivewal about as soon as it could be seen." % "; ".join(res))
        w("")
        status = []
        for e in P9_SETTINGS:
            d = p9.get(e)
            if d and d.get("status_s3") and d.get("s3"):
                status.append("with %d s, `storedLsnS3` p50 %s / max %s against the bucket's %s / %s, `storedLsn` p50 %s against the directory's %s"
                              % (e, fmt_lat(d["status_s3"]["p50"]), fmt_lat(d["status_s3"]["max"]), fmt_lat(d["s3"]["p50"]), fmt_lat(d["s3"]["max"]),
                                 fmt_lat(d["status_local"]["p50"]), fmt_lat(d["local"]["p50"])))
        if status:
            w("The daemon's own view (`.state/pitr/status.json`, which `status`, `/health` and the metrics show) is computed at "
              "its polls, sampled here too: %s. A piece's upload ends after the poll that stored it, so the S3 position "
              "the daemon reports (and `recoveryPointS3`) trails the bucket by about one tick." % "; ".join(status))
            w("")
        facts_line = []
        for e in P9_SETTINGS:
            d = p9.get(e)
            if d and "commits" in d:
                v = d.get("verify", {})
                facts_line.append("%d s: %d commits at %.1f a second, COMMIT p50 %s (p99 %s), %s of WAL; of the window's "
                                  "artifacts, %d still in the store hashed true to their sidecars (%d byte-for-byte the "
                                  "server's `pg_wal`; %d pieces had been replaced by their whole segment), %d in S3 "
                                  "true to their sidecar and the local checksum; the daemon (its own process) used %.1f %% of "
                                  "a core while it was measured, this measuring process %.1f %%"
                                  % (e, d["commits"], d["achieved_rate"], fmt_lat(d["commit_p50"]), fmt_lat(d["commit_p99"]),
                                     "%.0f KiB" % (d["wal_bytes"] / 1024.0), v.get("local_checked", 0), v.get("local_match_server", 0),
                                     v.get("local_gone", 0), v.get("s3_checked", 0), d.get("daemon_cpu_share", float("nan")),
                                     d.get("meter_cpu_share", float("nan"))))
        if facts_line:
            w("The writer and the checks: %s." % "; ".join(facts_line))
            w("")

    # ---- P5
    w = writer_for("P5")
    w("## P5 peak memory of the agent against data size")
    w("")
    w("| Row | Workload | Data | Agent peak RSS |")
    w("|---|---|---|---|")
    p5 = [
        ("P5-P1-small", "P1 WAL shipping", facts.get("p1_small"), "P5-P1-small"),
        ("P5-P1-full", "P1 WAL shipping", facts.get("p1"), "P1-agent"),
        ("P5-P3-small", "P3 dump, local", facts.get("db_small"), "P5-P3-small"),
        ("P5-P3-full", "P3 dump, local", facts.get("db"), "P3-agent"),
        ("P5-P4-small", "P4 dump, local + S3", facts.get("db_small"), "P5-P4-small"),
        ("P5-P4-full", "P4 dump, local + S3", facts.get("db"), "P4-agent"),
    ]
    for row, work, data, src in p5:
        if src in med:
            w("| %s | %s | %s | %s |" % (row, work, data, fmt_mib(med[src][2])))
        else:
            w("| %s | %s | %s | FAILED: %s |" % (row, work, data, failed.get(src, "not run").replace("|", "/")[:200]))
    rss_growth = []
    for small, full in [("P5-P1-small", "P1-agent"), ("P5-P3-small", "P3-agent"), ("P5-P4-small", "P4-agent")]:
        if small in med and full in med:
            rss_growth.append("%s → %s: %s" % (small.replace("P5-", "").replace("-small", ""), fmt_mib(med[full][2]),
                                              fmt_ratio(med[full][2] / med[small][2])))
    w("")
    w("Peak RSS at the large size ÷ at the small one: %s (the data grows ×%.0f for P1 and about ×5 for P3/P4). "
      "For the dumps it is the larger of the agent and its `pg_dump` child." % (
          ", ".join(rss_growth) or "-", int(facts.get("p1_bytes", 1)) / max(1, int(facts.get("p1_small_bytes", 1)))))
    w("")

    # ---- P7
    w = writer_for("P7")
    w("## P7 the idle daemon")
    w("")
    w("| Row | Window | CPU in the window | Share of one core | CPU during start-up (first %.0f s) | Peak RSS |" % a.p7_settle)
    w("|---|---|---|---|---|---|")
    if a.p7 and "P7-daemon" not in failed:
        cpu, pct, start_cpu, rss = a.p7.split()
        w("| P7-daemon | %.0f s, %s, WAL only, S3 off | %s s | %s %% | %s s | %s |" % (a.p7_window, facts.get("p6"), cpu, pct, start_cpu, fmt_mib(int(rss))))
    else:
        w("| P7-daemon | | FAILED: %s | | | |" % failed.get("P7-daemon", "no result").replace("|", "/")[:300])
    w("")
    w("`veloz-backup run` with the %s present and already stored, measured from `/proc/<pid>/stat` (utime + stime). "
      "A 300 s window always holds one scheduled 5-minute WAL sync (`0 0/5 * * * ?`), which is included." % facts.get("p6"))
    w("")

    # ---- R3
    w = writer_for("R3")
    w("## R3 point-in-time recovery of the cluster from S3")
    w("")
    r3 = {}
    try:
        with open(os.path.join(a.res, "R3.json"), encoding="utf-8") as f:
            r3 = json.load(f)
    except (OSError, ValueError):
        pass
    if r3.get("base"):
        w("The source: `veloz-backup run` with `Backup:Pitr` (ShipPartialEvery 5 s) and S3 on took its start-up base "
          "backup `%s` of the cluster (%s), then %d trades were added in 10 transactions (%s of WAL after the base), and "
          "once `status.json` showed that WAL stored in S3 the daemon was stopped and the local store's `pitr/` removed: "
          "both rows restore from S3 alone (%d objects under `r3/pitr/`, %d of them `.partial` pieces of the last "
          "segment), to the end of the stored WAL. Each run's result was checked afterwards (off the clock): the "
          "restored cluster, started again on a private socket, is out of recovery and holds all %d trades, the ones "
          "replayed from the WAL included."
          % (r3["base"], facts.get("cluster", "?"), r3.get("extra", 0), fmt_size(r3.get("wal_after_base_bytes", 0)) if r3.get("wal_after_base_bytes", 0) >= 2 ** 20 else "%.0f KiB" % (r3.get("wal_after_base_bytes", 0) / 1024.0),
             r3.get("s3_objects", 0), r3.get("s3_partials", 0), r3.get("trades", 0)))
    else:
        w("The source was not ready: %s." % "; ".join(r3.get("errors", []) or ["no result"]))
    w("")
    w("R3-agent is `restore pitr --target-dir DIR` (the scratch restore: an empty directory, a temporary server on a free "
      "port that takes connections on a private socket only, the live cluster untouched; it stops that server again, as "
      "R3-hand does). A live `restore pitr --yes` runs the same steps on the data directory's disk and adds the "
      "switch-over (stop, two renames, start, slot, a new base backup after VeloZ is back). R3-hand follows the README's "
      "\"PostgreSQL point-in-time recovery by hand\" (`aws s3 cp --recursive` of the kind's prefix, which here holds the "
      "one base, `sha256sum -c` of every sidecar, the pieces written at their offsets with `dd bs=1M oflag=seek_bytes` "
      "and padded to 16 MiB, the continuity check, `tar -xzf`, `restore_command = 'cp …'`, `recovery.signal`, the "
      "scratch settings) and waits for `pg_is_in_recovery()` to turn false, polling every 0.1 s; it checks no more than "
      "the sidecars (no `pg_verifybackup`, no target lookup in the WAL, no row count).")
    w("")
    steps = {}
    order = []
    path = os.path.join(a.res, "R3-agent.steps")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 3:
                    continue
                name = re.sub(r"\(port \d+,", "(port N,", parts[1])
                if name not in steps:
                    steps[name] = []
                    order.append(name)
                try:
                    steps[name].append(float(parts[2]))
                except ValueError:
                    pass
    if steps:
        w("The agent's own step times (its `STEP`/`TIME` table, 0.1 s resolution), per step the median of the %d runs:"
          % max(len(v) for v in steps.values()))
        w("")
        w("| Step (R3-agent) | Median | Min | Max |")
        w("|---|---|---|---|")
        total = 0.0
        for name in order:
            v = steps[name]
            total += statistics.median(v)
            w("| %s | %.1f s | %.1f s | %.1f s |" % (name.replace("|", "/"), statistics.median(v), min(v), max(v)))
        if "R3-agent" in med:
            w("| *sum of the steps; the process's wall-clock median* | %.1f s | | %s |" % (total, fmt_s(med["R3-agent"][0])))
        w("")
    elif "R3-agent" in med:
        w("The agent printed no step times.")
        w("")

    # ---- headline
    w = L.append
    w("## Headline ratios")
    w("")
    headline = [
        (("P1-agent", "P1-rsync"), "P1 WAL shipping, agent vs the seeds' `rsync -a`"),
        (("P1-agent", "P1-cp-fsync"), "P1 WAL shipping, agent vs durable `cp -r` + `sync`"),
        (("P1-agent", "P1-cp"), "P1 WAL shipping, agent vs `cp -r` (nothing fsynced)"),
        (("P2-local", "P2-cron-local"), "P2 recovery point p50, agent vs the seeds' 5-minute cron (local)"),
        (("P2-s3", "P2-cron-s3"), "P2 recovery point p50, agent vs the seeds' 5-minute cron (S3)"),
        (("P3-agent", "P3-pg_dump"), "P3 daily dump, agent (local) vs bare `pg_dump -Fc > file`"),
        (("P4-agent", "P4-seeds"), "P4 daily dump to S3, agent vs the seeds' `pg_dump > file; aws s3 cp`"),
        (("P4-agent", "P3-pg_dump"), "P4 daily dump to S3, agent vs bare `pg_dump -Fc > file`"),
        (("P6-agent", "P6-rsync"), "P6 sync with nothing new, agent vs `rsync -a`"),
        (("P6-inproc", "P6-rsync"), "P6 sync with nothing new inside the daemon (no process start) vs `rsync -a`"),
        (("P6-first-agent", "P6-first-rsync"), "P1 first sync of the small segments (P6's), agent vs `rsync -a`"),
        (("P8-agent", "P8-basebackup"), "P8 base backup, agent vs bare `pg_basebackup -D - -Ft -X fetch -c fast > file`"),
        (("P8-agent", "P8-basebackup-dir"), "P8 base backup, agent vs `pg_basebackup -Ft -D dir` (fsynced)"),
        (("P8-agent", "P8-basebackup-gzip"), "P8 base backup, agent vs `pg_basebackup … | gzip -1 > file`"),
        (("P8-agent", "P8-pg_dump"), "P8 base backup, agent vs the daily `pg_dump -Fc > file`"),
        (("R1-agent", "R1-seeds"), "R1 restore database from S3, agent vs `aws s3 cp` + `pg_restore`"),
        (("R2-agent", "R2-seeds"), "R2 restore full, agent vs the seeds' steps"),
        (("R3-agent", "R3-hand"), "R3 PITR from S3 to the end of the WAL, agent (`--target-dir`) vs by hand"),
        (("R3-agent", "R1-agent"), "R3 PITR of the cluster, agent, vs R1 the agent's restore of the dump"),
        (("R3-hand", "R1-seeds"), "R3 PITR by hand vs R1 the seeds' `aws s3 cp` + `pg_restore`"),
    ]
    if "R3-hand" in med and "R1-seeds" in med and med["R1-seeds"][0] > 0:
        ratios[("R3-hand", "R1-seeds")] = med["R3-hand"][0] / med["R1-seeds"][0]
        if med["R1-seeds"][1] > 0:
            cpu_ratios[("R3-hand", "R1-seeds")] = med["R3-hand"][1] / med["R1-seeds"][1]
    for key, text in headline:
        if not sel(key[0][:2]) or not sel(key[1][:2]):
            continue
        if key[0].startswith("P2") and key in ratios:
            agent_p50 = p2[key[0][3:]]["p50"]
            w("- %s: **%s vs %s, %.0f× sooner**" % (text, fmt_s(agent_p50), fmt_s(agent_p50 / ratios[key]), 1 / ratios[key]))
        elif key in ratios:
            w("- %s: **%s** wall clock, %s CPU" % (text, fmt_ratio(ratios[key]),
                                                 fmt_ratio(cpu_ratios[key]) if key in cpu_ratios else "-"))
        elif key[0] in RESTORE_ROWS and not restore:
            w("- %s: %s" % (text, NA_RESTORE))
        else:
            w("- %s: not measured (%s)" % (text, failed.get(key[0], failed.get(key[1], "a row failed"))[:200]))
    for e in (P9_SETTINGS if sel("P9") else []):
        d = p9.get(e)
        if d and d.get("local") and d.get("s3") and "P9-%ds-local" % e not in failed:
            w("- P9 database recovery point p50 with ShipPartialEvery %d s: **local %s, S3 %s** (max %s, %s) vs the seeds' daily "
              "dump's 12 h and the runbook's 5 min" % (e, fmt_lat(d["local"]["p50"]), fmt_lat(d["s3"]["p50"]), fmt_lat(d["local"]["max"]),
                                                       fmt_lat(d["s3"]["max"])))
        else:
            w("- P9 database recovery point with ShipPartialEvery %d s: not measured (%s)" % (e, failed.get("P9-%ds-local" % e, "no result")[:200]))
    if a.p7 and "P7-daemon" not in failed and sel("P7"):
        w("- P7 idle daemon: **%s %%** of one core over %.0f s" % (a.p7.split()[1], a.p7_window))
    if rss_growth and sel("P5"):
        w("- P5 peak RSS, large ÷ small data: **%s**" % ", ".join(rss_growth))
    # (R3 against R1 compares a cluster's PITR with a dump's restore: two jobs, not the agent against a baseline.)
    agent_vs = {k: v for k, v in ratios.items() if k[0].endswith("-agent") and not k[0].startswith("P2")
                and not (k[0].startswith("R3") and not k[1].startswith("R3"))}
    if agent_vs:
        (row, base), r = max(agent_vs.items(), key=lambda kv: kv[1])
        w("")
        w("Slowest ratio of this run: **%s vs %s, %s** wall clock (%s CPU)." % (
            row, base, fmt_ratio(r), fmt_ratio(cpu_ratios[(row, base)]) if (row, base) in cpu_ratios else "-"))
        if row == "P1-agent":
            w("")
            w("Why P1 is the slowest: `cp -r` (GNU cp 9) copies with `copy_file_range`, inside the kernel, so no byte passes "
              "through user space and nothing is made durable; `cp` + `sync` adds only the durability, with the kernel "
              "writing all files back at once. The agent must read every byte to hash it (SHA-256 of 2 GiB), writes it "
              "through user space, and makes every segment, its sidecar and the directory durable before the segment "
              "counts: segments are staged in batches (256 segments or 256 MiB), each batch flushed on another thread "
              "while the next is read and hashed, then renamed with one directory fsync. Against the seeds' `rsync -a`, "
              "which also moves the bytes through user space but never fsyncs, the CPU ratio is small; the rest of the "
              "wall-clock gap is waiting for the disk to make the last batches durable.")
    w("")
    if a.mode == "quick":
        w("_Quick mode: tiny data, for checking that the harness works; these numbers mean nothing._")
        w("")

    text = "\n".join(L)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
