"""Start a whole ClipStream locally: four node processes, wired directly, for humans and tests.

`LocalCluster` is a context manager: entering starts ``coordinator``, ``store-east`` (primary at
first), ``store-west`` and ``api`` as child processes (each in its own process group, its log in
``<base>/logs/<node>.log``) and waits until each answers ``/healthz``; leaving stops them all
(SIGTERM, then SIGKILL). `NodeProcess` offers the node verbs tests need: `kill` (SIGKILL, no
goodbye), `start`, `terminate`, `pause`/`resume`; each acts on the node's whole process group
(the api's workers with it, see ``--api-workers``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from clipstream.errors import ClipStreamError

STORES = ("store-east", "store-west")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Knobs:
    """The knobs a local cluster passes to its nodes (defaults = the nodes' defaults)."""

    fsync: str = "always"
    replication: str = "sync"
    pull_interval_ms: int = 200
    replication_timeout_ms: int = 400
    detection_ms: int = 1500
    check_interval_ms: int = 200
    check_timeout_ms: int = 300
    write_retry_s: float = 4.0
    request_timeout_ms: int = 800
    max_upload_bytes: int = 8 << 20
    bugs: str = ""  # planted DR bugs, comma separated (clipstream.bugs); empty = none
    api_workers: int | None = None  # api worker processes; None = the api's default (its env)


@dataclass(slots=True)
class NodeProcess:
    """One node as a child process; ``argv`` is the `clipstream` command line after the role."""

    name: str
    role: str
    url: str
    argv: list[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)  # added to this process's environment
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the process (no-op if it runs); its output goes to ``log_path``."""
        if self.alive:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "clipstream", self.role, *self.argv],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env,
            )

    def _signal(self, sig: signal.Signals) -> None:
        if self.alive and self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the node's process group and reap it: no goodbye, like a power cut."""
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def terminate(self, timeout: float = 5.0) -> None:
        """SIGTERM (clean exit), then SIGKILL after ``timeout`` seconds."""
        if self.proc is None:
            return
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        if timeout <= 0:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_healthy(self, timeout: float = 15.0, poll: float = 0.05) -> float:
        """Wait until ``GET /healthz`` answers 200; return the seconds waited.

        Raises `ClipStreamError` with the node's log tail if it exits or the time runs out.
        """
        t0 = time.monotonic()
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() - t0 < timeout:
                if not self.alive:
                    raise ClipStreamError(f"{self.name} exited\n{self.log_tail()}")
                try:
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        return time.monotonic() - t0
                except httpx.HTTPError:
                    pass
                time.sleep(poll)
        raise ClipStreamError(f"{self.name} not healthy after {timeout}s\n{self.log_tail()}")


class LocalCluster:
    """All four ClipStream nodes on 127.0.0.1, wired directly (a context manager).

    ``env`` is added to every node's environment (a benchmark points ``PYTHONPATH`` at another
    checkout of ClipStream with it).
    """

    def __init__(self, base_dir: Path, *, knobs: Knobs | None = None, api_port: int = 0,
                 host: str = "127.0.0.1", env: Mapping[str, str] | None = None):
        self.base_dir = base_dir
        self.env = dict(env or {})
        self.knobs = knobs or Knobs()
        k = self.knobs
        ports = {n: free_port(host) for n in ("coordinator", *STORES)}
        ports["api"] = api_port or free_port(host)
        urls = {n: f"http://{host}:{p}" for n, p in ports.items()}
        stores = [f"--store={n}={urls[n]}" for n in STORES]
        common = ["--host", host, f"--bugs={k.bugs}"]
        self.nodes: dict[str, NodeProcess] = {}
        for name, peer in zip(STORES, reversed(STORES), strict=True):
            self.nodes[name] = self._node(name, "store", urls[name], [
                *common, "--port", str(ports[name]), "--name", name,
                "--data-dir", str(base_dir / name), "--peer-url", urls[peer],
                "--fsync", k.fsync, "--replication", k.replication,
                "--pull-interval-ms", str(k.pull_interval_ms),
                "--replication-timeout-ms", str(k.replication_timeout_ms)])
        self.nodes["coordinator"] = self._node("coordinator", "coordinator", urls["coordinator"], [
            *common, "--port", str(ports["coordinator"]),
            "--data-dir", str(base_dir / "coordinator"), *stores, "--primary", STORES[0],
            "--detection-ms", str(k.detection_ms),
            "--check-interval-ms", str(k.check_interval_ms),
            "--check-timeout-ms", str(k.check_timeout_ms)])
        self.nodes["api"] = self._node("api", "api", urls["api"], [
            *common, "--port", str(ports["api"]), "--coordinator-url", urls["coordinator"],
            *stores, "--max-upload-bytes", str(k.max_upload_bytes),
            "--write-retry-s", str(k.write_retry_s),
            "--request-timeout-ms", str(k.request_timeout_ms),
            *([] if k.api_workers is None else ["--api-workers", str(k.api_workers)])])

    def _node(self, name: str, role: str, url: str, argv: list[str]) -> NodeProcess:
        return NodeProcess(name, role, url, argv, self.base_dir / "logs" / f"{name}.log",
                           env=self.env)

    @property
    def api_url(self) -> str:
        return self.nodes["api"].url

    def url(self, name: str) -> str:
        return self.nodes[name].url

    def start(self, timeout: float = 20.0) -> None:
        """Start every node and wait until all answer ``/healthz``."""
        for node in self.nodes.values():
            node.start()
        for node in self.nodes.values():
            node.wait_healthy(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM every node at once, then wait for each (SIGKILL past ``timeout``)."""
        nodes = list(self.nodes.values())
        for node in nodes:
            node.terminate(timeout=0)
        for node in nodes:
            node.terminate(timeout)

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
