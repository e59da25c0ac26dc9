#!/usr/bin/env bash
# A minimal Debian root made by debootstrap, cached as a tarball (the slow part: ~2 min of
# downloads), for the container base image (`docker import`) and the .deb's install test
# (chroot). Prints the tarball's path.
#   deploy/scripts/debian-root.sh [SUITE]        (default bookworm)
set -euo pipefail
suite=${1:-bookworm}
cache=${PWSYNC_CACHE:-$HOME/.cache/pwsync}
tar="$cache/base-$suite.tar"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ ! -s "$tar" ]; then
    command -v debootstrap >/dev/null || { echo "debootstrap missing: apt-get install debootstrap" >&2; exit 1; }
    mkdir -p "$cache"
    work=$(mktemp -d "$cache/debootstrap-$suite.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    # ca-certificates and tzdata: the image's TLS roots and zones; adduser: the .deb's postinst.
    debootstrap --variant=minbase --include=ca-certificates,tzdata,adduser \
        "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    rm -rf "$work"/root/var/cache/apt/archives/*.deb "$work"/root/var/lib/apt/lists/*
    tar -C "$work/root" --numeric-owner -cf "$tar.part" .
    mv "$tar.part" "$tar"
fi
echo "$tar"
