#!/usr/bin/env bash
# The whole test suite: format, lints, then every test against real servers.
# README's test command; .ci/run calls this after installing the servers.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
cargo test --workspace --no-run -q
# Packaging (deploy/, crates/cli/tests/deploy.rs): the release binary, the .deb, the Debian root
# and the images are made in the background, in their own target directory (cargo's build lock
# would otherwise queue the two), once the test binaries are built: the tests below spend most
# of their time waiting on servers. The packaging tests run at the end.
pkg_env=$(mktemp)
pkg_log=$(mktemp)
CARGO_TARGET_DIR=target/package deploy/scripts/package.sh >"$pkg_env" 2>"$pkg_log" &
pkg_pid=$!
# On any exit (a failed step exits at once): no packaging build or dockerd left behind.
stop_packaging() {
    kill "$pkg_pid" 2>/dev/null || true
    wait "$pkg_pid" 2>/dev/null || true
    deploy/scripts/dockerd.sh stop
}
trap stop_packaging EXIT

cargo test --workspace --no-fail-fast
# The harness under load (ignored in the run above): 30 servers started at once all answer.
cargo test --workspace --test stress -- --ignored

# Every end-to-end suite that runs Home Assistant, again against HA 2026.11.0 (a Debian forky
# root, scripts/ensure-ha-chroot.sh; see crates/testkit/src/ha_chroot.rs). One binary at a time,
# all of them even when one fails; the script fails if any did.
export PWSYNC_TEST_HA=2026.11.0
failed=()
ha_suite() {
    local t0=$SECONDS
    if cargo test --no-fail-fast "$@"; then
        echo "== HA $PWSYNC_TEST_HA: $* passed in $((SECONDS - t0)) s"
    else
        echo "== HA $PWSYNC_TEST_HA: $* FAILED after $((SECONDS - t0)) s"
        failed+=("$*")
    fi
}
t0=$SECONDS
# `--workspace --test NAME`, not `-p`: a single package resolves other features and would
# rebuild sqlx and hyper for each suite.
ha_suite --workspace --test batches --test engines --test harness --test short_term --test ws \
    --test recorder --test heal_ha
for t in backfill_ha backfill_db backfill_holes check_ha missing_history migrate_ha \
    energy_dashboard safety serve_mqtt serve_doors panel; do
    ha_suite --workspace --test "$t"
done
echo "== HA $PWSYNC_TEST_HA pass: $((SECONDS - t0)) s"
unset PWSYNC_TEST_HA

t0=$SECONDS
if wait "$pkg_pid"; then
    cat "$pkg_log"
    eval "$(cat "$pkg_env")"
    if cargo test --workspace --test deploy -- --ignored; then
        echo "== packaging: built and tested; $((SECONDS - t0)) s after the HA pass"
    else
        failed+=("deploy (packaging)")
    fi
    # The add-on's HA OS path (install → Backfill → Energy dashboard → clean check) on HA 2026.11
    # too; the run above was on 2025.4.4.
    t0=$SECONDS
    if PWSYNC_TEST_HA=2026.11.0 cargo test --workspace --test deploy -- --ignored addon_e2e; then
        echo "== HA 2026.11.0: the add-on end to end passed in $((SECONDS - t0)) s"
    else
        failed+=("deploy addon_e2e (HA 2026.11.0)")
    fi
else
    cat "$pkg_log" >&2
    failed+=("deploy/scripts/package.sh")
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}" >&2
    exit 1
fi
