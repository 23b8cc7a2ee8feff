"""Real Prometheus and Alertmanager for the lab's alerting check
(lab/alerts.py): each a child process on a free 127.0.0.1 port with its own
config and data folder, loaded with the shipped deploy/ files (as
tests/promstack.rs does for the Rust end-to-end test), a webhook receiver
that records every notification, and every child stopped by PID.
Python 3 standard library only.
"""

import calendar
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = os.path.join(REPO, "deploy/prometheus/migwatch-rules.yml")
AM_CONFIG = os.path.join(REPO, "deploy/alertmanager/alertmanager.yml")
# The webhook URL in the shipped Alertmanager config, replaced by the
# receiver's (tests/promstack.rs replaces the same one).
SHIPPED_WEBHOOK_URL = "http://127.0.0.1:9095/migwatch"
# At most this many webhook notifications are kept (a run sees a handful),
# each at most this large.
MAX_NOTIFICATIONS = 1000
MAX_BODY = 1 << 20


def log(msg):
    print(f"[alerts {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class CheckError(RuntimeError):
    """Something this check needs could not be set up or read."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


class Webhook:
    """Alertmanager's webhook receiver: records every POST (arrival time,
    path, JSON body) on a free loopback port."""

    def __init__(self):
        self.got = []
        self.errors = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                at = time.time()
                try:
                    n = int(self.headers.get("Content-Length", "0"))
                    if not 0 <= n <= MAX_BODY:
                        raise ValueError(f"Content-Length {n} out of range")
                    body = json.loads(self.rfile.read(n))
                except ValueError as e:
                    with hook.lock:
                        hook.errors.append(f"POST {self.path}: {e}")
                    self.send_response(400)
                    self.end_headers()
                    return
                with hook.lock:
                    if len(hook.got) < MAX_NOTIFICATIONS:
                        hook.got.append({"at": at, "path": self.path, "body": body})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/migwatch"
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def notifications(self):
        with self.lock:
            return list(self.got)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class Procs:
    """Every process this check starts, stopped by PID (newest first)."""

    def __init__(self):
        self.items = []  # (Popen, name, how): how = "term" or "lab"

    def start(self, name, cmd, log_path=None, how="term", **kw):
        out = open(log_path, "w") if log_path else subprocess.DEVNULL
        try:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=kw.pop("stdout", out),
                                 stderr=kw.pop("stderr", subprocess.STDOUT), start_new_session=True, **kw)
        except FileNotFoundError as e:
            raise CheckError(f"cannot start {name}: {e} (scripts/check-deploy.sh installs Prometheus "
                             "and Alertmanager from Debian)") from None
        finally:
            if log_path:
                out.close()
        self.items.append((p, name, how))
        return p

    def stop_all(self):
        for p, name, how in reversed(self.items):
            if p.poll() is not None:
                continue
            # The lab cleans up its namespaces and QEMUs on SIGTERM: give it time.
            grace = 90 if how == "lab" else 10
            try:
                p.terminate()
                p.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"{name} (pid {p.pid}) ignored SIGTERM for {grace} s: killing it")
                p.kill()
                p.wait()
            except OSError:
                pass


def wait_ready(proc, name, base, log_path, timeout=60):
    """Waits for GET base/-/ready to answer 200; fails early if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CheckError(f"{name} exited with {proc.returncode}; its log ({log_path}):\n"
                             + open(log_path, errors="replace").read()[-3000:])
        try:
            if http_get(base + "/-/ready", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise CheckError(f"{name} not ready at {base} within {timeout} s (log: {log_path})")


def start_alertmanager(procs, tmp, webhook_url):
    """Alertmanager with the shipped routes, its webhook URL replaced by
    `webhook_url`, gossip off. Returns (base URL, host:port)."""
    text = open(AM_CONFIG).read()
    if SHIPPED_WEBHOOK_URL not in text:
        raise CheckError(f"{AM_CONFIG} no longer holds the webhook URL {SHIPPED_WEBHOOK_URL} this check replaces")
    cfg = os.path.join(tmp, "alertmanager.yml")
    with open(cfg, "w") as f:
        f.write(text.replace(SHIPPED_WEBHOOK_URL, webhook_url))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = os.path.join(tmp, "alertmanager.log")
    p = procs.start("alertmanager", [
        "prometheus-alertmanager", f"--config.file={cfg}", f"--storage.path={tmp}/am-data",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip: loopback HTTP only
        "--log.level=warn"], log_path)
    wait_ready(p, "alertmanager", base, log_path)
    return base, f"127.0.0.1:{port}"


def start_prometheus(procs, tmp, am_addr, sidecar_addr, every_s):
    """Prometheus scraping `sidecar_addr` (host:port) as job migwatch and
    evaluating the shipped rules, both every `every_s` seconds; alerts go to
    the Alertmanager at `am_addr`. Returns its base URL."""
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write(f"""global:
  scrape_interval: {every_s}s
  evaluation_interval: {every_s}s
  scrape_timeout: {every_s}s
rule_files:
  - "{RULES}"
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["{am_addr}"]
scrape_configs:
  - job_name: migwatch
    static_configs:
      - targets: ["{sidecar_addr}"]
""")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = os.path.join(tmp, "prometheus.log")
    p = procs.start("prometheus", [
        "prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tmp}/prom-data",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], log_path)
    wait_ready(p, "prometheus", base, log_path)
    return base


def prom_query(base, expr, at):
    """An instant query at unix time `at`: the API's `result` list."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    try:
        _, body = http_get(url, timeout=10)
    except OSError as e:
        raise CheckError(f"GET {url}: {e}") from None
    v = json.loads(body)
    if v.get("status") != "success":
        raise CheckError(f"GET {url}: {v}")
    return v["data"]["result"]


def prom_samples(base, expr, since, at):
    """Raw samples of a range selector over [since, at]: {name-or-labels: [(t, v)]}."""
    secs = max(1, int(at - since) + 2)
    out = {}
    for series in prom_query(base, f"{expr}[{secs}s]", at):
        key = series["metric"].get("alertname") or json.dumps(series["metric"], sort_keys=True)
        out.setdefault(key, []).extend((float(t), float(v)) for t, v in series["values"])
    return out


def parse_time(s):
    """Alertmanager's RFC 3339 time (UTC, 'Z', up to ns) -> unix seconds."""
    if not s:
        return float("inf")
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z", s)
    if not m:
        return float("inf")
    y, mo, d, hh, mm, ss = (int(x) for x in m.groups()[:6])
    frac = float("0." + m.group(7)) if m.group(7) else 0.0
    return calendar.timegm((y, mo, d, hh, mm, ss)) + frac
