#!/usr/bin/env bash
# The lab's alerting check: the quick scenario scraped by real Prometheus
# (the shipped rules), Alertmanager (the shipped routes) delivering to a
# webhook receiver, and `migwatch-sidecar watch --until-migration` beside
# it, all checked against QEMU's STOP/RESUME. See lab/alerts.py.
#   lab/check-alerts.sh [--sidecar PATH] [--out DIR]
# Exit 0 pass, 1 fail, 77 the lab cannot run QEMU here (loud skip), 2 not root.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ "$(id -u)" -ne 0 ]; then
    echo "lab/check-alerts.sh: run as root (the lab creates network namespaces, watch opens raw sockets)" >&2
    exit 2
fi
export PYTHONDONTWRITEBYTECODE=1

# Hold the range guard (`unreachable 198.18.0.0/15` in the root namespace)
# for the whole check, as lab/run.sh does for the lab itself.
guard="$here/../scripts/range-guard.sh"
"$guard" acquire $$
child=
trap '"$guard" release $$ || true' EXIT
# alerts.py stops the lab, watch, Prometheus and Alertmanager on SIGTERM;
# pass every stop request on as that (a background child of a script
# ignores SIGINT) and keep waiting for it.
trap '[ -z "$child" ] || kill -TERM "$child" 2>/dev/null || true' INT TERM HUP
python3 "$here/alerts.py" "$@" <&0 &
child=$!
while kill -0 "$child" 2>/dev/null; do
    wait "$child" || true
done
rc=0
wait "$child" || rc=$?
exit "$rc"
