#!/usr/bin/env python3
"""Scores the lab's recorded runs per signal: python3 lab/table.py [DIR] [--sidecar BIN].

For every run in DIR (default lab/out; not its subfolders) that has clock
readings, runs `migwatch-sidecar detect` on the trace, matches the events it
finds to the ground truth (truth.json: QMP STOP->RESUME for migrations, the
cut for decoys), and prints a Markdown table: per kind of step and per
signal (loss burst, held/late reply, sawtooth, clock step, L2 announce, the
final verdict) how often it was there, how long after the resume (or the
cut's end) it was known, and how far its downtime estimate is from
STOP->RESUME. Two rows come straight from the trace, without the detector:
the clock step (median offset of good readings before the stop vs after the
resume) and the announce frames.

    python3 lab/table.py --check lab/out/lab-quick-NAME   # the quick lab's assertions (PASS/FAIL lines)

Standard library only.
"""

import argparse
import glob
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# Downtime buckets of the migrations (STOP->RESUME, ms).
BUCKETS = [(0, 50, "migration, 10-50 ms"), (50, 200, "migration, 50-200 ms"),
           (200, 700, "migration, 200-700 ms"), (700, 10_000, "migration, 0.7-2 s")]
CLOCK_WINDOW_US = 3_000_000  # readings this long before the stop / after the resume
CLOCK_MIN_READINGS = 3
ANNOUNCE_WINDOW_US = (-50_000, 2_000_000)  # around the resume (or the cut's end)
CHECK_TOL_US = 5_000  # the quick check: clock-step downtime within 5 ms of truth


def qemu_slack_us(st):
    """How far QMP's STOP and RESUME stamps can lie inside the time the
    guest's clock stood still: (before STOP, after RESUME) in µs, None if
    unknown. QEMU stops the clock before it pauses the vCPUs and stamps
    STOP, and stamps RESUME before it starts the clock again. A pause is
    bracketed by our `stop` going out and our `cont` being answered; a
    migration by the source's last MIGRATION_PASS before STOP (its last
    dirty-bitmap sync, before it decides to stop the guest) and the
    destination's MIGRATION completed (sent after its clock restarted)."""
    if st["kind"] == "pause":
        if "stop_cmd_us" not in st:
            return None, None
        return st["stop_us"] - st["stop_cmd_us"], st["cont_ack_us"] - st["resume_us"]
    passes = [e[2] for e in st.get("src_events", []) if e[0] == "MIGRATION_PASS" and e[2] <= st["stop_us"]]
    before = st["stop_us"] - max(passes) if passes else None
    after = st["resume_max_us"] - st["resume_us"] if "resume_max_us" in st else None
    return before, after
LEVELS = ["green", "yellow", "red"]


# ------------------------------------------------------------------- input


def default_sidecar():
    for p in ("target/release/migwatch-sidecar", "target/debug/migwatch-sidecar"):
        if os.access(os.path.join(REPO, p), os.X_OK):
            return os.path.join(REPO, p)
    return None


def trace_from_events(events):
    """The parts of a trace this file reads, from its events (dicts with "type")."""
    samples, late, clocks, announces = {}, {}, [], []
    for e in events:
        t = e.get("type")
        if t == "sample":
            samples[e["seq"]] = (e["sent_us"], e["rtt_us"])
        elif t == "late":
            late[e["seq"]] = e["rtt_us"]
        elif t == "clock":
            clocks.append(e)
        elif t == "announce":
            announces.append(e)
    return {"samples": samples, "late": late, "clocks": clocks, "announces": announces}


def load_trace(path):
    with open(path) as f:
        return trace_from_events(json.loads(l) for l in f if l.strip() and not l.lstrip().startswith("#"))


def step_window(st):
    """(t0, t1): STOP and RESUME of a migration or a pause, start and end of a cut."""
    if st["kind"] in ("migration", "pause"):
        return st["stop_us"], st["resume_us"]
    return st["start_us"], st["end_us"]


def norm_event(o):
    """One `detect` line, whatever of the detector's fields it carries:
    the reasons (always), and evidence / downtime_source / decided_us when
    the CLI prints them."""
    by = {}
    for r in o.get("reasons", []):
        by.setdefault(r.get("kind"), r)
    ev = o.get("evidence") or {}
    lb = by.get("loss_burst", {})
    decided = o.get("decided_us")
    if decided is None and o.get("decided_s") is not None:
        decided = round(o["decided_s"] * 1e6)
    held = ev.get("held") or by.get("late_reply")
    cs = ev.get("clock_step") or by.get("clock_step")
    ann = ev.get("announce") or by.get("announce")
    return {
        "level": o.get("level"),
        "start_us": lb.get("start_us", round(o["start_s"] * 1e6)),
        "end_us": lb.get("end_us", round(o["end_s"] * 1e6)),
        "probes": lb.get("probes", 0),  # a stop that lost no probe names no loss burst
        "downtime_us": o.get("downtime_us", round(o.get("downtime_ms", 0) * 1000)),
        "source": o.get("downtime_source") or o.get("downtime_from"),
        "decided_us": decided,
        "held": held,
        "sawtooth": ev.get("sawtooth") or by.get("sawtooth"),
        "clock_step": cs,
        "announce": ann,
        "clock_steady": ev.get("clock_steady") or by.get("clock_steady"),
        "veto": [k for k in ("queue_flush", "congestion", "long_outage") if k in by],
        "verdict": o.get("verdict"),
        "explanation": o.get("explanation"),
        "unconfirmed": "unconfirmed" in by,
    }


def run_detect(sidecar, trace, extra=()):
    """`detect --lights` on a trace: (events, summary); the summary's
    "_lights" holds every change of the light as (time µs, light)."""
    p = subprocess.run([sidecar, "detect", "--lights", trace, *extra], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{sidecar} detect {trace} failed: {p.stderr.strip()}")
    events, summary, lights, why = [], None, [], []
    for line in p.stdout.splitlines():
        o = json.loads(line)
        if "summary" in o:
            summary = o["summary"]
        elif "light" in o:
            lights.append((round(o["at_s"] * 1e6), o["light"]))
            why.append(((o.get("reasons") or [{}])[0]).get("kind"))
        else:
            events.append(norm_event(o))
    summary = dict(summary or {})
    summary["_lights"] = lights
    # The first reason of each change ("silence": the provisional yellow).
    summary["_lights_why"] = why
    return events, summary


def red_times_by_eval(sidecar, bases):
    """When the light turned red for each labelled migration, by `eval` with
    the red and yellow holds at 1 ms (so an earlier red does not mask a
    later one). Only used when `detect` prints no decided_us.
    Returns {(run name, downtime_us): red unix µs or None}."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="mw-table-") as d:
        for b in bases:
            for ext in (".jsonl", ".labels.json"):
                os.symlink(os.path.abspath(b + ext), os.path.join(d, os.path.basename(b) + ext))
        p = subprocess.run([sidecar, "eval", d, "--json", "--detector-config",
                            '{"red_hold_ms":1,"yellow_hold_ms":1}'],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            return out
        scores = json.loads(p.stdout)
    for tr in scores.get("traces", []):
        name = tr["name"]
        labels = json.load(open(next(b for b in bases if os.path.basename(b) == name) + ".labels.json"))
        migs = [e for e in labels["events"] if e["kind"] == "migration"
                and "lost_start_us" in e and "lost_end_us" in e]
        for lab_ev, sc in zip(migs, tr.get("migrations", [])):
            miss = lab_ev.get("first_missed_us", lab_ev["lost_start_us"])
            r = sc.get("red_from_miss_us")
            out[(name, lab_ev["downtime_us"])] = None if r is None else miss + r
    return out


# ---------------------------------------------------------------- signals


def match(events, t0, t1, interval_us):
    """The detected event of a step: the highest level among those whose
    loss burst overlaps the step (give or take the post-resume tail)."""
    hits = [e for e in events if e["start_us"] <= t1 + 300_000 and e["end_us"] >= t0 - 2 * interval_us - 50_000]
    if not hits:
        return None
    return max(hits, key=lambda e: (LEVELS.index(e["level"]) if e["level"] in LEVELS else 0, e["probes"] or 0))


def raw_clock(tr, t0, t1, lo, hi):
    """The clock step straight from the trace: median offset of good readings
    (small RTT, answered before the stop / sent after the resume, within
    3 s and within [lo, hi]) after minus before. Returns (step_us, n_before,
    n_after, first good reading's arrival after t1) or None."""
    cl = tr["clocks"]
    if not cl:
        return None
    med = statistics.median(c["rtt_us"] for c in cl)
    good = max(1000, 2 * med)
    before = [c["offset_us"] for c in cl if c["rtt_us"] <= good and c["sent_us"] >= max(lo, t0 - CLOCK_WINDOW_US)
              and c["sent_us"] + c["rtt_us"] <= t0]
    after_r = [c for c in cl if c["rtt_us"] <= good and t1 <= c["sent_us"] <= min(hi, t1 + CLOCK_WINDOW_US)]
    if len(before) < CLOCK_MIN_READINGS or len(after_r) < CLOCK_MIN_READINGS:
        return None
    step = statistics.median(c["offset_us"] for c in after_r) - statistics.median(before)
    first = min(c["sent_us"] + c["rtt_us"] for c in after_r)
    return step, len(before), len(after_r), first


def raw_announces(tr, t1):
    a, b = ANNOUNCE_WINDOW_US
    return [x for x in tr["announces"] if t1 + a <= x["at_us"] <= t1 + b]


def analyse_run(base, sidecar):
    """Per step of one run: what each signal said. Returns (truth, rows,
    stray reds) or None when the trace has no clock readings."""
    truth = json.load(open(base + ".truth.json"))
    tr = load_trace(base + ".jsonl")
    if not tr["clocks"]:
        return None
    events, summary = run_detect(sidecar, base + ".jsonl")
    interval_us = round(((summary or {}).get("interval_ms") or 10) * 1000)
    steps = truth["steps"]
    wins = [step_window(st) for st in steps]
    rows, used = [], set()
    for i, st in enumerate(steps):
        t0, t1 = wins[i]
        lo = wins[i - 1][1] + 500_000 if i > 0 else 0
        hi = wins[i + 1][0] if i + 1 < len(steps) else 1 << 62
        ev = match(events, t0, t1, interval_us)
        if ev:
            used.add(id(ev))
        rc = raw_clock(tr, t0, t1, lo, hi)
        ann = raw_announces(tr, t1)
        row = {"run": truth["name"], "step": st["step"], "kind": st["kind"], "t0": t0, "t1": t1,
               "truth_us": t1 - t0, "event": ev, "raw_clock": rc, "announces": ann,
               "seen": (truth.get("seen") or [None] * len(steps))[i]}
        # When the light (what the page shows) first turned red for it.
        before = [l for t, l in summary["_lights"] if t <= t0]
        if before and before[-1] == "red":
            row["light_was_red"] = True  # still held from the step before
        else:
            reds = [t for t, l in summary["_lights"] if l == "red" and t0 - 500_000 <= t < hi]
            if reds:
                row["light_red_us"] = reds[0]
        if ev:
            # When the loss burst was known: the first reply after it arrived.
            nxt = [s for s in tr["samples"].values() if s[0] >= ev["end_us"] and s[1] is not None]
            if nxt:
                s = min(nxt)
                row["burst_known_us"] = s[0] + s[1]
            if ev["held"]:
                seq = ev["held"].get("seq")
                sent = tr["samples"].get(seq, (None,))[0]
                if sent is not None:
                    row["held_arrival_us"] = sent + ev["held"]["rtt_us"]
        rows.append(row)
    stray = [e for e in events if id(e) not in used and e["level"] == "red"]
    return truth, rows, stray


# ------------------------------------------------------------------ table


def ms(us):
    return us / 1000


def fmt(xs, sign=True, digits=None):
    if not xs:
        return "–"
    if digits is None:
        digits = 1 if max(abs(x) for x in xs) < 10 else 0
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    med = statistics.median(xs)
    if len(xs) == 1:
        return f.format(med)
    return f"{f.format(med)} [{f.format(min(xs))}..{f.format(max(xs))}]"


def within(errs, tol_ms=5):
    return f"{sum(1 for e in errs if abs(e) <= tol_ms)}/{len(errs)}" if errs else "–"


# What each kind of step should be called.
EXPECTED = {"migration": "migrated", "pause": "paused", "link_outage": "path_outage"}


def signal_rows(rows, decoy):
    """(signal, seen, latencies ms, errors ms, note) for one group of steps
    (decoy: path cuts; pauses are judged like migrations but must not be red)."""
    out = []
    n = len(rows)
    pause = bool(rows) and rows[0]["kind"] == "pause"

    def add(name, pairs, seen=None, note=""):
        # pairs: one (latency_ms or None, error_ms or None) per step where the signal was there
        lat = [p[0] for p in pairs if p[0] is not None]
        err = [p[1] for p in pairs if p[1] is not None]
        out.append((name, f"{len(pairs) if seen is None else seen}/{n}", lat, err, note))

    add("loss burst (burst length)", [
        (ms(r["burst_known_us"] - r["t1"]) if "burst_known_us" in r else None,
         ms(r["event"]["end_us"] - r["event"]["start_us"] - r["truth_us"]))
        for r in rows if r["event"]])
    add("held / late reply (its RTT)", [
        (ms(r["held_arrival_us"] - r["t1"]) if "held_arrival_us" in r else None,
         ms(r["event"]["held"]["rtt_us"] - r["truth_us"]))
        for r in rows if r["event"] and r["event"]["held"]])
    add("held reply, raw trace (lab's analysis)", [
        (None, max(h["rtt_ms"] for h in r["seen"]["held"]) - ms(r["truth_us"]))
        for r in rows if r.get("seen") and r["seen"].get("held")])
    add("sawtooth", [(None, None) for r in rows if r["event"] and r["event"]["sawtooth"]])
    add("clock step, detector (−step)", [
        (ms(r["event"]["clock_step"]["after_us"] - r["t1"]) if r["event"]["clock_step"].get("after_us") else None,
         ms(-r["event"]["clock_step"]["step_us"] - r["truth_us"]))
        for r in rows if r["event"] and r["event"]["clock_step"]])
    if decoy:
        steady = [r for r in rows if r["event"] and r["event"]["clock_steady"]]
        add("clock steady, detector (change)", [(None, ms(r["event"]["clock_steady"]["change_us"])) for r in steady])
        # Raw: the offset change across the cut (about 0), as the error column.
        add("clock offset change, raw trace", [
            (ms(r["raw_clock"][3] - r["t1"]), ms(r["raw_clock"][0])) for r in rows if r["raw_clock"]],
            note="change across the cut, not an estimate")
    else:
        add("clock step, raw trace (−step)", [
            (ms(r["raw_clock"][3] - r["t1"]), ms(-r["raw_clock"][0] - r["truth_us"]))
            for r in rows if r["raw_clock"]])
    add("L2 announce, detector", [
        (ms(r["event"]["announce"]["first_us"] - r["t1"]) if r["event"]["announce"].get("first_us") else None, None)
        for r in rows if r["event"] and r["event"]["announce"]])
    add("L2 announce frames, raw trace", [(ms(r["announces"][0]["at_us"] - r["t1"]), None)
                                          for r in rows if r["announces"]])
    reds = [r for r in rows if r["event"] and r["event"]["level"] == "red"]
    want = EXPECTED.get(rows[0]["kind"]) if rows else None
    verdicts = {}
    for r in rows:
        v = (r["event"] or {}).get("verdict") or "no event"
        verdicts[v] = verdicts.get(v, 0) + 1
    add(f"verdict: {want}", [(None, ms(r["event"]["downtime_us"] - r["truth_us"]) if not decoy else None)
                             for r in rows if r["event"] and r["event"].get("verdict") == want],
        note=", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())))
    if decoy or pause:
        add("verdict: red (false red)", [
            (ms(r["event"]["decided_us"] - r["t1"]) if r["event"]["decided_us"] else None, None) for r in reds])
    else:
        srcs = {}
        for r in reds:
            s = r["event"]["source"] or "source not printed"
            srcs[s] = srcs.get(s, 0) + 1
        note = ("estimate from " + ", ".join(f"{k} {v}" for k, v in sorted(srcs.items()))) if srcs else ""
        held = sum(1 for r in rows if r.get("light_was_red"))
        add("light: red (the page, live)", [
            (ms(r["light_red_us"] - r["t1"]), None) for r in rows if r.get("light_red_us")],
            note=f"{held} already red (held from the step before)" if held else "")
        add("verdict: red (detector's downtime)", [
            (ms(r["red_at_us"] - r["t1"]) if r.get("red_at_us") else None,
             ms(r["event"]["downtime_us"] - r["truth_us"])) for r in reds], note=note)
        yel = sum(1 for r in rows if r["event"] and r["event"]["level"] == "yellow")
        out[-1] = out[-1][:4] + ((out[-1][4] + "; " if out[-1][4] else "") + f"yellow {yel}, nothing {n - len(reds) - yel}",)
    return out


def print_table(groups, lines):
    lines.append("| step | n | signal | seen | known after resume / cut end, ms | "
                 "downtime error, ms (estimate − truth) | within 5 ms | note |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for label, rows, decoy in groups:
        if not rows:
            continue
        truth = [ms(r["truth_us"]) for r in rows]
        first = True
        for name, seen, lat, err, note in signal_rows(rows, decoy):
            head = (f"{label} ({fmt(truth, sign=False)})", str(len(rows))) if first else ("", "")
            first = False
            lat_s = fmt(lat) if lat else "–"
            err_s = fmt(err, digits=1) if err else "–"
            w = within(err) if err and not decoy else "–"
            lines.append(f"| {head[0]} | {head[1]} | {name} | {seen} | {lat_s} | {err_s} | {w} | {note} |")


def steps_table(rows, lines):
    lines.append("| run | step | truth ms | detector | burst − truth | held − truth | clock step det. | "
                 "clock step raw − truth | announces (first, ms after) | red after resume, ms |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        e = r["event"]
        tm = ms(r["truth_us"])
        lvl = "green" if not e else e["level"] + (" (" + ", ".join(e["veto"]) + ")" if e["veto"] else "")
        b = f"{ms(e['end_us'] - e['start_us']) - tm:+.1f}" if e else "–"
        h = f"{ms(e['held']['rtt_us']) - tm:+.1f}" if e and e["held"] else "–"
        c = f"{ms(-e['clock_step']['step_us']) - tm:+.1f}" if e and e["clock_step"] else "–"
        if r["raw_clock"]:
            v = ms(r["raw_clock"][0])
            rc = f"{-v - tm:+.2f}" if r["kind"] in ("migration", "pause") else f"change {v:+.2f}"
        else:
            rc = "–"
        a = r["announces"]
        an = (f"{sum(1 for x in a if x['kind'] == 'rarp')} rarp + {sum(1 for x in a if x['kind'] == 'garp')} garp "
              f"(+{ms(a[0]['at_us'] - r['t1']):.0f})") if a else "0"
        red = f"{ms(r['red_at_us'] - r['t1']):+.0f}" if r.get("red_at_us") else "–"
        lines.append(f"| {r['run']} | {r['step']} {({'migration': 'mig', 'pause': 'pause'}).get(r['kind'], 'decoy')} | {tm:.1f} | "
                     f"{lvl} | {b} | {h} | {c} | {rc} | {an} | {red} |")


def collect(d, sidecar, notes):
    bases = [p[: -len(".truth.json")] for p in sorted(glob.glob(os.path.join(d, "*.truth.json")))]
    runs, rows, stray, used = [], [], [], []
    for b in bases:
        if not os.path.exists(b + ".jsonl"):
            continue
        res = analyse_run(b, sidecar)
        if res is None:
            notes.append(f"skipped {os.path.basename(b)}: no clock readings in the trace (recorded before µs clocks)")
            continue
        truth, rr, st = res
        runs.append(truth)
        rows += rr
        stray += [(truth["name"], e) for e in st]
        used.append(b)
    # Red time: decided_us from detect when it prints it, else eval's light.
    if any(r["event"] and r["event"]["level"] == "red" and r["event"]["decided_us"] is None for r in rows):
        reds = red_times_by_eval(sidecar, used)
        notes.append("red latency from `eval` (red hold 1 ms): `detect` prints no decided_us")
        for r in rows:
            if r["kind"] == "migration" and r["event"] and r["event"]["level"] == "red":
                r["red_at_us"] = reds.get((r["run"], r["truth_us"]))
    for r in rows:
        if r["event"] and r["event"]["decided_us"] is not None and r["event"]["level"] == "red":
            r["red_at_us"] = r["event"]["decided_us"]
    return runs, rows, stray


def table_main(a):
    sidecar = a.sidecar or default_sidecar()
    if not sidecar:
        sys.exit("table.py: no migwatch-sidecar (pass --sidecar, or cargo build --release -p migwatch-sidecar)")
    if not (os.path.isfile(sidecar) and os.access(sidecar, os.X_OK)):
        sys.exit(f"table.py: {sidecar} is not an executable file")
    notes = []
    runs, rows, stray = collect(a.dir, sidecar, notes)
    if not rows:
        sys.exit(f"table.py: no lab runs with clock readings in {a.dir}")
    cmd = "python3 lab/table.py"
    if a.sidecar:
        cmd += " --sidecar " + shlex.quote(os.path.relpath(a.sidecar, REPO) if a.sidecar.startswith(REPO) else a.sidecar)
    if os.path.abspath(a.dir) != os.path.join(HERE, "out"):
        cmd += " " + shlex.quote(a.dir)
    migs = [r for r in rows if r["kind"] == "migration"]
    pauses = [r for r in rows if r["kind"] == "pause"]
    decoys = [r for r in rows if r["kind"] not in ("migration", "pause")]
    scen = {}
    for t in runs:
        scen[t["scenario"]] = scen.get(t["scenario"], 0) + 1
    lines = [f"Regenerate: `{cmd}` (over the runs in lab/out, recorded with `sudo lab/run.sh --scenario "
             "idle|mix|quick|decoy|pause|dirty|slow ...`, see lab/README.md)", ""]
    lines.append(f"{len(runs)} lab runs ({', '.join(f'{k} {v}' for k, v in sorted(scen.items()))}), "
                 f"{len(migs)} migrations (STOP→RESUME {fmt([ms(r['truth_us']) for r in migs], sign=False)} ms), "
                 f"{len(pauses)} pauses (STOP→RESUME {fmt([ms(r['truth_us']) for r in pauses], sign=False)} ms), "
                 f"{len(decoys)} decoys (cuts {fmt([ms(r['truth_us']) for r in decoys], sign=False)} ms); "
                 f"detector: `{os.path.relpath(sidecar, REPO) if sidecar.startswith(REPO) else sidecar} detect`. "
                 "Medians [min..max].")
    lines.append("")
    groups = [(label, [r for r in migs if lo <= ms(r["truth_us"]) < hi], False) for lo, hi, label in BUCKETS]
    groups.append(("all migrations", migs, False))
    groups.append(("pause in place (QMP stop/cont)", pauses, False))
    groups.append(("decoy (monitor path cut)", decoys, True))
    print_table(groups, lines)
    lines.append("")
    lines.append(f"Reds outside any step: {len(stray)}" + (" (" + ", ".join(
        f"{n} at {e['start_us']}" for n, e in stray) + ")" if stray else "") + ".")
    lines.append("")
    lines.append("* **seen**: steps where the signal was there (detector rows: in the event matched to the step, "
                 "whose loss burst overlaps STOP→RESUME or the cut; raw rows: straight from the trace). "
                 "On decoys every signal but the loss burst is a false one.")
    lines.append("* **known after**: when the signal could be known, from the RESUME (decoys: the cut's end): "
                 "loss burst, the first reply after it arrives; held reply, its arrival; clock step, the "
                 "confirming reading's send time (raw: the first good reading's arrival); announce, the first "
                 "frame; verdict, when the event turned red.")
    lines.append("* **downtime error**: loss burst = first lost probe's send to the next answered one's; held "
                 "reply = its RTT; clock step = −step (the offset change of the guest's clock); verdict = the "
                 "detector's `downtime_ms`. Raw clock step: median offset of good readings (RTT ≤ max(1 ms, "
                 "2 × median)) from 3 s before the stop vs 3 s after the resume. On decoys the raw row shows "
                 "the offset change across the cut (0 = the guest's clock ran on).")
    for n in notes:
        lines.append(f"* {n}")
    if a.steps:
        lines.append("")
        steps_table(rows, lines)
    print("\n".join(lines))
    return 0


# ------------------------------------------------------------------ check


def quick_check(base, sidecar, out=print):
    """The quick lab's CI assertions on one recorded run. Prints one
    PASS/FAIL line per assertion; returns True if all passed."""
    truth = json.load(open(base + ".truth.json"))
    tr = load_trace(base + ".jsonl")
    results = []

    def res(ok, what):
        results.append(ok)
        out(f"{'PASS' if ok else 'FAIL'}: {what}")

    try:
        events, summary = run_detect(sidecar, base + ".jsonl")
    except (RuntimeError, OSError, ValueError) as e:
        res(False, f"detect runs on the trace ({e})")
        return False
    interval_us = round(((summary or {}).get("interval_ms") or 10) * 1000)
    steps = truth["steps"]
    migs = [s for s in steps if s["kind"] == "migration"]
    pauses = [s for s in steps if s["kind"] == "pause"]
    res(len(migs) >= 1 and len(migs) < len(steps),
        f"the run has migrations and other steps ({len(migs)} migration(s), {len(pauses)} pause(s), "
        f"{len(steps) - len(migs) - len(pauses)} decoy(s))")
    res(bool(tr["clocks"]), f"the trace has clock readings ({len(tr['clocks'])})")
    res(summary.get("announce_channel") is True,
        "the announce channel is live for detect (the trace's info record names a capture_iface)")
    wins = [step_window(st) for st in steps]
    # Nothing lights up before the first step: no yellow from slow first
    # clock readings (a cold ARP cache). The provisional "possible
    # migration in progress" yellow of a silence that ended without loss
    # (the TCG guest stalls for 30-50 ms when the machine is busy) is not
    # evidence and clears within 100 ms: eval counts such yellows apart
    # (transient yellows), and so does this check.
    early, transient = [], 0
    for (t, l), why in zip(summary["_lights"], summary["_lights_why"]):
        if t < wins[0][0] - 1_000_000 and l != "green":
            if l == "yellow" and why == "silence":
                transient += 1
            else:
                early.append((t, l, why))
    res(not early, "no light before the first step" + (f": {early[0][1]} ({early[0][2]}) at {early[0][0]}"
                                                       if early else "")
        + (f" (besides {transient} provisional silence yellow(s) of guest stalls)" if transient else ""))
    for i, st in enumerate(steps):
        t0, t1 = wins[i]
        tm = ms(t1 - t0)
        ev = match(events, t0, t1, interval_us)
        desc = "nothing" if not ev else f"{ev['level']}, {ev['probes']} probes lost, downtime {ms(ev['downtime_us']):.1f} ms"
        verdict = (ev or {}).get("verdict") or "no event"
        if st["kind"] == "pause":
            name = f"step {st['step']} pause ({tm:.1f} ms STOP->RESUME)"
            res(bool(ev) and ev["level"] != "red" and verdict == "paused",
                f"{name} verdict paused, not red: {desc}, {verdict}")
            est = ev["downtime_us"] if ev else None
            res(est is not None and abs(est - (t1 - t0)) <= CHECK_TOL_US,
                f"{name} length within {ms(CHECK_TOL_US):.0f} ms: "
                + (f"{ms(est):.1f} ms ({ms(est) - tm:+.1f})" if est is not None else "no event"))
        elif st["kind"] == "migration":
            name = f"step {st['step']} migration ({tm:.1f} ms STOP->RESUME)"
            res(bool(ev) and ev["level"] == "red" and verdict == "migrated",
                f"{name} detected red, verdict migrated: {desc}, {verdict}")
            est = None
            if ev and ev["clock_step"]:
                est = -ev["clock_step"]["step_us"]
            elif ev and ev["source"] == "clock_step":
                est = ev["downtime_us"]
            rc = raw_clock(tr, t0, t1, wins[i - 1][1] + 500_000 if i else 0,
                           wins[i + 1][0] if i + 1 < len(wins) else 1 << 62)
            raw = f"; raw trace step {ms(-rc[0]):.1f} ms ({ms(-rc[0]) - tm:+.1f})" if rc else "; no raw clock step"
            if est is None:
                res(False, f"{name} clock-step downtime within {ms(CHECK_TOL_US):.0f} ms: "
                           f"no clock step in the detector's evidence{raw}")
            else:
                # The guest stood still longer than STOP->RESUME by however
                # long QEMU took around its stamps (a busy machine): up to
                # the slack our records bound that by.
                b, a = qemu_slack_us(st)
                slack = (b or 0) + (a or 0)
                err = est - (t1 - t0)
                res(-CHECK_TOL_US <= err <= CHECK_TOL_US + slack,
                    f"{name} clock-step downtime within {ms(CHECK_TOL_US):.0f} ms: {ms(est):.1f} ms "
                    f"({ms(est) - tm:+.1f}" + (f"; QEMU's stamps may lie {ms(slack):.1f} ms inside the stop"
                                                if slack else "") + f"){raw}")
            ann = raw_announces(tr, t1)
            kinds = f"{sum(1 for x in ann if x['kind'] == 'rarp')} rarp + {sum(1 for x in ann if x['kind'] == 'garp')} garp"
            res(bool(ann), f"{name} announces seen: {kinds} within 2 s of RESUME"
                + (f", first +{ms(ann[0]['at_us'] - t1):.1f} ms" if ann else ""))
        else:
            name = f"step {st['step']} decoy ({tm:.0f} ms cut)"
            res(not ev or ev["level"] != "red", f"{name} not red: {desc}")
            res(verdict == "path_outage", f"{name} verdict path_outage: {verdict}")
    ok = all(results)
    out(f"lab check {'PASS' if ok else 'FAIL'}: {sum(results)}/{len(results)} assertions passed "
        f"({os.path.basename(base)})")
    return ok


def main():
    p = argparse.ArgumentParser(prog="lab/table.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", nargs="?", default=os.path.join(HERE, "out"), help="folder of lab runs (default lab/out)")
    p.add_argument("--sidecar", help="migwatch-sidecar binary for detect (default target/release, else target/debug)")
    p.add_argument("--steps", action="store_true", help="also print one row per step")
    p.add_argument("--check", metavar="RUN", help="run the quick lab's assertions on lab/out/RUN (a path without "
                   "extension, or any of its files) and exit 1 if one fails")
    a = p.parse_args()
    if a.check:
        sidecar = a.sidecar or default_sidecar()
        if not sidecar:
            sys.exit("table.py: no migwatch-sidecar (pass --sidecar)")
        base = a.check
        for ext in (".truth.json", ".labels.json", ".detect.jsonl", ".jsonl"):
            if base.endswith(ext):
                base = base[: -len(ext)]
                break
        return 0 if quick_check(base, sidecar) else 1
    return table_main(a)


if __name__ == "__main__":
    sys.exit(main())
