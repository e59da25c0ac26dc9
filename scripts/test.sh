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
# The harness under load (ignored in the run above): 30 servers started at once all answer.
cargo test -p pwsync-testkit --test stress -- --ignored

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
# Not yet here, until they pass on 2026.11 (README, "Home Assistant versions tested"):
# pwsync-recorder's `recorder` (an SQLite test fails on 2026.11) and `migrate_ha` (a
# prioritize-teslemetry expectation the hole rule broke, on 2025.4.4 too).
ha_suite -p pwsync-ha --tests
ha_suite -p pwsync-jobs --test heal_ha
for t in backfill_ha backfill_db check_ha serve_mqtt; do
    ha_suite -p pwsync --test "$t"
done
echo "== HA $PWSYNC_TEST_HA pass: $((SECONDS - t0)) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed on HA $PWSYNC_TEST_HA: ${failed[*]}" >&2
    exit 1
fi
