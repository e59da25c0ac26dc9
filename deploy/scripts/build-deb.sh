#!/usr/bin/env bash
# pwsync_<version>_amd64.deb from the release binary: man pages and shell completions generated
# by the binary itself (clap), then `cargo deb --no-build` (cargo-deb installed once under the
# cache). Prints the .deb's path.
#   cargo build --release -p pwsync && deploy/scripts/build-deb.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=${PWSYNC_CACHE:-$HOME/.cache/pwsync}
target=${CARGO_TARGET_DIR:-target}
bin="$target/release/pwsync"
[ -x "$bin" ] || { echo "$bin missing: run cargo build --release -p pwsync first" >&2; exit 1; }

assets="$target/release/pwsync-assets"
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
"$bin" man --dir "$assets/man"
gzip -9n "$assets"/man/*.1
"$bin" completions bash >"$assets/completions/pwsync.bash"
"$bin" completions zsh >"$assets/completions/_pwsync"
"$bin" completions fish >"$assets/completions/pwsync.fish"

cargo_deb="$cache/cargo-deb/bin/cargo-deb"
if [ ! -x "$cargo_deb" ]; then
    cargo install -q cargo-deb --locked --version "${CARGO_DEB_VERSION:-3.8.0}" --root "$cache/cargo-deb" >&2
fi
mkdir -p "$target/debian"
# --strip: the release profile keeps line tables (debug = 1), which cargo-deb would keep too.
"$cargo_deb" -p pwsync --no-build --strip --output "$target/debian/" >&2
ls "$target"/debian/pwsync_*_amd64.deb | tail -1
