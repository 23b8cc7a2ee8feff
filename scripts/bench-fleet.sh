#!/usr/bin/env bash
# Benchmarks one sidecar watching 10, 100 and 1000 targets against fping
# and against N single-target sidecars, then its memory plateau, /metrics
# and detector cost at 1000 targets (docs/BENCHMARKS.md, "Fleet"). Needs
# root; about 13 minutes with the defaults.
#   scripts/bench-fleet.sh                          every section
#   scripts/bench-fleet.sh --only scale --rounds 1  flags go to mw-bench-fleet
# The tables are also written to tests/out/bench-fleet.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
bench_prepare bench-fleet
# The bench removes its namespace itself, also on failure; this is only for
# a bench killed by a signal (its children die with the process group).
cleanup() {
    ip netns del mwbfleet 2>/dev/null || true
    ip link del mwbfa 2>/dev/null || true
    "$BENCH_GUARD" release $$ || true
}
trap cleanup EXIT
target/release/mw-bench-fleet \
    --sidecar target/release/migwatch-sidecar \
    --out tests/out/bench-fleet.md "$@"
