"""Toxiproxy's HTTP API: routes, handlers, and the exact response shapes and status codes.

Mirrors Shopify/toxiproxy ``api.go`` (gorilla/mux): a matched route gets an
``X-Toxiproxy-Request-Id`` header and the browser guard (a ``Mozilla/`` user agent gets 403
``User agent not allowed``); an unknown path is 404 ``404 page not found``, a known path with
the wrong method 405 with an empty body. Errors are ``{"error": msg, "status": code}`` sent as
Go's ``http.Error`` sends them (text/plain, trailing newline). Requests are handled one at a
time, as the Go server's collection lock serialises them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import posixpath
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from drills.toxiproxy.decode import (
    POPULATE,
    PROXY,
    PROXY_FIELDS,
    ApiError,
    decode_struct,
    merge_toxic,
    missing_field,
    parse_toxic,
    read_json,
    type_error,
)
from drills.toxiproxy.lease import Leases
from drills.toxiproxy.metrics import render
from drills.toxiproxy.proxy import Proxy, ProxyCollection

log = logging.getLogger("drills.toxiproxy")

VERSION = "2.12.0+drills"
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request as the API sees it (header names lower-cased)."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k == name), "")


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP response: status, body and the headers to send."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = field(default=())


def json_response(value: object, status: int = 200, content_type: str = JSON) -> Response:
    body = json.dumps(value, separators=(",", ":")).encode()
    return Response(status, body, (("Content-Type", content_type),))


def error_response(exc: ApiError) -> Response:
    """Go's ``apiError``: JSON body, sent through ``http.Error`` (plain text, newline)."""
    status = exc.status or 500
    body = json.dumps({"error": exc.message, "status": status}, separators=(",", ":"))
    return _plain(status, body)


def _plain(status: int, text: str) -> Response:
    headers = (("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff"))
    return Response(status, f"{text}\n".encode(), headers)


def _request_id() -> str:
    """A 20-character id in the style of the xid ids Toxiproxy's logger hands out."""
    return base64.b32hexencode(os.urandom(12)).decode().lower().rstrip("=")


Handler = Callable[[Request, dict[str, str]], Awaitable[Response]]


class Api:
    """The API over one ProxyCollection. ``handle`` turns any request into a response."""

    def __init__(self, collection: ProxyCollection, rng: random.Random,
                 clock: Callable[[], float] = time.monotonic, *, proxy_metrics: bool = False,
                 runtime_metrics: bool = False):
        self.collection = collection
        self.proxy_metrics, self.runtime_metrics = proxy_metrics, runtime_metrics
        self._rng = rng
        self._lock = asyncio.Lock()
        self.leases = Leases()
        self._clock = clock
        self._routes: list[tuple[tuple[str, ...], dict[str, Handler]]] = [
            (("reset",), {"POST": self.reset}),
            (("proxies",), {"GET": self.proxy_index, "POST": self.proxy_create}),
            (("populate",), {"POST": self.populate}),
            (
                ("proxies", "*"),
                {
                    "GET": self.proxy_show,
                    "POST": self.proxy_update,
                    "PATCH": self.proxy_update,
                    "DELETE": self.proxy_delete,
                },
            ),
            (("proxies", "*", "toxics"), {"GET": self.toxic_index, "POST": self.toxic_create}),
            (
                ("proxies", "*", "toxics", "*"),
                {
                    "GET": self.toxic_show,
                    "POST": self.toxic_update,
                    "PATCH": self.toxic_update,
                    "DELETE": self.toxic_delete,
                },
            ),
            (("version",), {"GET": self.version}),
            (("metrics",), {"GET": self.metrics}),
            # extensions (not in Toxiproxy: a real server answers 404), see drills.toxiproxy.lease
            (("drills", "lease"), {"GET": self.lease_index, "POST": self.lease_grant}),
            (("drills", "lease", "*"), {"DELETE": self.lease_release}),
        ]

    # -- routing -------------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        path = unquote(request.target.split("?", 1)[0])
        clean = _clean_path(path)
        if clean != path:
            return Response(301, b"", (("Location", clean),))
        parts = path.split("/")[1:]
        for pattern, methods in self._routes:
            names = _match(pattern, parts)
            if names is None:
                continue
            handler = methods.get(request.method)
            if handler is None:
                return Response(405)
            return await self._matched(handler, request, names)
        return _plain(404, "404 page not found")

    async def _matched(self, handler: Handler, request: Request, names: dict[str, str]) -> Response:
        rid = (("X-Toxiproxy-Request-Id", _request_id()),)
        if request.header("user-agent").startswith("Mozilla/"):
            resp = _plain(403, "User agent not allowed")
        else:
            async with self._lock:
                try:
                    resp = await handler(request, names)
                except ApiError as exc:
                    resp = error_response(exc)
        return Response(resp.status, resp.body, resp.headers + rid)

    # -- proxies -------------------------------------------------------------------------------
    async def proxy_index(self, request: Request, names: dict[str, str]) -> Response:
        return json_response({p.name: p.to_json() for p in self.collection.all()})

    async def proxy_create(self, request: Request, names: dict[str, str]) -> Response:
        got = decode_struct(read_json(request.body), PROXY_FIELDS, struct="Proxy", go_value=PROXY)
        if not got.get("name"):
            raise missing_field("name")
        if not got.get("upstream"):
            raise missing_field("upstream")
        proxy = Proxy(
            str(got["name"]), str(got.get("listen", "")), str(got["upstream"]), rng=self._rng
        )
        await self.collection.add(proxy, start=bool(got.get("enabled", True)))
        return json_response(proxy.to_json(), 201)

    async def populate(self, request: Request, names: dict[str, str]) -> Response:
        done: list[Proxy] = []
        try:
            await self._populate(request.body, done)
        except ApiError as exc:
            shown = [p.to_json() for p in done] or None
            return json_response(
                {"error": exc.message, "status": exc.status, "proxies": shown}, exc.status or 500
            )
        return json_response({"proxies": [p.to_json() for p in done] or None}, 201)

    async def _populate(self, body: bytes, done: list[Proxy]) -> None:
        value = read_json(body)
        if value is None:
            value = []
        if not isinstance(value, list):
            raise type_error(value, "value", POPULATE)
        entries = [
            decode_struct(item, PROXY_FIELDS, struct="", go_value=POPULATE[2:]) for item in value
        ]
        for i, got in enumerate(entries, start=1):
            if not got.get("name"):
                raise missing_field(f"name at proxy {i}")
            if not got.get("upstream"):
                raise missing_field(f"upstream at proxy {i}")
        for got in entries:
            proxy = Proxy(
                str(got["name"]), str(got.get("listen", "")), str(got["upstream"]), rng=self._rng
            )
            start = bool(got.get("enabled", True))
            done.append(await self.collection.add_or_replace(proxy, start=start))

    async def proxy_show(self, request: Request, names: dict[str, str]) -> Response:
        return json_response(self.collection.get(names["proxy"]).to_json())

    async def proxy_update(self, request: Request, names: dict[str, str]) -> Response:
        proxy = self.collection.get(names["proxy"])
        got = decode_struct(read_json(request.body), PROXY_FIELDS, struct="Proxy", go_value=PROXY)
        await proxy.update(
            listen=str(got.get("listen", proxy.listen)),
            upstream=str(got.get("upstream", proxy.upstream)),
            enabled=bool(got.get("enabled", proxy.enabled)),
        )
        return json_response(proxy.to_json())

    async def proxy_delete(self, request: Request, names: dict[str, str]) -> Response:
        self.collection.remove(names["proxy"])
        return Response(204)

    async def reset(self, request: Request, names: dict[str, str]) -> Response:
        for proxy in self.collection.all():
            if not proxy.enabled:
                await proxy.start()
                log.info("proxy %s enabled (reset): %s", proxy.name, proxy.describe())
            proxy.reset_toxics()
        return Response(204)

    # -- toxics --------------------------------------------------------------------------------
    async def toxic_index(self, request: Request, names: dict[str, str]) -> Response:
        proxy = self.collection.get(names["proxy"])
        return json_response([t.to_json() for t in proxy.toxics()])

    async def toxic_create(self, request: Request, names: dict[str, str]) -> Response:
        proxy = self.collection.get(names["proxy"])
        spec = parse_toxic(request.body, proxy.has_toxic)
        proxy.add_toxic(spec)
        return json_response(spec.to_json())

    async def toxic_show(self, request: Request, names: dict[str, str]) -> Response:
        proxy = self.collection.get(names["proxy"])
        return json_response(proxy.toxic(names["toxic"]).to_json())

    async def toxic_update(self, request: Request, names: dict[str, str]) -> Response:
        proxy = self.collection.get(names["proxy"])
        spec = merge_toxic(proxy.toxic(names["toxic"]), request.body)
        proxy.update_toxic(spec)
        return json_response(spec.to_json())

    async def toxic_delete(self, request: Request, names: dict[str, str]) -> Response:
        self.collection.get(names["proxy"]).remove_toxic(names["toxic"])
        return Response(204)

    # -- leases (an extension: drills.toxiproxy.lease) ------------------------------------------
    async def lease_index(self, request: Request, names: dict[str, str]) -> Response:
        now = self._clock()
        return json_response([{"holder": lease.holder, "proxies": list(lease.proxies),
                               "expires_in_ms": max(0, round((lease.expires_at - now) * 1000))}
                              for lease in self.leases.all()])

    async def lease_grant(self, request: Request, names: dict[str, str]) -> Response:
        body = read_json(request.body)
        if not isinstance(body, dict):
            raise ApiError("lease: expected a JSON object {holder, ttl_ms, proxies}", 400)
        proxies = body.get("proxies") or []
        ttl = body.get("ttl_ms")
        if not isinstance(proxies, list) or not all(isinstance(p, str) for p in proxies) \
                or not isinstance(ttl, int) or isinstance(ttl, bool):
            raise ApiError("lease: expected holder (text), ttl_ms (int), proxies (list of "
                           "names)", 400)
        try:
            lease = self.leases.grant(str(body.get("holder") or ""), ttl_ms=ttl,
                                      proxies=proxies, now=self._clock())
        except ValueError as exc:
            raise ApiError(f"lease: {exc}", 400) from None
        return json_response({"holder": lease.holder, "proxies": list(lease.proxies),
                              "expires_in_ms": ttl})

    async def lease_release(self, request: Request, names: dict[str, str]) -> Response:
        if not self.leases.release(names["proxy"]):  # the route's one variable: the holder
            raise ApiError("lease not found", 404)
        return Response(204)

    async def heal_lapsed(self) -> list[str]:
        """Heal every proxy of every lease that lapsed (toxics removed, enabled); the names."""
        healed: list[str] = []
        async with self._lock:
            for lease in self.leases.expired(self._clock()):
                log.warning("lease of %s lapsed: healing %s", lease.holder,
                            ", ".join(lease.proxies) or "nothing")
                for name in lease.proxies:
                    try:
                        proxy = self.collection.get(name)
                    except ApiError:
                        continue
                    if not proxy.enabled:
                        await proxy.start()
                    proxy.reset_toxics()
                    healed.append(name)
        return healed

    async def metrics(self, request: Request, names: dict[str, str]) -> Response:
        """Prometheus metrics (`drills.toxiproxy.metrics`); 404 when neither flag enabled them."""
        if not (self.proxy_metrics or self.runtime_metrics):
            return _plain(404, "404 page not found")
        text = render(self.collection.traffic(), proxy=self.proxy_metrics,
                      runtime=self.runtime_metrics)
        return Response(200, text.encode(),
                        (("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),))

    async def version(self, request: Request, names: dict[str, str]) -> Response:
        body = f'{{"version": "{VERSION}"}}\n'.encode()
        return Response(200, body, (("Content-Type", "application/json;charset=utf-8"),))


def _clean_path(path: str) -> str:
    """gorilla/mux's ``cleanPath``: ``path.Clean`` that keeps a trailing slash."""
    if not path:
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    clean = posixpath.normpath(re.sub("/+", "/", path))
    if path.endswith("/") and clean != "/":
        clean += "/"
    return clean


def _match(pattern: tuple[str, ...], parts: list[str]) -> dict[str, str] | None:
    """Path variables if ``parts`` match ``pattern`` (``*`` = one non-empty segment)."""
    if len(pattern) != len(parts):
        return None
    names: dict[str, str] = {}
    keys = iter(("proxy", "toxic"))
    for want, got in zip(pattern, parts, strict=True):
        if want == "*":
            if not got:
                return None
            names[next(keys)] = got
        elif want != got:
            return None
    return names
