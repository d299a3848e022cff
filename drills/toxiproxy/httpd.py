"""A small HTTP/1.1 server on asyncio streams, enough for Toxiproxy's API and its clients.

Keep-alive (HTTP/1.1 default, HTTP/1.0 on request), ``Content-Length`` and chunked request
bodies, ``Expect: 100-continue``, a ``Date`` header, an idle timeout, and a plain 400 for a
request it cannot parse, as Go's net/http does. It hands each request to an ``Api`` and writes
what comes back; it knows nothing of proxies.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import urlsplit

from drills.toxiproxy.api import Request, Response
from drills.toxiproxy.decode import ApiError

log = logging.getLogger("drills.toxiproxy")

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
IDLE_TIMEOUT = 60.0
READ_TIMEOUT = 15.0


class BadRequest(ApiError):
    """The bytes on the wire are not an HTTP request we can answer (-> 400 and close)."""

    def __init__(self, reason: str):
        super().__init__(reason, 400)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadRequest("bad chunk size") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return bytes(body)
            if len(body) + size > MAX_BODY:
                raise BadRequest("body too large")
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    length_text = headers.get("content-length", "0").strip() or "0"
    if not length_text.isdigit() or int(length_text) > MAX_BODY:
        raise BadRequest("bad content-length")
    return await reader.readexactly(int(length_text))


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[Request, bool] | None:
    """The next request and whether the connection stays open after it; None at EOF."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest("head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise BadRequest("bad request line") from None
    if not version.startswith("HTTP/1."):
        raise BadRequest("bad version")
    headers: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest("bad header")
        pairs.append((name.lower(), value.strip()))
        headers[name.lower()] = value.strip()
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = await asyncio.wait_for(_read_body(reader, headers), READ_TIMEOUT)
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
    conn = headers.get("connection", "").lower()
    keep = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
    return Request(method, target, tuple(pairs), body), keep


def _encode(resp: Response, *, keep: bool) -> bytes:
    reason = HTTPStatus(resp.status).phrase if resp.status in HTTPStatus._value2member_map_ else ""
    lines = [f"HTTP/1.1 {resp.status} {reason}"]
    lines += [f"{k}: {v}" for k, v in resp.headers]
    lines.append(f"Date: {formatdate(usegmt=True)}")
    if resp.status not in (204, 304) and not 100 <= resp.status < 200:
        lines.append(f"Content-Length: {len(resp.body)}")
    if not keep:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + resp.body


async def serve_connection(
    handle: Callable[[Request], Awaitable[Response]],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Answer requests on one connection until the client closes or asks to."""
    try:
        while True:
            try:
                got = await _read_request(reader, writer)
            except (BadRequest, asyncio.IncompleteReadError, TimeoutError) as exc:
                log.debug("http: bad request from %s: %s", writer.get_extra_info("peername"), exc)
                writer.write(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; "
                    b"charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"
                )
                await writer.drain()
                return
            if got is None:
                return
            request, keep = got
            resp = await handle(request)
            writer.write(_encode(resp, keep=keep))
            await writer.drain()
            if not keep:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def start_http(
    handle: Callable[[Request], Awaitable[Response]], sock: socket.socket
) -> asyncio.Server:
    """An asyncio server answering HTTP on the listening socket ``sock``."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(handle, reader, writer)

    return await asyncio.start_server(on_client, sock=sock, limit=MAX_HEAD)
