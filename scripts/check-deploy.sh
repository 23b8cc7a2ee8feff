#!/usr/bin/env bash
# Checks the deployment artefacts in deploy/ with the real tools, installing
# them from Debian first if they are missing (idempotent, like setup.sh):
#   * Prometheus: `promtool check config` (with the rules it loads),
#     `promtool check rules`, and the rules' unit tests (`promtool test rules`);
#   * Alertmanager: `amtool check-config`, and where each alert is routed;
#   * Grafana: the dashboard's structure and PromQL (deploy/grafana/check_dashboard.py);
#   * systemd: `systemd-analyze verify` on the unit, and its exposure score.
#   scripts/check-deploy.sh --deb   also build the .deb and test it (deploy/test-deb.sh:
#                                   a release build, dpkg -i, the unit's ExecStart, dpkg -r)
# Exits non-zero on the first failing check.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "check-deploy: $*" >&2; }
case "${1:-}" in
    "" | --deb) ;;
    *) say "unknown argument '$1' (usage: scripts/check-deploy.sh [--deb])"; exit 2 ;;
esac
step() { echo; echo "-- $*"; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        say "need root for: $* (run as root or install sudo)"; return 1; fi
}

# Debian package : a file it installs. systemd is only needed for its
# systemd-analyze: installing the package does not start it (there is no
# init to replace in a container, and Debian's postinst only enables units
# when systemd is running), so it is harmless here.
missing=()
for pair in prometheus:/usr/bin/promtool prometheus-alertmanager:/usr/bin/amtool \
            python3:/usr/bin/python3 systemd:/usr/bin/systemd-analyze; do
    [ -x "${pair#*:}" ] || missing+=("${pair%%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} from Debian"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

step "Prometheus: scrape config and the rules it loads (promtool check config)"
promtool check config deploy/prometheus/prometheus.yml
step "Prometheus: rules (promtool check rules)"
promtool check rules deploy/prometheus/migwatch-rules.yml
step "Prometheus: the rules' unit tests (promtool test rules)"
promtool test rules deploy/prometheus/migwatch-rules.test.yml

step "Alertmanager: config (amtool check-config)"
amtool check-config deploy/alertmanager/alertmanager.yml
step "Alertmanager: every migwatch alert reaches the webhook, nothing else does"
route() {
    local want=$1; shift
    local got
    got=$(amtool config routes test --config.file=deploy/alertmanager/alertmanager.yml "$@" 2>/dev/null)
    if [ "$got" != "$want" ]; then
        say "alert {$*} is routed to '$got', expected '$want'"
        return 1
    fi
    echo "{$*} -> $got"
}
per_target="MigwatchMigrationDetected MigwatchLongDowntime MigwatchManyMigrations MigwatchSidecarDown MigwatchNotProbing"
per_sidecar="MigwatchAnnounceCaptureDown MigwatchWallClockStepped"
for a in $per_target; do
    route migwatch-webhook alertname="$a" target=vm-a instance=hv1:8080
done
for a in $per_sidecar; do
    route migwatch-webhook alertname="$a" instance=hv1:8080
done
route null alertname=SomethingElse
# Every alert the rules define is one the route test above covered.
defined=$(grep -oP '^\s*- alert: \K\w+' deploy/prometheus/migwatch-rules.yml | sort | tr '\n' ' ')
tested=$(echo $per_target $per_sidecar | tr ' ' '\n' | sort | tr '\n' ' ')
if [ "$defined" != "$tested" ]; then
    say "the rules define alerts this script does not route-test: defined [$defined], tested [$tested]"
    exit 1
fi

step "Grafana: dashboard structure and PromQL (deploy/grafana/check_dashboard.py)"
python3 deploy/grafana/check_dashboard.py

step "systemd: the unit (systemd-analyze verify)"
# verify also checks that ExecStart's binary exists: where the package is
# not installed, check a copy whose ExecStart names an existing program
# (deploy/test-deb.sh verifies the installed unit itself).
unit=deploy/systemd/migwatch-sidecar.service
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -x /usr/bin/migwatch-sidecar ]; then
    cp "$unit" "$tmp/"
else
    sed 's|^ExecStart=/usr/bin/migwatch-sidecar |ExecStart=/bin/true |' "$unit" > "$tmp/migwatch-sidecar.service"
fi
grep -q '^ExecStart=' "$tmp/migwatch-sidecar.service"
systemd-analyze verify "$tmp/migwatch-sidecar.service"
echo "systemd-analyze verify: ok"
# Exposure score (0 = locked down, 10 = none): fail above 3.0 (units of 0.1).
systemd-analyze security --offline=yes --threshold=30 "$tmp/migwatch-sidecar.service" | tail -1

if [ "${1:-}" = "--deb" ]; then
    step "the Debian package (deploy/test-deb.sh)"
    deploy/test-deb.sh
fi

echo
echo "check-deploy: all deployment checks passed"
