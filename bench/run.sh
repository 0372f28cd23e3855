#!/usr/bin/env bash
# The VelozBackupAgent benchmark: the agent against the seeds' own pipeline (rsync -a, aws s3 sync/cp,
# pg_dump -Fc > file) and against the physical limit (cp -r, bare pg_dump and pg_basebackup), on the same data in the same run.
#
#   bench/run.sh                 # full run (about 45 min on 2 cores): writes bench/RESULTS.md
#   bench/run.sh --quick         # the same script on tiny data, in about two minutes; writes a temp file
#   bench/run.sh --out FILE      # write the results there instead
#   bench/run.sh --reps N        # runs per row (default 3 full, 2 quick); rows of a pair alternate
#   bench/run.sh --agent PATH    # use this veloz-backup binary instead of `dotnet publish -c Release`
#   bench/run.sh --workdir DIR   # where the temp directory goes (default: $TMPDIR or /tmp)
#   bench/run.sh --only R1,R3    # only these groups (P1..P9, R1..R3), with what they need; a full run then writes
#                                # bench/RESULTS-R1-R3.md (never bench/RESULTS.md, which holds every group)
#
# It generates its data deterministically (fixed seeds), starts its own throwaway PostgreSQL 15 cluster (as the
# postgres user when run as root), s3rver (tools/s3rver) and GnuPG home, all on loopback and in one temp
# directory, and stops and removes all of it on exit, also on failure or Ctrl-C. Each pair of rows runs
# alternately (order reversed every other round) so that a noisy, shared machine hits both alike; the table
# holds medians and ratios. Timings come from the script's clock; CPU and peak RSS from /usr/bin/time -v
# (GNU time's maximum resident set of the process tree's largest process). VELOZ_BENCH_KEEP_RESULTS=DIR keeps
# the raw measurements and logs there (bench/lib/report.py can rebuild the table from them). Exit 0 when every row ran and
# every stored copy verified; 1 otherwise (the table says which row failed); 2 bad usage or missing tool.
set -euo pipefail
# The whole script is one brace group, so bash reads all of it before running any: editing this file while a run
# is going (a full run takes most of an hour) cannot change what that run does.
{
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
LIB="$BENCH/lib/benchlib.py"

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 2; }

# ------------------------------------------------------------------------------------------ arguments
QUICK=0
OUT=""
REPS=""
AGENT=""
WORKBASE="${TMPDIR:-/tmp}"
ONLY=""
GROUPS_ALL="P1 P2 P3 P4 P5 P6 P7 P8 P9 R1 R2 R3"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --out) [ $# -ge 2 ] || die "--out needs a file"; OUT="$2"; shift ;;
        --out=*) OUT="${1#--out=}" ;;
        --reps) [ $# -ge 2 ] || die "--reps needs a number"; REPS="$2"; shift ;;
        --reps=*) REPS="${1#--reps=}" ;;
        --agent) [ $# -ge 2 ] || die "--agent needs a path"; AGENT="$2"; shift ;;
        --agent=*) AGENT="${1#--agent=}" ;;
        --workdir) [ $# -ge 2 ] || die "--workdir needs a directory"; WORKBASE="$2"; shift ;;
        --workdir=*) WORKBASE="${1#--workdir=}" ;;
        --only) [ $# -ge 2 ] || die "--only needs groups, e.g. R1,R3"; ONLY="$2"; shift ;;
        --only=*) ONLY="${1#--only=}" ;;
        -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
[ -z "$REPS" ] || [[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive number"
if [ -n "$ONLY" ]; then
    ONLY="$(tr 'a-z' 'A-Z' <<<"$ONLY" | tr -d ' ')"
    for g in ${ONLY//,/ }; do
        [[ " $GROUPS_ALL " == *" $g "* ]] || die "--only: unknown group '$g' (the groups: ${GROUPS_ALL// /, })"
    done
    ONLY="$(tr ',' '\n' <<<"$ONLY" | { grep -v '^$' || true; } | sort -u | paste -sd, -)"
    [ -n "$ONLY" ] || die "--only needs groups, e.g. R1,R3"
fi
# want GROUP...: true when the run includes one of them (every group without --only).
want() {
    [ -z "$ONLY" ] && return 0
    local g
    for g in "$@"; do [[ ",$ONLY," == *",$g,"* ]] && return 0; done
    return 1
}

MiB=$((1024 * 1024))
if [ "$QUICK" = 1 ]; then
    MODE=quick
    REPS="${REPS:-2}"
    P1_SEG=$MiB;          P1_COUNT=8;    P1_SMALL_COUNT=2      # 8 MiB and 2 MiB
    P2_COUNT=4;           P2_SIZE=$((256 * 1024)); P2_INTERVAL=0.5
    PG_SCALE=1;           TRADES=20000;  PG_SCALE_SMALL=1; TRADES_SMALL=4000
    P6_COUNT=200;         P6_SIZE=16384; P6_REPS=$REPS; P1_REPS=$REPS; P6_INPROC_WARM=2; P6_INPROC_WINDOW=4
    P7_SETTLE=3;          P7_WINDOW=3
    P9_WINDOW=5
    R3_EXTRA=2000
    NEED_GIB=2
    [ -n "$OUT" ] || OUT="$WORKBASE/veloz-bench-quick.md"
else
    MODE=full
    REPS="${REPS:-3}"
    P1_SEG=$((16 * MiB)); P1_COUNT=128;  P1_SMALL_COUNT=32     # 2 GiB and 512 MiB of 16 MiB segments
    P2_COUNT=40;          P2_SIZE=$((16 * MiB)); P2_INTERVAL=3
    PG_SCALE=50;          TRADES=4000000; PG_SCALE_SMALL=10; TRADES_SMALL=800000
    P6_COUNT=10000;       P6_SIZE=16384; P6_REPS=$((REPS + 2)); P1_REPS=$((REPS + 2)); P6_INPROC_WARM=5; P6_INPROC_WINDOW=20
    P7_SETTLE=20;         P7_WINDOW=300
    P9_WINDOW=120
    R3_EXTRA=400000                                            # trades added after R3's base backup (10 %)
    NEED_GIB=20
    if [ -z "$OUT" ]; then
        if [ -n "$ONLY" ]; then OUT="$BENCH/RESULTS-${ONLY//,/-}.md"; else OUT="$BENCH/RESULTS.md"; fi
    fi
fi
if [ "$QUICK" = 1 ] || [ -n "$ONLY" ]; then
    case "$(cd "$(dirname "$OUT")" 2>/dev/null && pwd)/$(basename "$OUT")" in
        "$BENCH/RESULTS.md") die "$([ "$QUICK" = 1 ] && echo --quick || echo --only) must not overwrite bench/RESULTS.md (that file holds a full run of every group): pass another --out" ;;
    esac
fi

# ---------------------------------------------------------------------------------------------- tools
PG_BIN="${VELOZ_BENCH_PG_BIN:-/usr/lib/postgresql/15/bin}"
S3RVER="$ROOT/tools/s3rver/node_modules/.bin/s3rver"
missing=()
[ -x "$PG_BIN/initdb" ] || missing+=("PostgreSQL 15 ($PG_BIN/initdb; Debian: postgresql-15)")
[ -x "$PG_BIN/pgbench" ] || [ -x /usr/bin/pgbench ] || missing+=("pgbench (Debian: postgresql-client-15)")
command -v python3 >/dev/null || missing+=("python3")
command -v rsync >/dev/null || missing+=("rsync")
command -v aws >/dev/null || missing+=("aws (Debian: awscli)")
[ -x /usr/bin/time ] || missing+=("/usr/bin/time (Debian: time)")
command -v node >/dev/null || missing+=("node (Debian: nodejs)")
command -v gpg >/dev/null || missing+=("gpg (Debian: gnupg)")
command -v curl >/dev/null || missing+=("curl")
[ -x "$S3RVER" ] || missing+=("s3rver ($S3RVER: run npm ci in tools/s3rver, or ./scripts/test.sh once)")
[ -n "$AGENT" ] || command -v dotnet >/dev/null || missing+=("dotnet (or pass --agent PATH)")
[ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]}"
PGBENCH="$PG_BIN/pgbench"; [ -x "$PGBENCH" ] || PGBENCH=/usr/bin/pgbench

# ------------------------------------------------------------------------------------------ disk space
mkdir -p "$WORKBASE"
avail_kib="$(df -Pk "$WORKBASE" | awk 'NR==2 {print $4}')"
if [ "$avail_kib" -lt $((NEED_GIB * 1024 * 1024)) ]; then
    die "$WORKBASE has $((avail_kib / 1024 / 1024)) GiB free; the $MODE run needs about $NEED_GIB GiB (data, copies, dumps, restores). Free some space or pass --workdir DIR on a bigger disk."
fi

# ------------------------------------------------------------------------------------ work + cleanup
WORK="$(mktemp -d "$WORKBASE/veloz-bench.XXXXXX")"
chmod 0755 "$WORK"
mkdir -p "$WORK/logs" "$WORK/res"
PIDS=()
PG_STARTED=0

stop_pid() {  # stop_pid PID: SIGTERM, up to 30 s, then SIGKILL
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [ "$PG_STARTED" = 1 ]; then as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -m immediate -w stop >/dev/null 2>&1; fi
    [ -d "$WORK/gnupg" ] && GNUPGHOME="$WORK/gnupg" gpgconf --kill all >/dev/null 2>&1
    if [ -n "${VELOZ_BENCH_KEEP_RESULTS:-}" ] && [ -d "$WORK/res" ]; then
        mkdir -p "$VELOZ_BENCH_KEEP_RESULTS" && cp -r "$WORK/res" "$WORK/logs" "$VELOZ_BENCH_KEEP_RESULTS/"
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    as_pg() { runuser -u postgres -- "$@"; }
    PG_USER=postgres
    runuser -u postgres -- test -x "$WORK" \
        || die "the postgres user cannot reach $WORK (a parent directory is closed to it): pass --workdir DIR on an open path"
else
    as_pg() { "$@"; }
    PG_USER="$(id -un)"
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p
    for _ in $(seq 1 50); do p=$((20000 + RANDOM % 30000)); port_free "$p" && { echo "$p"; return 0; }; done
    die "no free loopback port"
}
now_ns() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

# -------------------------------------------------------------------------------------- the agent
START_NS=$(now_ns)
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
log "$MODE run$([ -n "$ONLY" ] && echo " of $ONLY only"), $REPS runs per row, work directory $WORK"
# The tree the agent is built from, taken now: a commit made while the run goes on is not what was measured.
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' + local changes in src/')"
if [ -z "$AGENT" ]; then
    log "building the agent: dotnet publish -c Release src/VelozBackupAgent.Host"
    DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 dotnet publish "$ROOT/src/VelozBackupAgent.Host" -c Release \
        -o "$WORK/agent" --nologo -v quiet --disable-build-servers >"$WORK/logs/publish.log" 2>&1 \
        || { tail -30 "$WORK/logs/publish.log" >&2; die "dotnet publish failed"; }
    AGENT="$WORK/agent/veloz-backup"
fi
[ -x "$AGENT" ] || die "the agent binary $AGENT is not executable"
AGENT_VERSION="$("$AGENT" --version 2>/dev/null | head -1 || echo unknown)"

# Is the restore verb there yet? `restore --help` alone is not proof: the root command answers --help too.
RESTORE_AVAILABLE=0
if help_text="$("$AGENT" restore --help 2>&1)" && grep -q 'veloz-backup restore' <<<"$help_text"; then
    RESTORE_AVAILABLE=1
fi

# ----------------------------------------------------------------------------------------- servers
PG_PORT="$(free_port)"
mkdir -p "$WORK/pg" "$WORK/pgrun"
chmod 0700 "$WORK/pg" "$WORK/pgrun"
[ "$(id -u)" = 0 ] && chown postgres "$WORK/pg" "$WORK/pgrun"
as_pg "$PG_BIN/initdb" -D "$WORK/pg" -U "$PG_USER" --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$WORK/logs/initdb.log" 2>&1 \
    || { cat "$WORK/logs/initdb.log" >&2; die "initdb failed"; }
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pgrun/postgres.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$WORK/pgrun -c max_wal_size=4GB" >/dev/null \
    || { cat "$WORK/pgrun/postgres.log" >&2; die "PostgreSQL did not start"; }
PG_STARTED=1
PGARGS=(-h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER")
psql_q() { PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" "${PGARGS[@]}" -X -q -v ON_ERROR_STOP=1 "$@"; }
PG_VERSION_STR="$("$PG_BIN/postgres" --version)"
log "PostgreSQL on 127.0.0.1:$PG_PORT"

S3_PORT="$(free_port)"
S3URL="http://127.0.0.1:$S3_PORT"
BUCKET=bench
mkdir -p "$WORK/s3"
NODE_OPTIONS=--openssl-legacy-provider "$S3RVER" --address 127.0.0.1 --port "$S3_PORT" --directory "$WORK/s3" --silent \
    >"$WORK/logs/s3rver.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do port_free "$S3_PORT" || break; sleep 0.1; done
port_free "$S3_PORT" && die "s3rver did not start (see $WORK/logs/s3rver.log)"
# The AWS CLI and the agent get s3rver's dummy credentials; never a developer's own profile.
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER=""
unset AWS_PROFILE AWS_SESSION_TOKEN
AWS=(aws --endpoint-url "$S3URL")
"${AWS[@]}" s3 mb "s3://$BUCKET" >/dev/null
log "s3rver on $S3URL, bucket $BUCKET"

export GNUPGHOME="$WORK/gnupg"
mkdir -m 0700 "$GNUPGHOME"
GPG_RECIPIENT="veloz-bench@example.com"
gpg --batch --quiet --passphrase '' --quick-generate-key "VeloZ bench <$GPG_RECIPIENT>" future-default default never 2>/dev/null \
    || die "gpg could not generate the bench key"

# --------------------------------------------------------------------------------- agent configs
# write_config FILE: from C_NODE C_ROOT C_WAL C_DB C_S3 C_CONF C_SECRETS (empty = kind disabled), and C_PITR
# (Backup:Pitr:ShipPartialEvery in whole seconds; unset = pitr disabled) with C_SLOT (its replication slot).
write_config() {
    local file=$1 name
    name="$(basename "$file" .json)"
    mkdir -p "$C_ROOT"; chmod 0700 "$C_ROOT"
    local wal_en=false db_en=false conf_en=false sec_en=false pitr_en=false
    [ -n "${C_WAL:-}" ] && wal_en=true
    [ -n "${C_DB:-}" ] && db_en=true
    [ -n "${C_CONF:-}" ] && conf_en=true
    [ -n "${C_SECRETS:-}" ] && sec_en=true
    [ -n "${C_PITR:-}" ] && pitr_en=true
    # S3 copies plaintext ("Encrypt": false), as the seeds store theirs: the seeds' restore rows read the agent's objects
    # with the AWS CLI, and the rows compare like with like. Client-side encryption (the agent's default) was measured
    # on its own: see README, "Encryption of the S3 copies".
    cat >"$file" <<JSON
{
  "Backup": {
    "NodeName": "$C_NODE",
    "LocalRoot": "$C_ROOT",
    "Wal": { "Enabled": $wal_en, "Directory": "${C_WAL:-$WORK}" },
    "Config": { "Enabled": $conf_en, "Root": "${C_CONF:-$WORK}" },
    "Database": { "Enabled": $db_en, "ConnectionString": "Host=127.0.0.1;Port=$PG_PORT;Username=$PG_USER;Database=${C_DB:-postgres}",
                  "BinDirectory": "$PG_BIN" },
    "Secrets": { "Enabled": $sec_en, "Directory": "${C_SECRETS:-$WORK}", "Recipients": [ "$GPG_RECIPIENT" ], "GnupgHome": "$GNUPGHOME" },
    "Pitr": { "Enabled": $pitr_en, "DataDirectory": "$WORK/pg", "Slot": "${C_SLOT:-veloz_backup}", "ShipPartialEvery": "$(printf '00:00:%02d' "${C_PITR:-5}")",
              "StopCommand": "true", "StartCommand": "true" },
    "S3": { "Enabled": ${C_S3:-false}, "Bucket": "$BUCKET", "ServiceUrl": "$S3URL", "ForcePathStyle": true, "ChunkedUpload": false, "Encrypt": false },
    "Restore": { "StopCommand": "true", "StartCommand": "true", "HealthUrl": "http://127.0.0.1:$(free_port)/health" },
    "Http": { "Url": "http://127.0.0.1:$(free_port)" },
    "Log": { "File": "$WORK/logs/agent-$name.log", "Level": "Information" }
  }
}
JSON
}

# ------------------------------------------------------------------------------------- measuring
FAILED_ROWS=()
declare -A ROW_FAILED=()

# measure ID CMD...: one timed run; appends "wall_s cpu_s rss_kib load1" to res/ID.tsv (load1: the machine's
# 1-minute load average as the run ended); a failure marks the row.
measure() {
    local id=$1; shift
    local tf="$WORK/time.out" out="$WORK/logs/$id.run$REP.out" t0 t1 rc=0
    t0=$(now_ns)
    /usr/bin/time -f '%U %S %M' -o "$tf" "$@" >"$out" 2>&1 || rc=$?
    t1=$(now_ns)
    if [ "$rc" != 0 ]; then
        fail_row "$id" "exit $rc: $(tail -3 "$out" | tr '\n' ' ')"
        return 1
    fi
    read -r u s m < <(tail -1 "$tf")
    printf '%s %s %s %s\n' "$(secs "$t0" "$t1")" "$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')" "$m" \
        "$(cut -d' ' -f1 /proc/loadavg)" >>"$WORK/res/$id.tsv"
    log "  $id run $REP: $(secs "$t0" "$t1") s"
}

fail_row() {
    local id=$1 why=$2
    if [ -z "${ROW_FAILED[$id]:-}" ]; then FAILED_ROWS+=("$id"); fi
    ROW_FAILED[$id]="$why"
    log "  $id FAILED: $why"
}

# alternate ID...: REPS rounds; each round runs prep_ID, run_ID, post_ID of every row, the order reversed
# every other round. Function names are the IDs with - replaced by _. A row whose group (the ID up to its first -)
# is not in --only is left out.
alternate() {
    local ids=() order i fn id
    for id in "$@"; do want "${id%%-*}" && ids+=("$id"); done
    [ ${#ids[@]} -gt 0 ] || return 0
    for REP in $(seq 1 "$ROUNDS"); do
        if [ $((REP % 2)) = 1 ]; then order=("${ids[@]}"); else order=(); for ((i=${#ids[@]}-1; i>=0; i--)); do order+=("${ids[$i]}"); done; fi
        for id in "${order[@]}"; do
            fn="${id//-/_}"
            [ -n "${ROW_FAILED[$id]:-}" ] && continue
            "prep_$fn" || { fail_row "$id" "preparation failed"; continue; }
            if "run_$fn"; then "post_$fn" || fail_row "$id" "the result did not verify (see above)"; else "post_$fn" >/dev/null 2>&1 || true; fi
            sync
        done
    done
}
median_of() { [ -s "$WORK/res/$1.tsv" ] && python3 "$LIB" stats "$WORK/res/$1.tsv" || echo ""; }
max_rss_of() { [ -s "$WORK/res/$1.tsv" ] && awk 'm < $3 { m = $3 } END { print m }' "$WORK/res/$1.tsv" || echo ""; }

s3_has() { curl -fsS -o /dev/null "$S3URL/$BUCKET/$1"; }
s3_drop() { rm -rf "${WORK:?}/s3/$BUCKET/$1"; }  # s3rver keeps objects as files: removing a node's prefix is instant
fresh_root() { rm -rf "$1"; mkdir -m 0700 "$1"; }
record_size() {  # record_size ID FILE...: their total size in bytes, one line per run, in res/ID.size
    local id=$1; shift
    stat -c %s "$@" | awk '{ s += $1 } END { print s }' >>"$WORK/res/$id.size"
}
tar_has_base() {  # tar_has_base LISTING: a base backup's tar lists backup_label and backup_manifest
    grep -qxE '(\./)?backup_label' "$1" && grep -qxE '(\./)?backup_manifest' "$1" || { log "  no backup_label or backup_manifest in the tar"; return 1; }
}
drop_slot() {  # drop_slot NAME: once nothing streams from it (its walsender may take a moment to go)
    local i
    for i in $(seq 1 100); do
        psql_q -d postgres -At -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$1' AND NOT active" >/dev/null 2>&1 || true
        [ -z "$(psql_q -d postgres -At -c "SELECT 1 FROM pg_replication_slots WHERE slot_name = '$1'")" ] && return 0
        sleep 0.1
    done
    log "  the replication slot $1 could not be dropped"
}
DUMP_BYTES=""
CLUSTER_SIZE=""
P2_DONE=0

# ============================================================================================ data
log "generating data (deterministic)"
WAL1="$WORK/data/wal-p1"; WAL1S="$WORK/data/wal-p1-small"
if want P1 P5; then
    python3 "$LIB" gen-wal "$WAL1" "$P1_COUNT" "$P1_SEG" 1
    mkdir -p "$WAL1S"
    for f in $(ls "$WAL1" | head -n "$P1_SMALL_COUNT"); do ln "$WAL1/$f" "$WAL1S/$f"; done
fi
WAL6="$WORK/data/wal-p6"
if want P6 P7; then python3 "$LIB" gen-wal "$WAL6" "$P6_COUNT" "$P6_SIZE" 6; fi

make_db() {  # make_db NAME SCALE TRADES
    local db=$1 scale=$2 trades=$3
    psql_q -d postgres -c "CREATE DATABASE $db"
    "$PGBENCH" "${PGARGS[@]}" -i -q -s "$scale" "$db" >"$WORK/logs/pgbench-$db.log" 2>&1 \
        || { cat "$WORK/logs/pgbench-$db.log" >&2; die "pgbench -i failed"; }
    psql_q -d "$db" >>"$WORK/logs/pgbench-$db.log" <<SQL
CREATE TABLE trades (
    trade_id     bigint PRIMARY KEY,
    order_id     bigint      NOT NULL,
    symbol       text        NOT NULL,
    side         char(1)     NOT NULL,
    quantity     integer     NOT NULL,
    price        numeric(14,4) NOT NULL,
    venue        text        NOT NULL,
    executed_at  timestamptz NOT NULL,
    client_ref   text        NOT NULL
);
SELECT setseed(0.4242);
INSERT INTO trades
SELECT g,
       (random() * 1e12)::bigint,
       (SELECT array_agg(upper(substr(md5(i::text), 1, 2 + i % 4)) ORDER BY i) FROM generate_series(1, 500) i)[1 + floor(random() * 500)::int],
       CASE WHEN random() < 0.5 THEN 'B' ELSE 'S' END,
       1 + floor(random() * 10000)::int,
       round((1 + random() * 4999)::numeric, 4),
       (ARRAY['XNYS','XNAS','BATS','ARCX','IEXG','EDGX','XCME','XLON','XETR','XTKS'])[1 + floor(random() * 10)::int],
       timestamptz '2026-01-02 14:30:00+00' + random() * interval '180 days',
       md5(random()::text)
FROM generate_series(1, $trades) g;
VACUUM ANALYZE;
CHECKPOINT;
SQL
}
DB_SIZE=""; DB_SIZE_SMALL=""; TRADES_COUNT=""
DB_T0=$(now_ns)
if want P3 P4 P5 P8 R1 R2 R3; then
    make_db veloz "$PG_SCALE" "$TRADES"
    DB_SIZE="$(psql_q -d postgres -At -c "SELECT pg_size_pretty(pg_database_size('veloz'))")"
    TRADES_COUNT="$(psql_q -d veloz -At -c 'SELECT count(*) FROM trades')"
fi
if want P5; then
    make_db veloz_small "$PG_SCALE_SMALL" "$TRADES_SMALL"
    DB_SIZE_SMALL="$(psql_q -d postgres -At -c "SELECT pg_size_pretty(pg_database_size('veloz_small'))")"
fi
DB_GEN_S="$(secs "$DB_T0" "$(now_ns)")"
log "databases: veloz ${DB_SIZE:-none}, veloz_small ${DB_SIZE_SMALL:-none} (generated in $DB_GEN_S s)"
ROUNDS=$REPS

# ============================================================================ P1 WAL shipping, local
# (Each section runs when --only names one of its groups; its body is not indented, to keep it as it was.)
if want P1 P5; then
log "P1: WAL shipping to the local store"
P1_DST="$WORK/p1"
run_p1_ship() {  # run_p1_ship ID SRC
    case "$1" in
        P1-cp|P5-cp-small) measure "$1" cp -r "$2" "$P1_DST/cp" ;;
        P1-cp-fsync) measure "$1" bash -c 'cp -r "$1" "$2" && sync "$2" "$2"/*' _ "$2" "$P1_DST/cp" ;;
        P1-rsync) measure "$1" rsync -a "$2/" "$P1_DST/rsync/" ;;
        *) measure "$1" "$AGENT" backup wal --no-upload --config "$P1_DST.$1.json" ;;
    esac
}
p1_prep() { rm -rf "$P1_DST"; mkdir -p "$P1_DST"; }
p1_check_agent() {  # every segment stored with a sidecar that sha256sum -c accepts
    local n
    n=$(find "$P1_DST/root/wal" -name 'orders_*.wal.sha256' | wc -l)
    [ "$n" = "$1" ] || { log "  expected $1 stored segments, found $n"; return 1; }
    (cd "$P1_DST/root/wal" && cat orders_*.wal.sha256 | sha256sum -c --quiet -) >/dev/null
}
for id in P1-agent P5-P1-small; do
    src="$WAL1"; [ "$id" = P5-P1-small ] && src="$WAL1S"
    C_NODE=p1 C_ROOT="$P1_DST/root" C_WAL="$src" C_DB="" C_S3=false C_CONF="" C_SECRETS="" write_config "$P1_DST.$id.json"
done
prep_P1_cp() { p1_prep; };        run_P1_cp() { run_p1_ship P1-cp "$WAL1"; };             post_P1_cp() { cmp -s "$WAL1/$(ls "$WAL1" | tail -1)" "$P1_DST/cp/$(ls "$WAL1" | tail -1)"; }
prep_P1_cp_fsync() { p1_prep; };  run_P1_cp_fsync() { run_p1_ship P1-cp-fsync "$WAL1"; }; post_P1_cp_fsync() { [ "$(ls "$P1_DST/cp" | wc -l)" = "$P1_COUNT" ]; }
prep_P1_rsync() { p1_prep; };     run_P1_rsync() { run_p1_ship P1-rsync "$WAL1"; };       post_P1_rsync() { [ "$(ls "$P1_DST/rsync" | wc -l)" = "$P1_COUNT" ]; }
prep_P1_agent() { p1_prep; mkdir -m 0700 "$P1_DST/root"; }
run_P1_agent() { run_p1_ship P1-agent "$WAL1"; }
post_P1_agent() { p1_check_agent "$P1_COUNT"; }
prep_P5_P1_small() { p1_prep; mkdir -m 0700 "$P1_DST/root"; }
run_P5_P1_small() { run_p1_ship P5-P1-small "$WAL1S"; }
post_P5_P1_small() { p1_check_agent "$P1_SMALL_COUNT"; }
ROUNDS=$P1_REPS
alternate P1-cp P1-cp-fsync P1-rsync P1-agent
alternate P5-P1-small
ROUNDS=$REPS
rm -rf "$P1_DST"
fi  # P1, P5 (WAL)

# ========================================================================= P3/P4 daily database dump
if want P3 P4 P5; then
log "P3/P4: the daily database dump"
P3="$WORK/p3"
mkdir -p "$P3"
for pair in "p3:veloz:false" "p4:veloz:true" "p3s:veloz_small:false" "p4s:veloz_small:true"; do
    IFS=: read -r node db s3 <<<"$pair"
    C_NODE=$node C_ROOT="$P3/$node" C_WAL="" C_DB=$db C_S3=$s3 C_CONF="" C_SECRETS="" write_config "$P3/$node.json"
done
check_dump() {  # check_dump ROOT [S3NODE]: one dump, its sidecar verifies, and (with S3) both objects are there
    local dir="$1/database" f
    f="$(cd "$dir" && ls *.dump 2>/dev/null | head -1)"
    [ -n "$f" ] || { log "  no dump in $dir"; return 1; }
    (cd "$dir" && sha256sum -c --quiet "$f.sha256") || return 1
    if [ -n "${2:-}" ]; then s3_has "$2/database/$f" && s3_has "$2/database/$f.sha256" || { log "  $f is not in S3"; return 1; }; fi
}
prep_P3_pg_dump() { rm -f "$P3/bare.dump"; }
run_P3_pg_dump() { measure P3-pg_dump bash -c '"$1" -h 127.0.0.1 -p "$2" -U "$3" -Fc veloz > "$4"' _ "$PG_BIN/pg_dump" "$PG_PORT" "$PG_USER" "$P3/bare.dump"; }
post_P3_pg_dump() { DUMP_BYTES=$(stat -c %s "$P3/bare.dump"); "$PG_BIN/pg_restore" --list "$P3/bare.dump" >/dev/null && rm -f "$P3/bare.dump"; }
prep_P3_agent() { fresh_root "$P3/p3"; }
run_P3_agent() { measure P3-agent "$AGENT" backup database --config "$P3/p3.json"; }
post_P3_agent() { check_dump "$P3/p3"; }
prep_P4_seeds() { rm -f "$P3/seeds.dump"; s3_drop seeds; }
run_P4_seeds() {
    measure P4-seeds bash -c '"$1" -h 127.0.0.1 -p "$2" -U "$3" -Fc veloz > "$4" && aws --endpoint-url "$5" --only-show-errors s3 cp "$4" "s3://$6/seeds/database/"' \
        _ "$PG_BIN/pg_dump" "$PG_PORT" "$PG_USER" "$P3/seeds.dump" "$S3URL" "$BUCKET"
}
post_P4_seeds() { s3_has "seeds/database/seeds.dump" && rm -f "$P3/seeds.dump" && s3_drop seeds; }
prep_P4_agent() { fresh_root "$P3/p4"; s3_drop p4; }
run_P4_agent() { measure P4-agent "$AGENT" backup database --config "$P3/p4.json"; }
post_P4_agent() { check_dump "$P3/p4" p4 && s3_drop p4; }
prep_P5_P3_small() { fresh_root "$P3/p3s"; }
run_P5_P3_small() { measure P5-P3-small "$AGENT" backup database --config "$P3/p3s.json"; }
post_P5_P3_small() { check_dump "$P3/p3s"; }
prep_P5_P4_small() { fresh_root "$P3/p4s"; s3_drop p4s; }
run_P5_P4_small() { measure P5-P4-small "$AGENT" backup database --config "$P3/p4s.json"; }
post_P5_P4_small() { check_dump "$P3/p4s" p4s && s3_drop p4s; }
alternate P3-pg_dump P3-agent P4-seeds P4-agent
alternate P5-P3-small P5-P4-small
rm -rf "$P3"/p3 "$P3"/p4 "$P3"/p3s "$P3"/p4s
fi  # P3, P4, P5 (dumps)

# ======================================================================== P8 base backup of the cluster
if want P8; then
log "P8: a base backup (pitr) of the cluster with the realistic database"
# The P5 rows are done with the small database: dropped, the cluster holds the realistic one (and the system
# databases) alone, so the physical copies and pg_dump -Fc veloz read about the same data.
psql_q -d postgres -c "DROP DATABASE IF EXISTS veloz_small" && psql_q -d postgres -c "CHECKPOINT" || log "  could not drop the database veloz_small"
CLUSTER_SIZE="$(psql_q -d postgres -At -c "SELECT pg_size_pretty(sum(pg_database_size(datname))) FROM pg_database")"
P8="$WORK/p8"
mkdir -p "$P8"
P8_SLOT=veloz_bench_p8
C_NODE=p8 C_ROOT="$P8/root" C_WAL="" C_DB="" C_S3=false C_CONF="" C_SECRETS="" C_PITR=5 C_SLOT=$P8_SLOT write_config "$P8/p8.json"
BB=(-h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER")
prep_P8_pg_dump() { rm -f "$P8/bare.dump"; }
run_P8_pg_dump() { measure P8-pg_dump bash -c '"$1" -h 127.0.0.1 -p "$2" -U "$3" -Fc veloz > "$4"' _ "$PG_BIN/pg_dump" "$PG_PORT" "$PG_USER" "$P8/bare.dump"; }
post_P8_pg_dump() { record_size P8-pg_dump "$P8/bare.dump"; "$PG_BIN/pg_restore" --list "$P8/bare.dump" >/dev/null && rm -f "$P8/bare.dump"; }
prep_P8_basebackup() { rm -f "$P8/base.tar"; }
run_P8_basebackup() {
    measure P8-basebackup bash -c '"$1" "${@:3}" -D - -Ft -X fetch -c fast > "$2"' _ "$PG_BIN/pg_basebackup" "$P8/base.tar" "${BB[@]}"
}
post_P8_basebackup() { record_size P8-basebackup "$P8/base.tar"; tar -tf "$P8/base.tar" >"$P8/list" && tar_has_base "$P8/list" && rm -f "$P8/base.tar"; }
prep_P8_basebackup_dir() { rm -rf "$P8/dir"; }
run_P8_basebackup_dir() { measure P8-basebackup-dir "$PG_BIN/pg_basebackup" "${BB[@]}" -D "$P8/dir" -Ft -X fetch -c fast; }
post_P8_basebackup_dir() {
    record_size P8-basebackup-dir "$P8/dir"/*
    [ -f "$P8/dir/backup_manifest" ] && tar -tf "$P8/dir/base.tar" >"$P8/list" && grep -qxE '(\./)?backup_label' "$P8/list" && rm -rf "$P8/dir"
}
prep_P8_basebackup_gzip() { rm -f "$P8/base.tar.gz"; }
run_P8_basebackup_gzip() {
    measure P8-basebackup-gzip bash -c 'set -o pipefail; "$1" "${@:3}" -D - -Ft -X fetch -c fast | gzip -1 > "$2"' _ "$PG_BIN/pg_basebackup" "$P8/base.tar.gz" "${BB[@]}"
}
post_P8_basebackup_gzip() { record_size P8-basebackup-gzip "$P8/base.tar.gz"; tar -tzf "$P8/base.tar.gz" >"$P8/list" && tar_has_base "$P8/list" && rm -f "$P8/base.tar.gz"; }
prep_P8_agent() { fresh_root "$P8/root"; }
run_P8_agent() { measure P8-agent "$AGENT" backup pitr --no-upload --config "$P8/p8.json"; }
post_P8_agent() {  # one base, its archive and metadata verify, and the archive is a whole base backup
    local dir="$P8/root/pitr" f
    f="$(cd "$dir" && ls base_*.tar.gz 2>/dev/null | head -1)"
    [ -n "$f" ] || { log "  no base backup in $dir"; return 1; }
    (cd "$dir" && sha256sum -c --quiet "$f.sha256" && sha256sum -c --quiet "${f%.tar.gz}.json.sha256") || return 1
    tar -tzf "$dir/$f" >"$P8/list" && tar_has_base "$P8/list" || return 1
    record_size P8-agent "$dir/$f"
}
alternate P8-pg_dump P8-basebackup P8-basebackup-dir P8-basebackup-gzip P8-agent
drop_slot "$P8_SLOT"
rm -rf "$P8"
fi  # P8

# ================================================================================== P2 recovery point
P2="$WORK/p2"
if want P2; then
P2_DONE=1
log "P2: WAL recovery point under a steady writer (daemon running)"
mkdir -p "$P2/wal"
C_NODE=p2 C_ROOT="$P2/root" C_WAL="$P2/wal" C_DB="" C_S3=true C_CONF="" C_SECRETS="" write_config "$P2/p2.json"
"$AGENT" run --config "$P2/p2.json" >"$WORK/logs/daemon-p2.out" 2>&1 &
P2_PID=$!
PIDS+=("$P2_PID")
# Ready when the start-up catch-up sync has written its (empty) manifest and replicated it.
for _ in $(seq 1 600); do
    ls "$P2/root/wal/"wal-manifest_*.json.sha256 >/dev/null 2>&1 && break
    kill -0 "$P2_PID" 2>/dev/null || break
    sleep 0.1
done
P2_STATUS=0
if ! ls "$P2/root/wal/"wal-manifest_*.json.sha256 >/dev/null 2>&1; then
    fail_row P2-local "the daemon did not start: $(tail -3 "$WORK/logs/daemon-p2.out" | tr '\n' ' ')"
    fail_row P2-s3 "the daemon did not start"
else
    P2_TIMEOUT=$(awk -v c="$P2_COUNT" -v i="$P2_INTERVAL" 'BEGIN { print int(c * i + 120) }')
    python3 "$LIB" p2 --wal "$P2/wal" --local "$P2/root/wal" --s3 "$S3URL/$BUCKET/p2/wal" --count "$P2_COUNT" \
        --size "$P2_SIZE" --interval "$P2_INTERVAL" --timeout "$P2_TIMEOUT" --out "$WORK/res/P2.json" || P2_STATUS=$?
    [ "$P2_STATUS" = 0 ] || { fail_row P2-local "not every segment arrived and verified: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("; ".join("%s: %d of %d verified, %d missing, %s" % (t, d[t]["verified"], d["count"], d[t]["missing"], d[t]["errors"]) for t in ("local", "s3") if t in d))' "$WORK/res/P2.json" 2>/dev/null || echo 'no result')"; fail_row P2-s3 "see P2-local"; }
fi
stop_pid "$P2_PID"
# The seeds' */5 cron: a segment sealed at a uniformly random moment waits for the next run, then for the run
# itself. Measured here: one run of the seeds' backup_wal.sh (rsync -av --delete; aws s3 sync --delete) that
# ships the segments P2 sealed.
mkdir -p "$P2/seeds"
REP=1
measure P2-cron-rsync rsync -a --delete "$P2/wal/" "$P2/seeds/" || true
measure P2-cron-sync "${AWS[@]}" --only-show-errors s3 sync "$P2/seeds/" "s3://$BUCKET/seeds-p2/wal/" --delete || true
s3_drop p2; s3_drop seeds-p2
fi  # P2

# ========================================================================= P9 database recovery point
if want P9; then
log "P9: database recovery point under a steady writer (daemon streaming WAL, pitr + S3), ${P9_WINDOW} s per setting"
P9="$WORK/p9"
P9_SLOT=veloz_bench_p9
mkdir -p "$P9"
psql_q -d postgres -c "CREATE DATABASE p9"
psql_q -d p9 -c "CREATE TABLE p9_orders (id bigserial PRIMARY KEY, seq integer NOT NULL, payload text NOT NULL, committed_at timestamptz NOT NULL DEFAULT clock_timestamp())"
# One store for both settings: the first daemon takes the start-up base backup (none is stored yet) and the
# measuring waits until it is stored locally and in S3; the second starts on the same store and slot with the
# other setting, as an operator changing Backup:Pitr:ShipPartialEvery would.
for every in 5 1; do
    C_NODE=p9 C_ROOT="$P9/root" C_WAL="" C_DB="" C_S3=true C_CONF="" C_SECRETS="" C_PITR=$every C_SLOT=$P9_SLOT write_config "$P9/p9-${every}s.json"
    "$AGENT" run --config "$P9/p9-${every}s.json" >"$WORK/logs/daemon-p9-${every}s.out" 2>&1 &
    P9_PID=$!
    PIDS+=("$P9_PID")
    P9_STATUS=0
    python3 "$LIB" p9 --port "$PG_PORT" --user "$PG_USER" --database p9 --pgdata "$WORK/pg" --slot "$P9_SLOT" --root "$P9/root" --daemon-pid "$P9_PID" \
        --s3 "$S3URL/$BUCKET" --node p9 --every "$every" --window "$P9_WINDOW" --drain-timeout $((3 * every + 30)) \
        --out "$WORK/res/P9-${every}s.json" 2>"$WORK/logs/p9-${every}s.err" || P9_STATUS=$?
    if ! kill -0 "$P9_PID" 2>/dev/null; then
        P9_STATUS=1; echo "the daemon exited: $(tail -3 "$WORK/logs/daemon-p9-${every}s.out" | tr '\n' ' ')" >>"$WORK/logs/p9-${every}s.err"
    fi
    if [ "$P9_STATUS" != 0 ]; then
        for r in received local s3; do fail_row "P9-${every}s-$r" "$(tail -2 "$WORK/logs/p9-${every}s.err" | tr '\n' ' ')"; done
    fi
    stop_pid "$P9_PID"
done
drop_slot "$P9_SLOT"
psql_q -d postgres -c "DROP DATABASE p9" || log "  could not drop the database p9"
s3_drop p9
rm -rf "$P9"
fi  # P9

# ================================================================================ P6 no-op sync, P7 idle
P7_RESULT=""
if want P6 P7; then
log "P6: a sync with nothing new over $P6_COUNT sealed segments"
P6="$WORK/p6"
mkdir -p "$P6"
C_NODE=p6 C_ROOT="$P6/root" C_WAL="$WAL6" C_DB="" C_S3=false C_CONF="" C_SECRETS="" write_config "$P6/p6.json"
# The first sync of those segments (P1's small-segment case): a fresh store / destination each run.
p6_check_agent() { [ "$(find "$P6/root/wal" -name 'orders_*.wal.sha256' | wc -l)" = "$P6_COUNT" ] && (cd "$P6/root/wal" && cat orders_*.wal.sha256 | sha256sum -c --quiet -) >/dev/null; }
prep_P6_first_rsync() { rm -rf "$P6/rsync"; }
run_P6_first_rsync() { measure P6-first-rsync rsync -a "$WAL6/" "$P6/rsync/"; }
post_P6_first_rsync() { [ "$(ls "$P6/rsync" | wc -l)" = "$P6_COUNT" ]; }
prep_P6_first_agent() { fresh_root "$P6/root"; }
run_P6_first_agent() { measure P6-first-agent "$AGENT" backup wal --no-upload --config "$P6/p6.json"; }
post_P6_first_agent() { p6_check_agent; }
alternate P6-first-rsync P6-first-agent
prep_P6_rsync() { :; };  run_P6_rsync() { measure P6-rsync rsync -a "$WAL6/" "$P6/rsync/"; };  post_P6_rsync() { :; }
prep_P6_agent() { :; }
run_P6_agent() { measure P6-agent "$AGENT" backup wal --no-upload --config "$P6/p6.json"; }
post_P6_agent() { [ "$(find "$P6/root/wal" -name 'orders_*.wal.sha256' | wc -l)" = "$P6_COUNT" ]; }
# The agent is a .NET process: its start alone (no configuration read, no work) is a floor under every CLI row.
prep_P6_agent_start() { :; };  run_P6_agent_start() { measure P6-agent-start "$AGENT" --version; };  post_P6_agent_start() { :; }
# --help builds every verb's options and renders them: the command-line set-up a verb pays before it runs.
prep_P6_agent_help() { :; };  run_P6_agent_help() { measure P6-agent-help "$AGENT" --help; };  post_P6_agent_help() { :; }
ROUNDS=$P6_REPS
alternate P6-rsync P6-agent P6-agent-start P6-agent-help
ROUNDS=$REPS

# P6 in-process: the daemon's own sync with nothing new (no process start, the manifest chain in memory), one every
# second for P6_INPROC_WINDOW s after P6_INPROC_WARM warm-up syncs; its duration histogram gives the mean per sync
# (Δsum ÷ Δcount), its CPU ticks the CPU per sync. One line in res/P6-inproc.tsv per window (REPS windows).
log "P6 in-process: the daemon's no-op sync, one a second"
P6_PORT="$(free_port)"
"$AGENT" run --config "$P6/p6.json" "--Backup:Wal:Schedule=0/1 * * * * ?" "--Backup:Http:Url=http://127.0.0.1:$P6_PORT" \
    >"$WORK/logs/daemon-p6.out" 2>&1 &
P6_PID=$!
PIDS+=("$P6_PID")
p6_hist() {  # "sum count" of the WAL run-duration histogram
    curl -fsS "http://127.0.0.1:$P6_PORT/metrics" 2>/dev/null | awk '
        /^veloz_backup_duration_seconds_sum\{.*kind="wal"/ { s = $NF }
        /^veloz_backup_duration_seconds_count\{.*kind="wal"/ { c = $NF }
        END { if (c != "") print s, c }'
}
p6_count() { local h; h="$(p6_hist)"; echo "${h#* }"; }
P6_OK=0
for _ in $(seq 1 120); do
    kill -0 "$P6_PID" 2>/dev/null || break
    c="$(p6_count)"; [ -n "$c" ] && [ "${c%.*}" -ge "$P6_INPROC_WARM" ] && { P6_OK=1; break; }
    sleep 1
done
if [ "$P6_OK" = 1 ]; then
    CLK_TCK=$(getconf CLK_TCK)
    for REP in $(seq 1 "$REPS"); do
        h0="$(p6_hist)"; t0=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$P6_PID/stat")
        sleep "$P6_INPROC_WINDOW"
        kill -0 "$P6_PID" 2>/dev/null || { P6_OK=0; break; }
        h1="$(p6_hist)"; t1=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$P6_PID/stat")
        rss=$(awk '/^VmHWM:/ { print $2 }' "/proc/$P6_PID/status")
        awk -v a="$h0" -v b="$h1" -v ta="$t0" -v tb="$t1" -v hz="$CLK_TCK" -v r="$rss" -v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
            split(a, x, " "); split(b, y, " "); n = y[2] - x[2]
            if (n > 0) printf "%.6f %.6f %d %s\n", (y[1] - x[1]) / n, (tb - ta) / hz / n, r, l }' >>"$WORK/res/P6-inproc.tsv"
    done
fi
[ "$P6_OK" = 1 ] && [ -s "$WORK/res/P6-inproc.tsv" ] || fail_row P6-inproc "the daemon ran no measurable syncs: $(tail -3 "$WORK/logs/daemon-p6.out" | tr '\n' ' ')"
stop_pid "$P6_PID"
p6_check_agent || fail_row P6-inproc "the store did not verify after the daemon's syncs"
fi  # P6 (and P7's segments)

if want P7; then

log "P7: CPU of the idle daemon over ${P7_WINDOW} s with $P6_COUNT segments present"
CLK_TCK=$(getconf CLK_TCK)
proc_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }  # utime + stime (fields 14, 15)
"$AGENT" run --config "$P6/p6.json" >"$WORK/logs/daemon-p7.out" 2>&1 &
P7_PID=$!
PIDS+=("$P7_PID")
sleep "$P7_SETTLE"
if kill -0 "$P7_PID" 2>/dev/null; then
    t_start=$(proc_ticks "$P7_PID")
    sleep "$P7_WINDOW"
    if kill -0 "$P7_PID" 2>/dev/null; then
        t_end=$(proc_ticks "$P7_PID")
        rss=$(awk '/^VmHWM:/ { print $2 }' "/proc/$P7_PID/status")
        P7_RESULT="$(awk -v a="$t_start" -v b="$t_end" -v hz="$CLK_TCK" -v w="$P7_WINDOW" -v r="$rss" \
            'BEGIN { printf "%.2f %.3f %.2f %d", (b - a) / hz, 100 * (b - a) / hz / w, a / hz, r }')"
    fi
fi
[ -n "$P7_RESULT" ] || fail_row P7-daemon "the daemon exited: $(tail -3 "$WORK/logs/daemon-p7.out" | tr '\n' ' ')"
stop_pid "$P7_PID"
fi  # P7

# ============================================================================================ restore
if want R1 R2; then
# The restore source holds the WAL P2 sealed; without P2 in this run, segments of P2's size stand in for them.
[ "$P2_DONE" = 1 ] || python3 "$LIB" gen-wal "$P2/wal" "$P2_COUNT" "$P2_SIZE" 2
log "Restore: database from S3, and full (restore verb $([ $RESTORE_AVAILABLE = 1 ] && echo present || echo 'not available yet'))"
RS="$WORK/rs"
mkdir -p "$RS/etc/strategies" "$RS/secrets"
printf 'engine:\n  name: veloz\n  mode: live\n' >"$RS/etc/config.yaml"
for s in momentum meanrev arb; do printf 'strategy: %s\nmax_position: 1000\n' "$s" >"$RS/etc/strategies/$s.yaml"; done
printf 'max_notional: 5000000\n' >"$RS/etc/risk_limits.yaml"
printf 'VELOZ_ENV=bench\n' >"$RS/etc/.env"
printf 'api-key-%s\n' 1 2 3 >"$RS/secrets/exchange.key"
chmod 0600 "$RS/secrets/exchange.key"
C_NODE=veloz-1 C_ROOT="$RS/root" C_WAL="$P2/wal" C_DB=veloz C_S3=true C_CONF="$RS/etc" C_SECRETS="$RS/secrets" write_config "$RS/source.json"
RS_READY=0
if "$AGENT" backup all --config "$RS/source.json" >"$WORK/logs/restore-source.out" 2>&1; then
    RS_READY=1
    RS_DUMP="$(cd "$RS/root/database" && ls veloz_*.dump | head -1)"
    RS_CONF="$(cd "$RS/root/config" && ls config_*.tar.gz | head -1)"
    RS_SECRETS="$(cd "$RS/root/secrets" && ls secrets_*.tar.gz.gpg | head -1)"
else
    for id in R1-seeds R1-agent R2-seeds R2-agent; do fail_row "$id" "backup all (the restore source) failed: $(tail -3 "$WORK/logs/restore-source.out" | tr '\n' ' ')"; done
fi
# What a restore target looks like: fresh directories, and the database restore_full (empty) for restore full.
T="$RS/target"
C_NODE=veloz-1 C_ROOT="$RS/troot" C_WAL="$T/wal" C_DB=restore_full C_S3=true C_CONF="$T/etc" C_SECRETS="$T/secrets" write_config "$RS/target.json"
fresh_target() { rm -rf "$T" "$RS/troot" "$RS/dl"; mkdir -p "$T/wal" "$T/etc" "$T/secrets" "$RS/dl"; mkdir -m 0700 "$RS/troot"; }
trades_in() { psql_q -d "$1" -At -c 'SELECT count(*) FROM trades'; }
drop_db() { psql_q -d postgres -c "DROP DATABASE IF EXISTS $1" >/dev/null; }

prep_R1_seeds() { fresh_target; drop_db restore_seeds; }
run_R1_seeds() {
    measure R1-seeds bash -c 'aws --endpoint-url "$1" --only-show-errors s3 cp "s3://$2/veloz-1/database/$3" "$4/db.dump" &&
        "$5/createdb" -h 127.0.0.1 -p "$6" -U "$7" restore_seeds && "$5/pg_restore" -h 127.0.0.1 -p "$6" -U "$7" -d restore_seeds "$4/db.dump"' \
        _ "$S3URL" "$BUCKET" "$RS_DUMP" "$RS/dl" "$PG_BIN" "$PG_PORT" "$PG_USER"
}
post_R1_seeds() { local n; n=$(trades_in restore_seeds); drop_db restore_seeds; [ "$n" = "$TRADES_COUNT" ]; }
prep_R1_agent() { fresh_target; drop_db restore_agent; }
run_R1_agent() { measure R1-agent "$AGENT" restore database latest --from s3 --into restore_agent --no-service --yes --config "$RS/source.json"; }
post_R1_agent() { local n; n=$(trades_in restore_agent); drop_db restore_agent; [ "$n" = "$TRADES_COUNT" ]; }
# The seeds' full_restore.sh: secrets, configuration, database from S3; the WAL from S3 too (after a site
# failure the local /backup/wal that recover_wal.sh rsyncs from is gone).
prep_R2_seeds() { fresh_target; drop_db restore_full; }
run_R2_seeds() {
    measure R2-seeds bash -c 'set -e; a=(aws --endpoint-url "$1" --only-show-errors); s3="s3://$2/veloz-1"
        "${a[@]}" s3 cp "$s3/secrets/$3" "$6/s.gpg"; gpg --batch --quiet --decrypt "$6/s.gpg" | tar -xzf - -C "$7/secrets"
        "${a[@]}" s3 cp "$s3/config/$4" "$6/c.tgz"; tar -xzf "$6/c.tgz" -C "$7/etc"
        "${a[@]}" s3 cp "$s3/database/$5" "$6/db.dump"
        "$8/dropdb" -h 127.0.0.1 -p "$9" -U "${10}" --if-exists restore_full; "$8/createdb" -h 127.0.0.1 -p "$9" -U "${10}" restore_full
        "$8/pg_restore" -h 127.0.0.1 -p "$9" -U "${10}" -d restore_full "$6/db.dump"
        "${a[@]}" s3 sync "$s3/wal/" "$7/wal/"' \
        _ "$S3URL" "$BUCKET" "$RS_SECRETS" "$RS_CONF" "$RS_DUMP" "$RS/dl" "$T" "$PG_BIN" "$PG_PORT" "$PG_USER"
}
check_full_target() {
    local n; n=$(trades_in restore_full 2>/dev/null || echo none)
    [ "$n" = "$TRADES_COUNT" ] || { log "  restore_full has $n trades, expected $TRADES_COUNT"; return 1; }
    [ -f "$T/etc/config.yaml" ] && [ -f "$T/secrets/exchange.key" ] || { log "  configuration or secrets missing in $T"; return 1; }
    [ "$(find "$T/wal" -name 'orders_*.wal' ! -name '*current*' | wc -l)" -ge "$P2_COUNT" ] || { log "  WAL segments missing in $T/wal"; return 1; }
}
post_R2_seeds() { check_full_target; }
prep_R2_agent() { fresh_target; drop_db restore_full; psql_q -d postgres -c "CREATE DATABASE restore_full" >/dev/null; }
run_R2_agent() { measure R2-agent "$AGENT" restore full --yes --source "s3://$BUCKET/veloz-1" --no-service --config "$RS/target.json"; }
post_R2_agent() { check_full_target; }

if [ "$RS_READY" = 1 ]; then
    if [ "$RESTORE_AVAILABLE" = 1 ]; then
        alternate R1-seeds R1-agent
        alternate R2-seeds R2-agent
    else
        # Nothing to pair with yet: the seeds' restores run once each, for reference.
        ROUNDS=1
        alternate R1-seeds
        alternate R2-seeds
        ROUNDS=$REPS
    fi
fi
drop_db restore_full
fi  # R1, R2

# ============================================================================ R3 point-in-time recovery
if want R3; then
log "R3: point-in-time recovery of the cluster from S3 to the end of the WAL, agent (--target-dir) and by hand"
# The source: the daemon (pitr + S3) takes its start-up base backup of the cluster (the realistic database and the
# system ones) and streams; then R3_EXTRA trades are added, so a restore must replay them from the WAL after the
# base; once status.json says that WAL is in S3 the daemon stops and the local store's pitr/ is removed: both rows
# restore from S3 alone.
R3="$WORK/r3"
R3_SLOT=veloz_bench_r3
mkdir -p "$R3"
chmod 0755 "$R3"
psql_q -d postgres -c "CHECKPOINT"
[ -n "$CLUSTER_SIZE" ] || CLUSTER_SIZE="$(psql_q -d postgres -At -c "SELECT pg_size_pretty(sum(pg_database_size(datname))) FROM pg_database")"
# The daemon's configuration has the database kind off (no start-up dump beside the base backup); the restore's names
# the database veloz, whose tables the agent counts after recovery.
C_NODE=r3 C_ROOT="$R3/root" C_WAL="" C_DB="" C_S3=true C_CONF="" C_SECRETS="" C_PITR=5 C_SLOT=$R3_SLOT write_config "$R3/r3.json"
C_NODE=r3 C_ROOT="$R3/root" C_WAL="" C_DB=veloz C_S3=true C_CONF="" C_SECRETS="" C_PITR=5 C_SLOT=$R3_SLOT write_config "$R3/r3-restore.json"
"$AGENT" run --config "$R3/r3.json" >"$WORK/logs/daemon-r3.out" 2>&1 &
R3_PID=$!
PIDS+=("$R3_PID")
R3_TRADES=""
if python3 "$LIB" r3-prepare --port "$PG_PORT" --user "$PG_USER" --database veloz --root "$R3/root" --s3 "$S3URL/$BUCKET" --node r3 \
        --daemon-pid "$R3_PID" --extra "$R3_EXTRA" --out "$WORK/res/R3.json" 2>"$WORK/logs/r3-prepare.err"; then
    R3_TRADES="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["trades"])' "$WORK/res/R3.json")"
else
    for id in R3-agent R3-hand; do fail_row "$id" "the source was not ready: $(tail -2 "$WORK/logs/r3-prepare.err" | tr '\n' ' ') $(tail -2 "$WORK/logs/daemon-r3.out" | tr '\n' ' ')"; done
fi
stop_pid "$R3_PID"
drop_slot "$R3_SLOT"
rm -rf "$R3/root/pitr"

# r3_check DIR: the restored cluster, started again on a private socket (trust, archiving off), is out of recovery
# and holds every trade, the ones added after the base backup included; then stopped.
printf 'local all all trust\n' >"$R3/trust_hba.conf"
chmod 0644 "$R3/trust_hba.conf"
r3_check() {
    local dir=$1 port n rec sock="$R3/check"
    rm -rf "$sock"; mkdir -m 0700 "$sock"
    [ "$(id -u)" = 0 ] && chown postgres "$sock"
    port=$(free_port)
    as_pg "$PG_BIN/pg_ctl" -D "$dir" -l "$sock/server.log" -w -t 300 start \
        -o "-p $port -c listen_addresses= -c unix_socket_directories=$sock -c hba_file=$R3/trust_hba.conf -c archive_mode=off" >/dev/null \
        || { log "  the restored cluster in $dir does not start: $(tail -3 "$sock/server.log" | tr '\n' ' ')"; return 1; }
    n=$("$PG_BIN/psql" -h "$sock" -p "$port" -U "$PG_USER" -d veloz -X -At -c 'SELECT count(*) FROM trades' 2>&1 || true)
    rec=$("$PG_BIN/psql" -h "$sock" -p "$port" -U "$PG_USER" -d veloz -X -At -c 'SELECT pg_is_in_recovery()' 2>&1 || true)
    as_pg "$PG_BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
    [ "$n" = "$R3_TRADES" ] && [ "$rec" = f ] || { log "  $dir holds $n trades (in recovery: $rec), expected $R3_TRADES out of recovery"; return 1; }
}
prep_R3_agent() { [ -n "$R3_TRADES" ] && rm -rf "$R3/agent" "$R3"/agent.*; }
run_R3_agent() { measure R3-agent "$AGENT" restore pitr --from s3 --target-dir "$R3/agent" --config "$R3/r3-restore.json"; }
post_R3_agent() {
    # The agent's own step times (its STEP / TIME table): "REP<tab>step<tab>seconds" in res/R3-agent.steps.
    awk -v rep="$REP" '/^STEP +TIME *$/ { on = 1; next } on && / s$/ { t = $(NF - 1); $NF = ""; $(NF - 1) = ""; sub(/ +$/, "");
        print rep "\t" $0 "\t" t; next } on { exit }' "$WORK/logs/R3-agent.run$REP.out" >>"$WORK/res/R3-agent.steps"
    r3_check "$R3/agent" && rm -rf "$R3/agent" "$R3"/agent.*
}
prep_R3_hand() { [ -n "$R3_TRADES" ] && rm -rf "$R3/hand"; }
# README's "PostgreSQL point-in-time recovery by hand", step for step, into a scratch directory as its last note says.
run_R3_hand() {
    measure R3-hand bash -c 'set -euo pipefail
        s3url=$1 bucket=$2 d=$3 bin=$4 port=$5 pguser=$6
        pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
        mkdir -p "$d" && cd "$d"
        # 1. fetch and verify
        aws --endpoint-url "$s3url" --only-show-errors s3 cp --recursive "s3://$bucket/r3/pitr/" pitr/
        (cd pitr && sha256sum -c --quiet *.sha256)
        base=$(ls pitr | grep -E "^base_[0-9_]+\.tar\.gz$" | sort | tail -1)
        # 2. the WAL directory: whole segments and .history files; the pieces written at their offsets, padded
        mkdir -p wal
        for f in $(ls pitr | grep -E "^([0-9A-F]{24}|[0-9A-F]{8}\.history)$"); do cp "pitr/$f" wal/; done
        for piece in $(ls pitr | grep -E "^[0-9A-F]{24}\.[0-9A-F]{8}-[0-9A-F]{8}\.partial$" | sort); do
            seg=${piece%%.*}; range=${piece#*.}; start=${range%%-*}
            [ -e "pitr/$seg" ] && continue
            dd if="pitr/$piece" of="wal/$seg" bs=1M oflag=seek_bytes seek=$((16#$start)) conv=notrunc status=none
            touch "wal/$seg.pieces"
        done
        for m in wal/*.pieces; do if [ -e "$m" ]; then truncate -s 16M "${m%.pieces}"; rm "$m"; fi; done
        # 3. continuity of timeline 1
        tl=00000001; prev=; for f in $(ls wal | grep -E "^$tl[0-9A-F]{16}$"); do
            n=$(( 16#${f:8:8} * 256 + 16#${f:16:8} )); if [ -n "$prev" ] && [ $n -ne $((prev + 1)) ]; then echo "GAP before $f" >&2; exit 1; fi; prev=$n; done
        # 4. the base, the recovery settings (to the end of the WAL) and a scratch server on a free port
        install -d -m 0700 pg
        tar -xzf "pitr/$base" -C pg
        cat >>pg/postgresql.auto.conf <<CONF
restore_command = '"'"'cp $d/wal/%f %p'"'"'
recovery_target_action = '"'"'promote'"'"'
port = $port
listen_addresses = '"'"'127.0.0.1'"'"'
unix_socket_directories = '"'"''"'"'
archive_mode = off
CONF
        touch pg/recovery.signal
        if [ "$(id -u)" = 0 ]; then chown -R postgres: "$d"; fi
        pg "$bin/pg_ctl" -D pg -l pg.log -w -t 600 start >/dev/null
        until [ "$("$bin/psql" -h 127.0.0.1 -p "$port" -U "$pguser" -d postgres -X -At -c "SELECT pg_is_in_recovery()" 2>/dev/null)" = f ]; do sleep 0.1; done
        grep -E "archive recovery complete|FATAL" pg.log | tail -2
        pg "$bin/pg_ctl" -D pg -m fast -w stop >/dev/null' \
        _ "$S3URL" "$BUCKET" "$R3/hand" "$PG_BIN" "$(free_port)" "$PG_USER"
}
post_R3_hand() { r3_check "$R3/hand/pg" && rm -rf "$R3/hand"; }
[ -n "$R3_TRADES" ] && alternate R3-hand R3-agent
s3_drop r3
rm -rf "$R3"
fi  # R3

# ============================================================================================= report
END_NS=$(now_ns)
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$BENCH/lib/report.py" \
    --res "$WORK/res" --out "$OUT" --mode "$MODE" --reps "$REPS" --p6-reps "$P6_REPS" --p1-reps "$P1_REPS" \
    --restore-available "$RESTORE_AVAILABLE" --only "$ONLY" \
    --failed "$(for id in "${FAILED_ROWS[@]}"; do printf '%s\t%s\n' "$id" "${ROW_FAILED[$id]}"; done)" \
    --p7 "$P7_RESULT" --p7-window "$P7_WINDOW" --p7-settle "$P7_SETTLE" \
    --fact "duration=$(secs "$START_NS" "$END_NS")" \
    --fact "load_start=$LOAD_START" --fact "load_end=$LOAD_END" \
    --fact "p1=$P1_COUNT x $((P1_SEG / MiB)) MiB segments" --fact "p1_small=$P1_SMALL_COUNT x $((P1_SEG / MiB)) MiB segments" \
    --fact "p1_bytes=$((P1_COUNT * P1_SEG))" --fact "p1_small_bytes=$((P1_SMALL_COUNT * P1_SEG))" \
    --fact "p2=$P2_COUNT segments of $([ "$P2_SIZE" -ge "$MiB" ] && echo "$((P2_SIZE / MiB)) MiB" || echo "$((P2_SIZE / 1024)) KiB"), one every $P2_INTERVAL s" \
    --fact "p6=$P6_COUNT segments of $((P6_SIZE / 1024)) KiB" \
    --fact "db=pgbench scale $PG_SCALE + $TRADES trades rows: $DB_SIZE on disk" \
    --fact "db_small=pgbench scale $PG_SCALE_SMALL + $TRADES_SMALL trades rows: $DB_SIZE_SMALL on disk" \
    --fact "dump_bytes=$DUMP_BYTES" \
    --fact "cluster=$CLUSTER_SIZE" --fact "r3_extra=$R3_EXTRA" --fact "db_generated=$DB_GEN_S s" --fact "p9=$(awk -v w="$P9_WINDOW" 'BEGIN { printf "%d commits in %d s (20 a second)", 20 * w, w }')" \
    --fact "cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)" --fact "cores=$(nproc)" \
    --fact "ram=$(free -g | awk '/^Mem:/ { print $2 }') GiB" \
    --fact "disk=$(df -PhT "$WORKBASE" | awk 'NR==2 { print $1 " (" $2 "), " $3 ", " $5 " free at start" }')$(d=$(df -P "$WORKBASE" | awk 'NR==2 {print $1}'); n=$(basename "$d"); [ -r "/sys/block/$n/queue/rotational" ] && { [ "$(cat "/sys/block/$n/queue/rotational")" = 0 ] && echo ', non-rotational' || echo ', rotational'; })" \
    --fact "kernel=$(uname -sr)" --fact "os=$(. /etc/os-release && echo "$PRETTY_NAME")" \
    --fact "agent=$AGENT_VERSION (Release)" --fact "commit=$COMMIT" \
    --fact "dotnet=$(dotnet --version 2>/dev/null || echo n/a)" --fact "postgres=$PG_VERSION_STR" \
    --fact "rsync=$(rsync --version | head -1)" --fact "aws=$(aws --version 2>&1 | head -1)" \
    --fact "node=$(node --version)" --fact "s3rver=$(node -p "require('$ROOT/tools/s3rver/node_modules/s3rver/package.json').version" 2>/dev/null || echo '?')" \
    --fact "coreutils=$(cp --version | head -1)" --fact "gnutime=GNU time $(dpkg-query -W -f '${Version}' time 2>/dev/null || echo '?')"
log "results written to $OUT"
[ ${#FAILED_ROWS[@]} -eq 0 ] || { log "failed rows: ${FAILED_ROWS[*]}"; exit 1; }
exit 0
}
