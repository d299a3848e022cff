"""Any locustfile, end to end: a real Locust subprocess run by `LoadRunner` against tiny
loopback HTTP servers started in this process (no ClipStream).

- A plain locustfile that knows nothing about drills gets every request recorded by the
  recording shim, each under the class ``LoadConfig.classes`` maps its name to.
- A locustfile that records its history through `drills.record` against a small key/counter
  service gives a history the writes and counter checks judge: all acknowledged data present
  passes; a service that acknowledges a write and then forgets it fails, naming the key.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from drills.checks import check_acked_writes, check_counters, check_zero_reads
from drills.load.runner import RECORDING_SHIM, LoadConfig, LoadRunner, resolve_locustfile
from drills.model import FinalRead, LostWrite, StoreSnapshot

pytestmark = pytest.mark.slow

RUN_S = 2.5

PLAIN = '''
from locust import HttpUser, constant, task


class Plain(HttpUser):
    wait_time = constant(0.02)

    @task(3)
    def read(self):
        self.client.get("/items")

    @task(1)
    def write(self):
        self.client.post("/items", data=b"x")

    @task(1)
    def broken(self):
        self.client.get("/broken")
'''

RECORDED = '''
import uuid

from locust import HttpUser, constant, task

from drills import record


class Client(HttpUser):
    wait_time = constant(0.02)

    def on_start(self):
        self.h = record.history()
        self.keys = []

    @task(2)
    def put(self):
        key = uuid.uuid4().hex[:8]
        op = self.h.invoke("write", key=key)
        r = self.client.post(f"/kv/{key}", name="put")
        if r.status_code == 200:
            self.h.ok(op, store="kv", epoch=1)
            self.keys.append(key)
        else:
            self.h.fail(op, error=str(r.status_code))

    @task(3)
    def hit(self):
        if not self.keys:
            return
        key = self.keys[-1]
        op = self.h.invoke("incr", key=key, counter="hits")
        r = self.client.post(f"/kv/{key}/hits", name="hit")
        (self.h.ok if r.status_code == 200 else self.h.info)(op)

    @task(1)
    def get(self):
        if not self.keys:
            return
        key = self.keys[0]
        op = self.h.invoke("read", key=key)
        r = self.client.get(f"/kv/{key}", name="get")
        if r.status_code == 200:
            self.h.ok(op, counts=r.json()["counters"])
        else:
            self.h.fail(op, error=str(r.status_code))
'''


class _Handler(BaseHTTPRequestHandler):
    """``/items`` 200, ``/broken`` 500 (the plain locustfile); ``/kv/...`` a key/counter store
    whose ``forget`` writes are acknowledged and then dropped (a planted data loss)."""

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        path = urlsplit(self.path).path
        if path == "/items":
            self._send(200, {"items": []})
        elif path.startswith("/kv/"):
            key = path.split("/")[2]
            with server.lock:
                found = key in server.keys
                counters = dict(server.counters.get(key, {}))
            self._send(200 if found else 404, {"counters": counters})
        else:
            self._send(500, {"error": "boom"})

    def do_POST(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path).path.split("/")
        if parts[1] == "items":
            self._send(201, {})
            return
        key = parts[2]
        with server.lock:
            if len(parts) == 3:
                server.writes += 1
                if server.forget is None or server.writes % server.forget:
                    server.keys.add(key)
                    server.counters.setdefault(key, {"hits": 0})
                else:
                    server.forgotten.append(key)
            else:
                counters = server.counters.setdefault(key, {"hits": 0})
                counters[parts[3]] = counters.get(parts[3], 0) + 1
        self._send(200, {"ok": True})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, forget: int | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.forget = forget
        self.writes = 0
        self.keys: set[str] = set()
        self.counters: dict[str, dict[str, int]] = {}
        self.forgotten: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def final_read(self) -> FinalRead:
        with self.lock:
            snap = StoreSnapshot(name="kv", reachable=True, role="primary", epoch=1,
                                 keys=frozenset(self.keys),
                                 counters={k: dict(c) for k, c in self.counters.items()})
        return FinalRead(primary="kv", stores=(snap,))


def _serve(forget: int | None) -> Iterator[_Server]:
    server = _Server(forget)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def server() -> Iterator[_Server]:
    yield from _serve(None)


@pytest.fixture
def lossy_server() -> Iterator[_Server]:
    yield from _serve(forget=7)  # every 7th acknowledged write is dropped


def _run(tmp_path: Path, locustfile: str, host: str, **kw: object) -> LoadRunner:
    path = tmp_path / "mine" / "locustfile.py"
    path.parent.mkdir()
    path.write_text(locustfile)
    cfg = LoadConfig(locustfile=resolve_locustfile(path), host=host, users=3, rate=60.0,
                     timeout_s=1.0, record_dir=tmp_path / "load", **kw)  # type: ignore[arg-type]
    assert cfg.command()[cfg.command().index("-f") + 1] == f"{RECORDING_SHIM},{path.resolve()}"
    with LoadRunner(cfg) as load:
        time.sleep(RUN_S)
        assert load.alive, load.log_tail()
    return load


def test_a_plain_locustfile_is_recorded_with_mapped_classes(tmp_path: Path,
                                                            server: _Server) -> None:
    load = _run(tmp_path, PLAIN, server.url,
                classes={"GET /items": "browse", "POST /items": "submit"})
    reqs = load.requests()
    by_class = {op: [r for r in reqs if r.op == op] for op in {r.op for r in reqs}}
    # mapped by "<METHOD> <name>"; an unmapped name is its own class
    assert set(by_class) == {"browse", "submit", "/broken"}
    assert all(r.ok and r.status == 200 for r in by_class["browse"])
    assert all(r.ok and r.status == 201 for r in by_class["submit"])
    assert all(not r.ok and r.status == 500 and r.error == "http 500"
               for r in by_class["/broken"])
    assert min(r.t for r in reqs) >= load.started_at
    assert load.history() == []  # it records no history: the data checks have nothing


def test_a_locustfile_using_drills_record_is_judged(tmp_path: Path, server: _Server) -> None:
    load = _run(tmp_path, RECORDED, server.url)
    history = load.history()
    assert {r.op for r in load.requests()} == {"put", "hit", "get"}
    assert {o.f for o in history} == {"write", "incr", "read"}
    assert len({o.process for o in history}) == 3  # one logical client per user greenlet
    final = server.final_read()
    writes = check_acked_writes(history, final=final)
    counters = check_counters(history, final=final)
    assert writes.passed is True and writes.metrics["acknowledged"] > 10, writes.summary
    assert counters.passed is True and counters.metrics["counters_checked"] > 10, \
        counters.findings
    assert check_zero_reads(history).passed is True


def test_an_acknowledged_write_the_service_forgot_fails_the_check(
        tmp_path: Path, lossy_server: _Server) -> None:
    load = _run(tmp_path, RECORDED, lossy_server.url)
    writes = check_acked_writes(load.history(), final=lossy_server.final_read())
    assert lossy_server.forgotten, "the planted loss must have happened"
    assert writes.passed is False
    lost = writes.of(LostWrite)
    assert {w.key for w in lost} == set(lossy_server.forgotten)
    assert all(w.store == "kv" and w.epoch == 1 and w.acked_at is not None for w in lost)
    assert writes.metrics["lost_acked_writes"] == len(lossy_server.forgotten)
