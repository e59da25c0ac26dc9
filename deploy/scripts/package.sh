#!/usr/bin/env bash
# Build what the packaging tests (crates/cli/tests/deploy.rs) run, once: the release binary,
# the .deb, the Debian root, the images. Starts dockerd if none answers (stop it with
# `deploy/scripts/dockerd.sh stop`). Prints `export` lines for the tests; timings on stderr.
#   eval "$(deploy/scripts/package.sh)"
set -euo pipefail
cd "$(dirname "$0")/../.."
step() { # name, command…: run it, report its time on stderr
    local name=$1 t0=$SECONDS
    shift
    "$@"
    echo "package.sh: $name took $((SECONDS - t0)) s" >&2
}
step "cargo build --release" cargo build --release --locked -q -p pwsync >&2
root_tar=$(step "debootstrap root (cached)" deploy/scripts/debian-root.sh bookworm)
deb=$(step ".deb" deploy/scripts/build-deb.sh)
docker_env=$(deploy/scripts/dockerd.sh start)
eval "$docker_env"
images=$(step "images" deploy/scripts/build-image.sh test)
read -r image addon_image <<<"$images"
echo "package.sh: $image is $(/usr/bin/docker image inspect -f '{{.Size}}' "$image") bytes" >&2
cat <<EXPORTS
export DOCKER_HOST=$DOCKER_HOST
export PWSYNC_TEST_IMAGE=$image
export PWSYNC_TEST_ADDON_IMAGE=$addon_image
export PWSYNC_TEST_DEB=$PWD/$deb
export PWSYNC_TEST_ROOT_TAR=$root_tar
EXPORTS
