#!/usr/bin/env python3
"""Checks the structure of migwatch's Grafana dashboard without Grafana.

    deploy/grafana/check_dashboard.py [DASHBOARD.json] [--metrics FILE] [--promtool PATH]

* the JSON parses, with a title, a uid and a schemaVersion;
* panel ids are unique positive integers; each panel's gridPos is inside the
  24-column grid and no two panels overlap;
* every panel (except rows) has a Prometheus datasource and at least one
  target, each with a unique refId and a PromQL `expr`;
* every metric a query names is one the sidecar exports: the built-in list
  below (docs/PROTOCOL.md and the brief), or, with `--metrics FILE`, the
  names in a real `/metrics` exposition;
* the annotations include one built from migwatch_migrations_total;
* every template variable a query uses is defined;
* with promtool (on PATH, or `--promtool`), every expression parses: each
  is written into a throwaway rules file, with Grafana's variables replaced
  by sample values, and checked by `promtool check rules`.

Exits 0 when all hold, else 1 after printing every problem, each naming the
panel (id and title) or annotation it is in.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

# Every metric family the sidecar exports (histograms: the family name).
SIDECAR_METRICS = {
    "migwatch_probes_sent_total",
    "migwatch_replies_total",
    "migwatch_lost_total",
    "migwatch_late_total",
    "migwatch_duplicate_total",
    "migwatch_clock_probes_sent_total",
    "migwatch_clock_replies_total",
    "migwatch_probe_send_errors_total",
    "migwatch_foreign_packets_total",
    "migwatch_skipped_total",
    "migwatch_receive_errors_total",
    "migwatch_dropped_events_total",
    "migwatch_overflow_disconnects_total",
    "migwatch_clients",
    "migwatch_targets",
    "migwatch_reload_errors_total",
    "migwatch_rtt_seconds",
    "migwatch_send_lateness_seconds",
    "migwatch_build_info",
    "migwatch_migrations_total",
    "migwatch_outages_total",
    "migwatch_last_migration_timestamp_seconds",
    "migwatch_last_migration_downtime_seconds",
    "migwatch_migration_downtime_seconds",
    "migwatch_light",
    "migwatch_target_info",
}
# Series Prometheus itself writes for every scrape.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

PROMQL_WORDS = {
    # aggregations and their modifiers
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
    "count_values", "bottomk", "topk", "quantile", "by", "without",
    # binary operators and vector matching
    "and", "or", "unless", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "atan2",
}
# Only functions the dashboard may reasonably use; anything else is a typo.
PROMQL_FUNCTIONS = {
    "rate", "irate", "increase", "delta", "idelta", "changes", "resets",
    "histogram_quantile", "round", "abs", "ceil", "floor", "clamp_min",
    "clamp_max", "clamp", "time", "timestamp", "vector", "scalar",
    "label_replace", "label_join", "last_over_time", "max_over_time",
    "min_over_time", "avg_over_time", "sum_over_time", "count_over_time",
    "sort", "sort_desc", "absent", "deriv", "predict_linear",
}

# Sample values for Grafana's variables, so that promtool can parse.
GRAFANA_VARS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "6h",
    "__range_s": "21600",
}

GRID_COLUMNS = 24


def metric_names(expr):
    """The metric names an expression selects (functions, keywords,
    label names and strings left out)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges
    # label lists after by/without/on/ignoring/group_left/group_right
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", "", e)  # Grafana variables
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if word in PROMQL_WORDS:
            continue
        if rest.startswith("("):
            names.add(("function", word))
        else:
            names.add(("metric", word))
    # A number like 1e3 or 0.5 starts with a digit and never matches;
    # the exponent-free inf/nan are PromQL literals.
    return {n for n in names if n[1].lower() not in ("inf", "nan")}


def known_metric(name, families):
    if name in families or name in PROMETHEUS_SERIES:
        return True
    return any(name.endswith(s) and name[: -len(s)] in families for s in HISTOGRAM_SUFFIXES)


def families_from_exposition(path):
    """Metric family names from a Prometheus text exposition."""
    fams = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("# TYPE "):
                parts = line.split()
                if len(parts) >= 3:
                    fams.add(parts[2])
    return fams


def overlaps(a, b):
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def check(dash, families):
    """Returns (problems, expressions): every problem found, and every
    PromQL expression with where it came from."""
    problems = []
    exprs = []
    for key in ("title", "uid", "schemaVersion", "panels"):
        if key not in dash:
            problems.append(f"top level: no {key!r}")
    variables = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
    if "datasource" not in variables:
        problems.append("templating: no 'datasource' variable (panels use ${datasource})")

    def check_expr(where, expr):
        exprs.append((where, expr))
        for kind, name in sorted(metric_names(expr)):
            if kind == "function" and name not in PROMQL_FUNCTIONS:
                problems.append(f"{where}: unknown function {name!r} in {expr!r}")
            if kind == "metric" and not known_metric(name, families):
                problems.append(f"{where}: metric {name!r} is not exported by the sidecar ({expr!r})")
        for var in re.findall(r"\$\{?(\w+)", expr):
            if var not in variables and var not in GRAFANA_VARS:
                problems.append(f"{where}: undefined variable ${var} in {expr!r}")

    seen_ids = {}
    rects = []
    panels = dash.get("panels", [])
    if not panels:
        problems.append("top level: no panels")
    for i, p in enumerate(panels):
        pid = p.get("id")
        where = f"panel {pid} ({p.get('title', f'#{i}')!r})"
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            problems.append(f"{where}: id must be a positive integer")
        elif pid in seen_ids:
            problems.append(f"{where}: id also used by panel {seen_ids[pid]!r}")
        else:
            seen_ids[pid] = p.get("title")
        if not p.get("type"):
            problems.append(f"{where}: no type")
        if not p.get("title"):
            problems.append(f"{where}: no title")
        g = p.get("gridPos")
        if not isinstance(g, dict) or not all(isinstance(g.get(k), int) for k in "xywh"):
            problems.append(f"{where}: gridPos needs integer x, y, w, h (got {g!r})")
        else:
            if g["x"] < 0 or g["y"] < 0 or g["w"] < 1 or g["h"] < 1 or g["x"] + g["w"] > GRID_COLUMNS:
                problems.append(f"{where}: gridPos {g} is outside the {GRID_COLUMNS}-column grid")
            for other_where, other in rects:
                if overlaps(g, other):
                    problems.append(f"{where}: gridPos {g} overlaps {other_where} {other}")
            rects.append((where, g))
        if p.get("type") == "row":
            continue
        ds = p.get("datasource")
        if not isinstance(ds, dict) or ds.get("type") != "prometheus" or not ds.get("uid"):
            problems.append(f"{where}: datasource must be a Prometheus one with a uid (got {ds!r})")
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{where}: no targets")
        refs = set()
        for t in targets:
            ref = t.get("refId")
            if not ref or ref in refs:
                problems.append(f"{where}: missing or repeated refId {ref!r}")
            refs.add(ref)
            expr = t.get("expr", "")
            if not expr.strip():
                problems.append(f"{where} target {ref}: no expr")
                continue
            check_expr(f"{where} target {ref}", expr)

    anns = dash.get("annotations", {}).get("list", [])
    prom_anns = [a for a in anns if a.get("expr")]
    if not any("migwatch_migrations_total" in a["expr"] for a in prom_anns):
        problems.append("annotations: none is built from migwatch_migrations_total")
    for a in prom_anns:
        where = f"annotation {a.get('name')!r}"
        ds = a.get("datasource")
        if not isinstance(ds, dict) or ds.get("type") != "prometheus":
            problems.append(f"{where}: datasource must be a Prometheus one (got {ds!r})")
        if not a.get("titleFormat"):
            problems.append(f"{where}: no titleFormat")
        check_expr(where, a["expr"])
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query", "")
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q or "")
        if m:
            check_expr(f"variable {v.get('name')!r}", m.group(1))
    return problems, exprs


def promtool_parse(promtool, exprs):
    """Runs every expression through promtool's parser."""
    def sub(expr):
        for k, v in GRAFANA_VARS.items():
            expr = expr.replace("${" + k + "}", v).replace("$" + k, v)
        return re.sub(r"\$\{?(\w+)\}?", lambda m: "migwatch" if m.group(1) == "job" else ".+", expr)

    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr{i}", "expr": sub(e)} for i, (_, e) in enumerate(exprs)]}]}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "dashboard-exprs.yml")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(rules, f)  # JSON is YAML
        r = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    if r.returncode != 0:
        out = (r.stdout + r.stderr).strip()
        # promtool names the rule by index: map it back.
        for i, (where, e) in enumerate(exprs):
            out = out.replace(f"dashboard:expr{i}", f"{where}: {e!r}")
        return [f"promtool cannot parse an expression: {out}"]
    return []


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "migwatch-dashboard.json")
    metrics_file = None
    promtool = shutil.which("promtool")
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--metrics" and args:
            metrics_file = args.pop(0)
        elif a == "--promtool" and args:
            promtool = args.pop(0)
        elif a.startswith("-"):
            print(f"check_dashboard: unknown flag {a!r}\n{__doc__}", file=sys.stderr)
            return 2
        else:
            path = a
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"check_dashboard: {path}: {e}", file=sys.stderr)
        return 1
    families = SIDECAR_METRICS
    if metrics_file:
        families = families_from_exposition(metrics_file)
        if not families:
            print(f"check_dashboard: {metrics_file}: no '# TYPE' lines", file=sys.stderr)
            return 1
    problems, exprs = check(dash, families)
    if promtool:
        problems += promtool_parse(promtool, exprs)
    else:
        print("check_dashboard: promtool not found, expressions not parsed", file=sys.stderr)
    for p in problems:
        print(f"{path}: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"check_dashboard: {path}: {len(dash['panels'])} panels, {len(exprs)} expressions ok"
          + (f" (metrics from {metrics_file})" if metrics_file else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
