"""How a node calls another node: one pooled HTTP/1.1 client per node dialled.

`HostClient` is the interface: ``request(method, path, params=, content=, timeout=)`` against
one base URL, answering an `Answer` (status, lower-case headers, whole body) or raising
`Unreachable` (refused, reset, timed out, malformed: no complete answer). Two implementations:

- `PooledHostClient`, the one used for real: keep-alive connections to its host (HTTP/1.1,
  ``Content-Length`` framed requests, answers parsed by httptools, the parser uvicorn uses),
  reused last-in first-out, at most ``max_connections`` at once (callers queue beyond that).
  A request costs a few tens of microseconds of CPU; httpx spent about 1.5 ms per request of
  the api here (pool bookkeeping that polls every idle socket, anyio, a pure-Python parser).
  A request sent on a reused connection that the peer closed meanwhile (it closes idle
  keep-alive connections) is sent again once on a new connection, if nothing came back yet.
- `HttpxHostClient` wraps an ``httpx.AsyncClient``: what tests use to put an
  ``httpx.MockTransport`` (or an ASGI app) where the network was.

The timeout covers everything: waiting for a free connection, connecting, sending, answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol, cast
from urllib.parse import quote, urlencode, urlsplit

import httptools
import httpx

from clipstream.errors import Unreachable

Params = dict[str, str]
MAX_CONNECTIONS = 128
IDLE_S = 15.0  # idle keep-alive connections older than this are closed (nodes close at 30 s)


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete HTTP answer: status, headers (names in lower case), body."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> object:
        """The body parsed as JSON; `ValueError` if it is not."""
        return json.loads(self.content)


class HostClient(Protocol):
    """Requests to one node (``base_url``); `aclose` closes its connections."""

    base_url: str

    async def request(self, method: str, path: str, *, params: Params | None = None,
                      content: bytes | None = None, timeout: float) -> Answer:
        """``method path?params`` with ``content``; the answer, or `Unreachable`."""
        ...

    async def aclose(self) -> None:
        ...


class _Stale(Exception):
    """A reused connection was closed by the peer before any byte of the answer came."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time, answers parsed by httptools."""

    def __init__(self, on_lost: Callable[[_Connection], None]) -> None:
        self.on_lost = on_lost
        self.counted = True  # still counted in its pool's open connections
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.closed = False
        self.got_data = False
        self.keep_alive = True
        self.uses = 0
        self.idle_since = 0.0

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.got_data = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(Unreachable(f"malformed answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is None:
            self.on_lost(self)  # closed while idle: the pool forgets it at once
        elif self.uses > 1 and not self.got_data:
            self._fail(_Stale())
        else:
            self._fail(Unreachable(f"connection closed: {exc or 'by the peer'}"))

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        answer = Answer(self.parser.get_status_code(), self.headers, b"".join(self.body))
        self.headers, self.body = {}, []
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(answer)

    # -- use
    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, data: bytes, deadline: float) -> Answer:
        """Send one request and wait for its whole answer until ``deadline`` (loop time)."""
        assert self.transport is not None
        if self.closed:  # lost between its acquisition and now
            raise _Stale() if self.uses else Unreachable("connection closed before use")
        loop = asyncio.get_running_loop()
        self.uses += 1
        self.got_data = False
        waiter = self.waiter = loop.create_future()
        timer = loop.call_at(deadline, self._fail, Unreachable("timed out"))
        try:
            self.transport.write(data)
            return await waiter
        finally:
            timer.cancel()
            self.waiter = None
            if not waiter.done() or waiter.cancelled() or waiter.exception() is not None:
                self.close()  # cancelled, timed out or broken mid-answer: never reused


class PooledHostClient:
    """Keep-alive HTTP/1.1 connections to one node: see the module docstring."""

    def __init__(self, base_url: str, *, max_connections: int = MAX_CONNECTIONS):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) base URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._prefix = parts.path.rstrip("/")
        self._host_header = parts.netloc
        self._limit = max_connections
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    def _encode(self, method: str, path: str, params: Params | None,
                content: bytes | None) -> bytes:
        target = quote(self._prefix + path, safe="/:@!$&'()*+,;=~")
        if params:
            target += "?" + urlencode(params)
        head = f"{method} {target} HTTP/1.1\r\nHost: {self._host_header}\r\n"
        if content is None:
            head += "Content-Length: 0\r\n\r\n" if method in ("POST", "PUT") else "\r\n"
            return head.encode("ascii")
        head += f"Content-Length: {len(content)}\r\n\r\n"
        return head.encode("ascii") + content

    async def request(self, method: str, path: str, *, params: Params | None = None,
                      content: bytes | None = None, timeout: float) -> Answer:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        data = self._encode(method, path, params, content)
        fresh = False
        while True:
            conn = await self._acquire(deadline, fresh=fresh)
            try:
                return await conn.exchange(data, deadline)
            except _Stale:
                if fresh:  # pragma: no cover - a new connection is never stale
                    raise Unreachable("connection closed") from None
                fresh = True  # the peer closed an idle connection under us: once more, anew
            finally:
                self._release(conn)

    async def _acquire(self, deadline: float, *, fresh: bool) -> _Connection:
        if self._closed:
            raise Unreachable("client closed")
        now = time.monotonic()
        while self._idle and not fresh:
            conn = self._idle.pop()
            if conn.closed or now - conn.idle_since > IDLE_S:
                self._drop(conn)
                continue
            return conn
        loop = asyncio.get_running_loop()
        while self._open >= self._limit:
            if self._idle:  # only when a new connection is wanted: make room for it
                self._drop(self._idle.pop(0))
                continue
            slot: asyncio.Future[None] = loop.create_future()
            self._waiters.append(slot)
            try:
                async with asyncio.timeout_at(deadline):
                    await slot
            except BaseException as exc:
                if slot.done() and not slot.cancelled():
                    self._wake()  # a slot freed for us as we left: pass it on
                slot.cancel()
                if isinstance(exc, TimeoutError):
                    raise Unreachable("timed out waiting for a free connection") from None
                raise
            if self._idle and not fresh:
                return await self._acquire(deadline, fresh=False)
        self._open += 1
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self._lost), self._host, self._port, ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            self._open -= 1
            self._wake()
            raise Unreachable(f"cannot connect to {self._host}:{self._port}: "
                              f"{type(exc).__name__}") from exc
        except BaseException:
            self._open -= 1
            self._wake()
            raise
        return conn

    def _release(self, conn: _Connection) -> None:
        if conn.closed or not conn.keep_alive or self._closed:
            self._drop(conn)
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        self._wake()

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        self._forget(conn)

    def _lost(self, conn: _Connection) -> None:
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)
            self._forget(conn)

    def _forget(self, conn: _Connection) -> None:
        if conn.counted:
            conn.counted = False
            self._open -= 1
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            slot = self._waiters.popleft()
            if not slot.done():
                slot.set_result(None)
                return

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._drop(self._idle.pop())


class HttpxHostClient:
    """A `HostClient` over an ``httpx.AsyncClient`` (tests give it a mock transport)."""

    def __init__(self, base_url: str, client: httpx.AsyncClient):
        self.base_url = base_url.rstrip("/")
        self._client = client

    async def request(self, method: str, path: str, *, params: Params | None = None,
                      content: bytes | None = None, timeout: float) -> Answer:
        try:
            resp = await self._client.request(method, self.base_url + path, params=params,
                                              content=content, timeout=timeout)
        except httpx.HTTPError as exc:
            raise Unreachable(f"{type(exc).__name__}: {exc}") from exc
        return Answer(resp.status_code, {k.lower(): v for k, v in resp.headers.items()},
                      resp.content)

    async def aclose(self) -> None:
        """The wrapped client belongs to whoever made it: nothing to close here."""


@contextlib.asynccontextmanager
async def host_clients(urls: dict[str, str], *, transport: httpx.AsyncBaseTransport | None = None,
                       ) -> AsyncIterator[dict[str, HostClient]]:
    """One `HostClient` per name in ``urls``, closed on exit; over ``transport`` if given."""
    if transport is not None:
        async with httpx.AsyncClient(transport=transport) as shared:
            yield {name: HttpxHostClient(url, shared) for name, url in urls.items()}
        return
    clients: dict[str, HostClient] = {name: PooledHostClient(url) for name, url in urls.items()}
    try:
        yield clients
    finally:
        for c in clients.values():
            await c.aclose()
