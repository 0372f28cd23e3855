#!/usr/bin/env bash
# Runs every VelozBackupAgent test against real components, on a fresh Debian machine with the .NET SDK.
#
#   ./scripts/test.sh                     # all tests
#   ./scripts/test.sh --filter Database   # extra arguments go to `dotnet test`
#
# It installs what is missing (PostgreSQL 15, gnupg, rsync, promtool; the pinned s3rver via npm ci),
# starts a throwaway PostgreSQL cluster as the postgres user in a temp directory on a free loopback port,
# makes a temp GNUPGHOME with a passphrase-less test key, exports where they are for the tests, runs
# `dotnet test` on the solution and stops everything it started, also when a test fails or it is
# interrupted. s3rver processes are started by the tests themselves (they stop and restart S3 on purpose)
# from the binary this script installs. The last line is the runner's summary: "N passed, N failed, N skipped".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf 'test.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

# ---------------------------------------------------------------------------------------------- tools
PG_VERSION=15
need_packages=()
[ -x "/usr/lib/postgresql/$PG_VERSION/bin/initdb" ] || need_packages+=("postgresql-$PG_VERSION" postgresql-client-$PG_VERSION)
command -v gpg >/dev/null || need_packages+=(gnupg)
command -v rsync >/dev/null || need_packages+=(rsync)
command -v promtool >/dev/null || need_packages+=(prometheus)
command -v tar >/dev/null || need_packages+=(tar)
command -v node >/dev/null || need_packages+=(nodejs npm)
command -v sha256sum >/dev/null || need_packages+=(coreutils)
# bench/run.sh --quick (an integration test) compares the agent with the seeds' own tools.
command -v aws >/dev/null || need_packages+=(awscli)
[ -x /usr/bin/time ] || need_packages+=(time)
command -v python3 >/dev/null || need_packages+=(python3)
command -v curl >/dev/null || need_packages+=(curl)
if [ ${#need_packages[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${need_packages[*]}; run as root or install them: apt-get install ${need_packages[*]}"
    log "installing ${need_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
fi
command -v dotnet >/dev/null || die "the .NET SDK (dotnet) is not on PATH"

PG_BIN="/usr/lib/postgresql/$PG_VERSION/bin"
S3RVER="$ROOT/tools/s3rver/node_modules/.bin/s3rver"
if [ ! -x "$S3RVER" ] || [ "$ROOT/tools/s3rver/package-lock.json" -nt "$ROOT/tools/s3rver/node_modules/.package-lock.json" ]; then
    log "installing the pinned s3rver (npm ci)"
    (cd "$ROOT/tools/s3rver" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# ------------------------------------------------------------------------------------ scratch + cleanup
SCRATCH="$(mktemp -d /tmp/veloz-test.XXXXXX)"
chmod 0755 "$SCRATCH"
PG_DATA="$SCRATCH/pg"
PG_STARTED=0

cleanup() {
    local status=$?
    set +e
    if [ "$PG_STARTED" = 1 ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1
    fi
    GNUPGHOME="$SCRATCH/gnupg" gpgconf --kill all >/dev/null 2>&1
    # s3rver children of tests are stopped by the tests; anything left from a killed run goes here.
    pkill -f -- "--directory $SCRATCH" >/dev/null 2>&1
    rm -rf "$SCRATCH"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# PostgreSQL refuses to run as root: as root, run it as the postgres user; otherwise as ourselves.
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    as_pg() { runuser -u postgres -- "$@"; }
    PG_SUPERUSER=postgres
else
    as_pg() { "$@"; }
    PG_SUPERUSER="$(id -un)"
fi

# ---------------------------------------------------------------------------------------- PostgreSQL
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PG_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
mkdir -p "$PG_DATA" "$SCRATCH/pgrun"
printf '%s\n' "$PG_PASSWORD" >"$SCRATCH/pgpass"
chmod 0700 "$PG_DATA" "$SCRATCH/pgrun"
chmod 0600 "$SCRATCH/pgpass"
if [ "$(id -u)" = 0 ]; then chown postgres "$PG_DATA" "$SCRATCH/pgrun" "$SCRATCH/pgpass"; fi
as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_SUPERUSER" --auth=scram-sha-256 --pwfile="$SCRATCH/pgpass" \
    --encoding=UTF8 --locale=C.UTF-8 >"$SCRATCH/initdb.log" 2>&1 || { cat "$SCRATCH/initdb.log" >&2; die "initdb failed"; }
rm -f "$SCRATCH/pgpass"

PG_PORT=""
for _ in $(seq 1 20); do
    candidate=$((20000 + RANDOM % 30000))
    port_free "$candidate" || continue
    if as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$SCRATCH/pgrun/postgres.log" -w -t 30 start \
        -o "-c listen_addresses=127.0.0.1 -p $candidate -c unix_socket_directories=$SCRATCH/pgrun -c fsync=off" >/dev/null; then
        PG_PORT=$candidate
        PG_STARTED=1
        break
    fi
done
[ -n "$PG_PORT" ] || { cat "$SCRATCH/pgrun/postgres.log" >&2 2>/dev/null; die "could not start PostgreSQL $PG_VERSION"; }
log "PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT ($PG_DATA)"

# ----------------------------------------------------------------------------------------------- gpg
export GNUPGHOME="$SCRATCH/gnupg"
mkdir -m 0700 "$GNUPGHOME"
GPG_RECIPIENT="veloz-backup-test@example.com"
gpg --batch --quiet --passphrase '' --quick-generate-key "VeloZ backup test <$GPG_RECIPIENT>" future-default default never 2>/dev/null \
    || die "gpg could not generate the test key"
log "gpg test key for $GPG_RECIPIENT in $GNUPGHOME"

# ---------------------------------------------------------------------------------------------- tests
export VELOZ_TEST_PG_CONNECTION="Host=127.0.0.1;Port=$PG_PORT;Username=$PG_SUPERUSER;Password=$PG_PASSWORD;Database=postgres"
export VELOZ_TEST_PG_BIN="$PG_BIN"
export VELOZ_TEST_S3RVER="$S3RVER"
export VELOZ_TEST_GPG_RECIPIENT="$GPG_RECIPIENT"
export NODE_OPTIONS="--openssl-legacy-provider"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
# The AWS SDK must never pick up a developer's real credentials or profile in a test.
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN

OUT="$SCRATCH/dotnet-test.out"
set +e
dotnet test "$ROOT/VelozBackupAgent.sln" "$@" 2>&1 | tee "$OUT"
status=${PIPESTATUS[0]}
set -e

# One line per test assembly: "Passed!  - Failed:     0, Passed:    85, Skipped:     1, Total: ..."
summary="$(grep -E '(Passed|Failed)! +- Failed: ' "$OUT" | sed -E 's/.*Failed: *([0-9]+), Passed: *([0-9]+), Skipped: *([0-9]+).*/\1 \2 \3/' \
    | awk '{f+=$1; p+=$2; s+=$3} END {printf "%d passed, %d failed, %d skipped", p, f, s}')"
if [ -z "$summary" ] || [ "$summary" = "0 passed, 0 failed, 0 skipped" ]; then
    [ "$status" = 0 ] && status=1
    summary="0 passed, 1 failed (dotnet test did not run any test: see above)"
fi
if [ "$status" != 0 ] && [[ "$summary" == *" 0 failed"* ]]; then
    summary="$summary (but dotnet test exited $status: a project did not build or a test host crashed, see above)"
fi
echo "$summary"
exit "$status"
