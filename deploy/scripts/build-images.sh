#!/usr/bin/env bash
# pwsync's release images for linux/amd64 and linux/arm64 from the release binaries (see
# build-release.sh), with deploy/image/Dockerfile: no RUN step, so neither needs emulation.
# The runtime files come from Debian bookworm: TLS roots and zones from a debootstrap root
# (architecture-independent), glibc from that root (amd64) or from Debian's arm64 cross
# packages (libc6-arm64-cross, libgcc-s1-arm64-cross: the same glibc release). Needs
# DOCKER_HOST from dockerd.sh. Prints one line per architecture: ARCH IMAGE ADDON_IMAGE.
#   deploy/scripts/build-images.sh TAG [ARCH…]      (default: amd64 arm64)
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${1:?usage: build-images.sh TAG [ARCH…]}
shift
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(amd64 arm64)
target=${CARGO_TARGET_DIR:-target}
docker=/usr/bin/docker
[ -x "$docker" ] || docker=$(command -v docker)
version=$(grep -m1 '^version' deploy/ha-addon/pwsync/config.yaml | cut -d'"' -f2)
root_tar=$(deploy/scripts/debian-root.sh bookworm)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Architecture-independent files, once.
common="$work/common"
mkdir -p "$common"
tar -C "$common" -xf "$root_tar" ./etc/ssl/certs/ca-certificates.crt ./usr/share/zoneinfo
rm -rf "$common/usr/share/zoneinfo/right" "$common/usr/share/zoneinfo/posix"

# The binary of ARCH, its strip, where its glibc lives and where the loader goes.
arch_files() { # ARCH CTX
    local arch=$1 rootfs=$2/rootfs libdir
    case $arch in
        amd64)
            bin=$target/release/pwsync strip=strip hass=amd64
            libdir="$work/amd64-libs"
            mkdir -p "$libdir"
            tar -C "$libdir" -xf "$root_tar" ./lib/x86_64-linux-gnu ./usr/lib/x86_64-linux-gnu 2>/dev/null || true
            mkdir -p "$rootfs/lib/x86_64-linux-gnu" "$rootfs/lib64"
            for lib in libc.so.6 libm.so.6 libgcc_s.so.1 ld-linux-x86-64.so.2; do
                cp -L "$(find "$libdir" -name "$lib" | head -1)" "$rootfs/lib/x86_64-linux-gnu/$lib"
            done
            ln -s /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$rootfs/lib64/ld-linux-x86-64.so.2"
            ;;
        arm64)
            bin=$target/aarch64-unknown-linux-gnu/release/pwsync strip=aarch64-linux-gnu-strip hass=aarch64
            libdir=/usr/aarch64-linux-gnu/lib
            [ -e "$libdir/libc.so.6" ] || { echo "no $libdir/libc.so.6: apt-get install libc6-arm64-cross" >&2; exit 1; }
            mkdir -p "$rootfs/lib/aarch64-linux-gnu"
            for lib in libc.so.6 libm.so.6 libgcc_s.so.1 ld-linux-aarch64.so.1; do
                cp -L "$libdir/$lib" "$rootfs/lib/aarch64-linux-gnu/$lib"
            done
            ln -s /lib/aarch64-linux-gnu/ld-linux-aarch64.so.1 "$rootfs/lib/ld-linux-aarch64.so.1"
            ;;
        *) echo "unknown architecture $arch (amd64 or arm64)" >&2; exit 1 ;;
    esac
    [ -x "$bin" ] || { echo "$bin missing: run deploy/scripts/build-release.sh $arch first" >&2; exit 1; }
}

for arch in "${arches[@]}"; do
    ctx="$work/ctx-$arch"
    mkdir -p "$ctx/rootfs/tmp" "$ctx/state/data" "$ctx/state/config"
    cp -a "$common/." "$ctx/rootfs/"
    chmod 1777 "$ctx/rootfs/tmp"
    mkdir -p "$ctx/rootfs/etc"
    echo 'root:x:0:0:root:/root:/nonexistent' >"$ctx/rootfs/etc/passwd"
    echo 'pwsync:x:10001:10001:pwsync:/data:/nonexistent' >>"$ctx/rootfs/etc/passwd"
    printf 'root:x:0:\npwsync:x:10001:\n' >"$ctx/rootfs/etc/group"
    arch_files "$arch" "$ctx"
    "$strip" -o "$ctx/pwsync" "$bin"
    image="pwsync:$tag-$arch" addon="pwsync-addon:$tag-$arch"
    "$docker" build -q --platform "linux/$arch" --target runtime --build-arg "VERSION=$version" \
        -t "$image" -f deploy/image/Dockerfile "$ctx" >/dev/null
    "$docker" build -q --platform "linux/$arch" --target addon --build-arg "VERSION=$version" \
        --build-arg "HASS_ARCH=$hass" -t "$addon" -f deploy/image/Dockerfile "$ctx" >/dev/null
    echo "$arch $image $addon"
done
