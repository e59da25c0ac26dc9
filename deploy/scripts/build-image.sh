#!/usr/bin/env bash
# The container images from the release binary, on a Debian base made by debootstrap (no
# registry needed): pwsync-base:<suite>, pwsync:<tag> (root Dockerfile, target `prebuilt`) and
# pwsync-addon:<tag> (deploy/ha-addon/pwsync on top of it). Needs DOCKER_HOST from dockerd.sh.
#   cargo build --release -p pwsync && deploy/scripts/build-image.sh [TAG]
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${1:-test}
suite=${SUITE:-bookworm}
target=${CARGO_TARGET_DIR:-target}
docker=/usr/bin/docker
[ -x "$docker" ] || docker=$(command -v docker)

tar=$(deploy/scripts/debian-root.sh "$suite")
# Re-import when the tarball is newer than the image (a refreshed root).
if ! "$docker" image inspect "pwsync-base:$suite" >/dev/null 2>&1; then
    "$docker" import "$tar" "pwsync-base:$suite" >/dev/null
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
strip -o "$ctx/pwsync" "$target/release/pwsync"
"$docker" build -q --network host --target prebuilt --build-arg "BASE=pwsync-base:$suite" \
    -t "pwsync:$tag" -f Dockerfile "$ctx" >/dev/null
"$docker" build -q --network host --build-arg "BUILD_FROM=pwsync:$tag" \
    --build-arg BUILD_VERSION="$(grep -m1 '^version' deploy/ha-addon/pwsync/config.yaml | cut -d'"' -f2)" \
    --build-arg BUILD_ARCH=amd64 \
    -t "pwsync-addon:$tag" deploy/ha-addon/pwsync >/dev/null
echo "pwsync:$tag pwsync-addon:$tag"
