#!/usr/bin/env bash
# The lab's alerting check: the quick scenario scraped by real Prometheus
# (the shipped rules), Alertmanager (the shipped routes) delivering to a
# webhook receiver, and `migwatch-sidecar watch --until-migration` beside
# it, all checked against QEMU's STOP/RESUME. See lab/alerts.py.
#   lab/check-alerts.sh [--sidecar PATH] [--out DIR]
# Exit 0 pass, 1 fail, 77 the lab cannot run QEMU here (loud skip), 2 not root.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/guarded.sh"
run_guarded lab/check-alerts.sh alerts.py "$@"
