#!/usr/bin/env bash
# The whole test suite: format, lints, then every test against real servers.
# README's test command; .ci/run calls this after installing the servers.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
cargo test --workspace --no-fail-fast
# The harness under load (ignored in the run above): 30 servers started at once all answer.
cargo test -p pwsync-testkit --test stress -- --ignored
