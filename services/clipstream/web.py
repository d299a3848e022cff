"""HTTP plumbing shared by every node: JSON errors that name the field, and the uvicorn runner.

Every error a node answers is ``{"error": "...", "field": "..."|null}`` (plus ``code`` when the
caller must act on it); no input reaches a 500. `serve` runs an app until SIGINT/SIGTERM, letting
the app's lifespan flush and close its resources on the way out (on uvloop and httptools).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from clipstream.errors import Refused, Unavailable

LOG = logging.getLogger("clipstream.web")
HDR_EPOCH = "X-ClipStream-Epoch"
HDR_STORE = "X-ClipStream-Store"
HDR_ROLE = "X-ClipStream-Role"
HDR_DEGRADED = "X-ClipStream-Degraded"


def _error(error: str, field: str | None, code: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error, "field": field}
    if code:
        body["code"] = code
    return body


def error_response(status: int, error: str, field: str | None = None, *,
                   code: str | None = None) -> JSONResponse:
    """The one error shape: ``{"error", "field"[, "code"]}``."""
    return JSONResponse(_error(error, field, code), status_code=status)


def error_body(error: str, field: str | None = None, *, code: str | None = None) -> bytes:
    """The body of `error_response`, as bytes (for `clipstream.fastpath`)."""
    return json_bytes(_error(error, field, code))


def json_bytes(body: object) -> bytes:
    """``body`` as JSON bytes, exactly as Starlette's `JSONResponse` renders it."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


def _field_of(loc: Sequence[object]) -> str:
    parts = [str(p) for p in loc if p not in ("query", "path", "body", "header")]
    return ".".join(parts) or (str(loc[0]) if loc else "request")


def install_error_handlers(app: FastAPI) -> None:
    """Map validation errors, `Refused`, `Unavailable` and stray HTTP errors to the shape."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        return error_response(422, str(first.get("msg", "invalid")),
                              _field_of(first.get("loc", ())), code="invalid")

    @app.exception_handler(Refused)
    async def _refused(_: Request, exc: Refused) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.field, code=exc.code)

    @app.exception_handler(Unavailable)
    async def _unavailable(_: Request, exc: Unavailable) -> JSONResponse:
        return error_response(503, str(exc), None, code="unavailable")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), None)


#: A client has this long to send a request's headers: one that trickles them a byte at a time
#: (slowloris) would otherwise hold a connection - and with a few thousand, the server - forever.
HEADER_TIMEOUT_S = 10.0


class HeaderDeadline(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request's headers: the connection
    is closed when they are not complete `HEADER_TIMEOUT_S` after the request began (or the
    connection opened). Idle keep-alive connections keep uvicorn's own timeout."""

    header_timeout_s = HEADER_TIMEOUT_S

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()  # type: ignore[union-attr]
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


class _Server(uvicorn.Server):
    """uvicorn's server, but a SIGTERM/SIGINT ends in a clean exit (status 0), not re-raised."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        originals = {sig: signal.signal(sig, self.handle_exit)
                     for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


def serve(app: ASGIApp, *, host: str, port: int,
          sockets: list[socket.socket] | None = None) -> None:
    """Run ``app`` on uvicorn until SIGINT/SIGTERM (graceful: the lifespan's exit runs).

    uvloop for the event loop and httptools (with `HeaderDeadline`) for HTTP/1.1, named rather
    than left to uvicorn's "auto"; no access log. With ``sockets`` (bound, not listening; see
    `clipstream.workers`) uvicorn listens on them once the lifespan has started instead of
    binding ``host:port`` itself.
    """
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False,
        timeout_graceful_shutdown=2, lifespan="on", timeout_keep_alive=30,
        loop="uvloop", http=HeaderDeadline,
    )
    _Server(config).run(sockets=sockets)
