"""The server process itself (ours only): flags, config file, logging, signals, parent watch.

Each test starts ``python -m drills.toxiproxy`` as a child process on a free loopback port and
talks to it over HTTP and TCP.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tp_support import TcpServer, connect, read_until_end, round_trip, sender, unique

from drills.toxiproxy.embedded import free_port, wait_ready


@dataclass
class Running:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@contextlib.contextmanager
def running(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, wait: bool = True
) -> Iterator[Running]:
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    argv = [sys.executable, "-m", "drills.toxiproxy", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*argv, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    server = Running(f"http://127.0.0.1:{port}", proc, log)
    try:
        if wait:
            wait_ready(server.url, 15, alive=lambda: proc.poll() is None, logs=server.text)
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_config_file_is_loaded_before_the_api_listens(tmp_path: Path) -> None:
    with TcpServer() as up:
        config = tmp_path / "proxies.json"
        config.write_text(
            json.dumps(
                [
                    {"name": "one", "listen": "localhost:0", "upstream": up.addr},
                    {"name": "two", "listen": "127.0.0.1:0", "upstream": up.addr, "enabled": False},
                ]
            )
        )
        with running(tmp_path, "--config", str(config)) as server:
            proxies = httpx.get(f"{server.url}/proxies", trust_env=False).json()
            assert set(proxies) == {"one", "two"}
            assert proxies["one"]["enabled"] and proxies["one"]["listen"].startswith("127.0.0.1:")
            assert proxies["two"]["enabled"] is False
            with connect(proxies["one"]["listen"]) as sock:
                round_trip(sock)


@pytest.mark.parametrize("content", ["not json", '[{"upstream": "127.0.0.1:1"}]', None])
def test_bad_config_is_logged_and_the_server_still_runs(tmp_path: Path, content: str | None):
    config = tmp_path / "bad.json"
    if content is not None:
        config.write_text(content)
    with running(tmp_path, "--config", str(config)) as server:
        assert httpx.get(f"{server.url}/proxies", trust_env=False).json() == {}
        assert "ERROR" in server.text() and str(config) in server.text()


def test_one_log_line_per_change_and_clean_sigterm(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        name = unique()
        with httpx.Client(base_url=server.url, trust_env=False) as http:
            http.post("/proxies", json={"name": name, "upstream": "127.0.0.1:1"})
            http.post(f"/proxies/{name}/toxics", json={"type": "latency", "name": "l"})
            http.post(f"/proxies/{name}/toxics/l", json={"attributes": {"latency": 5}})
            http.delete(f"/proxies/{name}/toxics/l")
            http.post(f"/proxies/{name}", json={"enabled": False})
            http.post(f"/proxies/{name}", json={"enabled": False})  # no change: no line
            http.post(f"/proxies/{name}", json={"enabled": True})
            http.get(f"/proxies/{name}")  # reads are not logged
            http.delete(f"/proxies/{name}")
        start = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - start < 5
    lines = [line for line in server.text().splitlines() if name in line]
    assert len(lines) == 7, "\n".join(lines)
    for word, line in zip(
        ["created", "added", "updated", "removed", "updated", "updated", "deleted"],
        lines,
        strict=True,
    ):
        assert word in line, line
    assert "shutdown complete" in server.text()


def test_sigterm_closes_proxies_and_open_connections(tmp_path: Path) -> None:
    with TcpServer(sender(b"hi", close=False, linger=10)) as up, running(tmp_path) as server:
        made = httpx.post(
            f"{server.url}/proxies", trust_env=False, json={"name": "p", "upstream": up.addr}
        ).json()
        with connect(made["listen"]) as sock:
            assert read_until_end(sock, 5, limit=2).data == b"hi"
            assert server.stop() == 0
            assert read_until_end(sock, 5).end in ("eof", "reset")


def test_api_port_in_use_exits_1(tmp_path: Path) -> None:
    with running(tmp_path) as first:
        port = first.url.rsplit(":", 1)[1]
        proc = subprocess.run(
            [sys.executable, "-m", "drills.toxiproxy", "--host", "127.0.0.1", "--port", port],
            capture_output=True,
            timeout=30,
        )
        assert proc.returncode == 1
        assert b"address already in use" in proc.stderr


def test_version_flag_and_bad_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "drills.toxiproxy", "--version"], capture_output=True, timeout=30
    )
    assert out.returncode == 0 and b"toxiproxy-server version" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "drills.toxiproxy", "--port", "many"],
        capture_output=True,
        timeout=30,
    )
    assert bad.returncode == 2


def _draws(url: str, listen_of: dict[str, str], upstream: str, n: int) -> str:
    """Toxicity decisions of ``n`` sequential connections through a 0.5 blackhole, as a string."""
    with httpx.Client(base_url=url, trust_env=False) as http:
        made = http.post("/proxies", json={"name": "p", "upstream": upstream}).json()
        http.post("/proxies/p/toxics", json={"type": "timeout", "toxicity": 0.5})
    out = []
    for _ in range(n):
        with connect(made["listen"]) as sock:
            out.append("1" if read_until_end(sock, 10).data == b"" else "0")
    return "".join(out)


def test_seed_makes_toxicity_draws_repeatable(tmp_path: Path) -> None:
    with TcpServer(sender(b"data")) as up:
        runs = []
        for seed in ("7", "7", "8"):
            with running(tmp_path, "--seed", seed) as server:
                runs.append(_draws(server.url, {}, up.addr, 40))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert 5 < runs[0].count("1") < 35


def test_server_stops_when_its_parent_is_gone(tmp_path: Path) -> None:
    parent = subprocess.Popen(["sleep", "0.5"])
    with running(tmp_path, env={"DRILLS_TOXIPROXY_PARENT_PID": str(parent.pid)}) as server:
        parent.wait()
        assert server.proc.wait(timeout=10) == 0
        assert "parent process" in server.text()


def test_default_host_is_localhost_on_ipv4(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "default.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "drills.toxiproxy", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(
            f"http://127.0.0.1:{port}", 15, alive=lambda: proc.poll() is None, logs=log.read_text
        )
        assert f"127.0.0.1:{port}" in log.read_text()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_go_style_single_dash_flags(tmp_path: Path) -> None:
    """A drop-in for ``toxiproxy-server``: Go's flag package spells flags with one dash."""
    port = free_port()
    config = tmp_path / "one.json"
    config.write_text('[{"name": "g", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}]')
    argv = [
        sys.executable,
        "-m",
        "drills.toxiproxy",
        "-host",
        "127.0.0.1",
        f"-port={port}",
        "-config",
        str(config),
        "-seed",
        "1",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, 15, alive=lambda: proc.poll() is None)
        assert list(httpx.get(f"{url}/proxies", trust_env=False).json()) == ["g"]
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
