"""The api's edges: a client that trickles its headers (slowloris) is cut off, and a client that
disconnects mid-upload is an ordinary refused request, not a traceback in the log."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from clipstream.api_app import _read_body
from clipstream.errors import Refused
from clipstream.web import HeaderDeadline
from starlette.requests import ClientDisconnect


class _Quick(HeaderDeadline):
    header_timeout_s = 0.5


async def _ok_app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def server() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    srv = uvicorn.Server(uvicorn.Config(_ok_app, host="127.0.0.1", port=port, http=_Quick,
                                        log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield port
    srv.should_exit = True
    thread.join(timeout=10)


def test_a_client_that_trickles_its_headers_is_cut_off(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=5) as slow:
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        start = time.monotonic()
        assert slow.recv(100) == b""  # closed by the server
        assert time.monotonic() - start < 3
    with socket.create_connection(("127.0.0.1", server), timeout=5) as fine:
        fine.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(fine).startswith(b"HTTP/1.1 200")
        time.sleep(0.8)  # an idle keep-alive connection is not cut by the header deadline
        fine.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(fine).startswith(b"HTTP/1.1 200")


def _response(sock: socket.socket) -> bytes:
    """One whole (chunked) response."""
    data = b""
    while not data.endswith(b"0\r\n\r\n"):
        part = sock.recv(4096)
        assert part, data
        data += part
    return data


def test_a_client_gone_mid_upload_is_a_refused_request() -> None:
    class Gone:
        headers = {"content-length": "1000"}

        async def stream(self):  # type: ignore[no-untyped-def]
            yield b"0123456789"
            raise ClientDisconnect()

    with pytest.raises(Refused, match="disconnected before the upload was complete"):
        asyncio.run(_read_body(Gone(), 1 << 20))  # type: ignore[arg-type]
