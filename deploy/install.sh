#!/usr/bin/env bash
# Installs (or uninstalls) VelozBackupAgent as the systemd service veloz-backup on a Debian host.
#
#   sudo deploy/install.sh                      # publish, install, enable (start it yourself when configured)
#   sudo deploy/install.sh --uninstall          # remove binaries and unit; backups, config, keys, logs stay
#   deploy/install.sh --destdir /tmp/root       # everything under a scratch root (packaging, tests)
#
# Options:
#   --prefix DIR       where the binaries go (default /opt/veloz-backup; the unit's ExecStart follows it)
#   --destdir DIR      install under DIR instead of / (also the DESTDIR environment variable). The
#                      veloz-backup user is created inside DIR (useradd --root) when DIR/etc/passwd exists;
#                      otherwise no user is made and files stay owned by the caller (said so at the end).
#   --from DIR         install an already published build (dotnet publish output) instead of publishing
#   --uninstall        remove what the install put in place, except data: /backup, /etc/veloz-backup,
#                      /var/lib/veloz-backup (gpg keys), /var/log/veloz and the user are kept
#
# It is idempotent: run it again to upgrade. An edited /etc/veloz-backup/appsettings.json is never
# overwritten; the shipped one is put beside it as appsettings.json.dist. systemd is told (daemon-reload,
# enable) only when it runs as PID 1 and no destdir is given.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICE=veloz-backup
SERVICE_USER=veloz-backup
PREFIX=/opt/veloz-backup
DESTDIR="${DESTDIR:-}"
FROM=""
UNINSTALL=0

log() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
        --prefix=*) PREFIX="${1#*=}"; shift ;;
        --destdir) DESTDIR="${2:?--destdir needs a directory}"; shift 2 ;;
        --destdir=*) DESTDIR="${1#*=}"; shift ;;
        --from) FROM="${2:?--from needs a directory}"; shift 2 ;;
        --from=*) FROM="${1#*=}"; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

case "$PREFIX" in /*) ;; *) die "--prefix must be an absolute path: $PREFIX" ;; esac
PREFIX="${PREFIX%/}"
if [ -n "$DESTDIR" ]; then
    mkdir -p "$DESTDIR"
    DESTDIR="$(cd "$DESTDIR" && pwd)"
    [ "$DESTDIR" != / ] || DESTDIR=""
fi
D="$DESTDIR"
IS_ROOT=0; [ "$(id -u)" = 0 ] && IS_ROOT=1
[ -n "$D" ] || [ "$IS_ROOT" = 1 ] || die "installing into / needs root (or use --destdir DIR)"

# systemd is asked to reload/enable only on the live system it manages (sd_booted: /run/systemd/system).
SYSTEMD_LIVE=0
if [ -z "$D" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then SYSTEMD_LIVE=1; fi

UNIT_DIR="$D/etc/systemd/system"
UNIT="$UNIT_DIR/$SERVICE.service"
DROPIN_DIR="$UNIT_DIR/$SERVICE.service.d"
BIN_LINK="$D/usr/local/bin/veloz-backup"
NOTES=()

# ------------------------------------------------------------------------------------------ uninstall
if [ "$UNINSTALL" = 1 ]; then
    if [ "$SYSTEMD_LIVE" = 1 ]; then
        systemctl disable --now "$SERVICE.service" >/dev/null 2>&1 || true
    fi
    rm -f "$UNIT"
    rm -f "$DROPIN_DIR/dotnet-root.conf"
    rmdir "$DROPIN_DIR" 2>/dev/null || true
    if [ -L "$BIN_LINK" ]; then rm -f "$BIN_LINK"; fi
    rm -rf "$D$PREFIX" "$D$PREFIX.new" "$D$PREFIX.old"
    if [ "$SYSTEMD_LIVE" = 1 ]; then systemctl daemon-reload; fi
    log "removed $D$PREFIX, $UNIT and $BIN_LINK"
    log "kept (remove by hand if you mean it): $D/backup (the backups), $D/etc/veloz-backup (configuration),"
    log "  $D/var/lib/veloz-backup (gpg keys), $D/var/log/veloz (logs), the user $SERVICE_USER"
    exit 0
fi

# ------------------------------------------------------------------------------------------- publish
STAGE=""
cleanup() { if [ -n "$STAGE" ]; then rm -rf "$STAGE"; fi; }
trap cleanup EXIT
if [ -z "$FROM" ]; then
    command -v dotnet >/dev/null || die "the .NET SDK (dotnet) is not on PATH; or give --from DIR with a published build"
    STAGE="$(mktemp -d /tmp/veloz-publish.XXXXXX)"
    log "publishing the agent (dotnet publish -c Release)"
    DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 dotnet publish "$ROOT/src/VelozBackupAgent.Host/VelozBackupAgent.Host.csproj" \
        -c Release -o "$STAGE" --nologo -v quiet --disable-build-servers >"$STAGE.log" 2>&1 || { cat "$STAGE.log" >&2; rm -f "$STAGE.log"; die "dotnet publish failed"; }
    rm -f "$STAGE.log"
    FROM="$STAGE"
fi
[ -x "$FROM/veloz-backup" ] || die "$FROM does not hold a published veloz-backup (the veloz-backup executable)"
# Native AOT (one executable, no .NET needed to run it: dotnet publish -p:PublishAot=true) or
# framework-dependent (veloz-backup.dll beside a launcher that needs the .NET runtime).
NATIVE=1; [ ! -f "$FROM/veloz-backup.dll" ] || NATIVE=0

# -------------------------------------------------------------------------------------- user, group
OWNER=""    # user:group for chown, or empty when there is no such user where we install
if [ -z "$D" ] || [ -f "$D/etc/passwd" ]; then
    ROOT_ARGS=(); [ -z "$D" ] || ROOT_ARGS=(--root "$D")
    if [ "$IS_ROOT" = 1 ]; then
        if ! grep -q "^$SERVICE_USER:" "$D/etc/group" 2>/dev/null; then
            groupadd "${ROOT_ARGS[@]}" --system "$SERVICE_USER"
            log "created group $SERVICE_USER"
        fi
        if ! grep -q "^$SERVICE_USER:" "$D/etc/passwd"; then
            # The shell check looks inside the root; a scratch root has no /usr/sbin/nologin: say nothing about it.
            useradd "${ROOT_ARGS[@]}" --system --gid "$SERVICE_USER" --home-dir /var/lib/veloz-backup --no-create-home \
                --shell /usr/sbin/nologin --comment "VelozBackupAgent" "$SERVICE_USER" 2> >(grep -v "missing or non-executable shell" >&2)
            log "created system user $SERVICE_USER (home /var/lib/veloz-backup, no login)"
        fi
        uid="$(awk -F: -v u="$SERVICE_USER" '$1 == u { print $3 }' "$D/etc/passwd")"
        gid="$(awk -F: -v g="$SERVICE_USER" '$1 == g { print $3 }' "$D/etc/group")"
        OWNER="$uid:$gid"     # numeric: inside a destdir the names mean that root's ids, not this host's
    else
        NOTES+=("not root: the user $SERVICE_USER was not created and files are owned by $(id -un)")
    fi
else
    NOTES+=("$D/etc/passwd does not exist: the user $SERVICE_USER was not created and files are owned by $(id -un); on the target run this script again or: useradd --system --home-dir /var/lib/veloz-backup --shell /usr/sbin/nologin $SERVICE_USER, then chown the directories below")
fi

# own PATH MODE [OWNER]: mode always, owner when known
own() {
    chmod "$2" "$1"
    if [ -n "${3:-}" ]; then chown "$3" "$1"; fi
}
ROOT_GROUP=""; [ -z "$OWNER" ] || ROOT_GROUP="0:${OWNER#*:}"

# ---------------------------------------------------------------------------------------- directories
# The backup root and each kind's directory: 0700, the agent's own (the design: directories 0700, files 0600).
mkdir -p "$D/backup"
own "$D/backup" 0700 "$OWNER"
for kind in wal config database secrets; do
    mkdir -p "$D/backup/$kind"
    own "$D/backup/$kind" 0700 "$OWNER"
done
# Logs: /var/log/veloz may already be VeloZ's own; then the agent only needs to be able to write into it.
if [ ! -d "$D/var/log/veloz" ]; then
    mkdir -p "$D/var/log/veloz"
    own "$D/var/log/veloz" 0750 "$OWNER"
elif [ -n "$OWNER" ] && [ "$(stat -c %u "$D/var/log/veloz")" != "${OWNER%%:*}" ]; then
    NOTES+=("$D/var/log/veloz exists and belongs to $(stat -c %U "$D/var/log/veloz"): make sure $SERVICE_USER can write backup.log there (e.g. setfacl -m u:$SERVICE_USER:rwx /var/log/veloz)")
fi
# The agent's home: gpg's home lives here (public keys of the recipients, trustdb, its agent's socket).
mkdir -p "$D/var/lib/veloz-backup/gnupg"
own "$D/var/lib/veloz-backup" 0700 "$OWNER"
own "$D/var/lib/veloz-backup/gnupg" 0700 "$OWNER"

# ------------------------------------------------------------------------------------- configuration
mkdir -p "$D/etc/veloz-backup"
own "$D/etc/veloz-backup" 0750 "$ROOT_GROUP"
CONFIG="$D/etc/veloz-backup/appsettings.json"
if [ ! -e "$CONFIG" ]; then
    install -m 0640 "$ROOT/appsettings.json" "$CONFIG"
    log "installed $CONFIG"
elif cmp -s "$ROOT/appsettings.json" "$CONFIG"; then
    rm -f "$CONFIG.dist"
else
    install -m 0640 "$ROOT/appsettings.json" "$CONFIG.dist"
    own "$CONFIG.dist" 0640 "$ROOT_GROUP"
    NOTES+=("$CONFIG was edited: kept as it is; the shipped defaults are in $CONFIG.dist (diff them)")
fi
own "$CONFIG" 0640 "$ROOT_GROUP"

# ------------------------------------------------------------------------------------------- binaries
# Replaced as a whole (a file left from an older version must not linger), read-only to the agent.
mkdir -p "$(dirname "$D$PREFIX")"
rm -rf "$D$PREFIX.new" "$D$PREFIX.old"
cp -R "$FROM" "$D$PREFIX.new"
# The native build's separate debug symbols (veloz-backup.dbg, ~90 MB) are for a debugger, not the service.
rm -f "$D$PREFIX.new/veloz-backup.dbg"
cp "$ROOT/README.md" "$D$PREFIX.new/README.md"
chmod -R u=rwX,go=rX "$D$PREFIX.new"
chmod 0755 "$D$PREFIX.new/veloz-backup"
if [ "$IS_ROOT" = 1 ]; then chown -R 0:0 "$D$PREFIX.new"; fi
if [ -e "$D$PREFIX" ]; then mv "$D$PREFIX" "$D$PREFIX.old"; fi
mv "$D$PREFIX.new" "$D$PREFIX"
rm -rf "$D$PREFIX.old"
mkdir -p "$(dirname "$BIN_LINK")"
ln -sfn "$PREFIX/veloz-backup" "$BIN_LINK"
log "installed the agent in $D$PREFIX (command: $BIN_LINK)"

# ------------------------------------------------------------------------------------------------ unit
mkdir -p "$UNIT_DIR"
sed "s#/opt/veloz-backup#$PREFIX#g" "$ROOT/systemd/veloz-backup.service" >"$UNIT.tmp"
chmod 0644 "$UNIT.tmp"
mv "$UNIT.tmp" "$UNIT"
log "installed $UNIT"

# A framework-dependent agent's launcher looks for .NET in the standard places. When this host's dotnet lives
# elsewhere, tell the service where (a drop-in, so the unit itself stays stock). A native agent needs no .NET.
DOTNET_DIR=""
if [ "$NATIVE" = 0 ] && command -v dotnet >/dev/null; then DOTNET_DIR="$(dirname "$(readlink -f "$(command -v dotnet)")")"; fi
case "$DOTNET_DIR" in
    ""|/usr/share/dotnet|/usr/lib/dotnet) rm -f "$DROPIN_DIR/dotnet-root.conf"; rmdir "$DROPIN_DIR" 2>/dev/null || true ;;
    *)
        mkdir -p "$DROPIN_DIR"
        printf '[Service]\nEnvironment=DOTNET_ROOT=%s\n' "$DOTNET_DIR" >"$DROPIN_DIR/dotnet-root.conf"
        chmod 0644 "$DROPIN_DIR/dotnet-root.conf"
        case "$DOTNET_DIR" in /home/*|/root/*) NOTES+=("dotnet is in $DOTNET_DIR, which the unit hides (ProtectHome=yes): install .NET system-wide (e.g. /usr/share/dotnet)") ;; esac
        ;;
esac

if [ "$SYSTEMD_LIVE" = 1 ]; then
    systemctl daemon-reload
    systemctl enable "$SERVICE.service" >/dev/null 2>&1
    log "enabled $SERVICE.service (systemctl daemon-reload && systemctl enable)"
    NEXT="systemctl start $SERVICE   # then: journalctl -u $SERVICE -f"
else
    [ -n "$D" ] || NOTES+=("systemd is not running as PID 1 here: the unit was installed but not enabled")
    NEXT="systemctl daemon-reload && systemctl enable --now $SERVICE   # on the target, with systemd running"
fi

for note in "${NOTES[@]}"; do log "note: $note"; done
cat <<EOF
install.sh: done. Next:
  1. edit $D/etc/veloz-backup/appsettings.json (paths, Database:ConnectionString, Secrets:Recipients, S3)
  2. give the agent the recipients' public keys:
       sudo -u $SERVICE_USER GNUPGHOME=/var/lib/veloz-backup/gnupg gpg --import recipients.asc
  3. let it read what it backs up (e.g. usermod -aG veloz $SERVICE_USER) and check:
       sudo -u $SERVICE_USER GNUPGHOME=/var/lib/veloz-backup/gnupg veloz-backup status
  4. $NEXT
EOF
