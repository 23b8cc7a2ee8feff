#!/usr/bin/env bash
# Guards the test range: while a migwatch test, benchmark or lab run is
# alive, the root namespace holds `unreachable 198.18.0.0/15 metric 4000`,
# so a probe to a test address whose veth is gone fails with "no route"
# instead of following the default route out of the machine. The tests'
# own /30 and /24 routes are more specific and win while they exist.
#
#   scripts/range-guard.sh acquire PID   PID (alive) now needs the route
#   scripts/range-guard.sh release PID   PID no longer needs it
#   scripts/range-guard.sh status        prints the route and the holders
#
# Holders are a group across processes (a test binary, the lab and
# scripts/test.sh can overlap): the route is added by the first holder if
# absent and removed by the last one to leave, and only if a holder added
# it, so a route someone else put there (this machine's own) is never
# removed. A holder that died without releasing (SIGKILL) is pruned at the
# next acquire or release, so the route cannot stay behind forever.
set -euo pipefail

ROUTE=(unreachable 198.18.0.0/15 metric 4000)
# MIGWATCH_RANGE_GUARD_DIR: where the holders are kept (tests of the guard
# itself use their own, inside a throwaway namespace).
dir=${MIGWATCH_RANGE_GUARD_DIR:-/run/migwatch-range-guard}

usage() {
    echo "usage: $0 acquire PID | release PID | status" >&2
    exit 2
}

# "PID.STARTTIME" for a live process (start time tells a reused PID
# apart), nothing for a dead one.
holder_id() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    # Fields after "PID (COMM) "; COMM may hold spaces and parentheses.
    stat=${stat##*) }
    echo "$1.$(echo "$stat" | awk '{print $20}')"
}

route_present() {
    [ -n "$(ip -4 route show exact 198.18.0.0/15 type unreachable metric 4000)" ]
}

prune() {
    local f pid
    for f in "$dir"/holders/*; do
        [ -e "$f" ] || continue
        pid=${f##*/}
        pid=${pid%%.*}
        [ "$(holder_id "$pid")" = "${f##*/}" ] || rm -f "$f"
    done
}

holders_left() {
    compgen -G "$dir/holders/*" >/dev/null
}

[ $# -ge 1 ] || usage
cmd=$1
mkdir -p "$dir/holders"
exec 9>"$dir/lock"
flock 9

case "$cmd" in
    acquire)
        [ $# -eq 2 ] || usage
        id=$(holder_id "$2")
        [ -n "$id" ] || { echo "range-guard: process $2 is not running" >&2; exit 1; }
        prune
        if ! route_present; then
            ip route add "${ROUTE[@]}"
            : >"$dir/added"
        fi
        : >"$dir/holders/$id"
        ;;
    release)
        [ $# -eq 2 ] || usage
        id=$(holder_id "$2")
        [ -z "$id" ] || rm -f "$dir/holders/$id"
        prune
        if ! holders_left && [ -e "$dir/added" ]; then
            if route_present; then
                ip route del "${ROUTE[@]}"
            fi
            rm -f "$dir/added"
        fi
        ;;
    status)
        prune
        ip -4 route show exact 198.18.0.0/15 type unreachable metric 4000
        ls "$dir/holders"
        [ -e "$dir/added" ] && echo "added by a holder" || echo "not added by a holder"
        ;;
    *) usage ;;
esac
