#!/usr/bin/env python3
"""Helpers of bench/run.sh (Python 3 standard library only).

  gen-wal DIR COUNT SIZE SEED [START]   deterministic sealed segments orders_<16 digits>.wal, mtime fixed in the past
  p2 ...                                P2: a writer seals segments at a steady rate; pollers time their arrival
  p9 ...                                P9: a writer commits at a steady rate; pollers time its WAL's arrival
  stats FILE                            median of each column of a whitespace-separated file of numbers
"""
import argparse
import bisect
import hashlib
import html
import json
import os
import random
import re
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

MiB = 1 << 20
# A fixed past modification time (2026-01-01 00:00:00 UTC): sealed long ago, so settled, and the same every run.
FIXED_MTIME = 1767225600


def segment_name(seq):
    return "orders_%016d.wal" % seq


def segment_bytes(seed, seq, size):
    """The same bytes for the same (seed, seq, size) on every machine and run."""
    return random.Random(seed * 1_000_003 + seq).randbytes(size)


def gen_wal(args):
    os.makedirs(args.dir, exist_ok=True)
    for seq in range(args.start, args.start + args.count):
        path = os.path.join(args.dir, segment_name(seq))
        with open(path, "wb") as f:
            f.write(segment_bytes(args.seed, seq, args.size))
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


SIDECAR = re.compile(r"^([0-9a-f]{64})  (\S+)\n?$")


def read_sidecar_hash(text, name):
    """The checksum of a complete sidecar in sha256sum format ("<64 hex>  <name>\\n") for NAME, else None.

    s3rver writes an object's bytes straight into place, so a GET racing the PUT can see a partial sidecar: that
    is "not there yet", not a wrong checksum."""
    m = SIDECAR.match(text)
    return m.group(1) if m and m.group(2) == name else None


def http_get(url, timeout=5.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, b"", {}
    except (urllib.error.URLError, OSError):
        return 0, b"", {}


def http_head(url, timeout=5.0):
    req = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, {}
    except (urllib.error.URLError, OSError):
        return 0, {}


def p2(args):
    """Seals args.count segments, one every args.interval seconds, the way VeloZ does: appends to the active file
    in even steps over the interval, then renames it to its sealed name. Pollers record when each segment's
    checksum sidecar is present *and* names the segment's true SHA-256, in the local store and (if given) in S3,
    where the object itself must be there too with the same size and x-amz-meta-sha256. Every stored copy is
    then read back in full and hashed (off the clock)."""
    os.makedirs(args.wal, exist_ok=True)
    seal = {}          # name -> (monotonic seal time, sha256 hex, size)
    arrived = {"local": {}, "s3": {}}
    bad = {"local": [], "s3": []}
    partial = {"local": 0, "s3": 0}  # incomplete sidecars seen mid-write (polled again)
    lock = threading.Lock()
    done_writing = threading.Event()
    steps = max(1, args.steps)
    chunk = args.size // steps

    def sleep_until(t):
        time.sleep(max(0.0, t - time.monotonic()))

    def writer():
        base = time.monotonic()
        step_gap = args.interval / steps
        active = os.path.join(args.wal, args.active)
        for i in range(args.count):
            seq = args.start + i
            data = segment_bytes(args.seed, seq, args.size)
            seal_at = base + (i + 1) * args.interval
            with open(active, "wb") as f:
                for s in range(steps):
                    # The last append lands at the seal instant: the segment is sealed the moment it is full.
                    sleep_until(seal_at - args.interval + (s + 1) * step_gap)
                    f.write(data[s * chunk:args.size if s == steps - 1 else (s + 1) * chunk])
                    f.flush()
                os.fsync(f.fileno())
            os.rename(active, os.path.join(args.wal, segment_name(seq)))
            t = time.monotonic()
            with lock:
                seal[segment_name(seq)] = (t, hashlib.sha256(data).hexdigest(), len(data))
        done_writing.set()

    def poll_local():
        while True:
            with lock:
                pending = [(n, v) for n, v in seal.items() if n not in arrived["local"]]
            for name, (_, digest, _) in pending:
                try:
                    with open(os.path.join(args.local, name + ".sha256"), encoding="ascii") as f:
                        text = f.read()
                except OSError:
                    continue
                now = time.monotonic()
                found = read_sidecar_hash(text, name)
                with lock:
                    if found == digest:
                        arrived["local"][name] = now
                    elif found is not None:
                        bad["local"].append(name + ": sidecar names another checksum")
                        arrived["local"][name] = float("nan")
                    else:
                        partial["local"] += 1
            if done_writing.is_set() and len(arrived["local"]) >= args.count:
                return
            if stop.is_set():
                return
            time.sleep(args.poll)

    def poll_s3():
        while True:
            with lock:
                pending = [(n, v) for n, v in seal.items() if n not in arrived["s3"]]
            for name, (_, digest, size) in pending:
                status, body, _ = http_get(args.s3 + "/" + name + ".sha256")
                if status != 200:
                    continue
                found = read_sidecar_hash(body.decode("ascii", "replace"), name)
                if found != digest:
                    with lock:
                        if found is None:
                            partial["s3"] += 1
                        else:
                            bad["s3"].append(name + ": sidecar names another checksum")
                            arrived["s3"][name] = float("nan")
                    continue
                hstatus, headers = http_head(args.s3 + "/" + name)
                if hstatus != 200 or int(headers.get("content-length", "-1")) != size:
                    continue
                now = time.monotonic()
                with lock:
                    if headers.get("x-amz-meta-sha256", "").lower() not in ("", digest):
                        bad["s3"].append(name + ": object metadata names another checksum")
                        arrived["s3"][name] = float("nan")
                    else:
                        arrived["s3"][name] = now
            if done_writing.is_set() and len(arrived["s3"]) >= args.count:
                return
            if stop.is_set():
                return
            time.sleep(args.poll)

    stop = threading.Event()
    threads = [threading.Thread(target=writer, daemon=True), threading.Thread(target=poll_local, daemon=True)]
    if args.s3:
        threads.append(threading.Thread(target=poll_s3, daemon=True))
    for t in threads:
        t.start()
    threads[0].join()
    deadline = time.monotonic() + args.timeout
    for t in threads[1:]:
        t.join(max(0.0, deadline - time.monotonic()))
    stop.set()

    # Off the clock: read every stored copy back in full and hash it.
    verified = {"local": 0, "s3": 0}
    for name, (_, digest, _) in sorted(seal.items()):
        if name in arrived["local"]:
            h = hashlib.sha256()
            try:
                with open(os.path.join(args.local, name), "rb") as f:
                    for block in iter(lambda: f.read(MiB), b""):
                        h.update(block)
                with open(os.path.join(args.local, name + ".sha256"), encoding="ascii") as f:
                    sidecar = read_sidecar_hash(f.read(), name)
                if h.hexdigest() == digest and sidecar == digest:
                    verified["local"] += 1
                else:
                    bad["local"].append(name + ": stored bytes or sidecar differ")
            except OSError as e:
                bad["local"].append("%s: %s" % (name, e))
        if args.s3 and name in arrived["s3"]:
            status, body, _ = http_get(args.s3 + "/" + name, timeout=60)
            sstatus, sbody, _ = http_get(args.s3 + "/" + name + ".sha256")
            if status == 200 and hashlib.sha256(body).hexdigest() == digest and sstatus == 200 \
                    and read_sidecar_hash(sbody.decode("ascii", "replace"), name) == digest:
                verified["s3"] += 1
            else:
                bad["s3"].append(name + ": S3 object or sidecar differ (HTTP %d, %d)" % (status, sstatus))

    result = {"count": args.count, "size": args.size, "interval": args.interval}
    for target in (["local", "s3"] if args.s3 else ["local"]):
        lat = sorted(arrived[target][n] - seal[n][0] for n in arrived[target] if arrived[target][n] == arrived[target][n])
        result[target] = {
            "arrived": len(lat), "verified": verified[target], "missing": args.count - len(arrived[target]),
            "p50": percentile(lat, 50), "p99": percentile(lat, 99), "max": lat[-1] if lat else float("nan"),
            "min": lat[0] if lat else float("nan"), "errors": bad[target][:10], "partial_reads": partial[target],
        }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    ok = all(result[t]["missing"] == 0 and not result[t]["errors"] and result[t]["verified"] == args.count
             for t in result if isinstance(result[t], dict))
    return 0 if ok else 1


# ------------------------------------------------------------------------------------------------- P9
class PgError(Exception):
    pass


class Pg:
    """The little of PostgreSQL's wire protocol (v3, simple queries, trust authentication) P9 needs: the standard
    library has no client, and psql through a pipe would add its own buffering to every timing."""

    def __init__(self, host, port, user, database, application="veloz-bench"):
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        params = b"".join(k.encode() + b"\0" + v.encode() + b"\0"
                          for k, v in (("user", user), ("database", database), ("application_name", application))) + b"\0"
        body = struct.pack("!i", 196608) + params
        self.sock.sendall(struct.pack("!i", len(body) + 4) + body)
        while True:
            kind, payload = self._message()
            if kind == b"R" and struct.unpack("!i", payload[:4])[0] != 0:
                raise PgError("the server asks for a password (authentication code %d): the bench cluster is trust-only"
                              % struct.unpack("!i", payload[:4])[0])
            if kind == b"E":
                raise PgError(self._error(payload))
            if kind == b"Z":
                return

    def _exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise PgError("the server closed the connection")
            self.buf += chunk
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def _message(self):
        head = self._exact(5)
        return head[:1], self._exact(struct.unpack("!i", head[1:])[0] - 4)

    @staticmethod
    def _error(payload):
        fields = dict((f[:1], f[1:].decode("utf-8", "replace")) for f in payload.split(b"\0") if f)
        return "%s: %s" % (fields.get(b"S", "ERROR"), fields.get(b"M", "?"))

    def query(self, sql):
        """Runs SQL (one statement: autocommit), returns its rows as lists of text (None for NULL)."""
        data = sql.encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack("!i", len(data) + 4) + data)
        rows, error = [], None
        while True:
            kind, p = self._message()
            if kind == b"D":
                row, off = [], 2
                for _ in range(struct.unpack("!h", p[:2])[0]):
                    n = struct.unpack("!i", p[off:off + 4])[0]
                    off += 4
                    row.append(None if n < 0 else p[off:off + n].decode())
                    off += max(0, n)
                rows.append(row)
            elif kind == b"E":
                error = self._error(p)
            elif kind == b"Z":
                if error:
                    raise PgError(error)
                return rows

    def close(self):
        try:
            self.sock.sendall(b"X" + struct.pack("!i", 4))
        except OSError:
            pass
        self.sock.close()


def parse_lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def format_lsn(v):
    return "%X/%X" % (v >> 32, v & 0xFFFFFFFF)


WAL_NAME = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(?:\.([0-9A-F]{8})-([0-9A-F]{8})\.partial)?$")


def wal_segment_name(timeline, segno, seg_size):
    per_id = 0x100000000 // seg_size
    return "%08X%08X%08X" % (timeline, segno // per_id, segno % per_id)


def stored_end(names, timeline, seg_size):
    """How far the stored WAL of TIMELINE reaches: over the segments named, a whole segment's end, or the end of the
    chain of pieces that covers it contiguously from offset 0 (the rule a restore assembles pieces by). NAMES are
    complete artifacts only (their sidecar is there). 0 when nothing is stored."""
    per_id = 0x100000000 // seg_size
    whole, pieces = set(), {}
    for name in names:
        m = WAL_NAME.match(name)
        if not m or int(m.group(1), 16) != timeline:
            continue
        segno = int(m.group(2), 16) * per_id + int(m.group(3), 16)
        if m.group(4) is None:
            whole.add(segno)
        else:
            pieces.setdefault(segno, []).append((int(m.group(4), 16), int(m.group(5), 16)))
    end = max(((s + 1) * seg_size for s in whole), default=0)
    for segno, ranges in pieces.items():
        if segno in whole:
            continue
        covered = 0
        for start, stop in sorted(ranges):
            if start > covered:
                break
            covered = max(covered, stop)
        if covered:
            end = max(end, segno * seg_size + covered)
    return end


def p9(args):
    """P9: a writer commits at a steady rate (one INSERT per transaction, autocommit) and records, for each commit,
    when COMMIT returned and pg_current_wal_insert_lsn() read right after it. Pollers sample, each in its own thread
    and as fast as they can (sleeping args.poll between samples): (a) the slot's restart_lsn (what pg_receivewal has
    flushed into the spool), (b) the local store's pitr/ directory (complete artifacts: sidecar present), (c) the
    bucket (the sidecar object, written last, of each artifact the local store holds), and the daemon's status.json. A
    commit counts as there at the first sample taken after it that covers its LSN; its latency is that sample's end
    minus COMMIT's return. The writer starts args.warmup seconds before the measured commits (unmeasured): the daemon
    is in its steady state by then, and after a restart the receiver's first piece, which it stores up to the end of
    its last page (zeros past the WAL it holds), lies behind them. It goes on (unmeasured) until every measured commit
    was seen everywhere, so the last ones are measured under the same load. Afterwards (off the clock) every stored piece and segment still
    there is hashed against its sidecar and compared with the server's own WAL file, and every object in S3 with
    its sidecar and the local copy's checksum."""
    seg_size = args.segment_size
    local_dir = os.path.join(args.root, "pitr")
    status_path = os.path.join(args.root, ".state", "pitr", "status.json")
    s3_prefix = "%s/pitr/" % args.node
    mono0 = time.monotonic()
    result = {"rate": args.rate, "window": args.window, "every": args.every, "errors": []}

    def fail(why):
        result["errors"].append(why)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
        print("p9: " + why, file=sys.stderr)
        return 1

    def s3_list(prefix):
        """Keys under PREFIX (every page), or None when S3 does not answer."""
        keys, token = [], None
        while True:
            q = {"list-type": "2", "prefix": prefix}
            if token:
                q["continuation-token"] = token
            status, body, _ = http_get(args.s3 + "?" + urllib.parse.urlencode(q))
            if status != 200:
                return None
            text = body.decode("utf-8", "replace")
            keys += [html.unescape(k) for k in re.findall(r"<Key>(.*?)</Key>", text)]
            m = re.search(r"<NextContinuationToken>(.*?)</NextContinuationToken>", text)
            if "<IsTruncated>true</IsTruncated>" not in text or not m:
                return keys
            token = html.unescape(m.group(1))

    def complete(names):
        """Artifact names whose sidecar is present too."""
        names = set(names)
        return [n for n in names if n + ".sha256" in names]

    def read_status():
        try:
            with open(status_path, encoding="utf-8") as f:
                return json.load(f), os.stat(status_path).st_mtime
        except (OSError, ValueError):
            return None, 0

    # ---- ready: streaming, the start-up base backup (if any) stored locally and in S3, the upload queue drained
    db = Pg(args.host, args.port, args.user, args.database, "veloz-bench-p9-writer")
    mon = Pg(args.host, args.port, args.user, args.database, "veloz-bench-p9-slot")
    started_wall = time.time()
    deadline = time.monotonic() + args.ready_timeout
    ready_why = "never polled"
    while True:
        st, mtime = read_status()
        slot = mon.query("SELECT active FROM pg_replication_slots WHERE slot_name = '%s'" % args.slot)
        bases_local = [n for n in complete(os.listdir(local_dir) if os.path.isdir(local_dir) else []) if n.endswith(".json") and n.startswith("base_")]
        keys = s3_list(s3_prefix + "base_") or []
        bases_s3 = [k for k in complete(keys) if k.endswith(".json")]
        if st is None or mtime < started_wall:
            ready_why = "no status.json written by this daemon yet"
        elif not st.get("receiverUp"):
            ready_why = "the receiver is not up: %s" % st.get("lastError")
        elif not slot or slot[0][0] != "t":
            ready_why = "slot %s not active" % args.slot
        elif not bases_local or not bases_s3:
            ready_why = "the start-up base backup is not stored yet (local %d, S3 %d)" % (len(bases_local), len(bases_s3))
        elif not st.get("storedLsn") or st.get("storedLsnS3") != st.get("storedLsn"):
            ready_why = "the upload queue is not drained (stored %s, in S3 %s)" % (st.get("storedLsn"), st.get("storedLsnS3"))
        else:
            break
        if time.monotonic() > deadline:
            return fail("the daemon was not ready within %.0f s: %s" % (args.ready_timeout, ready_why))
        time.sleep(0.2)
    result["ready_after"] = time.monotonic() - mono0
    timeline = int(db.query("SELECT timeline_id FROM pg_control_checkpoint()")[0][0])

    # ---- measure
    lock = threading.Lock()
    commits = []            # (monotonic COMMIT return, wall time, insert LSN)
    commit_times = []       # how long each INSERT (its COMMIT included) took
    samples = {"received": [], "local": [], "s3": [], "status_received": [], "status_local": [], "status_s3": []}
    seen_local = {}         # artifact name -> (its sidecar's text, first seen after the first measured commit)
    seen_s3 = {}            # artifact names seen complete in S3
    local_now = [frozenset()]  # the WAL artifacts complete in the local store at its last sample
    measured = int(round(args.rate * args.window))
    warm = int(round(args.rate * (args.warmup if args.warmup >= 0 else max(5.0, 2 * args.every))))
    stop = threading.Event()
    writer_done = threading.Event()
    errors = []

    def target_lsn():
        with lock:
            return commits[-1][2] if len(commits) >= measured else None

    def writer():
        try:
            base = time.monotonic()
            i = 0
            while not stop.is_set():
                time.sleep(max(0.0, base + i / args.rate - time.monotonic()))
                t_sent = time.monotonic()
                db.query("INSERT INTO p9_orders (seq, payload) VALUES (%d, md5('%d'))" % (i, i))
                t, wall = time.monotonic(), time.time()
                lsn = parse_lsn(db.query("SELECT pg_current_wal_insert_lsn()")[0][0])
                if warm <= i < warm + measured:
                    with lock:
                        commits.append((t, wall, lsn))
                        commit_times.append(t - t_sent)
                i += 1
            result["writer_total_commits"] = i
        except (PgError, OSError) as e:
            errors.append("writer: %s" % e)
        finally:
            writer_done.set()

    def poller(name, sample, period):
        try:
            while not stop.is_set():
                t0 = time.monotonic()
                v = sample()
                t1 = time.monotonic()
                if v is not None:
                    samples[name].append((t0, t1, v))
                time.sleep(period)
        except (PgError, OSError) as e:
            errors.append("%s poller: %s" % (name, e))

    def sample_slot():
        rows = mon.query("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '%s'" % args.slot)
        return parse_lsn(rows[0][0]) if rows and rows[0][0] else 0

    def sample_local():
        try:
            names = complete(e.name for e in os.scandir(local_dir))
        except OSError:
            return None
        local_now[0] = frozenset(n for n in names if WAL_NAME.match(n))
        for n in names:
            if n not in seen_local and WAL_NAME.match(n):
                try:
                    with open(os.path.join(local_dir, n + ".sha256"), encoding="ascii") as f:
                        # Stored before the first measured commit: not the window's (and a piece stored at a restart
                        # legitimately ends in zeros, up to the end of its last page).
                        seen_local[n] = (f.read(), bool(commits))
                except OSError:
                    pass
        return stored_end(names, timeline, seg_size)

    def sample_s3():
        # Every artifact is stored locally first and copied to S3 under the same name, sidecar last: so S3 is asked,
        # by a GET of the sidecar, about exactly what the local store holds and S3 has not shown yet (usually one
        # piece). A bucket listing would do too, but s3rver's grows slower with every piece of the segment.
        for n in sorted(local_now[0] - seen_s3.keys())[:8]:
            status, body, _ = http_get(args.s3 + "/" + urllib.parse.quote(s3_prefix + n + ".sha256"))
            if status == 200 and read_sidecar_hash(body.decode("ascii", "replace"), n):
                seen_s3[n] = True
        return stored_end(list(seen_s3), timeline, seg_size)

    def sample_status():
        st, _ = read_status()
        if not st:
            return None
        t = time.monotonic()
        for key, series in (("receivedLsn", "status_received"), ("storedLsn", "status_local"), ("storedLsnS3", "status_s3")):
            if st.get(key):
                samples[series].append((t, t, parse_lsn(st[key])))
        return None

    def daemon_cpu():
        try:
            with open("/proc/%d/stat" % args.daemon_pid, encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return float("nan")

    cpu_start, meter_start, wall_start = daemon_cpu(), time.process_time(), time.monotonic()
    threads = [threading.Thread(target=writer, daemon=True)]
    for name, fn, period in (("received", sample_slot, args.poll), ("local", sample_local, args.poll),
                             ("s3", sample_s3, args.s3_poll), ("status", sample_status, args.poll)):
        threads.append(threading.Thread(target=poller, args=(name, fn, period), daemon=True))
    for t in threads:
        t.start()
    drain_deadline = time.monotonic() + warm / args.rate + args.window + args.drain_timeout
    while time.monotonic() < drain_deadline and not errors:
        target = target_lsn()
        if target is not None and all(samples[k] and samples[k][-1][2] >= target for k in samples):
            break
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(10)
    elapsed = time.monotonic() - wall_start
    result["daemon_cpu_share"] = 100 * (daemon_cpu() - cpu_start) / elapsed
    result["meter_cpu_share"] = 100 * (time.process_time() - meter_start) / elapsed
    db.close()
    mon.close()
    if errors:
        return fail("; ".join(errors[:5]))

    # ---- latencies
    def latencies(series):
        ss = samples[series]
        starts = [s[0] for s in ss]
        out, missing = [], 0
        for t, _, lsn in commits:
            k = bisect.bisect_left(starts, t)
            while k < len(ss) and ss[k][2] < lsn:
                k += 1
            if k < len(ss):
                out.append(ss[k][1] - t)
            else:
                missing += 1
        out.sort()
        return out, missing

    def gaps(series):
        ss = samples[series]
        g = sorted(ss[i][1] - ss[i - 1][0] for i in range(1, len(ss)))
        return {"samples": len(ss), "p50": percentile(g, 50), "p99": percentile(g, 99), "max": g[-1] if g else float("nan")}

    ok = True
    if len(commits) < measured:
        return fail("only %d of %d commits were made" % (len(commits), measured))
    span = commits[-1][0] - commits[0][0]
    result.update({"commits": len(commits), "warmup_commits": warm, "achieved_rate": (len(commits) - 1) / span if span > 0 else float("nan"),
                   "first_lsn": format_lsn(commits[0][2]), "last_lsn": format_lsn(commits[-1][2]),
                   "wal_bytes": commits[-1][2] - commits[0][2], "timeline": timeline,
                   "commit_p50": percentile(sorted(commit_times), 50), "commit_p99": percentile(sorted(commit_times), 99)})
    for series in samples:
        lat, missing = latencies(series)
        result[series] = {"seen": len(lat), "missing": missing, "p50": percentile(lat, 50), "p99": percentile(lat, 99),
                          "max": lat[-1] if lat else float("nan"), "min": lat[0] if lat else float("nan")}
        if series in ("received", "local", "s3"):
            result[series]["resolution"] = gaps(series)
            if missing:
                ok = False
                result["errors"].append("%s: %d of %d commits never seen within the drain time" % (series, missing, len(commits)))

    # ---- off the clock: what is stored is what the server wrote
    first_seg, last_seg = (commits[0][2] - 1) // seg_size, (commits[-1][2] - 1) // seg_size

    def in_window(name):
        m = WAL_NAME.match(name)
        return m is not None and first_seg <= int(m.group(2), 16) * (0x100000000 // seg_size) + int(m.group(3), 16) <= last_seg

    def server_bytes(name):
        m = WAL_NAME.match(name)
        try:
            with open(os.path.join(args.pgdata, "pg_wal", name[:24]), "rb") as f:
                if m.group(4) is None:
                    return f.read()
                f.seek(int(m.group(4), 16))
                return f.read(int(m.group(5), 16) - int(m.group(4), 16))
        except OSError:
            return None

    v = {"local_checked": 0, "local_match_server": 0, "local_gone": 0, "s3_checked": 0, "s3_gone": 0}
    for name in sorted(n for n, (_, during) in seen_local.items() if during and in_window(n)):
        path = os.path.join(local_dir, name)
        want = read_sidecar_hash(seen_local[name][0], name)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            v["local_gone"] += 1   # a piece removed once its whole segment was stored
            continue
        v["local_checked"] += 1
        if hashlib.sha256(data).hexdigest() != want:
            ok = False
            result["errors"].append("%s: local bytes do not match the sidecar" % name)
            continue
        srv = server_bytes(name)
        if srv is not None and srv == data:
            v["local_match_server"] += 1
        elif srv is not None:
            ok = False
            result["errors"].append("%s: local bytes differ from the server's pg_wal" % name)
    for name in sorted(n for n in seen_s3 if n in seen_local and seen_local[n][1] and in_window(n)):
        status, body, _ = http_get(args.s3 + "/" + urllib.parse.quote(s3_prefix + name), timeout=60)
        sstatus, sbody, _ = http_get(args.s3 + "/" + urllib.parse.quote(s3_prefix + name + ".sha256"))
        if status == 404:
            v["s3_gone"] += 1
            continue
        want = read_sidecar_hash(sbody.decode("ascii", "replace"), name) if sstatus == 200 else None
        v["s3_checked"] += 1
        if status != 200 or want is None or hashlib.sha256(body).hexdigest() != want \
                or read_sidecar_hash(seen_local[name][0], name) != want:
            ok = False
            result["errors"].append("%s: S3 object, sidecar and local checksum disagree (HTTP %d, %d)" % (name, status, sstatus))
    result["verify"] = v
    if v["local_checked"] == 0 or v["s3_checked"] == 0:
        ok = False
        result["errors"].append("nothing of the window was left to verify (local %d, S3 %d)" % (v["local_checked"], v["s3_checked"]))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    return 0 if ok else 1


def r3_prepare(args):
    """R3's source: waits until the daemon (pitr + S3) has streamed, stored its start-up base backup locally and in S3
    and drained its upload queue; then a writer adds args.extra trades (in batches, one transaction each, so the
    restore must replay them from the WAL after the base backup), and waits until the daemon reports the WAL up to the
    last commit stored in S3 (status.json's storedLsnS3). Writes the expected trade count and what was written."""
    status_path = os.path.join(args.root, ".state", "pitr", "status.json")
    result = {"errors": []}

    def done(why=None):
        if why:
            result["errors"].append(why)
            print("r3-prepare: " + why, file=sys.stderr)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
        return 1 if why else 0

    def status():
        try:
            with open(status_path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def s3_keys(prefix):
        status_code, body, _ = http_get(args.s3 + "?" + urllib.parse.urlencode({"list-type": "2", "prefix": prefix}))
        if status_code != 200:
            return []
        return [html.unescape(k) for k in re.findall(r"<Key>(.*?)</Key>", body.decode("utf-8", "replace"))]

    t0 = time.monotonic()
    deadline = t0 + args.timeout
    why = "never polled"
    while True:
        st = status()
        keys = set(s3_keys("%s/pitr/base_" % args.node))
        bases = sorted(k for k in keys if k.endswith(".json") and k + ".sha256" in keys)
        if args.daemon_pid and not os.path.exists("/proc/%d" % args.daemon_pid):
            return done("the daemon exited")
        if st is None or not st.get("receiverUp"):
            why = "the receiver is not up: %s" % (st or {}).get("lastError")
        elif not bases:
            why = "the start-up base backup is not in S3 yet"
        elif not st.get("storedLsn") or st.get("storedLsnS3") != st.get("storedLsn"):
            why = "the upload queue is not drained (stored %s, in S3 %s)" % (st.get("storedLsn"), st.get("storedLsnS3"))
        else:
            break
        if time.monotonic() > deadline:
            return done("the daemon was not ready within %.0f s: %s" % (args.timeout, why))
        time.sleep(0.2)
    result["base"] = bases[-1].rsplit("/", 1)[-1][:-len(".json")]
    result["base_ready_s"] = round(time.monotonic() - t0, 3)
    db = Pg(args.host, args.port, args.user, args.database, "veloz-bench-r3-writer")
    lsn0 = parse_lsn(db.query("SELECT pg_current_wal_lsn()")[0][0])
    first = int(db.query("SELECT coalesce(max(trade_id), 0) FROM trades")[0][0]) + 1
    batch = max(1, args.extra // args.batches)
    n = 0
    while n < args.extra:
        k = min(batch, args.extra - n)
        db.query("INSERT INTO trades SELECT g, (random() * 1e12)::bigint, upper(substr(md5(g::text), 1, 4)), "
                 "CASE WHEN random() < 0.5 THEN 'B' ELSE 'S' END, 1 + floor(random() * 10000)::int, "
                 "round((1 + random() * 4999)::numeric, 4), 'XNYS', clock_timestamp(), md5(random()::text) "
                 "FROM generate_series(%d, %d) g" % (first + n, first + n + k - 1))
        n += k
    end = parse_lsn(db.query("SELECT pg_current_wal_lsn()")[0][0])
    result["trades"] = int(db.query("SELECT count(*) FROM trades")[0][0])
    result["extra"] = args.extra
    result["wal_after_base_bytes"] = end - lsn0
    result["end_lsn"] = format_lsn(end)
    db.close()
    while True:
        st = status() or {}
        s3 = st.get("storedLsnS3")
        if s3 and parse_lsn(s3) >= end:
            break
        if args.daemon_pid and not os.path.exists("/proc/%d" % args.daemon_pid):
            return done("the daemon exited")
        if time.monotonic() > deadline:
            return done("the WAL to %s was not in S3 within %.0f s (in S3: %s)" % (format_lsn(end), args.timeout, s3))
        time.sleep(0.2)
    result["prepared_s"] = round(time.monotonic() - t0, 3)
    keys = s3_keys("%s/pitr/" % args.node)
    result["s3_objects"] = len(keys)
    result["s3_partials"] = len([k for k in keys if k.endswith(".partial")])
    return done()


def stats(args):
    cols = []
    with open(args.file, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            for i, p in enumerate(parts):
                while len(cols) <= i:
                    cols.append([])
                cols[i].append(float(p))
    out = []
    for c in cols:
        c.sort()
        n = len(c)
        out.append(c[n // 2] if n % 2 else (c[n // 2 - 1] + c[n // 2]) / 2)
    print(" ".join("%.6f" % v for v in out))
    return 0


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen-wal")
    g.add_argument("dir")
    g.add_argument("count", type=int)
    g.add_argument("size", type=int)
    g.add_argument("seed", type=int)
    g.add_argument("start", type=int, nargs="?", default=1)
    p = sub.add_parser("p2")
    p.add_argument("--wal", required=True)
    p.add_argument("--active", default="orders_current.wal")
    p.add_argument("--local", required=True, help="the local store's wal directory")
    p.add_argument("--s3", default="", help="http://host:port/bucket/node/wal (anonymous GET, s3rver)")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--interval", type=float, required=True)
    p.add_argument("--steps", type=int, default=8, help="appends per segment, evenly spaced over the interval")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start", type=int, default=1)
    p.add_argument("--poll", type=float, default=0.02)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--out", required=True)
    q = sub.add_parser("p9")
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--user", required=True)
    q.add_argument("--database", required=True, help="holds the table p9_orders (seq, payload) the writer inserts into")
    q.add_argument("--pgdata", required=True, help="the cluster's data directory (its pg_wal is what stored WAL is compared with)")
    q.add_argument("--slot", required=True)
    q.add_argument("--root", required=True, help="the daemon's Backup:LocalRoot")
    q.add_argument("--s3", required=True, help="http://host:port/bucket (anonymous GET and ListObjectsV2, s3rver)")
    q.add_argument("--node", required=True)
    q.add_argument("--segment-size", type=int, default=16 * MiB)
    q.add_argument("--daemon-pid", type=int, default=0, help="the daemon's pid, for its CPU over the window")
    q.add_argument("--every", type=float, required=True, help="the daemon's Backup:Pitr:ShipPartialEvery in seconds (recorded)")
    q.add_argument("--rate", type=float, default=20, help="commits per second")
    q.add_argument("--window", type=float, required=True, help="seconds of measured commits")
    q.add_argument("--warmup", type=float, default=-1, help="seconds of unmeasured commits first (default: the larger of 5 s and two ShipPartialEvery)")
    q.add_argument("--poll", type=float, default=0.005, help="sleep between two samples of the slot, the local store, status.json")
    q.add_argument("--s3-poll", type=float, default=0.005, help="sleep between two samples of the bucket")
    q.add_argument("--ready-timeout", type=float, default=600)
    q.add_argument("--drain-timeout", type=float, default=60)
    q.add_argument("--out", required=True)
    r = sub.add_parser("r3-prepare")
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--user", required=True)
    r.add_argument("--database", required=True, help="holds the table trades the writer adds to")
    r.add_argument("--root", required=True, help="the daemon's Backup:LocalRoot")
    r.add_argument("--s3", required=True, help="http://host:port/bucket (anonymous ListObjectsV2, s3rver)")
    r.add_argument("--node", required=True)
    r.add_argument("--daemon-pid", type=int, default=0)
    r.add_argument("--extra", type=int, required=True, help="trades added after the base backup")
    r.add_argument("--batches", type=int, default=10)
    r.add_argument("--timeout", type=float, default=900)
    r.add_argument("--out", required=True)
    s = sub.add_parser("stats")
    s.add_argument("file")
    args = parser.parse_args()
    return {"gen-wal": gen_wal, "p2": p2, "p9": p9, "r3-prepare": r3_prepare, "stats": stats}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
