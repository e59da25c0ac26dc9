#!/usr/bin/env bash
# Let this amd64 machine run arm64 binaries and images: Debian's qemu-user-static registered
# with the kernel's binfmt_misc (fix-binary, so it also works inside containers). As root.
set -euo pipefail
[ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] \
    || { echo "no qemu for aarch64: apt-get install qemu-user-static binfmt-support" >&2; exit 1; }
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
echo "binfmt: $(head -1 /proc/sys/fs/binfmt_misc/qemu-aarch64) for aarch64"
