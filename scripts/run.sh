#!/usr/bin/env bash
# Builds the page, then the sidecar (release), which builds the page into
# itself (sidecar/build.rs reads dist/), then runs the sidecar. The one
# binary, target/release/migwatch-sidecar, serves the page on any host.
# Flags go to the sidecar:
#   scripts/run.sh                          watch 127.0.0.1 (the default)
#   scripts/run.sh --target 192.0.2.10      watch a VM
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
trunk build --release
cargo build --release -p migwatch-sidecar
args=("$@")
case " $* " in *" --target "*|*" --target="*) ;; *) args=(--target 127.0.0.1 "${args[@]}") ;; esac
bin=target/release/migwatch-sidecar
# A raw ICMP socket needs root or CAP_NET_RAW; the sidecar drops both as
# soon as the socket is open.
if [ "$(id -u)" = 0 ] || getcap "$bin" 2>/dev/null | grep -q cap_net_raw; then
    exec "$bin" "${args[@]}"
else
    echo "run: the sidecar needs CAP_NET_RAW; using sudo (or: sudo setcap cap_net_raw+ep $bin)" >&2
    exec sudo "$bin" "${args[@]}"
fi
