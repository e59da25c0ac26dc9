#!/usr/bin/env bash
# The whole test suite: format, lints, then every test against real servers.
# README's test command; .ci/run calls this after installing the servers.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
# Packaging: the release binary, .deb and images that tests/deploy.rs runs (dockerd is stopped
# again at the end, by PID, if this started it).
trap 'bash deploy/scripts/dockerd.sh stop' EXIT
exports=$(bash deploy/scripts/package.sh)   # fails the suite if packaging fails
eval "$exports"
cargo test --workspace --no-fail-fast
