# Sourced by lab/run.sh and lab/check-alerts.sh: run one of the lab's
# Python entry points as root, holding the range guard for its lifetime.
#   run_guarded WHAT SCRIPT.py ARGS...
# WHAT names the caller in the error when not root.

# The range guard (scripts/range-guard.sh) holds `unreachable
# 198.18.0.0/15` in the root namespace for the whole run, so nothing of
# the lab's can leave the machine through the default route; it is removed
# at exit only if this run (or another holder) added it.
run_guarded() {
    local what=$1 script=$2
    shift 2
    if [ "$(id -u)" -ne 0 ]; then
        echo "$what: run as root (the lab creates network namespaces, taps and raw sockets)" >&2
        exit 2
    fi
    export PYTHONDONTWRITEBYTECODE=1
    local lab
    lab="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    guard="$lab/../scripts/range-guard.sh"
    "$guard" acquire $$
    child=
    trap '"$guard" release $$ || true' EXIT
    # The Python side cleans up (namespaces, QEMU, servers) on SIGTERM;
    # pass every stop request on as that (a background child of a script
    # ignores SIGINT) and keep waiting for it.
    trap '[ -z "$child" ] || kill -TERM "$child" 2>/dev/null || true' INT TERM HUP
    python3 "$lab/$script" "$@" <&0 &
    child=$!
    # A trapped signal interrupts `wait` while the child still runs: wait again.
    while kill -0 "$child" 2>/dev/null; do
        wait "$child" || true
    done
    local rc=0
    wait "$child" || rc=$?
    exit "$rc"
}
