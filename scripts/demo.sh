#!/usr/bin/env bash
# The one-command demo: VelozBackupAgent against a throwaway VeloZ sandbox, in the foreground.
#
#   ./scripts/demo.sh            # Ctrl-C stops the agent and everything the demo started, and removes the sandbox
#   ./scripts/demo.sh --keep     # the same, but the sandbox (backups, S3 files, logs) stays for a look
#   VELOZ_DEMO_SECONDS=60 ./scripts/demo.sh   # runs for 60 s, then stops by itself (no terminal needed)
#
# On a Debian machine with the .NET SDK it installs what is missing (PostgreSQL 15, gnupg, Node and npm,
# curl; the pinned s3rver via npm ci), builds the agent (Release) and sets up, under one temp directory:
# a PostgreSQL 15 cluster with a `veloz` database of orders and trades, an s3rver S3 server with the bucket
# veloz-backups, a passphrase-less gpg key, a VeloZ-like tree (order WAL written live by a demo writer that
# appends to orders_current.wal and seals orders_<16 digits>.wal every few seconds, config.yaml, strategies,
# risk limits, .env, secrets) and a demo appsettings.json with schedules of a minute or two. Then it runs
# `veloz-backup run` in the foreground and prints where everything is.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPT_NAME=demo.sh
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

KEEP=0
for arg in "$@"; do
    case "$arg" in
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $arg (see --help)" ;;
    esac
done
SECONDS_TO_RUN="${VELOZ_DEMO_SECONDS:-}"
if [ -n "$SECONDS_TO_RUN" ] && ! [[ "$SECONDS_TO_RUN" =~ ^[1-9][0-9]*$ ]]; then
    die "VELOZ_DEMO_SECONDS must be a whole number of seconds, not '$SECONDS_TO_RUN'"
fi

# ---------------------------------------------------------------------------------------------- tools
ensure_packages "$PG_BIN/initdb=postgresql-$PG_VERSION postgresql-client-$PG_VERSION" gpg=gnupg tar=tar \
    "node=nodejs npm" sha256sum=coreutils curl=curl
command -v dotnet >/dev/null || die "the .NET SDK (dotnet) is not on PATH (https://learn.microsoft.com/dotnet/core/install/linux-debian)"
ensure_s3rver
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

# --------------------------------------------------------------------------------- sandbox + cleanup
SANDBOX="$(mktemp -d /tmp/veloz-demo.XXXXXX)"
chmod 0755 "$SANDBOX"    # the postgres user must reach its data directory inside
PIDS="$SANDBOX/demo.pids"    # "name pid" of every long-running process the demo starts
: >"$PIDS"
AGENT_PID="" WAL_PID="" S3_PID=""

started() { printf '%s %s\n' "$1" "$2" >>"$PIDS"; }

# stop PID SECONDS: SIGTERM, then SIGKILL if it is still there after SECONDS.
stop() {
    local pid="$1" wait_for="$2"
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 $((wait_for * 10))); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    set +e
    trap - INT TERM
    if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
        log "stopping the agent"
        stop "$AGENT_PID" 40
        wait "$AGENT_PID" 2>/dev/null
    fi
    if [ -n "$AGENT_PID" ] && [ -n "$S3_PID" ]; then
        printf '\n%s: what the demo backed up (veloz-backup status):\n' "$SCRIPT_NAME"
        timeout 60 "$SANDBOX/bin/veloz-backup" status 2>&1 | sed 's/^/  /'
    fi
    stop "$WAL_PID" 5
    stop "$S3_PID" 10
    pg_stop
    GNUPGHOME="$SANDBOX/gnupg" gpgconf --kill all >/dev/null 2>&1
    if [ "$KEEP" = 1 ]; then
        log "kept the sandbox: $SANDBOX (remove it with: rm -rf $SANDBOX)"
    else
        rm -rf "$SANDBOX"
        log "stopped everything and removed $SANDBOX"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "sandbox: $SANDBOX"

# ------------------------------------------------------------------------------------------ the agent
log "building the agent (dotnet publish -c Release; the first time takes a minute)"
dotnet publish "$ROOT/src/VelozBackupAgent.Host/VelozBackupAgent.Host.csproj" -c Release -o "$SANDBOX/agent" \
    --nologo -v quiet --disable-build-servers >"$SANDBOX/build.log" 2>&1 || { cat "$SANDBOX/build.log" >&2; die "the build failed"; }
AGENT="$SANDBOX/agent/veloz-backup"

# ----------------------------------------------------------------------------------------- PostgreSQL
pg_start "$SANDBOX"
started postgres "$(head -n 1 "$PG_DATA/postmaster.pid")"
VELOZ_DB_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
psql_as_superuser() {
    PGPASSWORD="$PG_PASSWORD" "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPERUSER" -v ON_ERROR_STOP=1 -q "$@" >/dev/null
}
# REPLICATION: the agent streams the server's WAL for point-in-time recovery (initdb's pg_hba.conf allows replication on loopback).
psql_as_superuser -d postgres -c "CREATE ROLE veloz LOGIN REPLICATION PASSWORD '$VELOZ_DB_PASSWORD'" -c "CREATE DATABASE veloz OWNER veloz"
PGPASSWORD="$VELOZ_DB_PASSWORD" "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U veloz -d veloz -v ON_ERROR_STOP=1 -q >/dev/null <<'SQL'
CREATE TABLE orders (
    id bigserial PRIMARY KEY, placed_at timestamptz NOT NULL, symbol text NOT NULL,
    side char(1) NOT NULL CHECK (side IN ('B', 'S')), qty numeric(18, 8) NOT NULL, price numeric(18, 8) NOT NULL,
    status text NOT NULL);
CREATE TABLE trades (
    id bigserial PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders (id), executed_at timestamptz NOT NULL,
    qty numeric(18, 8) NOT NULL, price numeric(18, 8) NOT NULL);
INSERT INTO orders (placed_at, symbol, side, qty, price, status)
SELECT now() - make_interval(secs => i), (ARRAY['BTC-USD', 'ETH-USD', 'SOL-USD', 'EUR-USD'])[1 + i % 4],
       CASE WHEN i % 2 = 0 THEN 'B' ELSE 'S' END, round((random() * 10)::numeric, 4), round((100 + random() * 50)::numeric, 2),
       CASE WHEN i % 5 = 0 THEN 'open' ELSE 'filled' END
FROM generate_series(1, 20000) AS i;
INSERT INTO trades (order_id, executed_at, qty, price)
SELECT id, placed_at + interval '150 milliseconds', qty, price FROM orders WHERE status = 'filled';
SQL
# The agent (and pg_dump) get the password the way a host would give it: a pgpass file, never a command line.
# Any database: replication connections look up the password under the database name "replication".
printf '127.0.0.1:%s:*:veloz:%s\n' "$PG_PORT" "$VELOZ_DB_PASSWORD" >"$SANDBOX/pgpass"
chmod 0600 "$SANDBOX/pgpass"
log "PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT: database veloz with 20000 orders and their trades"

# ------------------------------------------------------------------------------------------------- S3
S3_PORT="$(free_port)"
mkdir -p "$SANDBOX/s3"
# Long-running helpers get their own session (setsid): Ctrl-C reaches only this script, which then stops
# them in order (the agent first, while S3 and PostgreSQL are still there for its last uploads).
NODE_OPTIONS=--openssl-legacy-provider setsid "$S3RVER" --directory "$SANDBOX/s3" --address 127.0.0.1 --port "$S3_PORT" \
    --configure-bucket veloz-backups --silent >"$SANDBOX/s3rver.log" 2>&1 &
S3_PID=$!
started s3rver "$S3_PID"
for _ in $(seq 1 200); do
    port_free "$S3_PORT" || break
    kill -0 "$S3_PID" 2>/dev/null || { cat "$SANDBOX/s3rver.log" >&2; die "s3rver did not start"; }
    sleep 0.1
done
port_free "$S3_PORT" && die "s3rver did not answer on 127.0.0.1:$S3_PORT"
log "s3rver on http://127.0.0.1:$S3_PORT (bucket veloz-backups, files in $SANDBOX/s3)"

# ------------------------------------------------------------------------------------------------ gpg
RECIPIENT="veloz-backup-demo@example.com"
gpg_make_key "$SANDBOX/gnupg" "VeloZ backup demo <$RECIPIENT>" || die "gpg could not generate the demo key"
log "gpg key for $RECIPIENT in $SANDBOX/gnupg"

# ------------------------------------------------------------------------- a VeloZ host to back up
VELOZ_ETC="$SANDBOX/veloz/etc"
WAL_DIR="$SANDBOX/veloz/wal"
mkdir -p "$VELOZ_ETC/strategies" "$VELOZ_ETC/secrets" "$WAL_DIR" "$SANDBOX/backup" "$SANDBOX/log" "$SANDBOX/bin"
chmod 0700 "$SANDBOX/backup" "$VELOZ_ETC/secrets"
cat >"$VELOZ_ETC/config.yaml" <<'YAML'
engine:
  node: demo
  wal_dir: /var/lib/veloz/wal
  segment_size_mb: 64
  health_port: 8080
venues: [binance, coinbase, kraken]
YAML
cat >"$VELOZ_ETC/strategies/momentum.yaml" <<'YAML'
name: momentum
symbols: [BTC-USD, ETH-USD]
lookback: 20m
max_position: 5
YAML
cat >"$VELOZ_ETC/strategies/mean_reversion.yaml" <<'YAML'
name: mean_reversion
symbols: [SOL-USD, EUR-USD]
band_sigma: 2.5
max_position: 3
YAML
cat >"$VELOZ_ETC/risk_limits.yaml" <<'YAML'
max_order_notional_usd: 250000
max_daily_loss_usd: 1000000
kill_switch: armed
YAML
printf 'VELOZ_ENV=demo\nVELOZ_LOG_LEVEL=info\n' >"$VELOZ_ETC/.env"
printf 'never archived: *.secret is excluded from the configuration backup\n' >"$VELOZ_ETC/exchange.secret"
printf 'demo-api-key-%s\n' "$RANDOM$RANDOM" >"$VELOZ_ETC/secrets/exchange-api.key"
printf 'demo-hmac-%s\n' "$RANDOM$RANDOM" >"$VELOZ_ETC/secrets/exchange-hmac.key"
printf -- '-----BEGIN DEMO KEY-----\n%s\n-----END DEMO KEY-----\n' "$RANDOM$RANDOM$RANDOM" >"$VELOZ_ETC/secrets/tls.key"
chmod 0600 "$VELOZ_ETC"/secrets/*

# Two sealed segments from "before", then a writer that appends an order a second and seals every 5 orders.
for seq in 1 2; do
    for n in 1 2 3 4 5; do printf '%s|order|%d|BTC-USD|B|0.5|64000\n' "$seq" "$n"; done >"$WAL_DIR/$(printf 'orders_%016d.wal' "$seq")"
done
mkfifo "$SANDBOX/wal-writer.tick"
# shellcheck disable=SC2016 # the writer's own variables expand in the writer
setsid bash -c '
    wal="$1"; seq=3; n=0
    exec 9<>"$2"    # a FIFO nobody writes: "read -t 1" on it is a sleep without a child process
    while :; do
        printf "%s|order|%d|%s|%s|%s|%s\n" "$EPOCHREALTIME" "$n" BTC-USD B 0.25 "$((60000 + RANDOM % 5000))" >>"$wal/orders_current.wal"
        n=$((n + 1))
        if [ $((n % 5)) -eq 0 ]; then
            mv "$wal/orders_current.wal" "$wal/$(printf "orders_%016d.wal" "$seq")"
            seq=$((seq + 1))
        fi
        read -r -t 1 -u 9 _ || true
    done' demo-wal-writer "$WAL_DIR" "$SANDBOX/wal-writer.tick" &
WAL_PID=$!
started wal-writer "$WAL_PID"
log "demo WAL writer appending to $WAL_DIR/orders_current.wal (sealing a segment every 5 s)"

# ----------------------------------------------------------------------------------- configuration
HTTP_PORT="$(free_port)"
CONFIG="$SANDBOX/appsettings.json"
# PostgreSQL's own stop/start for a live point-in-time restore: the same options pg_start started it with.
if [ "$(id -u)" = 0 ]; then AS_PG="runuser -u postgres -- "; else AS_PG=""; fi
PG_STOP="$AS_PG$PG_BIN/pg_ctl -D $PG_DATA -m fast -w stop"
PG_START="$AS_PG$PG_BIN/pg_ctl -D $PG_DATA -l $SANDBOX/pgrun/postgres.log -w start -o '-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$SANDBOX/pgrun -c fsync=off'"
cat >"$CONFIG" <<JSON
{
  "Backup": {
    "NodeName": "demo",
    "LocalRoot": "$SANDBOX/backup",
    "StopGrace": "00:00:10",
    "PruneSchedule": "0 0/10 * * * ?",
    "Wal": { "Enabled": true, "Directory": "$WAL_DIR", "SegmentPattern": "orders_*.wal", "ActiveFile": "orders_current.wal",
             "Schedule": "0 * * * * ?", "Retention": "7.00:00:00" },
    "Config": { "Enabled": true, "Root": "$VELOZ_ETC",
                "Include": [ "config.yaml", "strategies/*.yaml", "risk_limits.yaml", ".env" ], "Exclude": [ "**/*.secret" ],
                "Schedule": "15 * * * * ?", "Retention": "30.00:00:00" },
    "Database": { "Enabled": true, "ConnectionString": "Host=127.0.0.1;Port=$PG_PORT;Database=veloz;Username=veloz",
                  "BinDirectory": "$PG_BIN", "Schedule": "30 0/2 * * * ?", "Retention": "30.00:00:00" },
    "Secrets": { "Enabled": true, "Directory": "$VELOZ_ETC/secrets", "Recipients": [ "$RECIPIENT" ], "GnupgHome": "$SANDBOX/gnupg",
                 "Schedule": "45 0/2 * * * ?", "Retention": "30.00:00:00" },
    "Pitr": { "Enabled": true, "DataDirectory": "$PG_DATA", "Slot": "veloz_backup", "ShipPartialEvery": "00:00:05",
              "BaseSchedule": "0 0/5 * * * ?", "StopCommand": "$PG_STOP", "StartCommand": "$PG_START",
              "ServerLog": "$SANDBOX/pgrun/postgres.log", "Retention": "30.00:00:00" },
    "S3": { "Enabled": true, "Bucket": "veloz-backups", "ServiceUrl": "http://127.0.0.1:$S3_PORT", "Region": "us-east-1",
            "ForcePathStyle": true, "ChunkedUpload": false },
    "Restore": { "StopCommand": "echo demo: VeloZ would be stopped here", "StartCommand": "echo demo: VeloZ would be started here",
                 "HealthUrl": "http://127.0.0.1:$HTTP_PORT/health", "HealthTimeout": "00:00:30" },
    "Http": { "Url": "http://127.0.0.1:$HTTP_PORT" },
    "Log": { "File": "$SANDBOX/log/backup.log", "Level": "Information" }
  }
}
JSON

# The sandbox's credentials the way a host provides them: the environment (S3) and a pgpass file.
export PGPASSFILE="$SANDBOX/pgpass" AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN VELOZ_BACKUP_CONFIG
cat >"$SANDBOX/bin/veloz-backup" <<SH
#!/bin/sh
# veloz-backup with the demo's configuration and credentials.
export PGPASSFILE="$SANDBOX/pgpass" AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1 GNUPGHOME="$SANDBOX/gnupg"
exec "$AGENT" "\$@" --config "$CONFIG"
SH
chmod 0755 "$SANDBOX/bin/veloz-backup"

CLI="$SANDBOX/bin/veloz-backup"
cat <<EOF

==================================================================================================
 VelozBackupAgent demo - everything lives in $SANDBOX
--------------------------------------------------------------------------------------------------
 backups (local)   $SANDBOX/backup/{wal,config,database,secrets,pitr}
 backups (S3)      s3://veloz-backups/demo/<kind>/ on http://127.0.0.1:$S3_PORT (s3rver; files in $SANDBOX/s3)
 metrics           http://127.0.0.1:$HTTP_PORT/metrics
 health            http://127.0.0.1:$HTTP_PORT/health
 log file          $SANDBOX/log/backup*.log
 configuration     $CONFIG
 backed up         WAL $WAL_DIR (live writer), config $VELOZ_ETC, database veloz on 127.0.0.1:$PG_PORT,
                   secrets $VELOZ_ETC/secrets (gpg, key in $SANDBOX/gnupg), and the cluster's own WAL streamed (pitr)
 schedules         every kind runs at start-up; then WAL and config every minute, database and secrets every 2 minutes,
                   a PITR base backup every 5 minutes, the streamed WAL stored every 5 s

 Try, in another terminal ($CLI is veloz-backup --config $CONFIG with the demo's credentials):
   $CLI status
   $CLI list
   $CLI list database --target s3
   $CLI list pitr
   $CLI restore pitr --target-dir $SANDBOX/pitr-look      (a point-in-time restore into a scratch directory)
   $CLI backup config
   curl -s http://127.0.0.1:$HTTP_PORT/metrics | grep '^veloz_backup_last_success'
   cd $SANDBOX/backup/database && sha256sum -c *.dump.sha256
   GNUPGHOME=$SANDBOX/gnupg gpg -q -d $SANDBOX/backup/secrets/secrets_*.gpg | tar -tzv

 $( [ -n "$SECONDS_TO_RUN" ] && echo "Stops by itself after $SECONDS_TO_RUN s (VELOZ_DEMO_SECONDS)." || echo "Ctrl-C stops the agent and everything the demo started$( [ "$KEEP" = 1 ] && echo ' (the sandbox is kept)' || echo ', and removes the sandbox (--keep keeps it)')." )
==================================================================================================

EOF

# ------------------------------------------------------------------------------------------------ run
setsid "$AGENT" run --config "$CONFIG" &
AGENT_PID=$!
started agent "$AGENT_PID"
if [ -n "$SECONDS_TO_RUN" ]; then
    for _ in $(seq 1 "$SECONDS_TO_RUN"); do
        kill -0 "$AGENT_PID" 2>/dev/null || break
        sleep 1
    done
    kill -0 "$AGENT_PID" 2>/dev/null || { wait "$AGENT_PID"; die "the agent stopped on its own (exit $?)"; }
    log "$SECONDS_TO_RUN s are up: stopping"
    kill -TERM "$AGENT_PID"
fi
agent_status=0
wait "$AGENT_PID" || agent_status=$?
[ "$agent_status" = 0 ] || die "the agent exited with $agent_status"
