#!/usr/bin/env bash
# Installs what the tests need, builds the page and the sidecar, and runs
# every test: formatting and lints, unit tests, real ICMP in network
# namespaces, and the real page in headless Chromium. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

step() { echo; echo "== $*"; }

step "format"
cargo fmt --all -- --check
step "lints (native crates, then the page for wasm32)"
cargo clippy --workspace --all-targets --exclude migwatch-app -- -D warnings
cargo clippy -p migwatch-app --target wasm32-unknown-unknown --all-targets -- -D warnings
step "build the page (release) and the sidecar"
trunk build --release
cargo build -p migwatch-sidecar
step "unit tests of the page's logic (native)"
cargo test -p migwatch-app
step "the page's canvas drawing, in headless Chromium (wasm-bindgen-test)"
CHROMEDRIVER=/usr/bin/chromedriver CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo test -p migwatch-app --target wasm32-unknown-unknown --release --test canvas
step "unit, integration and end-to-end tests"
cargo test --workspace --exclude migwatch-app
