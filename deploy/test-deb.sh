#!/usr/bin/env bash
# Builds the Debian package with cargo-deb, installs it on this machine with
# dpkg, checks what landed, runs the systemd unit's ExecStart line by hand
# (there is no systemd to start it here) against 127.0.0.1 until /healthz
# answers, once as root and once as the unit would (an unlisted user with
# only the unit's capabilities), stops it by PID each time, and removes the
# package again.
#   deploy/test-deb.sh            build (release) and test
#   deploy/test-deb.sh --no-build test the .deb already in target/debian/
# Needs root (dpkg). Refuses to run where migwatch-sidecar is already
# installed, so it never removes a real installation.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

say() { echo "test-deb: $*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"
if dpkg-query -W -f='${Status}' migwatch-sidecar 2>/dev/null | grep -q "installed"; then
    fail "migwatch-sidecar is already installed here; this test would remove it"
fi

# Debian tools: dpkg-shlibdeps (dpkg-dev) for the package's Depends, curl,
# python3 (a free port).
missing=()
for pair in dpkg-dev:/usr/bin/dpkg-shlibdeps curl:/usr/bin/curl python3:/usr/bin/python3; do
    [ -x "${pair#*:}" ] || missing+=("${pair%%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# cargo-deb from crates.io, once (about 5 min to build).
if ! cargo deb --version >/dev/null 2>&1; then
    say "installing cargo-deb (cargo install cargo-deb --locked)"
    cargo install cargo-deb --locked --quiet
fi

if [ "${1:-}" = "--no-build" ]; then
    deb=$(ls -t target/debian/migwatch-sidecar_*.deb 2>/dev/null | head -1)
    [ -n "$deb" ] || fail "no target/debian/migwatch-sidecar_*.deb: run without --no-build"
else
    say "building the package (cargo deb -p migwatch-sidecar: a release build)"
    deb=$(cargo deb -p migwatch-sidecar | tail -1)
fi
[ -f "$deb" ] || fail "cargo deb produced no package ($deb)"
say "package: $deb ($(du -h "$deb" | cut -f1))"

pid=""
tmp=$(mktemp -d)
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
    if dpkg-query -W -f='${Status}' migwatch-sidecar 2>/dev/null | grep -q "installed"; then
        dpkg --purge migwatch-sidecar >/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

dpkg -i "$deb"

# What landed.
unit=/lib/systemd/system/migwatch-sidecar.service
for f in /usr/bin/migwatch-sidecar "$unit" /etc/migwatch/sidecar.toml /etc/migwatch/targets.toml \
         /usr/share/migwatch/prometheus/migwatch-rules.yml /usr/share/migwatch/alertmanager/alertmanager.yml \
         /usr/share/migwatch/grafana/migwatch-dashboard.json; do
    [ -f "$f" ] || fail "$f is not installed"
done
[ -x /usr/bin/migwatch-sidecar ] || fail "/usr/bin/migwatch-sidecar is not executable"
conffiles=$(dpkg-query -W -f='${Conffiles}' migwatch-sidecar)
for f in /etc/migwatch/sidecar.toml /etc/migwatch/targets.toml; do
    grep -q "^ $f " <<<"$conffiles" || fail "$f is not a conffile (dpkg says: $conffiles)"
done
# Not enabled on install: the example targets are placeholders.
[ ! -e /etc/systemd/system/multi-user.target.wants/migwatch-sidecar.service ] ||
    fail "the package enabled the unit on install"
/usr/bin/migwatch-sidecar --version
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify "$unit"
    say "systemd-analyze verify $unit: ok"
fi

# The unit's ExecStart, with the installed config, but watching 127.0.0.1
# (the installed targets file lists placeholders that must not be probed)
# and on a free loopback port.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ -n "$exec_start" ] || fail "no ExecStart= in $unit"
grep -q -- "--targets-file /etc/migwatch/targets.toml" <<<"$exec_start" ||
    fail "ExecStart does not read /etc/migwatch/targets.toml: $exec_start"
cat > "$tmp/targets.toml" <<'EOF'
[[target]]
address = "127.0.0.1"
name = "loopback"
labels = { role = "test" }
EOF
chmod 0755 "$tmp"
chmod 0644 "$tmp/targets.toml"
cmd=${exec_start//\/etc\/migwatch\/targets.toml/$tmp/targets.toml}

# run_until_healthy USER PREFIX...: runs the unit's command line (after
# PREFIX) on a free loopback port until /healthz answers and /metrics
# counts probes to target "loopback", checks it runs as USER, stops it by
# PID. Its stderr is left in $tmp/out.log.
run_until_healthy() {
    local want_user=$1; shift
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    say "running: $* $cmd --listen 127.0.0.1:$port"
    # shellcheck disable=SC2086  # the unit's line is split into words, as systemd does
    "$@" $cmd --listen "127.0.0.1:$port" >"$tmp/out.log" 2>&1 &
    pid=$!
    local ok=""
    for _ in $(seq 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$tmp/out.log" >&2
            fail "the sidecar exited before /healthz answered"
        fi
        if curl -fsS --max-time 1 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.1
    done
    [ -n "$ok" ] || { cat "$tmp/out.log" >&2; fail "/healthz did not answer within 10 s"; }
    # The server may answer before the first probe has left: wait for it.
    local sent=""
    for _ in $(seq 50); do
        sent=$(curl -fsS --max-time 2 "http://127.0.0.1:$port/metrics" |
            sed -n 's/^migwatch_probes_sent_total{.*target="loopback".*} \([0-9]*\)$/\1/p')
        [ -n "$sent" ] && [ "$sent" -gt 0 ] && break
        sleep 0.1
    done
    [ -n "$sent" ] && [ "$sent" -gt 0 ] ||
        fail "/metrics counts no probe sent to target=\"loopback\" within 5 s (got '$sent')"
    local user
    user=$(ps -o user= -p "$pid" | tr -d ' ')
    [ "$user" = "$want_user" ] || fail "the sidecar runs as '$user', not $want_user"
    say "/healthz answered on 127.0.0.1:$port; $sent probes sent to \"loopback\"; running as $user"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
}

# 1. As root by hand: there is no DynamicUser= to run it as, so the
# sidecar opens its sockets and drops to its --user default, nobody.
run_until_healthy nobody

# 2. As the unit runs it: a user id with no passwd entry (DynamicUser=
# allocates them from 61184-65519), only the unit's ambient capabilities
# (in the bounding set too), and no new privileges. The sidecar must still
# probe, at real-time priority (CAP_SYS_NICE).
caps=$(sed -n 's/^AmbientCapabilities=//p' "$unit" | tr 'A-Z' 'a-z' | sed 's/cap_//g; s/ \+/,+/g; s/^/+/')
[ "$caps" = "+net_raw,+sys_nice" ] || fail "the unit's AmbientCapabilities changed ($caps): update this test"
if command -v setpriv >/dev/null; then
    run_until_healthy 61999 setpriv --reuid=61999 --regid=61999 --clear-groups \
        --inh-caps="$caps" --ambient-caps="$caps" --bounding-set="-all,$caps" --no-new-privs
    grep -q "realtime priority" "$tmp/out.log" ||
        fail "without root, the prober did not get real-time priority: $(cat "$tmp/out.log")"
else
    say "setpriv (util-linux) missing: skipped the run as the unit's user"
fi

dpkg -r migwatch-sidecar
[ ! -e /usr/bin/migwatch-sidecar ] || fail "dpkg -r left /usr/bin/migwatch-sidecar"
[ ! -e "$unit" ] || fail "dpkg -r left $unit"
dpkg --purge migwatch-sidecar
[ ! -e /etc/migwatch/sidecar.toml ] || fail "dpkg --purge left /etc/migwatch/sidecar.toml"
say "ok: built, installed, ran (as root, and as the unit's user), removed"
