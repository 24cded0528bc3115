#!/usr/bin/env bash
# Build (once) a throw-away Debian sid root with Asterisk 22 for the test harness.
#
#   tests/pbx/build_root.sh            -> prints the root path on the last line of stdout
#   EARWITNESS_PBX_ROOT=/some/dir ...  -> build/cache there instead
#   EARWITNESS_PBX_MIRROR=http://...   -> override the Debian mirror
#   EARWITNESS_PBX_REBUILD=1           -> throw the cached root away and rebuild
#
# Idempotent: a root is complete only when its stamp file exists.  The build goes
# into a temporary sibling directory that is renamed into place at the end, so an
# interrupted build is simply redone next time.
set -euo pipefail

ROOT="${EARWITNESS_PBX_ROOT:-$HOME/.cache/earwitness/asterisk-root}"
STAMP_NAME=".earwitness-root-complete"
STAMP_VERSION="3"   # bump when the package list below changes
PACKAGES=(asterisk asterisk-core-sounds-en-gsm asterisk-modules sox)

log() { printf '[build_root %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

if [[ "${EARWITNESS_PBX_REBUILD:-0}" == "1" && -d "$ROOT" ]]; then
    log "EARWITNESS_PBX_REBUILD=1: removing $ROOT"
    umount -l "$ROOT/proc" 2>/dev/null || true
    rm -rf --one-file-system "$ROOT"
fi

if [[ -f "$ROOT/$STAMP_NAME" ]] && grep -qx "version=$STAMP_VERSION" "$ROOT/$STAMP_NAME"; then
    log "cached root is complete: $ROOT"
    echo "$ROOT"
    exit 0
fi

if [[ $EUID -ne 0 ]]; then
    echo "build_root.sh must run as root (debootstrap + chroot)" >&2
    exit 2
fi

# ---- the mirror apt already uses -------------------------------------------------
find_mirror() {
    if [[ -n "${EARWITNESS_PBX_MIRROR:-}" ]]; then echo "$EARWITNESS_PBX_MIRROR"; return; fi
    local m=""
    # deb822 sources (URIs: ...) then one-line sources (deb URL suite ...)
    m=$( (cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true) \
        | awk '/^URIs:/ {print $2}' | grep -E '/debian/?$' | head -n1 || true)
    if [[ -z "$m" ]]; then
        m=$( (cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true) \
            | awk '$1=="deb" {for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; break}}' \
            | grep -E '/debian/?$' | head -n1 || true)
    fi
    echo "${m:-http://deb.debian.org/debian}"
}
MIRROR="$(find_mirror)"
MIRROR="${MIRROR%/}"

if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap on the host"
    DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Check-Valid-Until=false update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
fi

PARENT="$(dirname "$ROOT")"
mkdir -p "$PARENT"
# leftovers of an interrupted build
for old in "$PARENT"/.asterisk-root.tmp.*; do
    [[ -d "$old" ]] || continue
    umount -l "$old/proc" 2>/dev/null || true
    rm -rf --one-file-system "$old"
done
TMP="$(mktemp -d "$PARENT/.asterisk-root.tmp.XXXXXX")"
cleanup() {
    umount -l "$TMP/proc" 2>/dev/null || true
    [[ -d "$TMP" ]] && rm -rf --one-file-system "$TMP"
}
trap cleanup EXIT

T0=$SECONDS
log "debootstrap --variant=minbase sid $TMP $MIRROR"
debootstrap --variant=minbase sid "$TMP" "$MIRROR" >"$PARENT/debootstrap.log" 2>&1 || {
    tail -n 40 "$PARENT/debootstrap.log" >&2
    [[ -f "$TMP/debootstrap/debootstrap.log" ]] && tail -n 40 "$TMP/debootstrap/debootstrap.log" >&2
    exit 1
}
T1=$SECONDS
log "debootstrap done in $((T1 - T0)) s"

echo "deb $MIRROR sid main" >"$TMP/etc/apt/sources.list"
cp /etc/resolv.conf "$TMP/etc/resolv.conf" 2>/dev/null || true
# no daemons started by maintainer scripts inside the chroot
printf '#!/bin/sh\nexit 101\n' >"$TMP/usr/sbin/policy-rc.d"
chmod 755 "$TMP/usr/sbin/policy-rc.d"

mount -t proc proc "$TMP/proc"
APT_OPTS=(-o Acquire::Check-Valid-Until=false -o Acquire::Retries=3 -o Dpkg::Use-Pty=0)
log "apt-get install ${PACKAGES[*]}"
chroot "$TMP" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get "${APT_OPTS[@]}" update -qq
chroot "$TMP" env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
    apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "${PACKAGES[@]}" \
    >"$PARENT/apt-install.log" 2>&1 || { tail -n 40 "$PARENT/apt-install.log" >&2; exit 1; }
chroot "$TMP" apt-get clean
umount "$TMP/proc"
T2=$SECONDS
log "apt-get install done in $((T2 - T1)) s"

VER="$(chroot "$TMP" dpkg-query -W -f '${Version}' asterisk)"
mkdir -p "$TMP/usr/local/share/asterisk/sounds"
# keep the pristine package configs for reference; the harness writes its own.
[[ -d "$TMP/etc/asterisk.dist" ]] || cp -a "$TMP/etc/asterisk" "$TMP/etc/asterisk.dist"

printf 'version=%s\nasterisk=%s\nmirror=%s\nbuilt=%s\ndebootstrap_s=%s\napt_s=%s\n' \
    "$STAMP_VERSION" "$VER" "$MIRROR" "$(date -u +%FT%TZ)" "$((T1 - T0))" "$((T2 - T1))" \
    >"$TMP/$STAMP_NAME"

if [[ -d "$ROOT" ]]; then
    umount -l "$ROOT/proc" 2>/dev/null || true
    mv "$ROOT" "$TMP.old"
fi
mv -T "$TMP" "$ROOT"
trap - EXIT
[[ -d "$TMP.old" ]] && rm -rf --one-file-system "$TMP.old"
log "root ready in $((SECONDS - T0)) s: $ROOT (asterisk $VER)"
echo "$ROOT"
