"""A small QMP client (QEMU Machine Protocol over a unix socket)."""

import json
import queue
import socket
import threading
import time


class QMPError(RuntimeError):
    pass


def event_us(ev):
    """An event's own timestamp (QEMU's host realtime clock), µs since the epoch."""
    ts = ev.get("timestamp", {})
    return ts.get("seconds", 0) * 1_000_000 + ts.get("microseconds", 0)


class QMP:
    def __init__(self, path, timeout=60.0, alive=lambda: True):
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline or not alive():
                    raise QMPError(f"QMP socket {path} did not come up")
                time.sleep(0.05)
        self.sock = s
        self.rfile = s.makefile("rb")
        self.events = []
        self.cond = threading.Condition()
        self.replies = queue.Queue()
        self.lock = threading.Lock()
        self.closed = False
        greeting = json.loads(self.rfile.readline())
        if "QMP" not in greeting:
            raise QMPError(f"not a QMP greeting: {greeting}")
        self.version = greeting["QMP"]["version"]["qemu"]
        threading.Thread(target=self._reader, daemon=True).start()
        self.cmd("qmp_capabilities")

    def _reader(self):
        try:
            for line in self.rfile:
                msg = json.loads(line)
                if "event" in msg:
                    msg["received_us"] = time.time_ns() // 1000
                    with self.cond:
                        self.events.append(msg)
                        self.cond.notify_all()
                else:
                    self.replies.put(msg)
        except (OSError, ValueError):
            pass
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.replies.put({"error": {"desc": "QMP connection closed"}})

    def cmd(self, name, timeout=60.0, **args):
        with self.lock:
            msg = {"execute": name}
            if args:
                msg["arguments"] = args
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
            try:
                r = self.replies.get(timeout=timeout)
            except queue.Empty:
                raise QMPError(f"{name}: no answer in {timeout} s") from None
        if "error" in r:
            raise QMPError(f"{name}: {r['error'].get('desc')}")
        return r.get("return")

    def wait_event(self, pred, timeout, since=0):
        """The first event (from index `since`) that satisfies pred, or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.events[since:]:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return None
                self.cond.wait(min(left, 0.5))

    def find(self, pred, since=0):
        with self.cond:
            return [e for e in self.events[since:] if pred(e)]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
