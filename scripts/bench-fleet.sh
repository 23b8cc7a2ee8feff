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

if [ "$(id -u)" != 0 ]; then
    echo "bench-fleet: needs root (network namespaces, raw ICMP)" >&2
    exit 1
fi
missing=()
for pair in iproute2:/usr/sbin/ip iputils-ping:/usr/bin/ping fping:/usr/bin/fping; do
    [ -x "${pair#*:}" ] || missing+=("${pair%%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench-fleet: installing ${missing[*]} from Debian" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Two builds, as the package builds them alone: one invocation for both
# unifies features differently and rebuilds the dependencies.
cargo build --release -p migwatch-sidecar --bin migwatch-sidecar
cargo build --release -p migwatch-tests --bin mw-bench-fleet
mkdir -p tests/out
# The bench removes its namespace itself, also on failure; this is only for
# a bench killed by a signal (its children die with the process group).
cleanup() { ip netns del mwbfleet 2>/dev/null || true; ip link del mwbfa 2>/dev/null || true; }
trap cleanup EXIT
target/release/mw-bench-fleet \
    --sidecar target/release/migwatch-sidecar \
    --out tests/out/bench-fleet.md "$@"
