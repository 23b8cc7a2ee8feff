#!/usr/bin/env python3
"""Sums up lab runs: lab/summary.py [DIR] (default lab/out).

Reads every NAME.truth.json the lab wrote and prints, per kind of step,
how long things took and how the sidecar's loss burst compares with the
ground truth (STOP->RESUME, or the length of the cut).
"""

import glob
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def fmt(xs, unit=""):
    if not xs:
        return "-"
    return f"{statistics.median(xs):.0f}{unit} [{min(xs):.0f}..{max(xs):.0f}]"


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "out")
    runs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(d, "*.truth.json")))]
    if not runs:
        sys.exit(f"no *.truth.json in {d}")
    boots = [r["timings"]["boot_s"] for r in runs]
    problems = [(r["name"], p) for r in runs for p in r.get("problems", [])]
    print(f"{len(runs)} runs; guest boot {statistics.median(boots):.1f} s median "
          f"[{min(boots):.1f}..{max(boots):.1f}]; runs with problems: {len({n for n, _ in problems})}")
    for n, p in problems:
        print(f"  {n}: {p}")
    groups = {}
    for r in runs:
        for st, seen in zip(r["steps"], r["seen"]):
            if st["kind"] == "migration":
                key = f"migration, dirty {st['dirty_mib']} MiB, " + (
                    f"{st['rate_mbit']} Mbit/s" if st["rate_mbit"] else "unshaped") + f", limit {st['downtime_limit_ms']} ms"
            else:
                key = "decoy (monitor path cut)"
            groups.setdefault(key, []).append((r, st, seen))
    print()
    print("| step | n | truth ms (STOP->RESUME or cut) | QEMU downtime ms | migration total s "
          "| sidecar burst ms | burst - truth ms | held replies | detector |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key, items in sorted(groups.items()):
        truth = [s["truth_ms"] for _, _, s in items]
        qd = [st["qemu_downtime_ms"] for _, st, _ in items if st["kind"] == "migration"]
        tot = [st["total_time_ms"] / 1000 for _, st, _ in items if st["kind"] == "migration"]
        burst = [s["burst_ms"] for _, _, s in items if "burst_ms" in s]
        err = [s["burst_ms"] - s["truth_ms"] for _, _, s in items if "burst_ms" in s]
        held = sum(1 for _, _, s in items if s["held"])
        levels = {}
        for _, _, s in items:
            hits = s.get("detected")
            lvl = "none" if hits is None else (max((h["level"] for h in hits), key=["green", "yellow", "red"].index)
                                               if hits else "green")
            levels[lvl] = levels.get(lvl, 0) + 1
        tot_s = f"{statistics.median(tot):.1f} [{min(tot):.1f}..{max(tot):.1f}]" if tot else "-"
        lv = ", ".join(f"{k} {v}" for k, v in sorted(levels.items()))
        print(f"| {key} | {len(items)} | {fmt(truth)} | {fmt(qd)} | {tot_s} | {fmt(burst)} "
              f"| {statistics.median(err):+.0f} [{min(err):+.0f}..{max(err):+.0f}] | {held}/{len(items)} | {lv} |"
              if err else f"| {key} | {len(items)} | {fmt(truth)} | {fmt(qd)} | {tot_s} | - | - | {held}/{len(items)} | {lv} |")


if __name__ == "__main__":
    main()
