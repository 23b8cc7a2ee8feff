"""Per-stop figures of lab runs: the detector's downtime against QMP's
STOP->RESUME, with what bounds the truth and the load each stop ran under.

    python3 lab/stops.py RUN_BASE_OR_DIR ...   (RUN_BASE: lab/out/lab-quick-..., without extension)

For each migration and pause: STOP->RESUME (QMP's stamps), the guest clock's
raw step across it (lab/table.py's median offsets), the detector's downtime
and where it came from (`detect` on the trace), and the error of each
against STOP->RESUME. QEMU stops the guest's clock before it stamps STOP
and starts it after it stamps RESUME, so the guest stood still for at least
STOP->RESUME, and at most: for a pause, from our `stop` going out to the
answer to our `cont`; for a migration, from the source's last
MIGRATION_PASS before STOP (its last dirty-bitmap sync, before it decides
to stop) to the destination's MIGRATION completed (sent after its clock
restarted). The table shows each side's slack.
"""

import glob
import json
import os
import sys

import table as sigtable  # lab/table.py


def runs(args):
    for a in args:
        if os.path.isdir(a):
            for t in sorted(glob.glob(os.path.join(a, "*.truth.json"))):
                yield t[: -len(".truth.json")]
        else:
            yield a[: -len(".truth.json")] if a.endswith(".truth.json") else a


def rows(base):
    truth = json.load(open(base + ".truth.json"))
    found = []
    if os.path.exists(base + ".detect.jsonl"):
        for line in open(base + ".detect.jsonl"):
            o = json.loads(line)
            if "summary" not in o:
                found.append(o)
    for st, seen in zip(truth["steps"], truth["seen"]):
        if st["kind"] not in ("migration", "pause"):
            continue
        t0, t1 = st["stop_us"] / 1e6, st["resume_us"] / 1e6
        hits = [f for f in found if t0 - 1 <= f["start_s"] <= t1 + 1]
        det = max(hits, key=lambda f: f["downtime_ms"]) if hits else None
        truth_ms = st["downtime_us"] / 1000
        clock = seen.get("clock_step_ms")
        # How far each stamp can lie inside the stop (lab/table.py).
        b, a = sigtable.qemu_slack_us(st)
        stop_slack = None if b is None else b / 1000
        resume_slack = None if a is None else a / 1000
        ann = (seen.get("announces") or {}).get("first_ms")
        yield {
            "run": os.path.basename(base),
            "step": st["step"],
            "kind": st["kind"],
            "truth_ms": truth_ms,
            "clock_err_ms": None if clock is None else -clock - truth_ms,
            "det_ms": det["downtime_ms"] if det else None,
            "det_from": det.get("downtime_from") if det else None,
            "verdict": f"{det['level']} {det.get('verdict')}" if det else "none",
            "det_err_ms": det["downtime_ms"] - truth_ms if det else None,
            "load1": (st.get("loadavg") or [None])[0],
            "stop_slack": stop_slack,
            "resume_slack": resume_slack,
            "announce_ms": ann,
            "nice": truth.get("nice"),
        }


def main(argv):
    all_rows = [r for b in runs(argv or ["lab/out"]) for r in rows(b)]
    f = lambda x, fmt: "-" if x is None else format(x, fmt)  # noqa: E731
    print("| run | step | kind | STOP→RESUME ms | clock stopped ≤ ms before STOP | clock restarted ≤ ms after RESUME "
          "| first announce after RESUME ms | raw clock − truth ms | detector ms (from) | verdict "
          "| detector − truth ms | load (1 min) | nice |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in all_rows:
        print(f"| {r['run']} | {r['step']} | {r['kind']} | {r['truth_ms']:.1f} | {f(r['stop_slack'], '.1f')} "
              f"| {f(r['resume_slack'], '.1f')} | {f(r['announce_ms'], '+.1f')} "
              f"| {f(r['clock_err_ms'], '+.1f')} | {f(r['det_ms'], '.1f')} ({r['det_from'] or '-'}) | {r['verdict']} "
              f"| {f(r['det_err_ms'], '+.1f')} | {f(r['load1'], '.1f')} | {f(r['nice'], 'd')} |")
    errs = [abs(r["det_err_ms"]) for r in all_rows if r["det_err_ms"] is not None]
    ok = sum(1 for e in errs if e <= 1.5)
    print(f"\n{ok} of {len(all_rows)} stops with the detector's downtime within 1.5 ms of STOP->RESUME")
    inb = sum(1 for r in all_rows if r["det_err_ms"] is not None
              and -1.5 <= r["det_err_ms"] <= (r["stop_slack"] or 0) + (r["resume_slack"] or 0) + 1.5)
    print(f"{inb} of {len(all_rows)} within 1.5 ms of the time the guest stood still as QMP bounds it "
          "(STOP->RESUME up to STOP->RESUME + both slacks)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
