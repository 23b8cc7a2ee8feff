#!/usr/bin/env bash
# One command for the migwatch migration lab: see lab/README.md.
#   lab/run.sh [--scenario quick|idle|dirty|slow|decoy|mix] [--count N] [--page [PORT]] [--check] ...
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/guarded.sh"
run_guarded lab/run.sh lab.py "$@"
