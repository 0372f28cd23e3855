#!/usr/bin/env python3
"""Helpers of bench/run.sh (Python 3 standard library only).

  gen-wal DIR COUNT SIZE SEED [START]   deterministic sealed segments orders_<16 digits>.wal, mtime fixed in the past
  p2 ...                                P2: a writer seals segments at a steady rate; pollers time their arrival
  stats FILE                            median of each column of a whitespace-separated file of numbers
"""
import argparse
import hashlib
import json
import os
import random
import re
import sys
import threading
import time
import urllib.error
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
    s = sub.add_parser("stats")
    s.add_argument("file")
    args = parser.parse_args()
    return {"gen-wal": gen_wal, "p2": p2, "stats": stats}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
