#!/usr/bin/env bash
# The release binary for ARCH (amd64: this machine's; arm64: cross-compiled with rustup's
# aarch64-unknown-linux-gnu target and Debian's gcc-aarch64-linux-gnu as linker and C compiler
# for the -sys crates). Prints the binary's path.
#   deploy/scripts/build-release.sh [amd64|arm64]
set -euo pipefail
cd "$(dirname "$0")/../.."
arch=${1:-amd64}
target=${CARGO_TARGET_DIR:-target}
# Release artifacts ship stripped: no debuginfo to generate (it doubles the cross build's time).
export CARGO_PROFILE_RELEASE_DEBUG=${CARGO_PROFILE_RELEASE_DEBUG:-0}
case $arch in
    amd64)
        cargo build --release --locked -q -p pwsync >&2
        echo "$target/release/pwsync"
        ;;
    arm64)
        triple=aarch64-unknown-linux-gnu
        command -v aarch64-linux-gnu-gcc >/dev/null \
            || { echo "no aarch64-linux-gnu-gcc: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross" >&2; exit 1; }
        rustup target list --installed | grep -qx "$triple" || rustup target add "$triple" >&2
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
            CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
            AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
            cargo build --release --locked -q -p pwsync --target "$triple" >&2
        echo "$target/$triple/release/pwsync"
        ;;
    *) echo "unknown architecture $arch (amd64 or arm64)" >&2; exit 1 ;;
esac
