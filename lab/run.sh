#!/usr/bin/env bash
# One command for the migwatch migration lab: see lab/README.md.
#   lab/run.sh [--scenario quick|idle|dirty|slow|decoy|mix] [--count N] [--page [PORT]] [--check] ...
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ "$(id -u)" -ne 0 ]; then
    echo "lab/run.sh: run as root (it creates network namespaces, taps and raw sockets)" >&2
    exit 2
fi
export PYTHONDONTWRITEBYTECODE=1

# The range guard (scripts/range-guard.sh) holds `unreachable
# 198.18.0.0/15` in the root namespace for the whole run, so nothing of
# the lab's can leave the machine through the default route; it is removed
# at exit only if this run (or another holder) added it.
guard="$here/../scripts/range-guard.sh"
"$guard" acquire $$
child=
trap '"$guard" release $$ || true' EXIT
# The lab cleans up on SIGTERM; pass every stop request on as that (a
# background child of a script ignores SIGINT) and keep waiting for it.
trap '[ -z "$child" ] || kill -TERM "$child" 2>/dev/null || true' INT TERM HUP
python3 "$here/lab.py" "$@" <&0 &
child=$!
# A trapped signal interrupts `wait` while the lab still runs: wait again.
while kill -0 "$child" 2>/dev/null; do
    wait "$child" || true
done
rc=0
wait "$child" || rc=$?
exit "$rc"
