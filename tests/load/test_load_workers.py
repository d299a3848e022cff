"""``load.workers``: Locust's master/worker mode run by `LoadRunner`, and the spec field.

The ``slow`` tests start real Locust processes (a master and two workers: the recording shim
plus a small ``FastHttpUser`` locustfile that records every write through `drills.record`)
against a tiny threaded HTTP server in this process that remembers the id of every write it
applied. They show that both workers' records land in one time-ordered timeline with nothing
lost or doubled, that ``started_at`` is the earliest first-user start of the workers (the
master writes no marker), that stopping stops every process, and that an orphaned
master/worker set quits when its harness is SIGKILLed. The others check the command lines and
the validation of ``load.workers`` (in the drill file, with ``--set``, and in `LoadConfig`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from drills.catalog import find_drill, load_drill, parse_drill
from drills.errors import LoadError, SpecError
from drills.load.records import STARTED_GLOB
from drills.load.runner import MAX_WORKERS, LoadConfig, LoadRunner, resolve_locustfile
from drills.model import Op
from drills.stack.process import alive

WRITER = '''
import uuid

from locust import FastHttpUser, constant_throughput, task

from drills import record


class Writer(FastHttpUser):
    wait_time = constant_throughput(10)

    def on_start(self):
        self.h = record.history()

    @task
    def put(self):
        op = self.h.invoke("write", key=uuid.uuid4().hex)
        with self.client.post(f"/put?id={op.key}", name="put", catch_response=True) as r:
            out = record.outcome_of(r)
        if out.ok:
            self.h.ok(op, store="tiny")
        elif out.write_type() == "fail":
            self.h.fail(op, error=out.error)
        else:
            self.h.info(op, error=out.error)
'''


class _Counting(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as FastHttpUser expects

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = parse_qs(urlsplit(self.path).query).get("id", [""])[0]
        with server.lock:
            server.applied.append(key)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


class _Server(ThreadingHTTPServer):
    """Answers every ``POST /put?id=<key>`` with 200 and keeps ``applied``, every key in
    arrival order (a key twice would be a request sent twice)."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Counting)
        self.lock = threading.Lock()
        self.applied: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def _config(tmp_path: Path, host: str, **kw: object) -> LoadConfig:
    lf = tmp_path / "writer.py"
    lf.write_text(WRITER)
    base: dict[str, object] = {"locustfile": resolve_locustfile(lf), "host": host,
                               "record_dir": tmp_path / "load", "users": 8, "rate": 80.0,
                               "timeout_s": 2.0, "workers": 2}
    base.update(kw)
    return LoadConfig(**base)  # type: ignore[arg-type]


def _pid_of(process: str) -> int:
    return int(process.split("-")[0])


# -- the command lines and LoadConfig ------------------------------------------------------


def test_two_workers_run_a_master_and_two_workers_of_it(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "http://127.0.0.1:1")
    assert cfg.distributed
    master = cfg.command(master_port=5599)
    assert master[master.index("--expect-workers") + 1] == "2"
    assert master[master.index("--master-bind-host") + 1] == "127.0.0.1"
    assert master[master.index("--master-bind-port") + 1] == "5599"
    assert {"--master", "--headless"} <= set(master) and "-u" in master
    worker = cfg.worker_command(5599)
    assert "--worker" in worker and "-u" not in worker and "--master" not in worker
    assert worker[worker.index("--master-port") + 1] == "5599"
    assert worker[worker.index("-f") + 1] == master[master.index("-f") + 1]
    with pytest.raises(LoadError, match="port"):
        cfg.command()


def test_one_worker_is_one_plain_process(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "http://127.0.0.1:1", workers=1)
    assert not cfg.distributed
    assert not {"--master", "--worker", "--expect-workers"} & set(cfg.command())


def test_remote_workers_are_expected_on_the_bound_port(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "http://127.0.0.1:1", workers=1, remote_workers=3,
                  master_bind="0.0.0.0:5557")
    assert cfg.distributed and cfg.master_port() == 5557
    cmd = cfg.command(master_port=cfg.master_port())
    assert cmd[cmd.index("--expect-workers") + 1] == "4"
    assert cmd[cmd.index("--master-bind-host") + 1] == "0.0.0.0"


def test_auto_is_one_worker_per_core(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "http://127.0.0.1:1", workers="auto")
    assert cfg.workers == min(os.cpu_count() or 1, MAX_WORKERS)


@pytest.mark.parametrize(("kw", "field"), [
    ({"workers": 0}, "load.workers"), ({"workers": MAX_WORKERS + 1}, "load.workers"),
    ({"workers": "all"}, "load.workers"), ({"workers": True}, "load.workers"),
    ({"remote_workers": -1}, "load.remote_workers"),
    ({"master_bind": "nohost"}, "load.master_bind"),
    ({"master_bind": "h:99999"}, "load.master_bind"),
])
def test_config_rejects_worker_counts_that_cannot_work(tmp_path: Path, kw: dict[str, object],
                                                       field: str) -> None:
    with pytest.raises(SpecError) as info:
        _config(tmp_path, "http://127.0.0.1:1", **kw)
    assert info.value.field == field


# -- the spec field ------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("2", 2), ("auto", "auto"), ("64", 64)])
def test_load_workers_is_set_from_the_command_line(value: str, expected: object) -> None:
    assert load_drill("dc-east-power-loss", [f"load.workers={value}"]).load.workers == expected
    assert load_drill("dc-east-power-loss").load.workers == 1


@pytest.mark.parametrize("value", ["0", "65", "-1", "two", "1.5", "true", "AUTO"])
def test_a_bad_load_workers_is_a_located_spec_error(value: str) -> None:
    with pytest.raises(SpecError) as info:
        load_drill("dc-east-power-loss", [f"load.workers={value}"])
    assert (info.value.source, info.value.field) == ("--set", "load.workers")
    assert info.value.message.startswith(f"expected 1 <= int <= {MAX_WORKERS}, or auto, got ")


def test_a_bad_load_workers_in_the_drill_file_names_the_file() -> None:
    path = find_drill("dc-east-power-loss")
    raw = yaml.safe_load(path.read_text())
    raw["load"]["workers"] = 0
    with pytest.raises(SpecError) as info:
        parse_drill(yaml.safe_dump(raw), source="mine.yaml", base_dir=path.parent)
    assert (info.value.source, info.value.field) == ("mine.yaml", "load.workers")
    assert info.value.message.endswith("got 0")


# -- real Locust: a master and two workers -------------------------------------------------


@pytest.mark.slow
def test_two_workers_land_in_one_timeline_with_no_loss(tmp_path: Path, server: _Server) -> None:
    with LoadRunner(_config(tmp_path, server.url)) as load:
        assert load.alive and len(load.worker_pids) == 2
        time.sleep(3.0)
        live = load.poll()
    pids = {load.pid, *load.worker_pids}
    assert all(not alive(pid) for pid in pids if pid is not None), "everything stopped"
    reqs, hist = load.requests(), load.history()

    # Both workers recorded (each in its own files); the master recorded nothing.
    files = {int(p.stem.split("-")[1]) for p in load.record_dir.glob("requests-*.jsonl")
             if p.stat().st_size}
    assert files == set(load.worker_pids)
    assert {_pid_of(o.process) for o in hist} == set(load.worker_pids)
    markers = {int(p.stem.split("-")[1]) for p in load.record_dir.glob(STARTED_GLOB)}
    assert markers <= set(load.worker_pids) and load.pid not in markers
    assert load.started_at <= min(r.t for r in reqs)

    # One timeline: sorted by time, both workers interleaved in it.
    assert [r.t for r in reqs] == sorted(r.t for r in reqs)
    assert [o.time for o in hist] == sorted(o.time for o in hist)
    by_pid = {pid: [o.time for o in hist if _pid_of(o.process) == pid]
              for pid in load.worker_pids}
    first, second = by_pid.values()
    assert max(first) > min(second) and max(second) > min(first), "the workers overlap"

    # No loss: every request the server applied was recorded exactly once, and acknowledged.
    assert live and set(live) <= set(reqs)
    assert len(server.applied) == len(set(server.applied)), "no request sent twice"
    assert len(reqs) == len(server.applied) and all(r.ok and r.op == "put" for r in reqs)
    invokes = [o for o in hist if o.type == "invoke"]
    acks = [o for o in hist if o.type == "ok"]
    assert len(invokes) == len(acks) == len(hist) // 2 == len(reqs)
    assert {o.key for o in invokes} == {o.key for o in acks} == set(server.applied)
    first_of: dict[str, Op] = {}
    for o in hist:
        first_of.setdefault(o.id, o)
    assert all(first_of[o.id].type == "invoke" for o in acks), "each invoke before its ack"
    # The pacing holds over the workers: about rate x duration.
    assert 0.5 * 80 * 3.0 < len(reqs) < 1.5 * 80 * 4.0


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_reported(tmp_path: Path, server: _Server) -> None:
    with pytest.raises(LoadError, match=r"exited on its own \(worker \d+ exit code -9\)"), \
            LoadRunner(_config(tmp_path, server.url)) as load:
        _wait_until(load.requests, 10)
        os.kill(load.worker_pids[0], signal.SIGKILL)
        _wait_until(lambda: not load.alive, 10)
    assert not any(alive(pid) for pid in (load.pid, *load.worker_pids) if pid)


@pytest.mark.slow
def test_master_and_workers_quit_when_the_harness_is_killed(tmp_path: Path,
                                                            server: _Server) -> None:
    lf = tmp_path / "writer.py"
    lf.write_text(WRITER)
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from drills.load.runner import LoadConfig, LoadRunner, resolve_locustfile
        cfg = LoadConfig(locustfile=resolve_locustfile("{lf}"), host="{server.url}",
                         users=4, rate=20.0, workers=2, record_dir=Path(sys.argv[1]))
        with LoadRunner(cfg) as load:
            print(load.pid, *load.worker_pids, flush=True)
            time.sleep(600)
    """)
    harness = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "load")],
                               stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        assert harness.stdout is not None
        pids = [int(p) for p in harness.stdout.readline().split()]
        assert len(pids) == 3 and all(alive(p) for p in pids)
    finally:
        harness.kill()
        harness.wait()
    try:
        _wait_until(lambda: not any(alive(p) for p in pids), 20)
    finally:
        if pids and any(alive(p) for p in pids):
            os.killpg(pids[0], signal.SIGKILL)


def _wait_until(cond: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
