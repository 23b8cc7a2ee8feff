# Sourced by scripts/bench-sidecar.sh and scripts/bench-fleet.sh: what
# every benchmark needs before it runs. Not meant to be run by itself.
#   bench_prepare NAME   root check, ip/ping/fping from Debian if
#                        missing, release builds of the sidecar and of
#                        the bench binaries, tests/out/, and the range
#                        guard (release it in an EXIT trap).

bench_prepare() {
    local name=$1
    if [ "$(id -u)" != 0 ]; then
        echo "$name: needs root (network namespaces, raw ICMP)" >&2
        exit 1
    fi
    local missing=() pair
    for pair in iproute2:/usr/sbin/ip iputils-ping:/usr/bin/ping fping:/usr/bin/fping; do
        [ -x "${pair#*:}" ] || missing+=("${pair%%:*}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "$name: installing ${missing[*]} from Debian" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # Two builds, as the package builds the sidecar alone: one invocation
    # for both unifies features differently and rebuilds the dependencies.
    cargo build --release -p migwatch-sidecar --bin migwatch-sidecar
    cargo build --release -p migwatch-tests --bins
    mkdir -p tests/out
    # The range guard (scripts/range-guard.sh) holds `unreachable
    # 198.18.0.0/15` in the root namespace while the benchmark runs;
    # removed at exit only if it was added for this run.
    BENCH_GUARD="$PWD/scripts/range-guard.sh"
    "$BENCH_GUARD" acquire $$
}
