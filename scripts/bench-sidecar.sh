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

if [ "$(id -u)" != 0 ]; then
    echo "bench-sidecar: needs root (network namespaces, raw ICMP)" >&2
    exit 1
fi
missing=()
for pair in iproute2:/usr/sbin/ip iputils-ping:/usr/bin/ping fping:/usr/bin/fping; do
    [ -x "${pair#*:}" ] || missing+=("${pair%%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench-sidecar: installing ${missing[*]} from Debian" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo build --release -p migwatch-sidecar -p migwatch-tests --bins
mkdir -p tests/out
# The range guard (scripts/range-guard.sh) holds `unreachable
# 198.18.0.0/15` in the root namespace while the benchmark runs; removed
# at exit only if it was added for this run.
guard="$PWD/scripts/range-guard.sh"
"$guard" acquire $$
trap '"$guard" release $$ || true' EXIT
target/release/mw-bench \
    --sidecar target/release/migwatch-sidecar \
    --responder target/release/mw-responder \
    --out tests/out/bench-sidecar.md "$@"
