"""The store node's HTTP face: public reads, writes from the api, roles, replication, metrics.

Routes (JSON unless said):

- ``GET /healthz`` ``{"name","role","epoch"}``; ``GET /state`` the full `StoreStatus`
  (with ``bugs``: the planted bugs named by ``--bugs``);
  ``GET /dump`` every video and counter (the harness's final read); ``GET /metrics``.
- ``POST /assign?wait_ms=`` (coordinator) an `Assignment`; answers the status (it doubles as
  health check), after holding up to ``wait_ms`` until something the coordinator decides on
  changes (a long poll: a request to shrink the in-sync set reaches it within a round trip).
- ``POST /videos?id=&title=&epoch=`` body = bytes; ``POST /videos/{id}/incr?field=&op=&epoch=``.
- ``GET /videos``, ``/videos/{id}``, ``/videos/{id}/blob``, ``/videos/{id}/stats``, ``/feed``,
  ``/search``: what the api forwards. Each answer carries ``X-ClipStream-Store``,
  ``X-ClipStream-Role`` and ``X-ClipStream-Epoch``.
- ``GET /repl/pull``, ``GET /repl/blob/{sha}`` (the peer replica).

The lifespan opens the log (recovering a torn tail), starts the flusher and the replica loop, and
on SIGTERM stops them and flushes the write-back buffer: a clean exit loses nothing.

The hot routes (``healthz``, a video, its stats, ``feed``, ``search``, ``incr``, ``repl/pull``)
are answered by `clipstream.fastpath` when their parameters are plainly valid, with the same
answers as their FastAPI routes; feed and search pages are rendered by `clipstream.render`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Literal

import httpx
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope

from clipstream.blobs import BlobStore
from clipstream.bugs import warn_active
from clipstream.config import ID_PATTERN, StoreConfig
from clipstream.engine import Assignment, StoreEngine
from clipstream.errors import CorruptRecord, Refused
from clipstream.fastpath import Args, FastPath, FastRoute, Reply, digits_in, length_in
from clipstream.log import Log
from clipstream.render import ItemsJson
from clipstream.replica import answer_to_wire, run_replica
from clipstream.state import Video
from clipstream.web import HDR_EPOCH, HDR_ROLE, HDR_STORE, install_error_handlers, json_bytes

LOG = logging.getLogger("clipstream.store")
VideoId = Annotated[str, Query(pattern=ID_PATTERN)]
Epoch = Annotated[int, Query(ge=1)]


class AssignBody(BaseModel):
    """The coordinator's assignment, as sent on the wire."""

    role: Literal["primary", "replica"]
    epoch: int = Field(ge=1)
    primary: str = Field(pattern=ID_PATTERN)
    in_sync: bool = False
    sync_gen: int = Field(default=0, ge=0)
    boot_id: str | None = Field(default=None, max_length=64)


class StoreCollector(Collector):
    """Prometheus collector reading the engine's status at scrape time."""

    def __init__(self, engine: StoreEngine):
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self.engine.status()
        for name, value, doc in (
            ("clipstream_store_epoch", s.epoch, "epoch this store is at"),
            ("clipstream_store_last_index", s.last_index, "index of the last log record"),
            ("clipstream_store_durable_index", s.durable_index, "last record on disk"),
            ("clipstream_store_replication_lag_records", s.replication_lag,
             "records the replica is behind the primary (as of its last pull)"),
            ("clipstream_store_is_primary", int(s.role == "primary"), "1 when primary"),
            ("clipstream_store_videos", s.videos, "videos held"),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
        for name, value, doc in (
            ("clipstream_store_log_truncated_records", s.truncated_records,
             "torn/corrupt tail frames truncated at start-up"),
            ("clipstream_store_log_truncated_bytes", s.truncated_bytes,
             "bytes of torn/corrupt tail truncated at start-up"),
            ("clipstream_store_discarded_records", s.discarded_records,
             "records discarded on rejoin (never acknowledged by the new primary)"),
        ):
            yield CounterMetricFamily(name, doc, value=value)


def _engine(request: Request) -> StoreEngine:
    engine: StoreEngine = request.app.state.engine  # set at startup; starlette's state is Any
    return engine


def _headers(engine: StoreEngine) -> dict[str, str]:
    return {HDR_STORE: engine.cfg.name, HDR_ROLE: engine.role, HDR_EPOCH: str(engine.epoch)}


def _json(engine: StoreEngine, body: object, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=_headers(engine))


def _reply(engine: StoreEngine, body: object, status: int = 200) -> Reply:
    """``body`` as JSON with the store's headers: the bytes `_json` would send."""
    return Reply(status, json_bytes(body), _headers(engine))


def _engine_of(scope: Scope) -> StoreEngine:
    engine: StoreEngine = scope["app"].state.engine  # set at startup; starlette's state is Any
    return engine


def _video(v: Video) -> dict[str, object]:
    """``asdict(v)`` at a fifth of its cost."""
    return {"id": v.id, "title": v.title, "size": v.size, "sha256": v.sha256,
            "created_at": v.created_at}


def _fail_stop(task: asyncio.Task[None]) -> None:
    """A storage task that dies leaves durability unknowable: stop the process at once."""
    if not task.cancelled() and task.exception() is not None:
        LOG.critical("background task failed: %r; stopping", task.exception())
        os._exit(70)


def create_store_app(cfg: StoreConfig, *, fast_path: bool = True) -> FastAPI:
    """Build the store app for ``cfg``; resources live in its lifespan.

    The hot routes are answered by `clipstream.fastpath` unless ``fast_path`` is False (tests
    compare both).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warn_active(LOG, "store", cfg.bugs)
        blobs = BlobStore(cfg.data_dir / "blobs", fsync=cfg.fsync.mode != "never")
        with Log(cfg.data_dir / "log") as log:
            if log.truncated_bytes:
                LOG.warning("truncated %d bytes of torn log tail (%s)", log.truncated_bytes,
                            log.truncated_reason)
            engine = StoreEngine(cfg, log, blobs)
            registry = CollectorRegistry()
            registry.register(StoreCollector(engine))
            app.state.engine, app.state.registry = engine, registry
            limits = httpx.Limits(max_connections=16, max_keepalive_connections=8)
            async with httpx.AsyncClient(limits=limits) as client:
                tasks = [asyncio.create_task(engine.run_flusher()),
                         asyncio.create_task(run_replica(engine, client))]
                for t in tasks:
                    t.add_done_callback(_fail_stop)
                try:
                    yield
                finally:
                    for t in tasks:
                        t.remove_done_callback(_fail_stop)
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    await engine.flush(fsync=True)

    app = FastAPI(title="ClipStream store", lifespan=lifespan)
    install_error_handlers(app)
    items = ItemsJson()
    if fast_path:
        app.add_middleware(FastPath, routes=_fast_routes(items))
    _add_admin_routes(app)
    _add_replication_routes(app)
    _add_write_routes(app)
    _add_read_routes(app, items)
    return app


# -------------------------------------------------------------------- what hot routes do
# Shared by the FastAPI routes (the reference, with validation) and the fast path.

def _healthz(e: StoreEngine) -> Reply:
    return _reply(e, {"name": e.cfg.name, "role": e.role, "epoch": e.epoch})


def _video_or_404(e: StoreEngine, video_id: str) -> dict[str, object]:
    v = e.index.videos.get(video_id)
    if v is None:
        raise Refused(f"no video {video_id}", status=404, code="not_found", field="id")
    return {**_video(v), "views": e.index.views[video_id], "likes": e.index.likes[video_id]}


def _stats(e: StoreEngine, video_id: str) -> Reply:
    s = e.index.stats(video_id)
    if s is None:
        raise Refused(f"no video {video_id}", status=404, code="not_found", field="id")
    return _reply(e, {"id": s.id, "views": s.views, "likes": s.likes})


def _feed(e: StoreEngine, items: ItemsJson, limit: int, cursor: int | None) -> Reply:
    return Reply(200, items.feed(e.index, limit=limit, cursor=cursor), _headers(e))


def _search(e: StoreEngine, items: ItemsJson, q: str, limit: int) -> Reply:
    return Reply(200, items.search(e.index, q, limit=limit), _headers(e))


async def _incr(e: StoreEngine, video_id: str, field: Literal["views", "likes"], op: str,
                epoch: int) -> Reply:
    s = await e.increment(video_id=video_id, field=field, op=op, epoch=epoch)
    return _reply(e, {"id": s.id, "views": s.views, "likes": s.likes})


async def _pull(e: StoreEngine, epoch: int, after: int, after_epoch: int, wait_ms: int) -> Reply:
    answer = await e.serve_pull(epoch=epoch, after=after, after_epoch=after_epoch,
                                wait_ms=wait_ms)
    return _reply(e, answer_to_wire(answer))


def _fast_routes(items: ItemsJson) -> list[FastRoute]:
    """The hot routes (the api's and the replica's calls), for `FastPath`."""
    epoch = digits_in(1, 10**17)
    limit = digits_in(1, 100)
    any_id = length_in(1, 10**4)  # FastAPI takes any path segment; the index says 404
    field = {"views", "likes"}.__contains__

    async def healthz(scope: Scope, _: Receive, a: Args) -> Reply:
        return _healthz(_engine_of(scope))

    async def video(scope: Scope, _: Receive, a: Args) -> Reply:
        e = _engine_of(scope)
        return _reply(e, _video_or_404(e, a["video_id"]))

    async def stats(scope: Scope, _: Receive, a: Args) -> Reply:
        return _stats(_engine_of(scope), a["video_id"])

    async def feed(scope: Scope, _: Receive, a: Args) -> Reply:
        cursor = a.get("cursor")
        return _feed(_engine_of(scope), items, int(a.get("limit", "20")),
                     None if cursor is None else int(cursor))

    async def search(scope: Scope, _: Receive, a: Args) -> Reply:
        return _search(_engine_of(scope), items, a["q"], int(a.get("limit", "20")))

    async def incr(scope: Scope, _: Receive, a: Args) -> Reply:
        return await _incr(_engine_of(scope), a["video_id"],
                           "views" if a["field"] == "views" else "likes", a["op"],
                           int(a["epoch"]))

    async def pull(scope: Scope, _: Receive, a: Args) -> Reply:
        return await _pull(_engine_of(scope), int(a["epoch"]), int(a["after"]),
                           int(a["after_epoch"]), int(a.get("wait_ms", "0")))

    return [
        FastRoute("GET", "/healthz", healthz),
        FastRoute("GET", "/videos/{video_id}", video, params={"video_id": any_id}),
        FastRoute("GET", "/videos/{video_id}/stats", stats, params={"video_id": any_id}),
        FastRoute("GET", "/feed", feed, params={"limit": limit, "cursor": digits_in(1, 10**17)}),
        FastRoute("GET", "/search", search, params={"q": length_in(1, 200), "limit": limit},
                  required=frozenset({"q"})),
        FastRoute("POST", "/videos/{video_id}/incr", incr,
                  params={"video_id": any_id, "field": field, "op": length_in(1, 128),
                          "epoch": epoch},
                  required=frozenset({"field", "op", "epoch"})),
        FastRoute("GET", "/repl/pull", pull,
                  params={"epoch": epoch, "after": digits_in(0, 10**17),
                          "after_epoch": digits_in(0, 10**17), "wait_ms": digits_in(0, 5000)},
                  required=frozenset({"epoch", "after", "after_epoch"})),
    ]


def _add_admin_routes(app: FastAPI) -> None:
    @app.get("/healthz")
    async def healthz(request: Request) -> Response:
        return _healthz(_engine(request)).to_response()

    @app.get("/state")
    async def state(request: Request) -> JSONResponse:
        e = _engine(request)
        return _json(e, asdict(e.status()))

    @app.get("/dump")
    async def dump(request: Request) -> JSONResponse:
        e = _engine(request)
        videos = [_video(e.index.videos[i]) for i in e.index.ids()]
        counters = {i: {"views": e.index.views[i], "likes": e.index.likes[i]}
                    for i in e.index.ids()}
        return _json(e, {"name": e.cfg.name, "role": e.role, "epoch": e.epoch,
                         "last_index": e.log.last_index, "videos": videos,
                         "counters": counters})

    @app.post("/assign")
    async def assign(request: Request, body: AssignBody,
                     wait_ms: Annotated[int, Query(ge=0, le=5000)] = 0) -> JSONResponse:
        """Take the assignment; with ``wait_ms``, answer when the report changes (long poll)."""
        e = _engine(request)
        await e.assign(Assignment(**body.model_dump()))
        if wait_ms:
            await e.wait_report_change(wait_ms)
        return _json(e, asdict(e.status()))

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(request.app.state.registry),
                         media_type="text/plain; version=0.0.4")


def _add_replication_routes(app: FastAPI) -> None:
    @app.get("/repl/pull")
    async def pull(request: Request, epoch: Epoch, after: Annotated[int, Query(ge=0)],
                   after_epoch: Annotated[int, Query(ge=0)],
                   wait_ms: Annotated[int, Query(ge=0, le=5000)] = 0) -> Response:
        return (await _pull(_engine(request), epoch, after, after_epoch,
                            wait_ms)).to_response()

    @app.get("/repl/blob/{sha}")
    async def blob_by_sha(request: Request, sha: str) -> Response:
        e = _engine(request)
        try:
            path = e.blobs.path(sha)
        except CorruptRecord as exc:
            raise Refused("not a sha256", status=422, code="invalid", field="sha") from exc
        if not path.is_file():
            raise Refused(f"no blob {sha}", status=404, code="not_found", field="sha")
        return FileResponse(path, media_type="application/octet-stream")


def _add_write_routes(app: FastAPI) -> None:
    @app.post("/videos")
    async def upload(request: Request, id: VideoId,
                     title: Annotated[str, Query(min_length=1, max_length=200)],
                     epoch: Epoch) -> JSONResponse:
        e = _engine(request)
        data = await request.body()
        result = await e.upload(video_id=id, title=title, data=data, epoch=epoch)
        return _json(e, _video(result.video), 201 if result.created else 200)

    @app.post("/videos/{video_id}/incr")
    async def incr(request: Request, video_id: str,
                   field: Literal["views", "likes"],
                   op: Annotated[str, Query(min_length=1, max_length=128)],
                   epoch: Epoch) -> Response:
        return (await _incr(_engine(request), video_id, field, op, epoch)).to_response()


def _add_read_routes(app: FastAPI, items: ItemsJson) -> None:
    @app.get("/videos")
    async def ids(request: Request) -> JSONResponse:
        e = _engine(request)
        return _json(e, {"ids": e.index.ids()})

    @app.get("/videos/{video_id}")
    async def video(request: Request, video_id: str) -> JSONResponse:
        e = _engine(request)
        return _json(e, _video_or_404(e, video_id))

    @app.get("/videos/{video_id}/stats")
    async def stats(request: Request, video_id: str) -> Response:
        return _stats(_engine(request), video_id).to_response()

    @app.get("/videos/{video_id}/blob")
    async def blob(request: Request, video_id: str) -> Response:
        e = _engine(request)
        path = e.blobs.path(str(_video_or_404(e, video_id)["sha256"]))
        if not path.is_file():  # cannot happen (blob before record), but never a 500
            raise Refused(f"blob of {video_id} missing", status=404, code="not_found", field="id")
        return FileResponse(path, headers=_headers(e), media_type="application/octet-stream")

    @app.get("/feed")
    async def feed(request: Request, limit: Annotated[int, Query(ge=1, le=100)] = 20,
                   cursor: Annotated[int | None, Query(ge=1)] = None) -> Response:
        return _feed(_engine(request), items, limit, cursor).to_response()

    @app.get("/search")
    async def search(request: Request, q: Annotated[str, Query(min_length=1, max_length=200)],
                     limit: Annotated[int, Query(ge=1, le=100)] = 20) -> Response:
        return _search(_engine(request), items, q, limit).to_response()
