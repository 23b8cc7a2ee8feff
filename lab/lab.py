#!/usr/bin/env python3
"""migwatch lab: live-migrate a real (TCG) QEMU guest while migwatch watches.

One run: fetch what is missing into the cache, build two network namespaces,
boot the guest (QEMU a) and an incoming twin (QEMU b), start the sidecar
against the guest, then migrate the guest back and forth (or cut the monitor
path, for the decoy). Ground truth comes from QMP: the source's STOP and the
destination's RESUME event. The sidecar's stream is saved as a JSON-lines
trace with a labels file beside it, and the two are compared.

Run as root: lab/run.sh --help
"""

import argparse
import glob
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the work tree

import labcache  # noqa: E402
import netns  # noqa: E402
import table as sigtable  # noqa: E402  (lab/table.py)
from analysis import analyse, check, report, run_detect, write_labels  # noqa: E402
from qmp import QMP, QMPError, event_us  # noqa: E402
from stream import SIDECAR_PORT, PageForwarder, Recorder  # noqa: E402


# Scenarios: what the guest does, and the steps run once it is watched.
#   dirty: MiB the guest keeps rewriting (a boot option, fixed per run)
#   migrate: rate = Mbit/s of the migration link (None: unshaped loopback,
#            about 1 GB/s here), dl = QEMU's downtime-limit in ms. The
#            stop-and-copy sends what is still dirty, so downtime ~ dirty / rate.
#   outage: the monitor path is cut for ms (None: DECOY_MS in turn,
#           "last": as long as the previous step's downtime)
def M(rate=None, dl=300):
    return {"do": "migrate", "rate": rate, "dl": dl}


def O(ms=None):
    return {"do": "outage", "ms": ms}


def P(ms, ring=None):
    """A QMP stop/cont of the current VM for ms, no migration: its clock
    stands still and nothing announces it (a pause in place). ring: the
    guest's tap queue is cut to this many frames for the pause (a busy
    guest's own traffic filling it), so the pause loses the requests past
    them, as a stop-and-copy does (issue 14: 300 and 800 ms pauses that lost
    136 and 386 probes were called migrated)."""
    return {"do": "pause", "ms": ms, "ring": ring}


# The tap queue of a busy guest in a ring-limited pause: the 16 requests
# sent first wait (answered at resume, late), every later one is dropped.
PAUSE_RING = 16

SCENARIOS = {
    "idle": dict(dirty=0, steps=[M(None, 30)],
                 about="idle guest, unshaped link: 5-45 ms down"),
    "dirty": dict(dirty=48, steps=[M(2000, 1000)],
                  about="guest keeping 48 MiB dirty, 2 Gbit/s migration link: about 0.4 s down"),
    "slow": dict(dirty=48, steps=[M(400, 2000)],
                 about="guest keeping 48 MiB dirty, 400 Mbit/s migration link: about 1.2 s down"),
    "decoy": dict(dirty=0, steps=[O()],
                  about="no migration: the monitor path is cut (100, 300, 600, 1000, 1500 ms in turn)"),
    "mix": dict(dirty=48, steps=[M(None, 300), M(2000, 1000), M(400, 2000), O(), O()],
                about="per count: three migrations (about 0.1 s, 0.4 s, 1.2 s down) and two decoys"),
    "pause": dict(dirty=48, steps=[P(100), P(300), P(800), P(300, PAUSE_RING), P(800, PAUSE_RING)],
                  once=True,
                  about="no migration: QMP stop/cont of 100, 300 and 800 ms (a pause in place), then "
                  f"300 and 800 ms with the guest's tap queue cut to {PAUSE_RING} frames (the rest of "
                  "the pause is lost); --count is ignored"),
    "quick": dict(dirty=48, steps=[M(2000, 1000), M(400, 2000), O("last"), P(300)], once=True,
                  about="a 0.4 s and a 1.2 s migration, a decoy as long as the last downtime, then "
                  "a 300 ms pause in place (the CI candidate; --count is ignored)"),
}
DECOY_MS = [100, 300, 600, 1000, 1500]


def now_us():
    return time.time_ns() // 1000


def log(msg):
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class LabError(RuntimeError):
    pass


class QemuUnavailable(LabError):
    """QEMU exited at start-up for a reason of this machine (no tap device,
    no memory, missing libraries): the lab cannot run here."""


# What QEMU says when this machine, not the lab, keeps it from running.
QEMU_ENV_ERRORS = ("/dev/net/tun", "error while loading shared libraries", "cannot set up guest memory",
                   "Cannot allocate memory", "Operation not permitted")


def skip_banner(reason):
    """The loud message of a skipped lab (exit 77): never a silent skip."""
    bar = "#" * 76
    text = "\n".join([bar, "##  LAB SKIPPED: QEMU cannot run on this machine.",
                      *(f"##  {l}" for l in str(reason).strip().splitlines()[:12]),
                      "##  No live migration was tested. This is a skip, not a pass.", bar])
    print(text, flush=True)


# --------------------------------------------------------------------- QEMU


class VM:
    """One QEMU process in the bridge namespace, on tap `side`."""

    def __init__(self, lab, side, incoming):
        self.lab, self.side, self.incoming = lab, side, incoming
        lab.vm_count += 1
        self.name = f"vm{lab.vm_count}-{side}"
        self.qmp_path = os.path.join(lab.rundir, f"{self.name}.qmp")
        self.serial = os.path.join(lab.logdir, f"{self.name}.serial.log")
        self.logfile = os.path.join(lab.logdir, f"{self.name}.qemu.log")
        c = lab.cache
        cmd = lab.niced(["ip", "netns", "exec", lab.net.br, c["qemu"]["binary"]])
        for d in c["qemu"]["datadirs"]:
            cmd += ["-L", d]
        cmd += [
            "-name", f"migwatch-lab-{self.name}",
            "-accel", "tcg", "-machine", "pc", "-m", str(lab.args.mem), "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", f"file:{self.serial}",
            "-kernel", c["kernel"], "-initrd", c["initrd"], "-append", lab.cmdline,
            "-netdev", f"tap,id=n0,ifname={netns.TAPS[side]},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=n0,mac={netns.GUEST_MAC},romfile=",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
        ]
        if incoming:
            cmd += ["-incoming", "defer"]
        self.t_start = time.monotonic()
        with open(self.logfile, "w") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        lab.track(self.proc, self.name)
        self.qmp = None

    def alive(self):
        return self.proc.poll() is None

    def failed_to_start(self, what):
        """The error for QEMU gone at start-up: QemuUnavailable if its log
        blames this machine, else LabError."""
        tail = self.tail()
        try:
            with open(self.logfile, errors="replace") as f:
                qlog = f.read()
        except FileNotFoundError:
            qlog = ""
        env = [e for e in QEMU_ENV_ERRORS if e in qlog]
        cls = QemuUnavailable if env and not self.alive() else LabError
        return cls(f"{self.name} {what}:\n{tail}")

    def connect(self, timeout):
        try:
            self.qmp = QMP(self.qmp_path, timeout=timeout, alive=self.alive)
        except QMPError as e:
            raise self.failed_to_start(f"gave no QMP: {e}") from None
        self.qmp.cmd("migrate-set-capabilities",
                     capabilities=[{"capability": "events", "state": True}])

    def wait_ready(self, timeout):
        """Waits for the guest's READY line on the serial console; returns boot seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise self.failed_to_start("exited while booting")
            try:
                with open(self.serial, errors="replace") as f:
                    text = f.read()
            except FileNotFoundError:
                text = ""
            if "migwatch-lab: READY" in text:
                return time.monotonic() - self.t_start
            if "migwatch-lab: FAILED" in text or "Kernel panic" in text:
                raise LabError(f"{self.name}: the guest failed to boot:\n{text[-2000:]}")
            time.sleep(0.1)
        raise LabError(f"{self.name}: no READY on the serial console in {timeout} s")

    def tail(self):
        out = []
        for p in (self.logfile, self.serial):
            try:
                with open(p, errors="replace") as f:
                    out.append(f"--- {os.path.basename(p)}:\n" + f.read()[-1500:])
            except FileNotFoundError:
                pass
        return "\n".join(out)

    def quit(self, timeout=10):
        if self.alive() and self.qmp:
            try:
                self.qmp.cmd("quit", timeout=5)
            except QMPError:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.qmp:
            self.qmp.close()


# ----------------------------------------------------------------- recorder
# lab/stream.py: Recorder, PageForwarder


# ---------------------------------------------------------------------- lab


class Lab:
    def __init__(self, args, cache):
        self.args, self.cache = args, cache
        self.scn = SCENARIOS[args.scenario]
        self.dirty = self.scn["dirty"] if args.dirty is None else args.dirty
        self.tag = str(os.getpid())
        self.net = netns.Net(self.tag)
        self.procs = []  # (Popen, name)
        self.vm_count = 0
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.name = f"lab-{args.scenario}-{stamp}"
        os.makedirs(args.out, exist_ok=True)
        self.base = os.path.join(args.out, self.name)
        self.logdir = self.base + ".logs"
        os.makedirs(self.logdir, exist_ok=True)
        self.rundir = tempfile.mkdtemp(prefix=f"{netns.PREFIX}{self.tag}-")  # QMP sockets
        self.cmdline = (
            f"console=ttyS0 panic=-1 loglevel=4 mwip={netns.GUEST_IP}/{netns.PLEN} "
            f"mwpeer={netns.MON_IP},{netns.MON_MAC} dirty={self.dirty}"
        )
        self.sidecar = None
        self.recorder = None
        self.forwarder = None
        self.steps = []  # ground truth, one dict per step
        self.timings = {}

    def track(self, proc, name):
        self.procs.append((proc, name))

    # -- cleanup: every process by PID, then the namespaces

    def cleanup(self):
        if self.forwarder:
            self.forwarder.close()
        for proc, name in reversed(self.procs):
            if proc.poll() is None:
                try:
                    proc.terminate()
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                except OSError:
                    pass
        # Anything else still inside our namespaces is ours too.
        for pid in self.net.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.net.down()
        shutil.rmtree(self.rundir, ignore_errors=True)

    # -- the sidecar

    def niced(self, cmd):
        """cmd run at the lab's priority (`--nice`): on a machine busy with
        other work, a QEMU thread that waits for a CPU delays the guest's
        stop and resume past QMP's STOP and RESUME stamps, and a waiting
        sidecar stamps its replies late."""
        return ["nice", "-n", str(self.args.nice)] + cmd if self.args.nice else cmd

    def sidecar_binary(self):
        if self.args.sidecar:
            return os.path.abspath(self.args.sidecar)
        for p in ("target/release/migwatch-sidecar", "target/debug/migwatch-sidecar"):
            if os.access(os.path.join(REPO, p), os.X_OK):
                return os.path.join(REPO, p)
        log("building the sidecar (cargo build --release -p migwatch-sidecar)")
        subprocess.run(["cargo", "build", "--release", "-p", "migwatch-sidecar"], cwd=REPO, check=True)
        return os.path.join(REPO, "target/release/migwatch-sidecar")

    def start_sidecar(self):
        binary = self.sidecar_binary()
        self.sidecar_path = binary
        cmd = self.niced(["ip", "netns", "exec", self.net.mon, binary]) + ["--target", netns.GUEST_IP,
               "--listen", f"127.0.0.1:{SIDECAR_PORT}", "--interval", self.args.interval,
               "--web-root", os.path.join(REPO, "dist"), "--capture-iface", "veth-mon"]
        if self.args.page:
            cmd += ["--allow-origin", f"http://127.0.0.1:{self.args.page}",
                    "--allow-origin", f"http://localhost:{self.args.page}"]
        with open(os.path.join(self.logdir, "sidecar.log"), "w") as out:
            self.sidecar = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        self.track(self.sidecar, "sidecar")
        deadline = time.monotonic() + 30
        while True:
            if self.sidecar.poll() is not None:
                raise LabError("the sidecar exited:\n" + open(os.path.join(self.logdir, "sidecar.log")).read())
            try:
                s = netns.connect_in(self.net.mon, ("127.0.0.1", SIDECAR_PORT), timeout=1)
                s.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise LabError("the sidecar did not listen within 30 s") from None
                time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", SIDECAR_PORT, timeout=10)
        conn.sock = netns.connect_in(self.net.mon, ("127.0.0.1", SIDECAR_PORT))
        conn.request("GET", "/info")
        self.info = json.loads(conn.getresponse().read())
        conn.close()
        self.recorder = Recorder(self.net.mon, self.base + ".jsonl", self.info)
        self.recorder.start()
        self.recorder.connected.wait(30)
        if self.recorder.error:
            raise LabError(f"cannot read the sidecar's stream: {self.recorder.error}")
        if self.args.page:
            self.forwarder = PageForwarder(self.net.mon, self.args.page)
            self.forwarder.start()
            log(f"watch it live: open http://127.0.0.1:{self.args.page}/")

    def stop_sidecar(self):
        self.recorder.stopping.set()
        self.sidecar.send_signal(signal.SIGTERM)
        try:
            self.sidecar.wait(15)
        except subprocess.TimeoutExpired:
            self.sidecar.kill()
        self.recorder.join(15)

    # -- migration

    def migrate(self, src, dst, rate, downtime_limit):
        port = 4400 + len(self.steps)
        rec = {"kind": "migration", "from": src.side, "to": dst.side,
               "rate_mbit": rate, "downtime_limit_ms": downtime_limit, "dirty_mib": self.dirty}
        dst.qmp.cmd("migrate-incoming", uri=f"tcp:127.0.0.1:{port}")
        src.qmp.cmd("migrate-set-parameters", **{
            "downtime-limit": downtime_limit,
            # Pre-copy unthrottled: the link (tbf or loopback) sets the pace.
            "max-bandwidth": 4 << 30,
        })
        if rate:
            self.net.shape_migration_link(rate)
        s_ev, d_ev = len(src.qmp.events), len(dst.qmp.events)
        rec["start_us"] = now_us()
        t0 = time.monotonic()
        src.qmp.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
        forced = False

        def done(e):
            return e["event"] == "MIGRATION" and e["data"]["status"] in ("completed", "failed", "cancelled")

        while True:
            ev = src.qmp.wait_event(done, 1.0, since=s_ev)
            if ev:
                break
            el = time.monotonic() - t0
            if not forced and el > self.args.converge_after:
                # As libvirt does: let it stop the guest now, whatever it costs.
                log(f"  not converged after {el:.0f} s: raising downtime-limit to force the switchover")
                src.qmp.cmd("migrate-set-parameters", **{"downtime-limit": 60000})
                forced = True
            if el > self.args.migrate_timeout or not src.alive():
                src.qmp.cmd("migrate_cancel") if src.alive() else None
                raise LabError(f"migration {src.name} -> {dst.name} did not finish in {el:.0f} s")
        rec["status"] = ev["data"]["status"]
        rec["forced"] = forced
        rec["passes"] = len(src.qmp.find(lambda e: e["event"] == "MIGRATION_PASS", since=s_ev))
        resume = dst.qmp.wait_event(lambda e: e["event"] == "RESUME", 30, since=d_ev)
        if rate:
            self.net.unshape_migration_link()
        stop = src.qmp.find(lambda e: e["event"] == "STOP", since=s_ev)
        if rec["status"] != "completed" or not stop or not resume:
            raise LabError(f"migration {src.name} -> {dst.name}: status {rec['status']}, "
                           f"STOP {'seen' if stop else 'missing'}, RESUME {'seen' if resume else 'missing'}")
        info = src.qmp.cmd("query-migrate")
        rec["stop_us"] = event_us(stop[0])
        rec["resume_us"] = event_us(resume)
        rec["completed_us"] = event_us(ev)
        rec["downtime_us"] = rec["resume_us"] - rec["stop_us"]
        rec["qemu_downtime_ms"] = info.get("downtime")
        rec["total_time_ms"] = info.get("total-time")
        rec["setup_time_ms"] = info.get("setup-time")
        ram = info.get("ram", {})
        rec["ram"] = {k: ram.get(k) for k in ("transferred", "normal", "duplicate", "dirty-sync-count",
                                               "mbps", "precopy-bytes", "downtime-bytes")}
        # The destination stamps RESUME, then starts the guest's clock, then
        # reports MIGRATION completed: the clock restarted in between.
        done_dst = dst.qmp.wait_event(lambda e: e["event"] == "MIGRATION"
                                      and e["data"]["status"] == "completed", 5, since=d_ev)
        if done_dst:
            rec["resume_max_us"] = event_us(done_dst)
        rec["src_events"] = [(e["event"], e.get("data"), event_us(e)) for e in src.qmp.events[s_ev:]]
        rec["dst_events"] = [(e["event"], e.get("data"), event_us(e)) for e in dst.qmp.events[d_ev:]]
        return rec

    def outage(self, ms):
        rec = {"kind": "link_outage", "outage_ms": ms}
        t0 = now_us()
        self.net.cut_monitor_path(ms)
        t1 = now_us()
        # nft commits at the end of its run (after starting up and parsing,
        # which can take 100 ms on a loaded machine): take the call's end.
        # The kernel ends the cut exactly ms later.
        rec["start_us"], rec["end_us"] = t1, t1 + ms * 1000
        rec["downtime_us"] = ms * 1000
        rec["nft_call_us"] = t1 - t0
        time.sleep(ms / 1000 + 0.05)
        return rec

    def pause(self, vm, ms, ring=None):
        """QMP stop, ms later cont: the truth is QEMU's STOP -> RESUME. With
        ring, the guest's tap queue holds only that many frames meanwhile
        (tun drops what does not fit), and gets its length back once the
        guest has drained it."""
        rec = {"kind": "pause", "vm": vm.side, "pause_ms": ms}
        if ring:
            rec["ring"] = ring
            ring_was = self.net.set_tap_queue(vm.side, ring)
        s_ev = len(vm.qmp.events)
        rec["start_us"] = now_us()
        # QEMU stops the guest's clock (cpu_disable_ticks) before it pauses
        # the vCPUs and stamps STOP, and stamps RESUME before it starts the
        # clock again: the clock stood still for at least STOP->RESUME and
        # at most from our `stop` to the answer to our `cont`.
        rec["stop_cmd_us"] = now_us()
        vm.qmp.cmd("stop")
        rec["stop_ack_us"] = now_us()
        time.sleep(ms / 1000)
        rec["cont_cmd_us"] = now_us()
        vm.qmp.cmd("cont")
        rec["cont_ack_us"] = now_us()
        stop = vm.qmp.wait_event(lambda e: e["event"] == "STOP", 5.0, since=s_ev)
        resume = vm.qmp.wait_event(lambda e: e["event"] == "RESUME", 5.0, since=s_ev)
        if not stop or not resume:
            raise LabError(f"no STOP/RESUME event from {vm.name} for the {ms} ms pause")
        rec["stop_us"], rec["resume_us"] = event_us(stop), event_us(resume)
        rec["end_us"] = rec["resume_us"]
        rec["downtime_us"] = rec["resume_us"] - rec["stop_us"]
        rec["downtime_max_us"] = rec["cont_ack_us"] - rec["stop_cmd_us"]
        if ring:
            time.sleep(0.5)
            self.net.set_tap_queue(vm.side, ring_was)
        return rec

    # -- the run

    def run(self):
        a = self.args
        log(f"scenario {a.scenario}: {self.scn['about']}; guest dirty={self.dirty} MiB")
        self.net.up()
        t = time.monotonic()
        vms = {"a": VM(self, "a", incoming=False)}
        uses_migration = any(s["do"] == "migrate" for s in self.plan())
        if uses_migration:
            vms["b"] = VM(self, "b", incoming=True)
        boot = vms["a"].wait_ready(a.boot_timeout)
        vms["a"].connect(30)
        if "b" in vms:
            vms["b"].connect(60)
        self.timings["boot_s"] = round(boot, 2)
        log(f"guest up in {boot:.1f} s ({self.cache['qemu']['version'].split('(')[0].strip()}, TCG)")
        self.start_sidecar()
        self.timings["sidecar_up_s"] = round(time.monotonic() - t, 2)
        time.sleep(a.settle)
        cur = "a"
        plan = self.plan()
        for i, step in enumerate(plan):
            if step["do"] == "migrate":
                other = "b" if cur == "a" else "a"
                rate = a.rate or step["rate"]
                dl = a.downtime_limit or step["dl"]
                log(f"step {i + 1}: migrate {vms[cur].name} -> {vms[other].name} "
                    f"over {f'{rate} Mbit/s' if rate else 'unshaped loopback'} (downtime-limit {dl} ms)")
                rec = self.migrate(vms[cur], vms[other], rate, dl)
                log(f"  STOP->RESUME {rec['downtime_us'] / 1000:.1f} ms (QEMU says {rec['qemu_downtime_ms']} ms), "
                    f"total {rec['total_time_ms'] / 1000:.1f} s, {rec['passes']} passes")
                vms[cur].quit()
                if any(s["do"] == "migrate" for s in plan[i + 1:]):
                    # The next destination starts now, so its start-up is
                    # over before the next migration.
                    vms[cur] = VM(self, cur, incoming=True)
                    vms[cur].connect(60)
                cur = other
            elif step["do"] == "pause":
                # After a migration, wait out its red hold as for a decoy.
                last = [st["resume_us"] for st in self.steps if st["kind"] == "migration"]
                if last:
                    wait = last[-1] / 1e6 + a.decoy_gap - time.time()
                    if wait > 0:
                        time.sleep(wait)
                ring = step.get("ring")
                log(f"step {i + 1}: pause {vms[cur].name} for {step['ms']} ms (QMP stop/cont, no migration"
                    f"{f', tap queue {ring} frames' if ring else ''})")
                rec = self.pause(vms[cur], step["ms"], ring)
                log(f"  STOP->RESUME {rec['downtime_us'] / 1000:.1f} ms")
            else:
                if step["ms"] == "last" and self.steps:
                    ms = round(self.steps[-1]["downtime_us"] / 1000)
                elif isinstance(step["ms"], int):
                    ms = step["ms"]
                else:
                    n = sum(1 for s in self.steps if s["kind"] == "link_outage")
                    ms = a.outage_ms or DECOY_MS[n % len(DECOY_MS)]
                # The detector holds red for 10 s after a migration: start
                # the decoy later, so its verdict is its own.
                last = [st["resume_us"] for st in self.steps if st["kind"] == "migration"]
                if last:
                    wait = last[-1] / 1e6 + a.decoy_gap - time.time()
                    if wait > 0:
                        time.sleep(wait)
                log(f"step {i + 1}: decoy: monitor path cut for {ms} ms (no migration)")
                rec = self.outage(ms)
            rec["step"] = i + 1
            # Other work on the machine delays QEMU's threads and the
            # sidecar: keep the load each step ran under with it.
            rec["loadavg"] = [round(x, 2) for x in os.getloadavg()]
            self.steps.append(rec)
            time.sleep(a.settle)
        if a.hold:
            log("holding: everything stays up until Ctrl-C")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                log("Ctrl-C: finishing the run")
        self.stop_sidecar()
        self.timings["total_s"] = round(time.monotonic() - t, 1)
        self.serial_problems = []
        for p in sorted(os.listdir(self.logdir)):
            if p.endswith(".serial.log"):
                text = open(os.path.join(self.logdir, p), errors="replace").read()
                for bad in ("Kernel panic", "BUG:", "Oops", "general protection"):
                    if bad in text:
                        self.serial_problems.append(f"{p}: {bad}")
        for vm in vms.values():
            vm.quit()

    def plan(self):
        steps = self.scn["steps"]
        return list(steps) if self.scn.get("once") else steps * self.args.count


# ----------------------------------------------------------------- analysis
# lab/analysis.py: analyse, run_detect, write_labels, report, check


def stale_cleanup():
    """Removes what a killed earlier run left behind (its pid is gone)."""
    for ns in netns.stale_namespaces():
        for pid in netns.sh("ip", "netns", "pids", ns, check=False).split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        netns.sh("ip", "netns", "del", ns, check=False)
        log(f"removed the stale namespace {ns}")
    for d in glob.glob(os.path.join(tempfile.gettempdir(), f"{netns.PREFIX}*-*")):
        pid = os.path.basename(d)[len(netns.PREFIX):].split("-")[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(d, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(prog="lab/run.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", choices=list(SCENARIOS), default="quick",
                   help="; ".join(f"{k}: {v['about']}" for k, v in SCENARIOS.items()))
    p.add_argument("--count", type=int, default=1, help="migrations (or decoys), back and forth (not for quick)")
    p.add_argument("--dirty", type=int, help="MiB the guest keeps rewriting (default: the scenario's)")
    p.add_argument("--rate", type=int, help="Mbit/s of the migration link for slow migrations")
    p.add_argument("--downtime-limit", type=int, help="QEMU downtime-limit, ms")
    p.add_argument("--outage-ms", type=int, help="decoy length (default: 100, 300, 600, 1000, 1500 in turn)")
    p.add_argument("--interval", default="10ms", help="sidecar probe interval")
    p.add_argument("--mem", type=int, default=256, help="guest MiB")
    p.add_argument("--nice", type=int, default=-10,
                   help="niceness of QEMU and the sidecar (default -10: ahead of other work on the machine; 0: as is)")
    p.add_argument("--settle", type=float, default=4.0, help="seconds of quiet before, between and after steps")
    p.add_argument("--decoy-gap", type=float, default=12,
                   help="seconds from a migration's resume to a later decoy (the detector holds red 10 s)")
    p.add_argument("--boot-timeout", type=float, default=180)
    p.add_argument("--converge-after", type=float, default=30,
                   help="seconds of pre-copy before the switchover is forced")
    p.add_argument("--migrate-timeout", type=float, default=240)
    p.add_argument("--cache", default=labcache.default_cache(), help="where QEMU and the guest are kept")
    p.add_argument("--out", default=os.path.join(HERE, "out"), help="where traces and logs go")
    p.add_argument("--sidecar", help="the migwatch-sidecar binary (default: target/release, else target/debug, else build)")
    p.add_argument("--page", type=int, nargs="?", const=8080, metavar="PORT",
                   help="serve the page on 127.0.0.1:PORT (default 8080) to watch live")
    p.add_argument("--hold", action="store_true", help="keep everything up after the steps until Ctrl-C")
    p.add_argument("--check", action="store_true", help="exit 1 if a lab invariant fails")
    p.add_argument("--setup-only", action="store_true", help="fill the cache and stop")
    p.add_argument("--cleanup", action="store_true", help="remove what killed runs left behind, and stop")
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("lab: run as root (network namespaces, taps, raw ICMP)")
    stale_cleanup()
    if args.cleanup:
        return 0
    # Where QEMU truly cannot run the lab, say so loudly and exit 77 (skip).
    if not os.path.exists("/dev/net/tun"):
        skip_banner("no /dev/net/tun here, so QEMU cannot get its taps")
        return 77
    t = time.monotonic()
    try:
        cache = labcache.ensure(args.cache)
    except labcache.Unavailable as e:
        skip_banner(f"cannot fetch or run QEMU or the guest kernel: {e}")
        return 77
    setup_s = time.monotonic() - t
    if args.setup_only:
        log(f"cache ready in {setup_s:.1f} s: {args.cache}")
        return 0

    lab = Lab(args, cache)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    ok = False
    try:
        lab.run()
        ok = True
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        return 130
    except QemuUnavailable as e:
        skip_banner(e)
        return 77
    except (LabError, QMPError, RuntimeError, OSError) as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        # No signal may interrupt the cleanup itself.
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        lab.cleanup()
        if not ok:
            log(f"logs: {lab.logdir}")
    analysis, base, interval_us = analyse(lab)
    found, detect_err = run_detect(lab)
    write_labels(lab, analysis, base, interval_us)
    table = report(lab, analysis, found, detect_err)
    problems = check(lab, analysis)
    lab.timings["setup_s"] = round(setup_s, 1)
    truth = {"name": lab.name, "scenario": args.scenario, "qemu": cache["qemu"]["version"],
             "guest_kernel": cache["kernel_release"], "guest_dirty_mib": lab.dirty,
             "guest_ip": netns.GUEST_IP, "interval": args.interval, "baseline_rtt_us": base,
             "nice": args.nice, "loadavg_end": [round(x, 2) for x in os.getloadavg()],
             "timings": lab.timings, "steps": lab.steps, "seen": analysis, "problems": problems}
    with open(lab.base + ".truth.json", "w") as f:
        json.dump(truth, f, indent=1)
    print(f"\n{lab.name}: guest boot {lab.timings['boot_s']} s, setup {setup_s:.1f} s, "
          f"run {lab.timings['total_s']} s, baseline RTT {base / 1000:.2f} ms\n")
    print(table)
    print("\n(truth: STOP->RESUME in QMP, or the cut; qemu: QEMU's own downtime figure; lost: probes lost;"
          "\n burst: first lost probe's send to the next answered one's; held: replies to probes sent before"
          "\n the stop that came after the resume, count and largest RTT in ms, L = after the timeout;"
          "\n max rtt: largest in-time RTT around the step; clock: the guest clock's step across it (median"
          "\n offset of good ICMP Timestamp readings after minus before; a migration: -(truth), a decoy: 0);"
          "\n announces: RARP (R) and gratuitous ARP (G) frames seen within 2 s after it;"
          "\n detector: `migwatch-sidecar detect` on the trace)")
    print(f"\ntrace {lab.base}.jsonl, labels {lab.base}.labels.json, truth {lab.base}.truth.json")
    failed = False
    if problems:
        print("\nPROBLEMS:\n  " + "\n  ".join(problems))
        failed = True
    if args.check:
        print("\nlab invariants: " + ("FAIL" if problems else "PASS"), flush=True)
        if args.scenario == "quick":
            # The detector on the recorded run: what CI asserts (lab/table.py).
            print("quick-lab assertions (python3 lab/table.py --check "
                  f"{os.path.relpath(lab.base, REPO)} --sidecar {lab.sidecar_path}):", flush=True)
            if not sigtable.quick_check(lab.base, lab.sidecar_path, out=lambda l: print("  " + l, flush=True)):
                failed = True
        if failed:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
