#!/usr/bin/env bash
# Soak test of the sidecar: 1 kHz probing of a namespace host for N minutes
# (default 60) with 10 reading clients, a client that reconnects with
# Last-Event-ID every 10 s and a stalled client every minute. Prints RSS,
# CPU and send lateness each minute and fails (exit 1) on a lost or
# repeated id, a lost probe, a stalled client not cut off, or RSS growth
# (> 1 MiB after minute 5; runs of 5 minutes or less compare minute 1 to
# the end against 2 MiB, see tests/soak.rs). Needs root.
#   scripts/soak.sh [--minutes N] [--release] [--history DURATION]
# The table also goes to tests/out/soak-<minutes>min.md (-release.md for a
# release build: the build that ships, with a tenth of the debug build's
# code pages).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

minutes=60
profile=debug
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes=$2; args+=(--minutes "$2"); shift 2 ;;
        --history) args+=(--history "$2"); shift 2 ;;
        --release) profile=release; shift ;;
        *) echo "soak: unknown argument $1; usage: $0 [--minutes N] [--release] [--history DURATION]" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" != 0 ]; then
    echo "soak: needs root (network namespaces, raw ICMP)" >&2
    exit 1
fi

suffix=""
if [ "$profile" = release ]; then
    suffix="-release"
    cargo build --release -p migwatch-sidecar -p migwatch-tests --bin migwatch-sidecar --bin mw-soak
else
    cargo build -p migwatch-sidecar -p migwatch-tests --bin migwatch-sidecar --bin mw-soak
fi
mkdir -p tests/out
# The range guard (scripts/range-guard.sh) holds `unreachable
# 198.18.0.0/15` in the root namespace while the soak runs; removed at exit
# only if it was added for this run.
guard="$PWD/scripts/range-guard.sh"
"$guard" acquire $$
trap '"$guard" release $$ || true' EXIT
MIGWATCH_SIDECAR="$PWD/target/$profile/migwatch-sidecar" \
    "target/$profile/mw-soak" "${args[@]}" --out "tests/out/soak-${minutes}min${suffix}.md"
