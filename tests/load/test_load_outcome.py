"""drills.load.outcome: real client errors from real loopback sockets, classified.

Each test provokes one way an exchange can end (refused, connect timeout, read timeout,
reset, HTTP statuses) with a real socket and the real ``requests`` client, and checks the
history completion type it maps to.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from drills.load.outcome import (
    CONNECT_TIMEOUT,
    REFUSED,
    RESET,
    TIMEOUT,
    Outcome,
    describe,
    outcome,
)


def _fail_of(url: str, timeout: float = 0.5) -> requests.RequestException:
    with pytest.raises(requests.RequestException) as info:
        requests.post(url, data=b"x", timeout=(timeout, timeout))
    return info.value


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _server(handle: str) -> Iterator[int]:
    """A listening socket whose accepted connections are handled per ``handle``:
    ``silent`` (read the request, never answer) or ``reset`` (read it, then RST)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conns.append(conn)
            conn.recv(65536)
            if handle == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        srv.close()
        for c in conns:
            c.close()


def test_connection_refused_is_a_definite_fail() -> None:
    reason, sent = describe(_fail_of(f"http://127.0.0.1:{_closed_port()}/videos"))
    assert (reason, sent) == (REFUSED, False)
    assert outcome(0, _fail_of(f"http://127.0.0.1:{_closed_port()}/x")).write_type() == "fail"


def test_connect_timeout_sent_nothing_so_fails() -> None:
    # A listener that never accepts, with its (Linux) accept queue full: SYNs are dropped.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    try:
        out = outcome(0, _fail_of(f"http://127.0.0.1:{port}/videos", timeout=0.3))
        assert (out.error, out.sent, out.write_type()) == (CONNECT_TIMEOUT, False, "fail")
    finally:
        for c in [*fillers, srv]:
            c.close()


def test_read_timeout_after_sending_is_indeterminate() -> None:
    with _server("silent") as port:
        out = outcome(0, _fail_of(f"http://127.0.0.1:{port}/videos", timeout=0.3))
    assert (out.error, out.sent, out.write_type()) == (TIMEOUT, True, "info")
    assert out.read_type() == "fail"


def test_reset_after_sending_is_indeterminate() -> None:
    with _server("reset") as port:
        out = outcome(0, _fail_of(f"http://127.0.0.1:{port}/videos"))
    assert (out.error, out.sent, out.write_type()) == (RESET, True, "info")


def test_unknown_client_error_is_indeterminate_not_a_fail() -> None:
    reason, sent = describe(ValueError("odd"))
    assert (reason, sent) == ("error: ValueError", True)
    assert Outcome(0, reason, sent).write_type() == "info"


@pytest.mark.parametrize(
    ("status", "failure", "write", "read", "error"),
    [
        (200, None, "ok", "ok", None),
        (201, None, "ok", "ok", None),
        (200, "body not JSON", "info", "fail", "body not JSON"),
        (404, None, "fail", "fail", "http 404"),
        (409, None, "fail", "fail", "http 409"),
        (500, None, "info", "fail", "http 500"),
        (502, None, "info", "fail", "http 502"),
        (503, None, "info", "fail", "http 503"),
        (504, None, "info", "fail", "http 504"),
        (302, None, "info", "fail", "http 302"),
        (0, None, "info", "fail", "no response"),
    ],
)
def test_status_maps_to_completion(status: int, failure: str | None, write: str, read: str,
                                   error: str | None) -> None:
    out = outcome(status, None, failure)
    assert (out.write_type(), out.read_type(), out.error) == (write, read, error)
    assert out.ok is (write == "ok")


def test_users_are_split_by_share_with_one_each_when_possible():
    from drills.targets.clipstream.mix import MIX, split_users, users_per_class

    assert all(abs(n - MIX[op]) <= 1 for op, n in users_per_class(100).items())
    assert sum(users_per_class(30).values()) == 30
    assert min(users_per_class(6).values()) == 1
    assert users_per_class(30)["feed"] > users_per_class(30)["view"] > users_per_class(30)["stats"]
    assert sum(split_users(3, [50, 20, 10, 8, 6, 6])) == 3
