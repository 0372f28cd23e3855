#!/usr/bin/env bash
# bench/small-first-sync.sh AGENT LABEL [COUNT]: first sync of COUNT (10000) x 16 KiB segments, agent vs rsync -a,
# REPS (3) alternating runs each; then strace -c on 1000 segments. AGENT is a published veloz-backup; work in $TMPDIR.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 AGENT LABEL [COUNT]" >&2; exit 2; }
AGENT=$1; LABEL=$2; COUNT=${3:-10000}
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
W="$(mktemp -d "${TMPDIR:-/tmp}/veloz-small-$LABEL.XXXXXX")"
trap 'rm -rf "$W"' EXIT
python3 "$BENCH/lib/benchlib.py" gen-wal "$W/src" "$COUNT" 16384 7
mkdir -p "$W/src1k"; for f in $(ls "$W/src" | head -n 1000); do ln "$W/src/$f" "$W/src1k/$f"; done
cfg() { # file root waldir
cat > "$1" <<JSON
{ "Backup": { "NodeName": "b", "LocalRoot": "$2", "Wal": { "Enabled": true, "Directory": "$3" },
  "Config": {"Enabled": false}, "Database": {"Enabled": false}, "Secrets": {"Enabled": false}, "Pitr": {"Enabled": false},
  "S3": {"Enabled": false}, "Http": {"Url": "http://127.0.0.1:0"}, "Log": {"File": "$W/agent.log", "Level": "Information"} } }
JSON
}
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>>"$W/err.log"; e=$(date +%s.%N); echo "$e - $s" | bc; }
for r in $(seq 1 ${REPS:-3}); do
  rm -rf "$W/dst" "$W/root" "$W/state"; mkdir -p "$W/dst"; mkdir -m 0700 "$W/root"; cfg "$W/c.json" "$W/root" "$W/src"; sync
  a=$(t "$AGENT" backup wal --no-upload --config "$W/c.json")
  n=$(ls "$W/root/wal" | grep -c '^orders_.*\.wal\.sha256$')
  sync
  b=$(t rsync -a "$W/src/" "$W/dst/")
  echo "$LABEL run $r: agent $a s ($n segments) rsync $b s load $(cut -d' ' -f1 /proc/loadavg)"
done
rm -rf "$W/root"; mkdir -m 0700 "$W/root"; cfg "$W/c1k.json" "$W/root" "$W/src1k"; sync
strace -c -f -o "$W/strace.txt" "$AGENT" backup wal --no-upload --config "$W/c1k.json" >/dev/null
echo "$LABEL strace 1000 segments:"; grep -E "fsync|fdatasync|sched_yield|futex|sync_file_range|rename|total" "$W/strace.txt"
