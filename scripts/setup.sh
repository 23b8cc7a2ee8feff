#!/usr/bin/env bash
# Installs what migwatch needs, idempotently: each step is skipped when the
# exact version is already there, so a second run takes seconds.
#   scripts/setup.sh          build tools (wasm target, trunk, wasm-bindgen, wasm-opt)
#   scripts/setup.sh --test   also Chromium, chromedriver, network tools, and openssl and
#                             curl (the HTTPS tests make a test CA and read over TLS)
set -euo pipefail
cd "$(dirname "$0")/.."

TRUNK_VERSION=0.21.14
# wasm-bindgen-cli must match the wasm-bindgen in Cargo.lock exactly.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/,""); print; exit}' Cargo.lock)
export PATH="$HOME/.cargo/bin:$PATH"

say() { echo "setup: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        say "need root for: $* (run as root or install sudo)"; return 1; fi
}

# 1. Rust's wasm target.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
fi

# 2. trunk and wasm-bindgen-cli, built in parallel on a cold machine.
pids=()
if [ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]; then
    say "installing trunk $TRUNK_VERSION (about 7 min the first time)"
    cargo install trunk --version "=$TRUNK_VERSION" --locked --quiet &
    pids+=($!)
fi
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
    say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 5 min the first time)"
    cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --force --quiet &
    pids+=($!)
fi
for p in "${pids[@]}"; do wait "$p"; done

# 3. wasm-opt from npm's binaryen (Debian's binaryen 108 breaks the page).
if [ ! -x node_modules/.bin/wasm-opt ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "installing binaryen (wasm-opt) from package-lock.json"
    npm ci --no-audit --no-fund --loglevel=error
fi

# 4. For the tests: Chromium + chromedriver, and network tools.
if [ "${1:-}" = "--test" ]; then
    missing=()
    for pair in chromium:/usr/bin/chromium chromium-driver:/usr/bin/chromedriver \
                iproute2:/usr/sbin/ip nftables:/usr/sbin/nft iputils-ping:/usr/bin/ping fping:/usr/bin/fping \
                openssl:/usr/bin/openssl curl:/usr/bin/curl faketime:/usr/bin/faketime; do
        [ -x "${pair#*:}" ] || missing+=("${pair%%:*}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]} from Debian"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi
say "ok"
