"""What a lab run recorded, step by step: the ground truth from QMP (or the
cut) against what the sidecar streamed, `migwatch-sidecar detect` on the
trace, the labels file for `eval`, the printed report and the lab's own
invariants. Imported by lab/lab.py.
"""

import json
import statistics
import subprocess

import table as sigtable  # lab/table.py


class AnalysisError(RuntimeError):
    """The run recorded nothing to analyse."""




def analyse(lab):
    """Compares each step's ground truth with what the sidecar streamed."""
    evs = lab.recorder.events
    samples, late = {}, {}
    for e in evs:
        if e["type"] == "sample":
            samples[e["seq"]] = (e["sent_us"], e["rtt_us"])
        elif e["type"] == "late":
            late[e["seq"]] = e["rtt_us"]
    seqs = sorted(samples)
    if not seqs:
        raise AnalysisError("the sidecar streamed no samples")
    rtts = [r for _, r in samples.values() if r is not None]
    base = int(statistics.median(rtts)) if rtts else 0
    interval_us = round(lab.info["interval_ms"] * 1000)
    # Runs of consecutive lost probes.
    runs, cur = [], None
    for q in seqs:
        if samples[q][1] is None:
            cur = [q, q] if cur is None else [cur[0], q]
        elif cur:
            runs.append(cur)
            cur = None
    if cur:
        runs.append(cur)
    tr = sigtable.trace_from_events(evs)
    wins = [sigtable.step_window(st) for st in lab.steps]
    out = []
    for i, st in enumerate(lab.steps):
        t0, t1 = wins[i]
        mine = [r for r in runs if samples[r[1]][0] >= t0 - 2 * interval_us - base
                and samples[r[0]][0] <= t1 + 50_000]
        a = {"step": st["step"], "kind": st["kind"], "truth_ms": (t1 - t0) / 1000}
        if st["kind"] == "migration":
            a["qemu_downtime_ms"] = st["qemu_downtime_ms"]
        if mine:
            first, last = mine[0][0], mine[-1][1]
            after = next((q for q in seqs if q > last), None)
            a["first_lost_seq"], a["last_lost_seq"] = first, last
            a["lost"] = sum(1 for q in range(first, last + 1) if q in samples and samples[q][1] is None)
            a["lost_start_us"] = samples[first][0]
            if after is not None:
                a["lost_end_us"] = samples[after][0]
                a["burst_ms"] = (samples[after][0] - samples[first][0]) / 1000
                if samples[after][1] is not None:
                    a["gap_end_us"] = samples[after][0] + samples[after][1]
            a["first_missed_us"] = samples[first][0] + base
        else:
            a["lost"] = 0
        # Replies held across the stop: sent before it, answered after it.
        held = []
        for q in seqs:
            sent, rtt = samples[q]
            if sent > t1:
                break
            if sent < t0 - 2_000_000:
                continue
            r = rtt if rtt is not None else late.get(q)
            if r is not None and sent < t0 + interval_us and sent + r > t1 - 5_000 and r > 5 * base + 2000:
                held.append({"seq": q, "rtt_ms": r / 1000, "late": rtt is None})
        a["held"] = held
        window = [samples[q][1] for q in seqs if t0 - 100_000 <= samples[q][0] <= t1 + 1_000_000
                  and samples[q][1] is not None]
        a["max_rtt_ms"] = max(window) / 1000 if window else None
        # The guest answers again afterwards (from 1 s after the step on).
        until = t1 + max(2.0, lab.args.settle) * 1e6
        a["answers_after"] = sum(1 for q in seqs if t1 + 1_000_000 <= samples[q][0] <= until
                                 and samples[q][1] is not None)
        # The guest's clock across the step (median offsets of good readings
        # before and after; lab/table.py) and the announces after it.
        rc = sigtable.raw_clock(tr, t0, t1, wins[i - 1][1] + 500_000 if i else 0,
                                wins[i + 1][0] if i + 1 < len(wins) else 1 << 62)
        a["clock_step_ms"] = rc[0] / 1000 if rc else None
        ann = sigtable.raw_announces(tr, t1)
        a["announces"] = {"rarp": sum(1 for x in ann if x["kind"] == "rarp"),
                          "garp": sum(1 for x in ann if x["kind"] == "garp"),
                          "first_ms": (ann[0]["at_us"] - t1) / 1000 if ann else None}
        out.append(a)
    return out, base, interval_us


def run_detect(lab):
    """`migwatch-sidecar detect` on the trace: the detector's verdicts."""
    p = subprocess.run([lab.sidecar_path, "detect", lab.base + ".jsonl"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    with open(lab.base + ".detect.jsonl", "w") as f:
        f.write(p.stdout)
    if p.returncode != 0:
        return None, p.stderr.strip()
    found = []
    for line in p.stdout.splitlines():
        o = json.loads(line)
        if "summary" not in o:
            found.append(o)
    return found, None


def write_labels(lab, analysis, base, interval_us):
    evs = lab.recorder.events
    times = [e["sent_us"] for e in evs if e["type"] == "sample"]
    events = []
    for st, a in zip(lab.steps, analysis):
        if st["kind"] == "migration":
            t = {"kind": "migration", "start_us": st["start_us"], "end_us": st["resume_us"],
                 "downtime_us": st["downtime_us"]}
            for k in ("first_lost_seq", "last_lost_seq", "lost_start_us", "lost_end_us",
                      "first_missed_us", "gap_end_us"):
                if k in a:
                    t[k] = a[k]
            t["held"] = bool(a["held"])
            t["loaded"] = st["dirty_mib"] > 0
        elif st["kind"] == "pause":
            t = {"kind": "pause", "start_us": st["stop_us"], "end_us": st["resume_us"],
                 "downtime_us": st["downtime_us"]}
        else:
            t = {"kind": "link_outage", "start_us": st["start_us"], "end_us": st["end_us"]}
        events.append(t)
    labels = {"name": lab.name, "seed": 0, "interval_us": interval_us,
              "timeout_us": round(lab.info["timeout_ms"] * 1000),
              "base_rtt_us": base, "start_us": min(times), "end_us": max(times), "events": events}
    with open(lab.base + ".labels.json", "w") as f:
        json.dump(labels, f, indent=1)


def report(lab, analysis, found, detect_err):
    rows = []
    hdr = (f"{'step':<5}{'what':<14}{'truth ms':>10}{'qemu ms':>9} | {'lost':>5}{'burst ms':>10}"
           f"{'held reply':>12}{'max rtt':>9}{'clock ms':>10}{'announces':>11} | detector")
    rows.append(hdr)
    rows.append("-" * len(hdr))
    for st, a in zip(lab.steps, analysis):
        ring = f" q{st['ring']}" if st.get("ring") else ""
        what = {"migration": f"mig {st.get('from')}->{st.get('to')}", "pause": f"pause {st.get('vm')}{ring}"}.get(
            st["kind"], "decoy cut")
        if a["held"]:
            h = max(a["held"], key=lambda h: h["rtt_ms"])
            held = f"{len(a['held'])}x<={h['rtt_ms']:.0f}{'L' if h['late'] else ''}"
        else:
            held = "-"
        if found is None:
            verdict = "detect failed"
        else:
            t0 = (st.get("stop_us") or st["start_us"]) / 1e6
            t1 = (st.get("resume_us") or st["end_us"]) / 1e6
            # A detected event that starts between 1 s before the stop (or
            # cut) and 1 s after its end.
            hits = [f for f in found if t0 - 1 <= f["start_s"] <= t1 + 1]
            verdict = ", ".join(f"{h['level']} {h.get('verdict', '')} {h['downtime_ms']:.0f} ms"
                                for h in hits) or "green (nothing)"
            a["detected"] = hits
        qd = f"{st['qemu_downtime_ms']}" if st["kind"] == "migration" else "-"
        burst = f"{a['burst_ms']:.0f}" if "burst_ms" in a else "-"
        mx = f"{a['max_rtt_ms']:.0f}" if a["max_rtt_ms"] is not None else "-"
        ck = f"{a['clock_step_ms']:+.1f}" if a.get("clock_step_ms") is not None else "-"
        an = a.get("announces") or {}
        ann = f"{an['rarp']}R+{an['garp']}G" if an.get("first_ms") is not None else "-"
        rows.append(f"{st['step']:<5}{what:<14}{a['truth_ms']:>10.1f}{qd:>9} | {a['lost']:>5}{burst:>10}"
                    f"{held:>12}{mx:>9}{ck:>10}{ann:>11} | {verdict}")
    if detect_err:
        rows.append(f"(detect: {detect_err})")
    return "\n".join(rows)


def check(lab, analysis):
    """Lab-level invariants (not the detector's quality): what --check asserts."""
    problems = list(lab.serial_problems)
    for st, a in zip(lab.steps, analysis):
        if a["answers_after"] < 10:
            problems.append(f"step {st['step']}: the guest hardly answers after it ({a['answers_after']} replies)")
        # (A pause may lose nothing: its requests wait in the guest's queue.)
        if a["truth_ms"] >= 50 and a["lost"] == 0 and not a["held"] and st["kind"] != "pause":
            problems.append(f"step {st['step']}: {a['truth_ms']:.0f} ms down but the sidecar saw no loss")
    if lab.recorder.error:
        problems.append(f"recorder: {lab.recorder.error}")
    return problems
