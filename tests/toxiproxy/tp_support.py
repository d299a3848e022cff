"""Real TCP servers and socket measurements for the Toxiproxy conformance suite.

Everything here talks plain TCP on 127.0.0.1: upstream servers run a handler per connection
in a thread; the measurement helpers read real sockets and report what really happened (data,
how the stream ended, when). Nothing here knows which Toxiproxy server is under test.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

Handler = Callable[[socket.socket, "TcpServer"], None]


class TcpServer:
    """A TCP server on 127.0.0.1:<free port> running ``handler(conn, server)`` per connection.

    ``accepted`` counts connections; ``received`` collects what handlers pass to ``record``.
    Leaving the context closes the listener and every connection.
    """

    def __init__(self, handler: Handler | None = None):
        self.handler = handler or echo
        self.accepted = 0
        self.received = bytearray()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> TcpServer:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self._sock.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()
        self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            self.handler(conn, self)

    def record(self, data: bytes) -> None:
        with self._lock:
            self.received += data


def echo(conn: socket.socket, server: TcpServer) -> None:
    """Send back every byte until the client closes."""
    while data := conn.recv(65536):
        server.record(data)
        conn.sendall(data)


def recorder(conn: socket.socket, server: TcpServer) -> None:
    """Record what the client sends and answer nothing."""
    while data := conn.recv(65536):
        server.record(data)


def sender(*parts: bytes, gap: float = 0.0, close: bool = True, linger: float = 30.0) -> Handler:
    """Send ``parts`` (``gap`` s apart), then close, or keep the socket open ``linger`` s."""

    def handle(conn: socket.socket, server: TcpServer) -> None:
        for i, part in enumerate(parts):
            if i and gap:
                time.sleep(gap)
            conn.sendall(part)
        if not close:
            conn.settimeout(linger)
            with contextlib.suppress(OSError):
                while conn.recv(65536):
                    pass

    return handle


def connect(addr: str, timeout: float = 5.0) -> socket.socket:
    host, _, port = addr.rpartition(":")
    sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


@dataclass(frozen=True)
class Outcome:
    """What reading a socket gave: the bytes, how it ended, and when (s after the start)."""

    data: bytes
    end: str  # "eof" | "reset" | "timeout"
    elapsed: float
    reads: int = 0
    first_byte: float | None = None
    times: tuple[float, ...] = field(default=())


def read_until_end(
    sock: socket.socket, timeout: float, *, limit: int | None = None, start: float | None = None
) -> Outcome:
    """Read until EOF, reset, ``timeout`` s of total time, or ``limit`` bytes (then "limit")."""
    start = time.monotonic() if start is None else start
    deadline = start + timeout
    data = bytearray()
    times: list[float] = []
    end = "timeout"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            end = "reset"
            break
        now = time.monotonic() - start
        if not chunk:
            end = "eof"
            break
        times.append(now)
        data += chunk
        if limit is not None and len(data) >= limit:
            end = "limit"
            break
    return Outcome(
        bytes(data),
        end,
        time.monotonic() - start,
        len(times),
        times[0] if times else None,
        tuple(times),
    )


def round_trip(sock: socket.socket, payload: bytes = b"ping", timeout: float = 10.0) -> float:
    """Seconds to send ``payload`` through an echo path and get it all back."""
    start = time.monotonic()
    sock.sendall(payload)
    got = read_until_end(sock, timeout, limit=len(payload), start=start)
    assert got.data == payload, f"echo returned {got.data!r} ({got.end}) instead of {payload!r}"
    return got.elapsed


def refused(addr: str) -> bool:
    """Whether a TCP connect to ``addr`` is refused."""
    try:
        connect(addr, timeout=2.0).close()
    except ConnectionRefusedError:
        return True
    return False


def closed_port_addr() -> str:
    """An address on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout`` s; its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(interval)
    return True


def http_streamer(body: bytes, *, pieces: int = 4, pause: float = 0.001) -> Handler:
    """An HTTP/1.1 keep-alive server answering every request (bodiless; its request line is
    recorded) with ``body`` streamed as an application produces it: the head first, then
    ``pieces`` parts, ``pause`` s apart, each its own write, with TCP_NODELAY set (as uvicorn and
    Go servers do), so that a direct client never waits on Nagle's algorithm and a proxy sees a
    multi-segment response."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
    head += b"Content-Length: %d\r\n\r\n" % len(body)
    step = -(-len(body) // pieces)
    parts = [body[i : i + step] for i in range(0, len(body), step)]

    def handle(conn: socket.socket, server: TcpServer) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = b""
        while True:
            while b"\r\n\r\n" not in pending:
                data = conn.recv(65536)
                if not data:
                    return
                pending += data
            request, _, pending = pending.partition(b"\r\n\r\n")
            server.record(request.split(b"\r\n", 1)[0] + b"\n")
            conn.sendall(head)
            for part in parts:
                time.sleep(pause)
                conn.sendall(part)

    return handle
