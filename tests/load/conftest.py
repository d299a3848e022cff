"""Fixtures for the load tests: free ports, a misbehaving HTTP server, a lossy proxy, a real
ClipStream.

``clipstream_api`` starts the real ``clipstream dev`` (all four nodes as child processes, in
their own process group, on loopback) and yields its api URL. ``misbehaving_api`` is a real
threaded HTTP server on loopback that answers each ClipStream route wrongly in one known way,
to show that the load classifies every kind of bad answer. ``lossy_api`` puts a `LossyProxy`
(a loopback HTTP proxy in this process) in front of ``clipstream_api``: it loses the answers of
~30 % of the writes after the api applied them (the fault that makes writes indeterminate) and
marks every search answer degraded.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

HANG_S = 5.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dead_url() -> str:
    """The URL of an api that is down: nothing listens on its port (connections refused)."""
    return f"http://127.0.0.1:{free_port()}"


class _Misbehaving(BaseHTTPRequestHandler):
    """feed fine (one known video ``v1``); upload 503; view 404; like hangs (client timeout);
    stats body not JSON; video metadata without counters; search 500."""

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/feed":
            item = {"id": "v1", "title": "t", "views": 0, "likes": 0, "created_at": 1.0}
            self._send(200, json.dumps({"items": [item], "next": None}).encode())
        elif path == "/videos/v1/stats":
            self._send(200, b"<html>not json</html>")
        elif path == "/videos/v1":
            self._send(200, json.dumps({"id": "v1", "views": "many"}).encode())
        else:
            self._send(500, b'{"error": "boom"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        path = self.path.split("?")[0]
        if path == "/videos":
            self._send(503, b'{"error": "no store"}')
        elif path == "/videos/v1/views":
            self._send(404, b'{"error": "unknown video", "field": "id"}')
        elif path == "/videos/v1/likes":
            assert isinstance(self.server, _QuietServer)
            if not self.server.closing.wait(HANG_S):
                self._send(200, b'{"id": "v1", "views": 0, "likes": 1}')
        else:
            self._send(500, b'{"error": "boom"}')


class _QuietServer(ThreadingHTTPServer):
    """A threaded server whose hanging handlers end at close, and which does not print the
    errors of clients that gave up waiting (that is what the clients are meant to do)."""

    daemon_threads = True
    block_on_close = True
    request_queue_size = 128  # the default 5 overflows on a busy machine: connect timeouts

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Misbehaving)
        self.closing = threading.Event()

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@pytest.fixture
def misbehaving_api() -> Iterator[str]:
    """URL of a loopback HTTP server that answers as `_Misbehaving` says."""
    server = _QuietServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.closing.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


class _Relay(BaseHTTPRequestHandler):
    """Forwards one request to the upstream api and relays its answer, or loses it."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the api itself

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._relay()

    def do_POST(self) -> None:
        self._relay()

    def _relay(self) -> None:
        server = self.server
        assert isinstance(server, LossyProxy)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ctype = self.headers.get("Content-Type")
        conn = http.client.HTTPConnection(server.upstream[0], server.upstream[1], timeout=10)
        try:
            conn.request(self.command, self.path, body=body,
                         headers={"Content-Type": ctype} if ctype else {})
            resp = conn.getresponse()
            data = resp.read()
        except OSError:
            self.close_connection = True
            return
        finally:
            conn.close()
        if self.command == "POST" and server.lose_this_answer():
            self.close_connection = True  # applied upstream; the client sees a reset
            return
        self.send_response(resp.status)
        degraded = self.path.startswith("/search")
        for key, value in resp.getheaders():
            if key.lower() == "content-type" or key.lower().startswith("x-clipstream-"):
                self.send_header(key, value)
                degraded |= key.lower() == "x-clipstream-degraded"
        if self.path.startswith("/search"):
            self.send_header("X-ClipStream-Degraded", "stale")
        if degraded and resp.status == 200 and self.path.startswith(("/search", "/feed")):
            server.count_degraded_list()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class LossyProxy(ThreadingHTTPServer):
    """A loopback proxy to ``upstream`` (an api URL), as a context manager yielding its URL.

    Each write (POST) is forwarded whole and answered upstream; then, with probability
    ``lose``, the proxy closes the client's connection instead of relaying the answer: the
    write took effect, the client cannot know (a reset: indeterminate). Search answers get
    ``X-ClipStream-Degraded: stale`` added (as from a replica); everything else is relayed.
    ``lost`` counts the answers lost; ``degraded_lists`` the feed and search answers relayed
    as degraded (every search, and a feed the api's primary did not answer in time, which a
    loaded machine does produce).
    """

    daemon_threads = True
    block_on_close = True
    request_queue_size = 128

    def __init__(self, upstream: str, *, lose: float, seed: int = 1):
        super().__init__(("127.0.0.1", 0), _Relay)
        url = urlsplit(upstream)
        self.upstream = (url.hostname or "127.0.0.1", url.port or 80)
        self.lose = lose
        self.lost = 0
        self.degraded_lists = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def lose_this_answer(self) -> bool:
        with self._lock:
            lost = self._rng.random() < self.lose
            self.lost += lost
            return lost

    def count_degraded_list(self) -> None:
        with self._lock:
            self.degraded_lists += 1

    def handle_error(self, request: object, client_address: object) -> None:
        pass

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> LossyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)


@pytest.fixture(scope="module")
def lossy_api(clipstream_api: str) -> Iterator[LossyProxy]:
    """A `LossyProxy` in front of the real ClipStream that loses 30 % of the write answers."""
    with LossyProxy(clipstream_api, lose=0.3) as proxy:
        yield proxy


def _clipstream_bin() -> str | None:
    exe = Path(sys.executable).with_name("clipstream")
    return str(exe) if exe.exists() else shutil.which("clipstream")


@pytest.fixture(scope="module")
def clipstream_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start the real ``clipstream dev`` on a free port; yield the api URL; stop it all."""
    exe = _clipstream_bin()
    if exe is None:
        pytest.fail("the clipstream console script is not installed")
    data = tmp_path_factory.mktemp("clipstream")
    port = free_port()
    log = (data / "dev.log").open("wb")
    proc = subprocess.Popen([exe, "dev", "--port", str(port), "--data-dir", str(data / "d")],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, data / "dev.log")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # any node the dev command left behind
        log.close()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Wait until the api answers /healthz 200 and a write succeeds; fail with the log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                r = httpx.post(f"{url}/videos", params={"title": "warm up", "client_id": "warm"},
                               content=b"x", timeout=2)
                if r.status_code in (200, 201):
                    return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:]
    pytest.fail(f"clipstream dev did not become ready at {url} (rc={proc.poll()}):\n{tail}")
