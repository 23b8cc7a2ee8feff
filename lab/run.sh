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
exec python3 "$here/lab.py" "$@"
