#!/usr/bin/env bash
# Make the root the tests run Home Assistant 2026.11.0 in: HA 2026.3 and later need Python >= 3.14.2,
# which this host (Debian bookworm, pyenv 3.13.0) lacks, so a Debian forky root (Python 3.14) is
# made by debootstrap and HA is installed into /venv inside it, plus what HA would otherwise
# download at first start (the requirements of every integration it sets up, pinned by HA's own
# constraints; g++ builds some of them) and the MariaDB/PostgreSQL drivers for recorder tests;
# libfaketime for tests that shift HA's clock (the host's library is not visible in the root).
# crates/testkit chroots into it.
# Idempotent; prints the root's path. Needs root. Override with PWSYNC_HA_CHROOT / PWSYNC_DEBIAN_MIRROR.
#
# The root is built under ROOT.partial and renamed only when complete, so an interrupted run
# never leaves a root the tests would take for ready. Every mount (debootstrap's own /proc and
# /sys, the build's /dev) lives in a private mount namespace that ends with the build, so
# nothing stays mounted on the host and deleting a stale ROOT.partial cannot reach host files.
set -euo pipefail
VERSION=2026.11.0
SUITE=forky
MIRROR=${PWSYNC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT=${PWSYNC_HA_CHROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/pwsync/$SUITE-ha-$VERSION}
if [ -x "$ROOT/venv/bin/hass" ]; then
    echo "$ROOT"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "making the $SUITE root needs root (debootstrap, chroot)" >&2; exit 1; }
if ! command -v debootstrap >/dev/null; then
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
# bookworm's debootstrap has no script for forky; sid's is the same recipe.
SCRIPT=/usr/share/debootstrap/scripts/$SUITE
[ -e "$SCRIPT" ] || SCRIPT=/usr/share/debootstrap/scripts/sid
HOST_CA=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
WORK=$ROOT.partial
echo "creating $ROOT: Debian $SUITE by debootstrap, homeassistant==$VERSION in /venv (takes a few minutes)" >&2
mkdir -p "$(dirname "$ROOT")"
rm -rf --one-file-system "$WORK"
unshare --mount --propagation private -- bash -euo pipefail -s "$WORK" "$SUITE" "$MIRROR" "$SCRIPT" "$HOST_CA" "$VERSION" <<'OUTER' >&2
WORK=$1 SUITE=$2 MIRROR=$3 SCRIPT=$4 HOST_CA=$5 VERSION=$6
debootstrap --variant=minbase \
    --include=python3.14,python3.14-venv,python3.14-dev,gcc,g++,ca-certificates,libffi-dev,libssl-dev,libfaketime \
    "$SUITE" "$WORK" "$MIRROR" "$SCRIPT" >/dev/null
cp /etc/resolv.conf "$WORK/etc/resolv.conf"
# pip inside the root must trust what the host trusts (a proxy's CA may only be in the host bundle).
cp "$HOST_CA" "$WORK/etc/ssl/host-ca.crt"
mount --rbind /dev "$WORK/dev"
mountpoint -q "$WORK/proc" || mount -t proc proc "$WORK/proc"
mountpoint -q "$WORK/sys" || mount --rbind /sys "$WORK/sys"
chroot "$WORK" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
    /bin/bash -euo pipefail -s "$VERSION" <<'INNER'
VERSION=$1
python3.14 -m venv /venv
/venv/bin/python -m pip install -q --upgrade pip
/venv/bin/python -m pip install -q "homeassistant==$VERSION"
SITE=$(/venv/bin/python -c 'import homeassistant,os;print(os.path.dirname(homeassistant.__file__))')
REQS=$(/venv/bin/python - "$SITE" <<'PYEOF'
import json, os, sys
from homeassistant import bootstrap
from homeassistant.auth.mfa_modules import totp
site = sys.argv[1]
# Every integration HA sets up at start without default_config, with what it depends on:
# 2026.11 sets up many more than 2025.4 (tts, ffmpeg, conversation, backup, ...) and each
# would try to download its requirements at every start.
todo = ["frontend", "recorder", "mqtt", *bootstrap.CORE_INTEGRATIONS,
        *bootstrap.LOGGING_AND_HTTP_DEPS_INTEGRATIONS, *bootstrap.DEFAULT_INTEGRATIONS]
seen, reqs = set(), list(totp.REQUIREMENTS)  # the TOTP login module, set up with the core
while todo:
    dom = todo.pop()
    path = f"{site}/components/{dom}/manifest.json"
    if dom in seen or not os.path.exists(path):
        continue
    seen.add(dom)
    manifest = json.load(open(path))
    reqs += manifest.get("requirements", [])
    # HA installs an after_dependency's requirements too (hassio's, for backup and analytics).
    todo += manifest.get("dependencies", []) + manifest.get("after_dependencies", [])
print(" ".join(sorted(set(reqs))))
PYEOF
)
# shellcheck disable=SC2086
/venv/bin/python -m pip install -q -c "$SITE/package_constraints.txt" $REQS pymysql psycopg2-binary
rm -rf /root/.cache/pip
INNER
OUTER
mv "$WORK" "$ROOT"
echo "$ROOT"
