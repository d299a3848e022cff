"""Differential test: ours and the official Go server answer the same requests identically.

Needs the official binary: ``TOXIPROXY_BIN=/path/to/toxiproxy-server pytest ...`` (skipped
otherwise). Both servers get the same sequence of requests, error paths included; statuses,
bodies (bound ports and the version masked), content types and request-id headers must match.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from drills.toxiproxy.embedded import free_port, wait_ready

BIN = os.environ.get("TOXIPROXY_BIN")
pytestmark = pytest.mark.skipif(not BIN, reason="set TOXIPROXY_BIN to the official binary")

REQUESTS: list[tuple[str, str, str | None]] = [
    ("GET", "/proxies", None),
    ("POST", "/proxies", '{"name":"a","listen":"127.0.0.1:0","upstream":"127.0.0.1:1"}'),
    ("POST", "/proxies", '{"name":"a","listen":"127.0.0.1:0","upstream":"127.0.0.1:1"}'),
    ("POST", "/proxies", '{"name":"b"}'),
    ("POST", "/proxies", ""),
    ("POST", "/proxies", "null"),
    ("POST", "/proxies", "[1]"),
    ("POST", "/proxies", '{"name":"c","upstream":"x:1","listen":"127.0.0.1:{TAKEN}"}'),
    ("POST", "/proxies", '{"name":"d","upstream":"x:1","listen":"nohost"}'),
    ("POST", "/proxies", '{"name":"f","upstream":"x:1","listen":"127.0.0.1:0","enabled":false}'),
    ("POST", "/proxies", '{"name":"g","upstream":"x:1","listen":"127.0.0.1:0"} trailing'),
    ("POST", "/proxies", '{"name":"h","upstream":"x:1","enabled":"no"}'),
    ("POST", "/proxies", '{"name":5,"upstream":"x:1"}'),
    ("GET", "/proxies/a", None),
    ("GET", "/proxies/zzz", None),
    ("POST", "/proxies/a", '{"upstream":"127.0.0.1:2"}'),
    ("PATCH", "/proxies/a", '{"enabled":false}'),
    ("POST", "/proxies/a", ""),
    ("POST", "/proxies/a", '{"listen":"bad"}'),
    ("POST", "/proxies/a/toxics", '{"type":"latency"}'),
    ("POST", "/proxies/a/toxics", '{"type":"latency"}'),
    ("POST", "/proxies/a/toxics", '{"type":"latency","stream":"Upstream"}'),
    ("POST", "/proxies/a/toxics", '{"type":"latency","stream":"x"}'),
    ("POST", "/proxies/a/toxics", '{"type":"zz"}'),
    ("POST", "/proxies/a/toxics", '{"type":"bandwidth","attributes":{"rate":"x"}}'),
    ("POST", "/proxies/a/toxics", '{"type":"bandwidth","attributes":{"rate":1.5}}'),
    ("POST", "/proxies/a/toxics", '{"type":"bandwidth","attributes":7}'),
    (
        "POST",
        "/proxies/a/toxics",
        '{"type":"slicer","toxicity":0.3,"name":"s1","attributes":{"AVERAGE_SIZE":5}}',
    ),
    ("POST", "/proxies/a/toxics", '{"type":"noop","toxicity":"x"}'),
    ("POST", "/proxies/a/toxics", ""),
    ("POST", "/proxies/a/toxics", "[]"),
    ("POST", "/proxies/a/toxics", '{"type":"limit_data","attributes":{"bytes":null}}'),
    ("POST", "/proxies/a/toxics", '{"type":"reset_peer","attributes":{"timeout":"x"}}'),
    ("POST", "/proxies/a/toxics", '{"Type":"noop","NAME":"n2","Stream":"UPSTREAM"}'),
    ("GET", "/proxies/a/toxics", None),
    ("POST", "/proxies/a/toxics/s1", '{"attributes":{"delay":5},"toxicity":1}'),
    ("PATCH", "/proxies/a/toxics/s1", '{"attributes":{"delay":"x"}}'),
    ("POST", "/proxies/a/toxics/s1", '{"attributes":7}'),
    ("POST", "/proxies/a/toxics/s1", ""),
    ("GET", "/proxies/a/toxics/s1", None),
    ("GET", "/proxies/a/toxics/none", None),
    ("DELETE", "/proxies/a/toxics/s1", None),
    ("DELETE", "/proxies/a/toxics/s1", None),
    ("GET", "/proxies/a", None),
    (
        "POST",
        "/populate",
        '[{"name":"a","listen":"127.0.0.1:0","upstream":"127.0.0.1:2"},'
        '{"name":"p2","upstream":"127.0.0.1:3","listen":"127.0.0.1:0"}]',
    ),
    ("POST", "/populate", '[{"name":"q","upstream":"x:1"},{"upstream":"x"}]'),
    ("POST", "/populate", '[{"name":5,"upstream":"x:1"}]'),
    ("POST", "/populate", "[]"),
    ("POST", "/populate", "{}"),
    ("POST", "/populate", ""),
    ("POST", "/populate", '[{"name":"bad","upstream":"x:1","listen":"127.0.0.1:{TAKEN}"}]'),
    ("POST", "/reset", None),
    ("GET", "/reset", None),
    ("GET", "/proxies/", None),
    ("GET", "//proxies", None),
    ("HEAD", "/version", None),
    ("OPTIONS", "/proxies", None),
    ("GET", "/proxies/a%20b", None),
    ("DELETE", "/proxies/a", None),
    ("DELETE", "/proxies/a", None),
    ("GET", "/proxies", None),
    ("GET", "/nothing/here", None),
]


def _start(argv: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}", 15, alive=lambda: proc.poll() is None)
    return proc


@pytest.fixture
def servers() -> Iterator[tuple[str, str]]:
    go_port, our_port = free_port(), free_port()
    procs = [
        _start([str(BIN), "-host", "127.0.0.1", "-port", str(go_port)], go_port),
        _start(
            [
                sys.executable,
                "-m",
                "drills.toxiproxy",
                "--host",
                "127.0.0.1",
                "--port",
                str(our_port),
            ],
            our_port,
        ),
    ]
    try:
        yield f"http://127.0.0.1:{go_port}", f"http://127.0.0.1:{our_port}"
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def _answer(client: httpx.Client, url: str, method: str, path: str, body: str | None) -> tuple:
    resp = client.request(method, url + path, content=None if body is None else body.encode())
    text = re.sub(r"127\.0\.0\.1:\d{4,5}", "127.0.0.1:N", resp.text)
    text = re.sub(r'"version": "[^"]*"', '"version": V', text)
    kept = ("content-type", "location", "x-content-type-options")
    headers = {k: v for k, v in resp.headers.items() if k in kept}
    return resp.status_code, text, headers, "x-toxiproxy-request-id" in resp.headers


def test_same_requests_same_answers(servers: tuple[str, str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken, httpx.Client(trust_env=False) as client:
        port = str(taken.getsockname()[1])
        diffs = []
        for method, path, body in REQUESTS:
            body = None if body is None else body.replace("{TAKEN}", port)
            theirs, ours = (_answer(client, url, method, path, body) for url in servers)
            if theirs != ours:
                diffs.append(f"{method} {path} {body}\n  official: {theirs}\n  ours:     {ours}")
    assert not diffs, "\n".join(diffs)
