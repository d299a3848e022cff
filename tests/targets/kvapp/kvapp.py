"""A tiny key-value service that drills knows nothing about: the "user's own system" of the
custom-target tests. Standard library only.

    python kvapp.py --port P --data-dir D [--mirror HOST:PORT]

- ``PUT /keys/<k>``: store key ``k`` (appended to ``D/log``, fsync'd unless ``KV_FSYNC=0``,
  before the answer: with ``KV_FSYNC=0`` an acknowledged write lives only in memory until the
  process exits cleanly, so a SIGKILL loses it - the planted bug); then best-effort copied to
  the mirror.
- ``POST /counters/<k>``: one increment of counter ``n`` of key ``k`` (logged the same way).
- ``GET /keys``: the number of keys; ``GET /healthz``: ok.
- ``GET /drills/state``: the final-read contract (role, keys, counters).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Store:
    def __init__(self, data_dir: str, fsync: bool) -> None:
        self.path = os.path.join(data_dir, "log")
        self.fsync = fsync
        self.lock = threading.Lock()
        self.keys: set[str] = set()
        self.counters: dict[str, int] = {}
        self.pending: list[str] = []
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    if line.endswith("\n"):
                        self._apply(line.rstrip("\n"))
        self.fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def _apply(self, line: str) -> None:
        kind, _, key = line.partition(" ")
        if kind == "put":
            self.keys.add(key)
        elif kind == "incr":
            self.counters[key] = self.counters.get(key, 0) + 1

    def write(self, line: str) -> None:
        with self.lock:
            if self.fsync:
                self.fh.write(line + "\n")
                self.fh.flush()
                os.fsync(self.fh.fileno())
            else:
                self.pending.append(line)  # the bug: acknowledged, never made durable
            self._apply(line)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--mirror", default="")
    args = ap.parse_args()
    store = Store(args.data_dir, fsync=os.environ.get("KV_FSYNC", "1") != "0")

    def mirror(path: str) -> None:
        if not args.mirror:
            return
        host, _, port = args.mirror.rpartition(":")
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=0.5)
            conn.request("PUT" if path.startswith("/keys/") else "POST", path)
            conn.getresponse().read()
            conn.close()
        except OSError:
            pass

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: object) -> None:
            pass

        def _send(self, code: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200, {"ok": True})
            elif self.path == "/keys":
                self._send(200, {"count": len(store.keys)})
            elif self.path == "/drills/state":
                with store.lock:
                    self._send(200, {"role": "primary", "epoch": None,
                                     "keys": sorted(store.keys),
                                     "counters": {k: {"n": v} for k, v in store.counters.items()}})
            else:
                self._send(404, {"error": "not found"})

        def do_PUT(self) -> None:
            if not self.path.startswith("/keys/"):
                self._send(404, {"error": "not found"})
                return
            store.write("put " + self.path.removeprefix("/keys/"))
            self._send(200, {"ok": True})
            mirror(self.path)

        def do_POST(self) -> None:
            if not self.path.startswith("/counters/"):
                self._send(404, {"error": "not found"})
                return
            store.write("incr " + self.path.removeprefix("/counters/"))
            self._send(200, {"ok": True})
            mirror(self.path)

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
