"""The api node (zone edge): the public ClipStream HTTP API, on FastAPI.

Contract (JSON everywhere; errors ``{"error", "field"}`` with a 4xx, or 503 when no store can
serve). Writes answer with ``X-ClipStream-Epoch`` and ``X-ClipStream-Store`` (who acknowledged,
under which epoch); reads with ``X-ClipStream-Store``, plus ``X-ClipStream-Degraded: stale`` when a
non-primary answered.

- ``POST /videos?title=T&client_id=C`` raw body -> 201 (created) or 200 (a retry of the same id)
- ``GET /videos``, ``GET /videos/{id}``, ``GET /videos/{id}/blob``, ``GET /videos/{id}/stats``
- ``GET /feed?limit=&cursor=``, ``GET /search?q=&limit=``
- ``POST /videos/{id}/views?op_id=O``, ``POST /videos/{id}/likes?op_id=O`` (once per op id)
- ``GET /healthz`` (with ``bugs``: the planted bugs named by ``--bugs``, and ``pid``: the api
  worker that answered, see ``--api-workers``), ``GET /metrics``, ``GET /openapi.json``,
  ``GET /docs``

The routes the load hammers (feed, search, a video, its stats, views, likes) are answered by
`clipstream.fastpath` when their parameters are plainly valid, with the same answers as their
FastAPI routes, which stay the reference.

Without ``client_id`` (or ``op_id``) the api draws one before the first attempt, so its own
retries never duplicate a write.

Planted bug ``zero-counts-when-degraded`` (``--bugs``, off by default): a counter read the
primary could not answer is served with views/likes 0 and without the degraded header
(`_relay_counters`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import generate_latest
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clipstream.bugs import Bug, warn_active
from clipstream.client import Answer, host_clients
from clipstream.config import ID_PATTERN, ApiConfig
from clipstream.errors import Refused, Unavailable
from clipstream.fastpath import Args, FastPath, FastRoute, Reply, digits_in, length_in, matches
from clipstream.upstream import ApiMetrics, ReadAnswer, Upstream
from clipstream.web import (
    HDR_DEGRADED,
    HDR_EPOCH,
    HDR_STORE,
    install_error_handlers,
    json_bytes,
)

VideoId = Annotated[str, Path(pattern=ID_PATTERN, description="video id")]
OpId = Annotated[str | None, Query(pattern=ID_PATTERN, description="client operation id")]
Limit = Annotated[int, Query(ge=1, le=100)]
CURSOR_PATTERN = r"^[1-9][0-9]{0,17}$"
LOG = logging.getLogger("clipstream.api")
COUNTERS = ("views", "likes")
EPOCH, STORE = HDR_EPOCH.lower(), HDR_STORE.lower()


def _up(request: Request) -> Upstream:
    return _upstream_of(request.scope)


def _upstream_of(scope: Scope) -> Upstream:
    upstream: Upstream = scope["app"].state.upstream  # set at startup; starlette's state is Any
    return upstream


def _relay_write(resp: Answer) -> Reply:
    headers = {}
    if resp.status_code < 300:
        headers = {HDR_EPOCH: resp.headers.get(EPOCH, ""), HDR_STORE: resp.headers.get(STORE, "")}
    return Reply(resp.status_code, resp.content, headers)


def _relay_read(answer: ReadAnswer, media_type: str = "application/json") -> Reply:
    headers = {HDR_STORE: answer.store}
    if answer.degraded:
        headers[HDR_DEGRADED] = "stale"
    return Reply(answer.response.status_code, answer.response.content, headers, media_type)


def zero_counters(body: object) -> object:
    """A copy of a read's JSON ``body`` with every ``views``/``likes`` (also in ``items``) at 0."""
    if not isinstance(body, dict):
        return body
    out: dict[object, object] = {k: (0 if k in COUNTERS else v) for k, v in body.items()}
    items = out.get("items")
    if isinstance(items, list):
        out["items"] = [zero_counters(item) for item in items]
    return out


def _relay_counters(answer: ReadAnswer, bugs: frozenset[str]) -> Reply:
    """Relay a read that carries counters (stats, video, feed, search): as `_relay_read`.

    Bug ``zero-counts-when-degraded``: when the primary could not answer (a non-primary did),
    a 200 is relayed with every counter at 0 and *without* the degraded header, the "safe
    default" that shows creators zero views while the primary is down.
    """
    if (Bug.ZERO_COUNTS_WHEN_DEGRADED not in bugs or not answer.degraded
            or answer.response.status_code != 200):
        return _relay_read(answer)
    try:
        body = answer.response.json()
    except ValueError:
        return _relay_read(answer)
    return Reply(200, json_bytes(zero_counters(body)), {HDR_STORE: answer.store})


# -------------------------------------------------------------------- what each route does
# Shared by the FastAPI routes (the reference, with validation) and the fast path.

async def _increment(up: Upstream, video_id: str, field: str, op_id: str | None) -> Reply:
    resp = await up.write(f"/videos/{video_id}/incr",
                          params={"field": field, "op": op_id or uuid.uuid4().hex})
    return _relay_write(resp)


async def _feed(up: Upstream, limit: str, cursor: str | None) -> Reply:
    params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
    return _relay_counters(await up.read("/feed", params=params), up.cfg.bugs)


async def _search(up: Upstream, q: str, limit: str) -> Reply:
    answer = await up.read("/search", params={"q": q, "limit": limit})
    return _relay_counters(answer, up.cfg.bugs)


async def _counters(up: Upstream, path: str) -> Reply:
    return _relay_counters(await up.read(path), up.cfg.bugs)


def _fast_routes() -> list[FastRoute]:
    """The hot routes of the load, for `FastPath` (same answers as the FastAPI routes)."""
    video = {"video_id": matches(ID_PATTERN)}
    op = {"op_id": matches(ID_PATTERN)}
    limit = digits_in(1, 100)

    async def feed(scope: Scope, _: Receive, a: Args) -> Reply:
        return await _feed(_upstream_of(scope), a.get("limit", "20"), a.get("cursor"))

    async def search(scope: Scope, _: Receive, a: Args) -> Reply:
        return await _search(_upstream_of(scope), a["q"], a.get("limit", "20"))

    async def video_meta(scope: Scope, _: Receive, a: Args) -> Reply:
        return await _counters(_upstream_of(scope), f"/videos/{a['video_id']}")

    async def stats(scope: Scope, _: Receive, a: Args) -> Reply:
        return await _counters(_upstream_of(scope), f"/videos/{a['video_id']}/stats")

    async def view(scope: Scope, _: Receive, a: Args) -> Reply:
        return await _increment(_upstream_of(scope), a["video_id"], "views", a.get("op_id"))

    async def like(scope: Scope, _: Receive, a: Args) -> Reply:
        return await _increment(_upstream_of(scope), a["video_id"], "likes", a.get("op_id"))

    return [
        FastRoute("GET", "/feed", feed, params={"limit": limit, "cursor": matches(CURSOR_PATTERN)}),
        FastRoute("GET", "/search", search, params={"q": length_in(1, 200), "limit": limit},
                  required=frozenset({"q"})),
        FastRoute("GET", "/videos/{video_id}", video_meta, params=video),
        FastRoute("GET", "/videos/{video_id}/stats", stats, params=video),
        FastRoute("POST", "/videos/{video_id}/views", view, params=video | op),
        FastRoute("POST", "/videos/{video_id}/likes", like, params=video | op),
    ]


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw upload body, refused with 413 past ``limit`` bytes (before reading it all)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused(f"upload larger than {limit} bytes", status=413, code="too_large",
                      field="body")
    buf = bytearray()
    try:
        async for chunk in request.stream():
            buf += chunk
            if len(buf) > limit:
                raise Refused(f"upload larger than {limit} bytes", status=413, code="too_large",
                              field="body")
    except ClientDisconnect:  # the client went away mid-upload: nothing to store, no traceback
        raise Refused("the client disconnected before the upload was complete", status=400,
                      code="invalid", field="body") from None
    if not buf:
        raise Refused("upload body is empty", status=422, code="invalid", field="body")
    return bytes(buf)


class MetricsMiddleware:
    """Pure ASGI middleware counting requests, 5xx answers and latency per route template."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(route, scope["method"], status, time.perf_counter() - t0)


def create_api_app(cfg: ApiConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                   fast_path: bool = True) -> FastAPI:
    """Build the api app for ``cfg``; the connection pools and route watcher live in its lifespan.

    One pooled keep-alive client per node dialled (`clipstream.client`). ``transport``
    replaces the network for every call to the coordinator and the stores (tests pass an
    ``httpx.MockTransport``); None dials them for real. ``fast_path=False`` leaves every
    request to FastAPI (tests compare both).
    """
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warn_active(LOG, "api", cfg.bugs)
        urls = {**cfg.stores, "": cfg.coordinator_url}
        async with host_clients(urls, transport=transport) as hosts:
            coordinator = hosts.pop("")
            upstream = Upstream(cfg, stores=hosts, coordinator=coordinator, metrics=metrics)
            app.state.upstream = upstream
            await upstream.refresh()
            task = asyncio.create_task(upstream.watch())
            try:
                yield
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    app = FastAPI(title="ClipStream api", version="1.0", lifespan=lifespan)
    install_error_handlers(app)

    if fast_path:
        app.add_middleware(FastPath, routes=_fast_routes())
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees both paths
    _add_write_routes(app, cfg)
    _add_read_routes(app)
    _add_ops_routes(app, metrics)
    return app


def _add_write_routes(app: FastAPI, cfg: ApiConfig) -> None:
    @app.post("/videos", status_code=201, summary="Upload a video (raw bytes)")
    async def upload(
        request: Request,
        title: Annotated[str, Query(min_length=1, max_length=200)],
        client_id: OpId = None,
    ) -> Response:
        data = await _read_body(request, cfg.max_upload_bytes)
        video_id = client_id or uuid.uuid4().hex
        resp = await _up(request).write("/videos", params={"id": video_id, "title": title},
                                        content=data)
        return _relay_write(resp).to_response()

    @app.post("/videos/{video_id}/views", summary="Count one view (once per op_id)")
    async def view(request: Request, video_id: VideoId, op_id: OpId = None) -> Response:
        return (await _increment(_up(request), video_id, "views", op_id)).to_response()

    @app.post("/videos/{video_id}/likes", summary="Count one like (once per op_id)")
    async def like(request: Request, video_id: VideoId, op_id: OpId = None) -> Response:
        return (await _increment(_up(request), video_id, "likes", op_id)).to_response()


def _add_read_routes(app: FastAPI) -> None:
    @app.get("/videos", summary="Every video id")
    async def ids(request: Request) -> Response:
        return _relay_read(await _up(request).read("/videos")).to_response()

    @app.get("/videos/{video_id}", summary="A video's metadata and counters")
    async def video(request: Request, video_id: VideoId) -> Response:
        return (await _counters(_up(request), f"/videos/{video_id}")).to_response()

    @app.get("/videos/{video_id}/blob", summary="A video's bytes")
    async def blob(request: Request, video_id: VideoId) -> Response:
        answer = await _up(request).read(f"/videos/{video_id}/blob")
        ok = answer.response.status_code == 200
        media_type = "application/octet-stream" if ok else "application/json"
        return _relay_read(answer, media_type).to_response()

    @app.get("/videos/{video_id}/stats", summary="A video's view and like counts")
    async def stats(request: Request, video_id: VideoId) -> Response:
        return (await _counters(_up(request), f"/videos/{video_id}/stats")).to_response()

    @app.get("/feed", summary="Newest videos first, with counters, paginated")
    async def feed(request: Request, limit: Limit = 20,
                   cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN)] = None,
                   ) -> Response:
        return (await _feed(_up(request), str(limit), cursor)).to_response()

    @app.get("/search", summary="Videos whose title contains q")
    async def search(request: Request, q: Annotated[str, Query(min_length=1, max_length=200)],
                     limit: Limit = 20) -> Response:
        return (await _search(_up(request), q, str(limit))).to_response()


def _add_ops_routes(app: FastAPI, metrics: ApiMetrics) -> None:
    @app.get("/healthz", summary="200 while some store answers")
    async def healthz(request: Request) -> JSONResponse:
        """``pid`` names the api worker that answered (``--api-workers``)."""
        up = _up(request)
        try:
            answer = await up.read("/healthz")
        except Unavailable:
            return JSONResponse({"status": "unavailable", "primary": up.route.primary,
                                 "epoch": up.route.epoch, "field": None,
                                 "error": "no store reachable",
                                 "bugs": sorted(up.cfg.bugs), "pid": os.getpid()},
                                status_code=503)
        return JSONResponse({"status": "ok", "primary": up.route.primary,
                             "epoch": up.route.epoch, "store": answer.store,
                             "bugs": sorted(up.cfg.bugs), "pid": os.getpid()})

    @app.get("/metrics", summary="Prometheus metrics")
    async def prom(request: Request) -> Response:
        return Response(generate_latest(metrics.registry),
                        media_type="text/plain; version=0.0.4")
