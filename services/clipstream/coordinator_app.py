"""The coordinator node's HTTP face.

- ``GET /healthz`` -> ``{"status": "ok", "primary", "epoch"}``
- ``GET /primary`` -> ``{"primary", "epoch", "in_sync"}`` (what the api routes writes by)
- ``GET /state`` -> the decided state plus the latest observation of each store and ``bugs``
  (the planted bugs named by ``--bugs``)
- ``GET /metrics`` -> Prometheus text (epoch, failovers, store reachability, replication lag)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from clipstream.bugs import warn_active
from clipstream.config import CoordinatorConfig
from clipstream.coordinator import Coordinator
from clipstream.web import install_error_handlers

LOG = logging.getLogger("clipstream.coordinator")


class CoordinatorCollector(Collector):
    """Prometheus collector reading the coordinator's state at scrape time."""

    def __init__(self, coord: Coordinator):
        self.coord = coord

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self.coord.state
        yield GaugeMetricFamily("clipstream_coordinator_epoch", "current epoch", value=s.epoch)
        yield GaugeMetricFamily("clipstream_coordinator_in_sync", "1 when the replica is in sync",
                                value=int(s.in_sync))
        yield CounterMetricFamily("clipstream_coordinator_failovers", "promotions so far",
                                  value=s.failovers)
        up = GaugeMetricFamily("clipstream_coordinator_store_up", "store answered last check",
                               labels=["store"])
        lag = GaugeMetricFamily("clipstream_replication_lag_records",
                                "records the store is behind the primary (last reports)",
                                labels=["store"])
        obs = self.coord.obs
        primary = obs[s.primary].report
        for name, o in obs.items():
            up.add_metric([name], int(o.reachable))
            if o.report is not None and primary is not None:
                lag.add_metric([name], max(0, primary.last_index - o.report.last_index))
        yield up
        yield lag


def create_coordinator_app(cfg: CoordinatorConfig) -> FastAPI:
    """Build the coordinator app; its loop runs in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warn_active(LOG, "coordinator", cfg.bugs)
        limits = httpx.Limits(max_connections=8, max_keepalive_connections=4)
        async with httpx.AsyncClient(limits=limits) as client:
            coord = Coordinator(cfg, client)
            registry = CollectorRegistry()
            registry.register(CoordinatorCollector(coord))
            app.state.coord, app.state.registry = coord, registry
            task = asyncio.create_task(coord.run())
            try:
                yield
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    app = FastAPI(title="ClipStream coordinator", lifespan=lifespan)
    install_error_handlers(app)

    @app.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        s = request.app.state.coord.state
        return JSONResponse({"status": "ok", "primary": s.primary, "epoch": s.epoch})

    @app.get("/primary")
    async def primary(request: Request) -> JSONResponse:
        s = request.app.state.coord.state
        return JSONResponse({"primary": s.primary, "epoch": s.epoch, "in_sync": s.in_sync})

    @app.get("/state")
    async def state(request: Request) -> JSONResponse:
        return JSONResponse(request.app.state.coord.snapshot())

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(request.app.state.registry),
                        media_type="text/plain; version=0.0.4")

    return app
