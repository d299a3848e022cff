"""Our Toxiproxy-compatible server as a child process, and waiting for any server to be ready.

``EmbeddedServer`` starts ``python -m drills.toxiproxy --host 127.0.0.1 --port <free port>`` in
its own process group, with its output in a log file, waits until ``GET /version`` answers, and
on exit sends SIGTERM to the group (SIGKILL if it lingers). It also tells the child our pid, so
the server stops by itself if this process dies without cleaning up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import httpx

from drills.errors import ProxyError
from drills.toxiproxy.daemon import PARENT_ENV

LOG_TAIL = 40


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def reserved_ports(count: int, host: str = "127.0.0.1") -> Iterator[list[int]]:
    """``count`` distinct free ports, held (bound, not listening) until the block ends.

    While they are held, no other bind to port 0 on this machine - a proxy listener, say - can
    be handed one of them (with `free_port` alone, a proxy created next could get the very port
    just picked for a node: seen as "address already in use" at a node's start). Release them
    just before the processes that will listen on them start.
    """
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind((host, 0))
        yield [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def wait_ready(
    url: str,
    timeout: float,
    *,
    interval: float = 0.05,
    alive: Callable[[], bool] | None = None,
    logs: Callable[[], str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Poll ``GET {url}/version`` every ``interval`` s until it answers 200; its version.

    Gives up after ``timeout`` seconds, or at once when ``alive()`` says the server process
    has exited, raising `ProxyError` with the last error and ``logs()`` (the server's log tail).
    """
    deadline = clock() + timeout
    last = "no attempt"
    while True:
        try:
            resp = httpx.get(
                f"{url.rstrip('/')}/version", timeout=max(interval, 1.0), trust_env=False
            )
            if resp.status_code == 200:
                return str(resp.json().get("version", ""))
            last = f"HTTP {resp.status_code}"
        except (httpx.HTTPError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        gone = alive is not None and not alive()
        if gone or clock() >= deadline:
            why = "exited" if gone else f"did not answer within {timeout:g}s"
            tail = logs() if logs is not None else ""
            message = f"toxiproxy at {url} {why} (last error: {last})"
            if tail:
                message += f"\n--- last log lines ---\n{tail}"
            raise ProxyError(message)
        sleep(interval)


def _tail(path: Path, lines: int = LOG_TAIL) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class EmbeddedServer:
    """Our server started as a child process on a free loopback port (a context manager).

    ``log_path`` receives the child's stdout and stderr (a temporary file if None, removed on
    exit). ``start_timeout`` bounds the wait for readiness; a child that fails to start is
    stopped and its log tail is in the `ProxyError`.
    """

    def __init__(
        self,
        *,
        log_path: Path | None = None,
        start_timeout: float = 15.0,
        poll_interval: float = 0.05,
        python: str = sys.executable,
        flags: tuple[str, ...] = (),
    ):
        self.flags = flags  # extra server flags, e.g. ("-proxy-metrics",)
        self.start_timeout = start_timeout
        self.poll_interval = poll_interval
        self.python = python
        self._own_log = log_path is None
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="toxiproxy-", suffix=".log")[1])
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> EmbeddedServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the child and wait until it answers; `ProxyError` if it does not."""
        self.port = free_port()
        argv = [
            self.python,
            "-m",
            "drills.toxiproxy",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.flags,
        ]
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            try:
                self.process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ProxyError(f"cannot start the embedded toxiproxy: {exc}") from exc
        proc = self.process
        wait_ready(
            self.url,
            self.start_timeout,
            interval=self.poll_interval,
            alive=lambda: proc.poll() is None,
            logs=lambda: _tail(self.log_path),
        )

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the child's process group, SIGKILL after ``timeout`` s; idempotent."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._own_log:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def logs(self) -> str:
        """The tail of the child's log."""
        return _tail(self.log_path)
