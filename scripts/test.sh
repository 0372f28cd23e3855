#!/usr/bin/env bash
# Runs every VelozBackupAgent test against real components, on a fresh Debian machine with the .NET SDK.
#
#   ./scripts/test.sh                     # all tests
#   ./scripts/test.sh --filter Database   # extra arguments go to `dotnet test`
#
# It installs what is missing (PostgreSQL 15, gnupg, rsync, promtool, systemd-analyze; the pinned s3rver via npm ci),
# starts a throwaway PostgreSQL cluster as the postgres user in a temp directory on a free loopback port,
# makes a temp GNUPGHOME with a passphrase-less test key, exports where they are for the tests, runs
# `dotnet test` on the solution and stops everything it started, also when a test fails or it is
# interrupted. s3rver processes are started by the tests themselves (they stop and restart S3 on purpose)
# from the binary this script installs. The last line is the runner's summary: "N passed, N failed, N skipped".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SCRIPT_NAME=test.sh
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# ---------------------------------------------------------------------------------------------- tools
# The bench's quick run (an integration test) also needs the seeds' own tools: aws, GNU time, python3, curl.
ensure_packages "$PG_BIN/initdb=postgresql-$PG_VERSION postgresql-client-$PG_VERSION" gpg=gnupg rsync=rsync promtool=prometheus \
    systemd-analyze=systemd tar=tar zsh=zsh "node=nodejs npm" sha256sum=coreutils git=git aws=awscli /usr/bin/time=time python3=python3 curl=curl
command -v dotnet >/dev/null || die "the .NET SDK (dotnet) is not on PATH"
ensure_s3rver

# ------------------------------------------------------------------------------------ scratch + cleanup
SCRATCH="$(mktemp -d /tmp/veloz-test.XXXXXX)"
chmod 0755 "$SCRATCH"

cleanup() {
    local status=$?
    set +e
    pg_stop
    GNUPGHOME="$SCRATCH/gnupg" gpgconf --kill all >/dev/null 2>&1
    # s3rver children of tests are stopped by the tests; anything left from a killed run goes here.
    pkill -f -- "--directory $SCRATCH" >/dev/null 2>&1
    rm -rf "$SCRATCH"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------- PostgreSQL
pg_start "$SCRATCH"
log "PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT ($PG_DATA)"

# ----------------------------------------------------------------------------------------------- gpg
export GNUPGHOME="$SCRATCH/gnupg"
GPG_RECIPIENT="veloz-backup-test@example.com"
gpg_make_key "$GNUPGHOME" "VeloZ backup test <$GPG_RECIPIENT>" || die "gpg could not generate the test key"
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

# ------------------------------------------------------------------------------------ the binary under test
# The real-binary tests run `dotnet veloz-backup.dll` (the Debug build), or the executable VELOZ_BACKUP_BINARY names:
# e.g. a Native AOT build (dotnet publish -c Release -p:PublishAot=true -o DIR; VELOZ_BACKUP_BINARY=DIR/veloz-backup).
if [ -n "${VELOZ_BACKUP_BINARY:-}" ]; then log "real-binary tests run $VELOZ_BACKUP_BINARY"; fi

OUT="$SCRATCH/dotnet-test.out"
set +e
dotnet test "$ROOT/VelozBackupAgent.sln" "$@" 2>&1 | tee "$OUT"
status=${PIPESTATUS[0]}
set -e

# One line per test assembly: "Passed!  - Failed:     0, Passed:    85, Skipped:     1, Total: ..."
summary="$(grep -a -E '(Passed|Failed)! +- Failed: ' "$OUT" | sed -E 's/.*Failed: *([0-9]+), Passed: *([0-9]+), Skipped: *([0-9]+).*/\1 \2 \3/' \
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
