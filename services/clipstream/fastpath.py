"""Hot routes answered without FastAPI's per-request machinery; anything else goes on to FastAPI.

FastAPI solves each request's dependencies and validates its parameters through pydantic:
about 0.1 ms of CPU a request here, as much as the rest of a store read. `FastPath`, a pure
ASGI middleware, answers the few routes that carry the load itself, but only the requests it
is sure are valid: each parameter has a predicate that accepts a *subset* of what the FastAPI
route accepts (plain digits in range for an integer, the route's pattern through
`re.fullmatch`, a length in bounds for a text). A request it is not sure of (an invalid or odd
value, a repeated parameter, a missing one, another method or path) goes on to FastAPI, which
answers it as it always did (a 422 naming the field, say). So every answer is the one FastAPI
would give; the FastAPI route stays the reference, and the OpenAPI schema is unchanged.

A handler gets the accepted path and query parameters (text, as sent) and returns a `Reply`;
`Refused` and `Unavailable` become the usual error shape (`clipstream.web.error_body`).
``scope["route"]`` is set to the `FastRoute` (its ``path`` is the route template) so that a
metrics middleware outside labels the request as FastAPI would.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from clipstream.errors import Refused, Unavailable
from clipstream.web import error_body

Accept = Callable[[str], bool]
Args = dict[str, str]
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer ready to send: status, body, extra headers, media type."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    media_type: str = JSON

    def to_response(self) -> Response:
        """The same answer as a Starlette response (for the FastAPI routes)."""
        return Response(self.body, status_code=self.status, headers=dict(self.headers),
                        media_type=self.media_type)


Handler = Callable[[Scope, Receive, Args], Awaitable[Reply]]


def digits_in(lo: int, hi: int) -> Accept:
    """Accepts plain decimal digits (no sign, space or leading zero but ``0``) in ``[lo, hi]``."""
    def accept(value: str) -> bool:
        return (0 < len(value) <= 18 and value.isascii() and value.isdigit()
                and (value[0] != "0" or value == "0") and lo <= int(value) <= hi)
    return accept


def matches(pattern: str) -> Accept:
    """Accepts what ``^pattern$`` matches in full (``$`` would let a final newline through)."""
    regex = re.compile(pattern.removeprefix("^").removesuffix("$"))
    return lambda value: regex.fullmatch(value) is not None


def length_in(lo: int, hi: int) -> Accept:
    """Accepts a text of ``lo`` to ``hi`` characters."""
    return lambda value: lo <= len(value) <= hi


class FastRoute:
    """One hot route: ``method path`` (a FastAPI template such as ``/videos/{video_id}``), the
    predicate of every path and query parameter, which query parameters are required, and the
    handler."""

    def __init__(self, method: str, path: str, handler: Handler, *,
                 params: Mapping[str, Accept] | None = None,
                 required: frozenset[str] = frozenset()):
        self.method, self.path, self.handler = method, path, handler
        self.params = dict(params or {})
        self.required = required
        self._path_names = tuple(re.findall(r"{(\w+)}", path))
        self._regex = re.compile(re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", path))

    def accept(self, scope: Scope) -> Args | None:
        """The parameters of a request this route is sure of; None to leave it to FastAPI."""
        m = self._regex.fullmatch(scope["path"])
        if m is None:
            return None
        args: Args = {}
        for name in self._path_names:
            value = m.group(name)
            if not self.params[name](value):
                return None
            args[name] = value
        query = scope["query_string"]
        if query:
            for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                accept = self.params.get(key)
                if accept is None or key in self._path_names:
                    continue  # FastAPI ignores unknown query parameters too
                if key in args or not accept(value):
                    return None
                args[key] = value
        if not self.required.issubset(args):
            return None
        return args


class FastPath:
    """ASGI middleware: `FastRoute`\\ s answered here, every other request passed to ``app``."""

    def __init__(self, app: ASGIApp, routes: Sequence[FastRoute]):
        self.app = app
        self.routes: dict[str, list[FastRoute]] = {}
        for route in routes:
            self.routes.setdefault(route.method, []).append(route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.routes.get(scope["method"], ()):
                args = route.accept(scope)
                if args is not None:
                    scope["route"] = route
                    await send_reply(send, await answer(route, scope, receive, args))
                    return
        await self.app(scope, receive, send)


async def answer(route: FastRoute, scope: Scope, receive: Receive, args: Args) -> Reply:
    """``route``'s reply; `Refused` and `Unavailable` turned into the usual error shape."""
    try:
        return await route.handler(scope, receive, args)
    except Refused as exc:
        return Reply(exc.status, error_body(exc.message, exc.field, code=exc.code))
    except Unavailable as exc:
        return Reply(503, error_body(str(exc), None, code="unavailable"))


async def send_reply(send: Send, reply: Reply) -> None:
    """Send ``reply`` as one ASGI response."""
    headers = [(b"content-type", reply.media_type.encode("latin-1")),
               (b"content-length", str(len(reply.body)).encode("latin-1"))]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in reply.headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
