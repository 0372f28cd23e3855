# Shell functions shared by scripts/test.sh and scripts/demo.sh (sourced, not run). The caller sets
# SCRIPT_NAME (the prefix of its messages) and ROOT (the repository), and `set -euo pipefail`.

log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() { log "error: $*"; exit 2; }

PG_VERSION=15
PG_BIN="/usr/lib/postgresql/$PG_VERSION/bin"
S3RVER="$ROOT/tools/s3rver/node_modules/.bin/s3rver"

# ensure_packages "COMMAND=PACKAGE..." ...: installs (apt-get, as root) the Debian packages of every
# command that is missing. COMMAND is a name looked up on PATH, or an absolute path that must be executable.
ensure_packages() {
    local spec command need_packages=()
    for spec in "$@"; do
        command="${spec%%=*}"
        if [[ "$command" == /* ]]; then
            [ -x "$command" ] && continue
        else
            command -v "$command" >/dev/null && continue
        fi
        # shellcheck disable=SC2206 # the package list is meant to split on spaces
        need_packages+=(${spec#*=})
    done
    if [ ${#need_packages[@]} -gt 0 ]; then
        [ "$(id -u)" = 0 ] || die "missing ${need_packages[*]}; run as root or install them: apt-get install ${need_packages[*]}"
        log "installing ${need_packages[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
    fi
}

# ensure_s3rver: the pinned s3rver of tools/s3rver (npm ci when missing or when the lock file changed).
ensure_s3rver() {
    if [ ! -x "$S3RVER" ] || [ "$ROOT/tools/s3rver/package-lock.json" -nt "$ROOT/tools/s3rver/node_modules/.package-lock.json" ]; then
        log "installing the pinned s3rver (npm ci)"
        (cd "$ROOT/tools/s3rver" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
}

# port_free PORT: true when nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: prints a port that is free on 127.0.0.1 right now.
free_port() {
    local candidate
    for _ in $(seq 1 50); do
        candidate=$((20000 + RANDOM % 30000))
        if port_free "$candidate"; then echo "$candidate"; return 0; fi
    done
    die "no free port found on 127.0.0.1"
}

# PostgreSQL refuses to run as root: as root, run it as the postgres user; otherwise as ourselves.
if [ "$(id -u)" = 0 ]; then
    as_pg() { runuser -u postgres -- "$@"; }
    PG_SUPERUSER=postgres
else
    as_pg() { "$@"; }
    PG_SUPERUSER="$(id -un)"
fi

# pg_start DIR: a throwaway PostgreSQL cluster in DIR/pg (socket and log in DIR/pgrun) on a free loopback
# port, scram-sha-256 with a random superuser password. Sets PG_DATA, PG_PORT, PG_PASSWORD, PG_STARTED=1.
# DIR must be traversable by the postgres user when running as root.
PG_STARTED=0
pg_start() {
    local scratch="$1" candidate
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
    PG_DATA="$scratch/pg"
    PG_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
    mkdir -p "$PG_DATA" "$scratch/pgrun"
    printf '%s\n' "$PG_PASSWORD" >"$scratch/pgpass"
    chmod 0700 "$PG_DATA" "$scratch/pgrun"
    chmod 0600 "$scratch/pgpass"
    if [ "$(id -u)" = 0 ]; then chown postgres "$PG_DATA" "$scratch/pgrun" "$scratch/pgpass"; fi
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_SUPERUSER" --auth=scram-sha-256 --pwfile="$scratch/pgpass" \
        --encoding=UTF8 --locale=C.UTF-8 >"$scratch/initdb.log" 2>&1 || { cat "$scratch/initdb.log" >&2; die "initdb failed"; }
    rm -f "$scratch/pgpass"

    PG_PORT=""
    for _ in $(seq 1 20); do
        candidate=$((20000 + RANDOM % 30000))
        port_free "$candidate" || continue
        if as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$scratch/pgrun/postgres.log" -w -t 30 start \
            -o "-c listen_addresses=127.0.0.1 -p $candidate -c unix_socket_directories=$scratch/pgrun -c fsync=off" >/dev/null; then
            PG_PORT=$candidate
            PG_STARTED=1
            break
        fi
    done
    [ -n "$PG_PORT" ] || { cat "$scratch/pgrun/postgres.log" >&2 2>/dev/null; die "could not start PostgreSQL $PG_VERSION"; }
}

# pg_stop: stops the cluster pg_start started (if it did).
pg_stop() {
    if [ "$PG_STARTED" = 1 ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1
        PG_STARTED=0
    fi
}

# gpg_make_key HOME "Name <email>": a passphrase-less key in a fresh GNUPGHOME (mode 0700).
gpg_make_key() {
    mkdir -m 0700 "$1"
    GNUPGHOME="$1" gpg --batch --quiet --passphrase '' --quick-generate-key "$2" future-default default never 2>/dev/null
}
