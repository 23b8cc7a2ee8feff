#!/usr/bin/env bash
# Benchmarks the release sidecar against iputils ping and fping on a veth
# path into a throwaway namespace, and prints Markdown tables (see
# docs/BENCHMARKS.md). Needs root; takes about 9 minutes.
#   scripts/bench-sidecar.sh                       every section
#   scripts/bench-sidecar.sh --only rate,cost      some of rtt,rate,cost,fanout,loss
# The tables are also written to tests/out/bench-sidecar.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
bench_prepare bench-sidecar
trap '"$BENCH_GUARD" release $$ || true' EXIT
target/release/mw-bench \
    --sidecar target/release/migwatch-sidecar \
    --responder target/release/mw-responder \
    --out tests/out/bench-sidecar.md "$@"
