#!/usr/bin/env bash
# Build what the packaging tests (crates/cli/tests/deploy.rs) run, once: the release binaries
# (amd64, and arm64 cross-compiled), the .deb, the Debian root, the images of both
# architectures. Starts dockerd if none answers (stop it with `deploy/scripts/dockerd.sh stop`)
# and registers qemu for arm64 binaries (binfmt). Prints `export` lines for the tests; timings
# on stderr.
#   eval "$(deploy/scripts/package.sh)"
set -euo pipefail
cd "$(dirname "$0")/../.."
step() { # name, command…: run it, report its time on stderr
    local name=$1 t0=$SECONDS
    shift
    "$@"
    echo "package.sh: $name took $((SECONDS - t0)) s" >&2
}
bin_amd64=$(step "cargo build --release (amd64)" deploy/scripts/build-release.sh amd64)
bin_arm64=$(step "cargo build --release (arm64, cross)" deploy/scripts/build-release.sh arm64)
root_tar=$(step "debootstrap root (cached)" deploy/scripts/debian-root.sh bookworm)
deb=$(step ".deb" deploy/scripts/build-deb.sh)
deploy/scripts/binfmt.sh >&2
docker_env=$(deploy/scripts/dockerd.sh start)
eval "$docker_env"
images=$(step "images (amd64, arm64)" deploy/scripts/build-images.sh test amd64 arm64)
image_of() { awk -v a="$1" -v col="$2" '$1 == a {print $col}' <<<"$images"; }
for arch in amd64 arm64; do
    for col in 2 3; do
        img=$(image_of "$arch" "$col")
        echo "package.sh: $img is $(/usr/bin/docker image inspect -f '{{.Size}}' "$img") bytes" >&2
    done
done
cat <<EXPORTS
export DOCKER_HOST=$DOCKER_HOST
export PWSYNC_TEST_IMAGE=$(image_of amd64 2)
export PWSYNC_TEST_ADDON_IMAGE=$(image_of amd64 3)
export PWSYNC_TEST_IMAGE_ARM64=$(image_of arm64 2)
export PWSYNC_TEST_BIN_AMD64=$PWD/$bin_amd64
export PWSYNC_TEST_BIN_ARM64=$PWD/$bin_arm64
export PWSYNC_TEST_DEB=$PWD/$deb
export PWSYNC_TEST_ROOT_TAR=$root_tar
EXPORTS
