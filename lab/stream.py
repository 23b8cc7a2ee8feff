"""The sidecar's stream as the lab sees it: the recorder that writes the
trace (the sidecar's /info first, then every event as a JSON line) and the
forwarder that lets a browser outside the monitor namespace watch the
page. Imported by lab/lab.py.
"""

import http.client
import json
import socket
import sys
import threading
import time

import netns

SIDECAR_PORT = 8080  # inside the monitor namespace, so it never collides


def log(msg):
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)




class Recorder(threading.Thread):
    """Reads the sidecar's /events from the start (?since=0) and writes each
    event as one JSON line ({"type": EVENT, ...data}), the trace format of
    shared/src/trace.rs."""

    def __init__(self, ns, path, info=None):
        super().__init__(daemon=True)
        self.ns, self.path, self.info = ns, path, info
        self.events = []
        self.error = None
        self.connected = threading.Event()
        self.stopping = threading.Event()

    def run(self):
        last_id, tries = 0, 0
        try:
            with open(self.path, "w") as out:
                if self.info:
                    # The sidecar's /info at the head: which channels were
                    # live (capture_iface: announces watched), the interval.
                    out.write(json.dumps({"type": "info", **self.info}, separators=(",", ":")) + "\n")
                while not self.stopping.is_set():
                    try:
                        last_id = self._read(out, last_id)
                    except (OSError, http.client.HTTPException) as e:
                        if self.stopping.is_set() or tries > 20:
                            raise
                        tries += 1
                        time.sleep(0.5)
                        log(f"recorder: {e}; resuming after event {last_id}")
        except Exception as e:  # noqa: BLE001 - reported by the caller
            self.error = e
            self.connected.set()

    def _read(self, out, last_id):
        """One connection: from just after last_id until the stream ends."""
        conn = http.client.HTTPConnection("127.0.0.1", SIDECAR_PORT, timeout=30)
        conn.sock = netns.connect_in(self.ns, ("127.0.0.1", SIDECAR_PORT))
        conn.sock.settimeout(None)
        conn.request("GET", f"/events?since={last_id}")
        resp = conn.getresponse()
        if resp.status != 200:
            raise http.client.HTTPException(f"/events answered {resp.status}")
        self.connected.set()
        kind, data, eid = None, [], None
        while True:
            raw = resp.readline()
            if not raw:
                # The sidecar went away (or cut us off: reconnect).
                if self.stopping.is_set():
                    return last_id
                raise http.client.HTTPException("stream ended")
            line = raw.decode().rstrip("\r\n")
            if line == "":
                if kind and data and kind != "overflow":  # we resume seamlessly
                    obj = {"type": kind, **json.loads("\n".join(data))}
                    self.events.append(obj)
                    out.write(json.dumps(obj, separators=(",", ":")) + "\n")
                if eid is not None:
                    last_id = eid
                kind, data, eid = None, [], None
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
            elif line.startswith("id:"):
                eid = int(line[3:].strip())


class PageForwarder(threading.Thread):
    """Serves the sidecar (in the monitor namespace) on 127.0.0.1:PORT of
    the caller's namespace, so a browser there can watch the light live."""

    def __init__(self, ns, port):
        super().__init__(daemon=True)
        self.ns = ns
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(16)

    def run(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            try:
                u = netns.connect_in(self.ns, ("127.0.0.1", SIDECAR_PORT))
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    @staticmethod
    def pump(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.srv.close()
