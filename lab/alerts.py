#!/usr/bin/env python3
"""migwatch lab, alerting check: the quick scenario with real Prometheus and
Alertmanager, and `migwatch-sidecar watch --until-migration` beside it.

Starts Prometheus (the shipped rules, scrape and evaluation every 1 s),
Alertmanager (the shipped routes, the webhook pointed at a receiver here)
and the receiver, all on free 127.0.0.1 ports with their own folders; runs
`lab/run.sh --scenario quick --check --page PORT`, whose forwarder serves
the lab's sidecar on 127.0.0.1:PORT for Prometheus to scrape; runs `watch
--until-migration` in the lab's monitor namespace while the lab runs; then
asserts, against the lab's QMP ground truth (STOP/RESUME):

1. migwatch_migrations_total rose by exactly one per migration (and by the
   number of migrations in all); migwatch_outages_total rose across each
   step that is not a migration (decoy, pause) while the migrations counter
   stood still;
2. the webhook received MigwatchMigrationDetected for the lab's target;
3. no migration alert fired before the first migration's RESUME, and no
   new one started during a step that is not a migration;
4. watch exited 0 and its last line's downtime_ms is within 5 ms of that
   migration's STOP->RESUME.

It prints the alert latency (RESUME -> webhook) per migration. Exit 0: all
passed; 1: a FAIL; 77: the lab cannot run QEMU here (loud skip); 2: not
root or bad flags. Run it through lab/check-alerts.sh (root, range guard).
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True

import netns  # noqa: E402  (lab/netns.py: the lab's namespace names, the guest address)
from promstack import (AM_CONFIG, RULES, CheckError, Procs, Webhook, log, parse_time,  # noqa: E402
                       prom_query, prom_samples, start_alertmanager, start_prometheus, free_port)

# Scrape and evaluation interval (the measurement condition).
EVERY_S = 1
# Alerts that say "this VM was migrated" (MigwatchLongDowntime inhibits
# MigwatchMigrationDetected in the shipped routes, so it stands in for it).
MIGRATION_ALERTS = ("MigwatchMigrationDetected", "MigwatchLongDowntime", "MigwatchManyMigrations")
# watch's downtime must be this close to STOP->RESUME (the bar).
WATCH_TOLERANCE_MS = 5.0
# How long watch may wait for a migration (the lab's quick run is about
# 35-60 s from the guest's boot to its last step here).
WATCH_TIMEOUT = "180s"
# After the lab's last step, how long to wait for the outages counter: the
# sidecar counts a yellow verdict once it has stayed yellow 10 s after the
# outage ended (sidecar/src/targets/verdict.rs, OUTAGE_FINAL_US), plus a
# scrape, plus a loaded machine's slack.
OUTAGE_WAIT_S = 30
# An outage is counted within this long after its end (those 10 s, the
# detector's 100 ms catch-up, a scrape, slack).
OUTAGE_COUNTED_S = 16


def wait_for_outages(prom_base, starts, timeout=OUTAGE_WAIT_S):
    """Waits until Prometheus' migwatch_outages_total for the guest rose by
    one since the last of `starts` (unix times the lab began each step that
    is not a migration) and by len(starts) since the first: the sidecar
    counts a yellow verdict only once it stayed yellow 10 s."""
    if not starts:
        return
    expr = f'migwatch_outages_total{{job="migwatch",target="{netns.GUEST_IP}"}}'

    def value(at):
        r = prom_query(prom_base, expr, at)
        return float(r[0]["value"][1]) if r else 0.0

    first, last = value(starts[0]), value(starts[-1])
    t0 = time.monotonic()
    v = None
    while time.monotonic() - t0 < timeout:
        v = value(time.time())
        if v - last >= 1 and v - first >= len(starts):
            log(f"Prometheus scraped migwatch_outages_total {v:g} ({first:g} before the first step that is not a "
                f"migration; {len(starts)} such step(s)) {time.monotonic() - t0:.1f} s into the lab's hold")
            return
        time.sleep(0.2)
    log(f"migwatch_outages_total is {v} after {timeout} s of hold ({first:g} before the first step that is not a "
        f"migration, {len(starts)} such step(s)): checking what there is")


# ---------------------------------------------------------------- the lab


class LabRun:
    """lab/run.sh as a child: its output echoed and kept, the trigger for
    watch (the guest is up), its steps and its truth path."""

    def __init__(self, procs, args, out_dir, page_port, log_path):
        # --hold: the lab keeps its sidecar up after the last step until
        # SIGTERM (then finishes the run as usual), so the verdict of a last
        # step that is not a migration gets counted and scraped (the sidecar
        # counts an outage once it has stayed yellow for 10 s; the lab's
        # settle after the last step is 4 s).
        cmd = [os.path.join(HERE, "run.sh"), "--scenario", "quick", "--check", "--out", out_dir,
               "--page", str(page_port), "--hold"]
        if args.sidecar:
            cmd += ["--sidecar", args.sidecar]
        # Set on the lab's line, or when its output ends (the flags tell which).
        self.guest_up, self.guest_is_up = threading.Event(), False
        self.holding, self.is_holding = threading.Event(), False
        self.steps = []  # (KIND, unix time) from the lab's "step N: KIND" lines: migrate, decoy, ...
        self.truth_path = None
        self.log = open(log_path, "w")
        self.proc = procs.start("lab", cmd, how="lab", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            print(line, end="", flush=True)
            self.log.write(line)
            self.log.flush()
            if "guest up in" in line:  # READY on its console: its network is up
                self.guest_is_up = True
                self.guest_up.set()
            if "holding: everything stays up" in line:
                self.is_holding = True
                self.holding.set()
            m = re.search(r"\] step \d+: (\w+)", line)
            if m:
                self.steps.append((m.group(1), time.time()))
            m = re.search(r"truth (\S+\.truth\.json)", line)
            if m:
                self.truth_path = m.group(1)
        self.guest_up.set()  # the lab ended: nobody waits any longer
        self.holding.set()
        self.log.close()

    def lab_pid(self):
        """The pid of lab.py (run.sh's child): it names the namespaces."""
        try:
            kids = open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read().split()
        except OSError:
            return None
        for k in kids:
            try:
                if b"lab.py" in open(f"/proc/{k}/cmdline", "rb").read():
                    return int(k)
            except OSError:
                continue
        return None

    def monitor_namespace(self, timeout=30):
        """The lab's monitor namespace, once `ip netns list` shows it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            pid = self.lab_pid()
            if pid:
                ns = f"{netns.PREFIX}{pid}-mon"
                names = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, text=True).stdout
                if any(line.split()[0] == ns for line in names.splitlines() if line.strip()):
                    return ns
            time.sleep(0.1)
        return None


class Watch:
    """`migwatch-sidecar watch --until-migration` inside the monitor namespace."""

    def __init__(self, procs, sidecar, ns, out_path, err_path):
        cmd = ["ip", "netns", "exec", ns, sidecar, "watch", "--target", netns.GUEST_IP,
               "--capture-iface", "veth-mon", "--interval", "10ms", "--probe-timeout", "500ms",
               "--clock-interval", "100ms", "--until-migration", "--timeout", WATCH_TIMEOUT]
        log("starting: " + " ".join(cmd))
        self.out_path = out_path
        self.started = time.time()
        self.baseline_at = None
        self.err = open(err_path, "w")
        with open(out_path, "w") as out:
            self.proc = procs.start("watch", cmd, stdout=out, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.err.write(line)
            self.err.flush()
            if "baseline ready" in line and self.baseline_at is None:
                self.baseline_at = time.time()
            print("  watch: " + line, end="", flush=True)
        self.err.close()

    def lines(self):
        """Its JSON lines, and a note naming each line that is not JSON."""
        out, bad = [], []
        with open(self.out_path) as f:
            for no, line in enumerate(f, 1):
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except ValueError as e:
                        bad.append(f"{self.out_path}:{no}: {e}")
        return out, bad


# ------------------------------------------------------------- assertions


def step_start_us(st):
    return min(st[k] for k in ("start_us", "stop_us") if k in st)


def step_window_us(st):
    """STOP and RESUME of a migration (or pause), start and end of a cut."""
    if "stop_us" in st and "resume_us" in st:
        return st["stop_us"], st["resume_us"]
    return st["start_us"], st["end_us"]


def value_before(samples, t):
    """The counter's last sample before time t (s), or None."""
    v = None
    for ts, x in samples:
        if ts < t:
            v = x
    return v


def first_rise_after(samples, t, v0):
    for ts, x in samples:
        if ts >= t and x > v0:
            return ts
    return None


def episodes(samples, gap=EVERY_S * 2.5):
    """(start, end) runs of ALERTS samples with no gap longer than `gap`."""
    out = []
    for ts, _ in sorted(samples):
        if out and ts - out[-1][1] <= gap:
            out[-1][1] = ts
        else:
            out.append([ts, ts])
    return out


class Results:
    def __init__(self):
        self.ok = []

    def check(self, ok, what):
        self.ok.append(bool(ok))
        print(f"  {'PASS' if ok else 'FAIL'}: {what}", flush=True)


def check_run(res, truth, prom_base, hook, watch, since, until):
    """All four checks on one lab run; returns the figures measured."""
    target = truth.get("guest_ip", netns.GUEST_IP)
    steps = truth["steps"]
    sel = f'{{job="migwatch",target="{target}"}}'
    mig = prom_samples(prom_base, f"migwatch_migrations_total{sel}", since, until)
    out = prom_samples(prom_base, f"migwatch_outages_total{sel}", since, until)
    alerts = prom_samples(prom_base, f'ALERTS{{alertstate="firing",target="{target}"}}', since, until)
    figures = {"steps": [], "alerts_prometheus": {k: episodes(v) for k, v in alerts.items()}}
    if check_counters(res, figures, target, steps, sorted(next(iter(mig.values()), [])),
                      sorted(next(iter(out.values()), [])), until):
        check_alerts(res, figures, target, steps, hook, until)
    check_watch(res, figures, target, steps, watch)
    return figures


def check_counters(res, figures, target, steps, mig, out, until):
    """(1) the counters, step by step. False if Prometheus has none."""
    migs = [s for s in steps if s["kind"] == "migration"]
    others = [s for s in steps if s["kind"] != "migration"]
    print("(1) counters in Prometheus (scraped every 1 s from the lab's sidecar)")
    res.check(mig and out, f"Prometheus holds migwatch_migrations_total and migwatch_outages_total for "
              f"target={target} ({len(mig)} and {len(out)} samples)")
    if not (mig and out):
        return False
    total = mig[-1][1] - mig[0][1]
    res.check(total == len(migs), f"migwatch_migrations_total rose by {total:g} over the run: "
              f"the lab performed {len(migs)} migration(s)")
    bounds = [step_start_us(s) / 1e6 for s in steps] + [until]
    for i, st in enumerate(steps):
        t0, t1 = bounds[i], bounds[i + 1]
        m0, m1 = value_before(mig, t0), value_before(mig, t1)
        o0, o1 = value_before(out, t0), value_before(out, t1)
        w0, w1 = step_window_us(st)
        what = f"step {st['step']} {st['kind']} ({(w1 - w0) / 1000:.1f} ms)"
        if None in (m0, m1, o0, o1):
            res.check(False, f"{what}: Prometheus has samples before and after it")
            continue
        dm, do = m1 - m0, o1 - o0
        rec = {"step": st["step"], "kind": st["kind"], "truth_ms": (w1 - w0) / 1000,
               "migrations_delta": dm, "outages_delta": do}
        if st["kind"] == "migration":
            res.check(dm == 1, f"{what}: migrations_total +{dm:g} (outages_total +{do:g})")
            rise = first_rise_after(mig, w0 / 1e6, m0)
            if rise is not None:
                rec["resume_to_counter_s"] = round(rise - w1 / 1e6, 3)
        else:
            # The sidecar counts an outage once it has stayed yellow for
            # OUTAGE_COUNTED_S after its end: look that far, not just to the
            # next step.
            oc = value_before(out, min(w1 / 1e6 + OUTAGE_COUNTED_S, until + 1))
            do = rec["outages_delta"] = oc - o0
            res.check(dm == 0 and do >= 1, f"{what}: outages_total +{do:g} (by {OUTAGE_COUNTED_S} s after "
                      f"its end), migrations_total +{dm:g} (until the next step)")
        figures["steps"].append(rec)
    if others:
        o0 = value_before(out, step_start_us(others[0]) / 1e6)
        do = out[-1][1] - (o0 or 0)
        res.check(do >= len(others), f"outages_total rose by {do:g} from the first step that is not a migration "
                  f"on: {len(others)} such step(s)")
    return True


def check_alerts(res, figures, target, steps, hook, until):
    """(2) the migration alert at the webhook, its latency per migration;
    (3) none before the first RESUME, none started by a step that is not a
    migration."""
    migs = [s for s in steps if s["kind"] == "migration"]
    others = [s for s in steps if s["kind"] != "migration"]
    alerts = figures["alerts_prometheus"]
    notes = hook.notifications()
    print("(2) the webhook (Alertmanager, shipped routes, group_wait as shipped)")
    res.check(not hook.errors, f"every notification was well-formed JSON ({len(notes)} received; "
              f"errors: {hook.errors or 'none'})")
    fired = []  # (received, alert) for each firing migration alert for our target
    for n in notes:
        for a in n["body"].get("alerts", []):
            lab = a.get("labels", {})
            if a.get("status") == "firing" and lab.get("target") == target and lab.get("alertname") in MIGRATION_ALERTS:
                fired.append((n["at"], a))
    first = migs[0] if migs else None
    detected = [(at, a) for at, a in fired if a["labels"]["alertname"] == "MigwatchMigrationDetected"]
    if detected:
        at, a = detected[0]
        res.check(True, f"MigwatchMigrationDetected for target={target} at the webhook "
                  f"(job={a['labels'].get('job')}, severity={a['labels'].get('severity')}): "
                  f"\"{a.get('annotations', {}).get('summary', '').strip()}\"")
    else:
        # The shipped inhibit rule: a long downtime alert replaces it.
        long_ = [a for _, a in fired if a["labels"]["alertname"] == "MigwatchLongDowntime"]
        in_prom = "MigwatchMigrationDetected" in alerts
        res.check(long_ and in_prom, f"MigwatchMigrationDetected for target={target} at the webhook "
                  + ("(inhibited by MigwatchLongDowntime, which came, as the shipped routes say; "
                     "Prometheus fired it)" if long_ and in_prom else "never came"))
    starts = sorted({a.get("startsAt") for _, a in detected})
    prom_eps = figures["alerts_prometheus"].get("MigwatchMigrationDetected", [])
    res.check(len(starts) <= 1 and len(prom_eps) == 1,
              f"MigwatchMigrationDetected fired once (one firing episode in Prometheus: {len(prom_eps)}; "
              f"distinct startsAt at the webhook: {len(starts)}) and stays firing across the later "
              "steps (the rule reads increase(...[10m]))")
    for i, st in enumerate(migs):
        stop, resume = step_window_us(st)
        nxt = steps[steps.index(st) + 1] if steps.index(st) + 1 < len(steps) else None
        until_s = step_start_us(nxt) / 1e6 if nxt else until
        new = [(at, a) for at, a in fired if at >= resume / 1e6 and at < until_s
               and parse_time(a.get("startsAt")) >= stop / 1e6]
        rec = next((r for r in figures["steps"] if r["step"] == st["step"]), {})
        if new:
            at, a = min(new, key=lambda x: x[0])
            rec["alert"] = a["labels"]["alertname"]
            rec["resume_to_webhook_ms"] = round(at * 1000 - resume / 1000)
            rec["resume_to_prometheus_fired_ms"] = round(parse_time(a.get("startsAt")) * 1000 - resume / 1000)
            log(f"alert latency, migration {i + 1} (step {st['step']}, {(resume - stop) / 1000:.1f} ms): "
                f"RESUME -> webhook {rec['resume_to_webhook_ms']} ms ({a['labels']['alertname']}; "
                f"RESUME -> Prometheus fired {rec['resume_to_prometheus_fired_ms']} ms; counter scraped "
                f"+{rec.get('resume_to_counter_s', float('nan')) * 1000:.0f} ms)")
        else:
            log(f"alert latency, migration {i + 1} (step {st['step']}): no new notification: folded into the "
                "MigwatchMigrationDetected already firing (its annotation follows the latest downtime; "
                "MigwatchManyMigrations counts them)")

    print("(3) no migration alert before the first RESUME, none started by a step that is not a migration")
    if first:
        r1 = first["resume_us"] / 1e6
        early_hook = [a["labels"]["alertname"] for at, a in fired if at < r1 or parse_time(a.get("startsAt")) < r1]
        early_prom = [k for k, eps in figures["alerts_prometheus"].items()
                      if k in MIGRATION_ALERTS and eps and eps[0][0] < r1]
        res.check(not early_hook and not early_prom,
                  f"nothing before RESUME of the first migration (webhook: {early_hook or 'none'}, "
                  f"Prometheus ALERTS: {early_prom or 'none'})")
    for st in others:
        t0 = step_start_us(st) / 1e6
        nxt = steps[steps.index(st) + 1] if steps.index(st) + 1 < len(steps) else None
        t1 = step_start_us(nxt) / 1e6 if nxt else until
        new_prom = [k for k, eps in figures["alerts_prometheus"].items()
                    if k in MIGRATION_ALERTS and any(t0 <= e[0] < t1 for e in eps)]
        new_hook = [a["labels"]["alertname"] for at, a in fired if t0 <= parse_time(a.get("startsAt")) < t1]
        res.check(not new_prom and not new_hook,
                  f"step {st['step']} {st['kind']}: no migration alert started (Prometheus: {new_prom or 'none'}, "
                  f"webhook: {new_hook or 'none'})")



def check_watch(res, figures, target, steps, watch):
    """(4) watch --until-migration: exit 0, its last line's downtime within
    WATCH_TOLERANCE_MS of the first migration's STOP->RESUME."""
    migs = [s for s in steps if s["kind"] == "migration"]
    first = migs[0] if migs else None
    print("(4) migwatch-sidecar watch --until-migration in the lab's monitor namespace")
    if watch is None:
        res.check(False, "watch ran (it never started: see above)")
        return
    rc = watch.proc.returncode
    res.check(rc == 0, f"watch exited {rc} (0 = a migration was seen; 3 = --timeout)")
    if first:
        ahead = first["stop_us"] / 1e6 - (watch.baseline_at or float("inf"))
        res.check(ahead > 0, f"watch's baseline was ready before the first STOP ({ahead:.1f} s ahead; "
                  "it judges nothing without one)")
    lines, bad = watch.lines()
    res.check(not bad, f"every line watch printed is JSON ({bad or 'yes'})")
    if not lines:
        res.check(False, "watch printed a line")
        return
    last = lines[-1]
    hit = [s for s in migs if last["start_s"] <= s["resume_us"] / 1e6 and last["end_s"] >= s["stop_us"] / 1e6]
    if not hit:
        res.check(False, f"watch's last line overlaps a migration's STOP->RESUME: {last}")
        return
    st = hit[0]
    truth_ms = st["downtime_us"] / 1000
    err = last["downtime_ms"] - truth_ms
    figures["watch"] = {"step": st["step"], "downtime_ms": last["downtime_ms"], "truth_ms": truth_ms,
                        "error_ms": round(err, 2), "downtime_from": last.get("downtime_from"),
                        "level": last.get("level"), "lines": len(lines)}
    res.check(st is first, f"watch's last line is the first migration (step {st['step']})")
    res.check(last.get("target") == target and abs(err) <= WATCH_TOLERANCE_MS,
              f"watch: {last.get('target')} {last.get('level')} downtime {last['downtime_ms']:.1f} ms "
              f"({last.get('downtime_from')}) vs STOP->RESUME {truth_ms:.1f} ms: {err:+.1f} ms "
              f"(within {WATCH_TOLERANCE_MS:g})")


# --------------------------------------------------------------------- main


def main():
    p = argparse.ArgumentParser(prog="lab/check-alerts.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sidecar", help="the migwatch-sidecar binary (default: the lab's choice, "
                   "target/release, else target/debug)")
    p.add_argument("--out", help="keep the lab's run and this check's logs here "
                   "(default: a temporary folder, removed at exit)")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("lab/check-alerts.sh: run as root (the lab creates namespaces, watch opens raw sockets)",
              file=sys.stderr)
        return 2
    sidecar = os.path.abspath(args.sidecar) if args.sidecar else next(
        (os.path.join(REPO, b) for b in ("target/release/migwatch-sidecar", "target/debug/migwatch-sidecar")
         if os.access(os.path.join(REPO, b), os.X_OK)), None)
    if not sidecar or not os.access(sidecar, os.X_OK):
        print(f"lab/check-alerts.sh: no sidecar binary ({args.sidecar or 'target/{release,debug}'}); "
              "build it: cargo build -p migwatch-sidecar", file=sys.stderr)
        return 2
    args.sidecar = sidecar

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    tmp = tempfile.mkdtemp(prefix="mw-labalerts-")
    out_dir = os.path.abspath(args.out) if args.out else os.path.join(tmp, "out")
    os.makedirs(out_dir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    mine = os.path.join(out_dir, f"alerts-{stamp}")  # this check's own files: mine.*
    procs = Procs()
    rc = 1
    try:
        rc = run(args, tmp, out_dir, mine, procs)
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        rc = 130
    except CheckError as e:
        log(f"FAILED: {e}")
        rc = 1
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        procs.stop_all()
        for f in ("prometheus.log", "alertmanager.log"):
            if os.path.exists(os.path.join(tmp, f)) and args.out:
                shutil.copy(os.path.join(tmp, f), f"{mine}.{f}")
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


def run(args, tmp, out_dir, mine, procs):
    """Starts everything, runs the lab with watch beside it, and checks."""
    since = time.time()
    hook = Webhook()
    try:
        am_base, am_addr = start_alertmanager(procs, tmp, hook.url)
        page = free_port()
        prom_base = start_prometheus(procs, tmp, am_addr, f"127.0.0.1:{page}", EVERY_S)
        log(f"Prometheus {prom_base} (rules {os.path.relpath(RULES, REPO)}, every {EVERY_S} s), "
            f"Alertmanager {am_base} (routes {os.path.relpath(AM_CONFIG, REPO)}), webhook {hook.url}; "
            f"the lab's sidecar on 127.0.0.1:{page}")
        lab = LabRun(procs, args, out_dir, page, mine + ".lab.log")
        watch = None
        # watch starts as soon as the guest is up (the lab then starts its
        # own sidecar and waits 4 s before the first step): its baseline
        # must be ready before the first STOP, which check (4) asserts.
        lab.guest_up.wait()
        if lab.guest_is_up:
            ns = lab.monitor_namespace()
            if ns:
                watch = Watch(procs, args.sidecar, ns, mine + ".watch.jsonl", mine + ".watch.log")
            elif lab.proc.poll() is None:
                log("the lab's monitor namespace never showed up in `ip netns list`: watch not started")
        lab.holding.wait()
        if lab.is_holding:
            wait_for_outages(prom_base, [t for k, t in lab.steps if k != "migrate"])
            log("ending the lab's hold (SIGTERM): it finishes the run")
            lab.proc.send_signal(signal.SIGTERM)
        lab_rc = lab.proc.wait()
        lab.reader.join(10)
        if watch:
            try:
                watch.proc.wait(30)
            except subprocess.TimeoutExpired:
                # The lab kills what is left in its namespaces: not reached
                # unless that failed.
                log("watch still runs 30 s after the lab ended: killing it")
                watch.proc.kill()
                watch.proc.wait()
            watch.reader.join(5)
        until = time.time()
        with open(mine + ".webhook.jsonl", "w") as f:
            for n in hook.notifications():
                f.write(json.dumps(n) + "\n")
        return report(args, lab, lab_rc, watch, hook, prom_base, out_dir, mine, since, until)
    finally:
        hook.close()


def report(args, lab, lab_rc, watch, hook, prom_base, out_dir, mine, since, until):
    """The checks on a finished lab run, printed; returns the exit code."""
    if lab_rc == 77:
        log("the lab was skipped (exit 77: QEMU cannot run here): no alert was checked")
        return 77
    truth_path = lab.truth_path
    if truth_path and not os.path.isabs(truth_path):
        truth_path = os.path.join(REPO, truth_path)
    if not truth_path or not os.path.exists(truth_path):
        found = sorted(glob.glob(os.path.join(out_dir, "lab-quick-*.truth.json")), key=os.path.getmtime)
        truth_path = found[-1] if found and os.path.getmtime(found[-1]) >= since else None
    print(f"\nalerting checks (Prometheus + Alertmanager + webhook, and watch) on the lab's run "
          f"({truth_path or 'no truth file'}):", flush=True)
    res = Results()
    res.check(lab_rc == 0, f"the lab's own run and --check passed (exit {lab_rc})")
    if not truth_path:
        res.check(False, "the lab wrote its ground truth (NAME.truth.json)")
        return 1
    truth = json.load(open(truth_path))
    figures = check_run(res, truth, prom_base, hook, watch, since, until)
    figures["lab"] = os.path.basename(truth_path)[:-len(".truth.json")]
    figures["webhook_notifications"] = len(hook.notifications())
    with open(mine + ".json", "w") as f:
        json.dump(figures, f, indent=1)
    n_ok = sum(res.ok)
    verdict = "PASS" if all(res.ok) else "FAIL"
    print(f"  alerts check {verdict}: {n_ok}/{len(res.ok)} assertions passed ({figures['lab']}); "
          f"figures in {mine}.json" + ("" if args.out else " (temporary: pass --out DIR to keep)"), flush=True)
    return 0 if all(res.ok) else 1


if __name__ == "__main__":
    sys.exit(main())
