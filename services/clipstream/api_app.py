"""The api node (zone edge): the public ClipStream HTTP API, on FastAPI.

Contract (JSON everywhere; errors ``{"error", "field"}`` with a 4xx, or 503 when no store can
serve). Writes answer with ``X-ClipStream-Epoch`` and ``X-ClipStream-Store`` (who acknowledged,
under which epoch); reads with ``X-ClipStream-Store``, plus ``X-ClipStream-Degraded: stale`` when a
non-primary answered.

- ``POST /videos?title=T&client_id=C`` raw body -> 201 (created) or 200 (a retry of the same id)
- ``GET /videos``, ``GET /videos/{id}``, ``GET /videos/{id}/blob``, ``GET /videos/{id}/stats``
- ``GET /feed?limit=&cursor=``, ``GET /search?q=&limit=``
- ``POST /videos/{id}/views?op_id=O``, ``POST /videos/{id}/likes?op_id=O`` (once per op id)
- ``GET /healthz`` (with ``bugs``: the planted bugs named by ``--bugs``), ``GET /metrics``,
  ``GET /openapi.json``, ``GET /docs``

Without ``client_id`` (or ``op_id``) the api draws one before the first attempt, so its own
retries never duplicate a write.

Planted bug ``zero-counts-when-degraded`` (``--bugs``, off by default): a counter read the
primary could not answer is served with views/likes 0 and without the degraded header
(`_relay_counters`).
"""

from __future__ import annotations

import asyncio
import logging
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
from clipstream.config import ID_PATTERN, ApiConfig
from clipstream.errors import Refused, Unavailable
from clipstream.upstream import ApiMetrics, ReadAnswer, Upstream
from clipstream.web import HDR_DEGRADED, HDR_EPOCH, HDR_STORE, install_error_handlers

VideoId = Annotated[str, Path(pattern=ID_PATTERN, description="video id")]
OpId = Annotated[str | None, Query(pattern=ID_PATTERN, description="client operation id")]
Limit = Annotated[int, Query(ge=1, le=100)]
LOG = logging.getLogger("clipstream.api")
COUNTERS = ("views", "likes")


def _up(request: Request) -> Upstream:
    upstream: Upstream = request.app.state.upstream  # set at startup; starlette's state is Any
    return upstream


def _relay_write(resp: httpx.Response) -> Response:
    headers = {}
    if resp.status_code < 300:
        headers = {HDR_EPOCH: resp.headers.get(HDR_EPOCH, ""),
                   HDR_STORE: resp.headers.get(HDR_STORE, "")}
    return Response(resp.content, status_code=resp.status_code, headers=headers,
                    media_type="application/json")


def _relay_read(answer: ReadAnswer, media_type: str = "application/json") -> Response:
    headers = {HDR_STORE: answer.store}
    if answer.degraded:
        headers[HDR_DEGRADED] = "stale"
    return Response(answer.response.content, status_code=answer.response.status_code,
                    headers=headers, media_type=media_type)


def zero_counters(body: object) -> object:
    """A copy of a read's JSON ``body`` with every ``views``/``likes`` (also in ``items``) at 0."""
    if not isinstance(body, dict):
        return body
    out: dict[object, object] = {k: (0 if k in COUNTERS else v) for k, v in body.items()}
    items = out.get("items")
    if isinstance(items, list):
        out["items"] = [zero_counters(item) for item in items]
    return out


def _relay_counters(answer: ReadAnswer, bugs: frozenset[str]) -> Response:
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
    return JSONResponse(zero_counters(body), headers={HDR_STORE: answer.store})


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
            m = self.metrics
            m.requests.labels(route, scope["method"], str(status)).inc()
            m.latency.labels(route).observe(time.perf_counter() - t0)
            if status >= 500:
                m.errors.labels(route).inc()


def create_api_app(cfg: ApiConfig, *,
                   transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """Build the api app for ``cfg``; the connection pool and route watcher live in its lifespan.

    ``transport`` replaces the network for every call to the coordinator and the stores
    (tests pass an ``httpx.MockTransport``); None dials them for real.
    """
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warn_active(LOG, "api", cfg.bugs)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        async with httpx.AsyncClient(limits=limits, transport=transport) as client:
            upstream = Upstream(cfg, client, metrics)
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

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _add_write_routes(app, cfg)
    _add_read_routes(app, cfg)
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
        return _relay_write(resp)

    async def increment(request: Request, video_id: str, field: str, op_id: str | None) -> Response:
        resp = await _up(request).write(
            f"/videos/{video_id}/incr",
            params={"field": field, "op": op_id or uuid.uuid4().hex})
        return _relay_write(resp)

    @app.post("/videos/{video_id}/views", summary="Count one view (once per op_id)")
    async def view(request: Request, video_id: VideoId, op_id: OpId = None) -> Response:
        return await increment(request, video_id, "views", op_id)

    @app.post("/videos/{video_id}/likes", summary="Count one like (once per op_id)")
    async def like(request: Request, video_id: VideoId, op_id: OpId = None) -> Response:
        return await increment(request, video_id, "likes", op_id)


def _add_read_routes(app: FastAPI, cfg: ApiConfig) -> None:
    @app.get("/videos", summary="Every video id")
    async def ids(request: Request) -> Response:
        return _relay_read(await _up(request).read("/videos"))

    @app.get("/videos/{video_id}", summary="A video's metadata and counters")
    async def video(request: Request, video_id: VideoId) -> Response:
        return _relay_counters(await _up(request).read(f"/videos/{video_id}"), cfg.bugs)

    @app.get("/videos/{video_id}/blob", summary="A video's bytes")
    async def blob(request: Request, video_id: VideoId) -> Response:
        answer = await _up(request).read(f"/videos/{video_id}/blob")
        ok = answer.response.status_code == 200
        return _relay_read(answer, "application/octet-stream" if ok else "application/json")

    @app.get("/videos/{video_id}/stats", summary="A video's view and like counts")
    async def stats(request: Request, video_id: VideoId) -> Response:
        return _relay_counters(await _up(request).read(f"/videos/{video_id}/stats"), cfg.bugs)

    @app.get("/feed", summary="Newest videos first, with counters, paginated")
    async def feed(request: Request, limit: Limit = 20,
                   cursor: Annotated[str | None, Query(pattern=r"^[1-9][0-9]{0,17}$")] = None,
                   ) -> Response:
        params = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        return _relay_counters(await _up(request).read("/feed", params=params), cfg.bugs)

    @app.get("/search", summary="Videos whose title contains q")
    async def search(request: Request, q: Annotated[str, Query(min_length=1, max_length=200)],
                     limit: Limit = 20) -> Response:
        answer = await _up(request).read("/search", params={"q": q, "limit": str(limit)})
        return _relay_counters(answer, cfg.bugs)


def _add_ops_routes(app: FastAPI, metrics: ApiMetrics) -> None:
    @app.get("/healthz", summary="200 while some store answers")
    async def healthz(request: Request) -> JSONResponse:
        up = _up(request)
        try:
            answer = await up.read("/healthz")
        except Unavailable:
            return JSONResponse({"status": "unavailable", "primary": up.route.primary,
                                 "epoch": up.route.epoch, "field": None,
                                 "error": "no store reachable",
                                 "bugs": sorted(up.cfg.bugs)}, status_code=503)
        return JSONResponse({"status": "ok", "primary": up.route.primary,
                             "epoch": up.route.epoch, "store": answer.store,
                             "bugs": sorted(up.cfg.bugs)})

    @app.get("/metrics", summary="Prometheus metrics")
    async def prom(request: Request) -> Response:
        return Response(generate_latest(metrics.registry),
                        media_type="text/plain; version=0.0.4")
