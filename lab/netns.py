"""Network namespaces for the lab, and sockets opened inside them.

Topology (all addresses in 198.18.0.0/15, no route out):

    <tag>-mon                      <tag>-br
    +--------------------+         +---------------------------------------+
    | veth-mon           |  veth   | veth-br --+                           |
    | 198.18.77.1/24     |---------|           br0 -- tap-a  (QEMU a)      |
    | migwatch-sidecar   |         |               \- tap-b  (QEMU b)      |
    +--------------------+         | lo: migration stream (tbf shapes it)  |
                                   +---------------------------------------+

Both QEMUs run inside <tag>-br, so the migration stream crosses that
namespace's loopback only.
"""

import ctypes
import json
import os
import socket
import subprocess

CLONE_NEWNET = 0x40000000
PREFIX = "mwlab-"

GUEST_IP = "198.18.77.10"
MON_IP = "198.18.77.1"
PLEN = 24
GUEST_MAC = "52:54:00:4d:57:0a"
MON_MAC = "02:00:00:4d:57:01"
TAPS = {"a": "tap-a", "b": "tap-b"}

_libc = ctypes.CDLL(None, use_errno=True)
_GUARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "range-guard.sh")


def sh(*cmd, check=True):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {p.stdout.strip()}")
    return p.stdout


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def socket_in(ns, family=socket.AF_INET, kind=socket.SOCK_STREAM):
    """A socket that lives in network namespace `ns` (the calling thread
    enters it just long enough to create the socket)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            return socket.socket(family, kind)
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)


def connect_in(ns, addr, timeout=5.0):
    s = socket_in(ns)
    s.settimeout(timeout)
    try:
        s.connect(addr)
    except OSError:
        s.close()
        raise
    return s


class Net:
    """The lab's two namespaces. `up()` builds them, `down()` removes them."""

    def __init__(self, tag):
        self.br = f"{PREFIX}{tag}-br"
        self.mon = f"{PREFIX}{tag}-mon"
        self.created = []
        self.guarded = False

    def ex(self, ns, *cmd, check=True):
        return sh("ip", "netns", "exec", ns, *cmd, check=check)

    def up(self):
        # The range guard (scripts/range-guard.sh: `unreachable
        # 198.18.0.0/15` in the root namespace) is held while the lab's
        # namespaces exist, also when lab.py runs without lab/run.sh.
        sh(_GUARD, "acquire", str(os.getpid()))
        self.guarded = True
        for ns in (self.br, self.mon):
            sh("ip", "netns", "add", ns)
            self.created.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        br, mon = self.br, self.mon
        sh("ip", "-n", br, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
        for tap in TAPS.values():
            sh("ip", "-n", br, "tuntap", "add", "dev", tap, "mode", "tap")
            sh("ip", "-n", br, "link", "set", tap, "master", "br0", "up")
        sh("ip", "-n", br, "link", "add", "veth-br", "type", "veth", "peer", "name", "veth-mon", "netns", mon)
        sh("ip", "-n", br, "link", "set", "veth-br", "master", "br0", "up")
        sh("ip", "-n", br, "link", "set", "br0", "up")
        sh("ip", "-n", mon, "link", "set", "veth-mon", "address", MON_MAC, "up")
        sh("ip", "-n", mon, "addr", "add", f"{MON_IP}/{PLEN}", "dev", "veth-mon")
        # The guest's MAC never changes across a migration: pin it, so that
        # neither a link outage nor a migration is lengthened by ARP.
        sh("ip", "-n", mon, "neigh", "replace", GUEST_IP, "lladdr", GUEST_MAC, "dev", "veth-mon", "nud", "permanent")
        # Decoy outages: frames to or from a port in the set `cut` are
        # dropped; an element added with a timeout expires in the kernel, so
        # the outage lasts exactly that long.
        self.ex(br, "nft", "add table bridge mwlab")
        self.ex(br, "nft", "add set bridge mwlab cut { type ifname; flags timeout; }")
        self.ex(br, "nft", "add chain bridge mwlab fw { type filter hook forward priority 0; policy accept; }")
        self.ex(br, "nft", "add rule bridge mwlab fw iifname @cut drop")
        self.ex(br, "nft", "add rule bridge mwlab fw oifname @cut drop")

    # -- the migration link (loopback of the bridge namespace)

    def shape_migration_link(self, rate_mbit):
        """tbf on the bridge namespace's loopback: the stop-and-copy's pending
        memory then drains at rate_mbit, and downtime ≈ pending / rate."""
        burst = max(256 * 1024, int(rate_mbit * 1e6 / 8 / 250))  # >= 4 ms worth, >= a 64 KiB loopback packet
        self.ex(self.br, "tc", "qdisc", "replace", "dev", "lo", "root", "tbf",
                "rate", f"{rate_mbit}mbit", "burst", str(burst), "latency", "2s")

    def unshape_migration_link(self):
        self.ex(self.br, "tc", "qdisc", "del", "dev", "lo", "root", check=False)

    # -- the guest's tap queue

    def set_tap_queue(self, side, frames):
        """Sizes the tap's queue toward the guest (tun's ring, sized by
        txqueuelen and resized in place) to `frames`; returns what it was.
        While the guest is stopped, frames past it are dropped."""
        tap = TAPS[side]
        was = json.loads(sh("ip", "-n", self.br, "-j", "link", "show", tap))[0]["txqlen"]
        sh("ip", "-n", self.br, "link", "set", tap, "txqueuelen", str(int(frames)))
        return was

    # -- the monitor path

    def cut_monitor_path(self, ms):
        """Drops every frame between the monitor and the bridge (both ways)
        for ms milliseconds, timed by the kernel."""
        self.ex(self.br, "nft", f'add element bridge mwlab cut {{ "veth-br" timeout {int(ms)}ms }}')

    def pids(self):
        out = []
        for ns in self.created:
            out += [int(p) for p in sh("ip", "netns", "pids", ns, check=False).split() if p.isdigit()]
        return out

    def down(self):
        for ns in reversed(self.created):
            sh("ip", "netns", "del", ns, check=False)
        self.created = []
        if self.guarded:
            sh(_GUARD, "release", str(os.getpid()), check=False)
            self.guarded = False


def stale_namespaces():
    """Lab namespaces whose owning run (the pid in the name) is gone."""
    out = []
    for line in sh("ip", "netns", "list", check=False).splitlines():
        name = line.split()[0] if line.strip() else ""
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX):].split("-")[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            out.append(name)
    return out
