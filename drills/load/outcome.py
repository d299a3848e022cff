"""What one HTTP exchange of the load amounted to, and what that means for the history.

The load's client (``requests``, inside Locust) either gets a response, or an exception that
says how far the exchange got. This module turns both into an `Outcome` and decides the
Jepsen-style completion type of a write from it:

- ``ok``   a 2xx whose body was usable: acknowledged;
- ``fail`` definitely not applied: the request never left (connection refused, connect
  timeout, no route) or the server answered 4xx;
- ``info`` indeterminate: the request may have been applied (read timeout, reset after
  sending, 5xx, a 2xx whose body could not be understood, anything unexpected).

It imports ``requests``/``urllib3`` exception classes only (no Locust, no gevent), so it is
importable both in the Locust process and in the harness and its tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import requests.exceptions as rex
import urllib3.exceptions as uex

from drills.model import OpType

REFUSED = "refused"
CONNECT_TIMEOUT = "connect timeout"
CONNECT_FAILED = "connect failed"
TIMEOUT = "timeout"
RESET = "reset"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one request as the client saw it.

    ``status`` is the HTTP status, 0 when no response arrived; ``error`` a short reason (None
    for a usable 2xx); ``sent`` False only when the request provably never reached the server.
    """

    status: int
    error: str | None = None
    sent: bool = True

    @property
    def ok(self) -> bool:
        """True for a 2xx with no error."""
        return 200 <= self.status < 300 and self.error is None

    def write_type(self) -> OpType:
        """Completion type of a write: ok, fail (not applied) or info (indeterminate)."""
        if self.ok:
            return "ok"
        if not self.sent or 400 <= self.status < 500:
            return "fail"
        return "info"

    def read_type(self) -> OpType:
        """Completion type of a read: ok, else fail (a read has no effect to be unsure about)."""
        return "ok" if self.ok else "fail"


def outcome(
    status: int, transport_error: BaseException | None, failure: str | None = None
) -> Outcome:
    """Build the `Outcome` of an exchange.

    ``status`` is the response status (0 without response), ``transport_error`` the exception
    the client raised instead of a response, ``failure`` a reason the caller found in a
    response that arrived (e.g. a 2xx body that does not parse). A transport error wins.
    """
    if transport_error is not None:
        reason, sent = describe(transport_error)
        return Outcome(status=0, error=reason, sent=sent)
    if status <= 0:
        return Outcome(status=0, error=failure or "no response", sent=True)
    if not 200 <= status < 300:
        return Outcome(status=status, error=f"http {status}")
    return Outcome(status=status, error=failure)


def describe(exc: BaseException) -> tuple[str, bool]:
    """Short reason for a client exception and whether the request may have been sent.

    Walks the whole chain (``requests`` wraps ``urllib3`` wraps the socket error) and looks
    for the connect phase first: a refused, unroutable or timed-out connect sent nothing.
    """
    chain = list(_chain(exc))
    for e in chain:
        if isinstance(e, ConnectionRefusedError):
            return REFUSED, False
    for e in chain:
        if isinstance(e, rex.ConnectTimeout) or (
            isinstance(e, uex.ConnectTimeoutError) and not isinstance(e, uex.NewConnectionError)
        ):
            return CONNECT_TIMEOUT, False
    for e in chain:
        if isinstance(e, uex.NewConnectionError):
            return CONNECT_FAILED, False
    for e in chain:
        if isinstance(e, rex.ReadTimeout | uex.ReadTimeoutError | TimeoutError):
            return TIMEOUT, True
    for e in chain:
        if isinstance(e, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
            return RESET, True
    for e in chain:
        if isinstance(e, uex.ProtocolError | rex.ChunkedEncodingError):
            return RESET, True
    return f"error: {type(exc).__name__}", True


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """Every exception reachable from ``exc`` through causes, contexts, args and ``reason``."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        linked = [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
        todo.extend(x for x in linked if isinstance(x, BaseException))
