"""How the api reaches the stores: writes to the primary with bounded retries, reads anywhere.

`Upstream` caches the route (primary name + epoch) learned from the coordinator (or, if the
coordinator cannot be reached, from the stores' own ``/healthz``). A write that meets a
connection error, a timeout, a 503, or a store saying ``not_primary``/``stale_epoch``/
``unknown_epoch`` refreshes the route and is retried (tenacity, exponential backoff with
jitter) until ``write_retry_s`` has passed; retries are safe because every write carries a
client id. A read goes to the primary first, then to any other store (skipping for a second a
store that just failed); the caller marks the answer degraded when the answering store is
not the primary.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from clipstream.config import ApiConfig
from clipstream.errors import Unavailable
from clipstream.web import HDR_ROLE

LOG = logging.getLogger("clipstream.api")
RETRY_CODES = frozenset({"not_primary", "stale_epoch", "unknown_epoch"})
DOWN_FOR_S = 1.0
MIN_REFRESH_S = 0.05


@dataclass(frozen=True, slots=True)
class Route:
    """Where writes go: the primary's name (None if unknown) and the epoch it rules."""

    primary: str | None
    epoch: int


@dataclass(frozen=True, slots=True)
class ReadAnswer:
    """A store's answer to a read, and whether it came from a non-primary (stale)."""

    response: httpx.Response
    store: str
    degraded: bool


class ApiMetrics:
    """The api's Prometheus metrics, in a registry of its own (no global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("clipstream_api_requests", "requests answered",
                                ["route", "method", "status"], registry=r)
        self.errors = Counter("clipstream_api_errors", "requests answered with a 5xx",
                              ["route"], registry=r)
        self.latency = Histogram("clipstream_api_request_seconds", "request duration",
                                 ["route"], registry=r)
        self.failovers = Counter("clipstream_api_failovers", "primary changes observed",
                                 registry=r)
        self.retries = Counter("clipstream_api_write_retries", "write attempts retried",
                               registry=r)
        self.upstream_errors = Counter("clipstream_api_upstream_errors",
                                       "failed calls to a store", ["store"], registry=r)
        self.degraded = Counter("clipstream_api_degraded_reads", "reads served by a non-primary",
                                registry=r)
        self.lag = Gauge("clipstream_replication_lag_records",
                         "records each store is behind the primary", ["store"], registry=r)
        self.epoch = Gauge("clipstream_api_epoch", "epoch of the cached route", registry=r)


class Upstream:
    """The api's connections to the coordinator and the stores (use inside its lifespan)."""

    def __init__(self, cfg: ApiConfig, client: httpx.AsyncClient, metrics: ApiMetrics):
        self.cfg = cfg
        self.client = client
        self.metrics = metrics
        self.route = Route(None, 0)
        self._down_until: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self._refreshed_at = 0.0
        self.timeout = cfg.request_timeout_ms / 1000

    # ----------------------------------------------------------------- route
    def _set_route(self, route: Route) -> None:
        if route.epoch < self.route.epoch:
            return
        if self.route.primary is not None and route.primary != self.route.primary:
            self.metrics.failovers.inc()
            LOG.warning("primary is now %s (epoch %d)", route.primary, route.epoch)
        self.route = route
        self.metrics.epoch.set(route.epoch)

    async def _ask_coordinator(self) -> Route | None:
        try:
            resp = await self.client.get(f"{self.cfg.coordinator_url}/primary",
                                         timeout=self.timeout)
            d = resp.json()
            return Route(str(d["primary"]), int(d["epoch"])) if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    async def _ask_stores(self) -> Route | None:
        async def one(name: str, url: str) -> Route | None:
            try:
                d = (await self.client.get(f"{url}/healthz", timeout=self.timeout)).json()
                return Route(name, int(d["epoch"])) if d.get("role") == "primary" else None
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                return None

        found = [r for r in await asyncio.gather(*(one(n, u) for n, u in
                                                   self.cfg.stores.items())) if r]
        return max(found, key=lambda r: r.epoch) if found else None

    async def refresh(self) -> Route:
        """Learn the route again (coalesced: concurrent callers share one refresh)."""
        async with self._lock:
            if time.monotonic() - self._refreshed_at >= MIN_REFRESH_S:
                route = await self._ask_coordinator() or await self._ask_stores()
                if route is not None:
                    self._set_route(route)
                self._refreshed_at = time.monotonic()
        return self.route

    def _mark_down(self, name: str) -> None:
        self.metrics.upstream_errors.labels(name).inc()
        self._down_until[name] = time.monotonic() + DOWN_FOR_S

    # ----------------------------------------------------------------- writes
    async def write(self, path: str, *, params: Mapping[str, str],
                    content: bytes | None = None) -> httpx.Response:
        """POST ``path`` to the primary; retried across failovers for ``write_retry_s``.

        Returns the store's answer (2xx, or a 4xx that retrying cannot change); raises
        `Unavailable` when no primary acknowledged in time.
        """
        deadline = time.monotonic() + self.cfg.write_retry_s
        attempts = AsyncRetrying(
            stop=stop_after_delay(self.cfg.write_retry_s),
            wait=wait_exponential_jitter(initial=0.05, max=0.4, jitter=0.05),
            retry=retry_if_exception_type(Unavailable), reraise=True,
        )
        async for attempt in attempts:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.metrics.retries.inc()
                return await self._write_once(path, params, content, deadline)
        raise Unavailable("no attempt was made")  # pragma: no cover - tenacity always attempts

    async def _write_once(self, path: str, params: Mapping[str, str], content: bytes | None,
                          deadline: float) -> httpx.Response:
        route = self.route if self.route.primary else await self.refresh()
        if route.primary is None or route.primary not in self.cfg.stores:
            raise Unavailable(f"no known primary (route names {route.primary!r})")
        timeout = max(0.05, min(self.timeout, deadline - time.monotonic()))
        try:
            resp = await self.client.post(
                f"{self.cfg.stores[route.primary]}{path}",
                params={**params, "epoch": str(route.epoch)}, content=content, timeout=timeout)
        except httpx.HTTPError as exc:
            self._mark_down(route.primary)
            await self.refresh()
            raise Unavailable(f"{route.primary}: {type(exc).__name__}") from exc
        if resp.status_code == 503 or (resp.status_code == 409 and _code(resp) in RETRY_CODES):
            await self.refresh()
            raise Unavailable(f"{route.primary} answered {resp.status_code} {_code(resp)}")
        if resp.status_code >= 500:
            raise Unavailable(f"{route.primary} answered {resp.status_code}")
        return resp

    # ----------------------------------------------------------------- reads
    def _read_order(self) -> list[str]:
        now = time.monotonic()
        names = list(self.cfg.stores)
        if self.route.primary in names:
            names.remove(self.route.primary)
            names.insert(0, self.route.primary)
        up = [n for n in names if self._down_until.get(n, 0.0) <= now]
        return up + [n for n in names if n not in up]

    async def read(self, path: str, *, params: Mapping[str, str] | None = None) -> ReadAnswer:
        """GET ``path`` from the primary, else from any store; raise `Unavailable` if none."""
        for name in self._read_order():
            try:
                resp = await self.client.get(f"{self.cfg.stores[name]}{path}", params=params,
                                             timeout=self.timeout)
            except httpx.HTTPError:
                self._mark_down(name)
                continue
            if resp.status_code >= 500:
                self._mark_down(name)
                continue
            degraded = resp.headers.get(HDR_ROLE) != "primary"
            if degraded:
                self.metrics.degraded.inc()
            return ReadAnswer(resp, name, degraded)
        raise Unavailable("no store could serve the read")

    async def watch(self) -> None:
        """Refresh the route and the replication-lag gauge every ``refresh_interval_ms``."""
        while True:
            await self.refresh()
            try:
                resp = await self.client.get(f"{self.cfg.coordinator_url}/state",
                                             timeout=self.timeout)
                stores = resp.json()["stores"]
                reports = {n: s["report"] for n, s in stores.items() if s.get("report")}
                top = max((r["last_index"] for r in reports.values()), default=0)
                for name, rep in reports.items():
                    self.metrics.lag.labels(name).set(max(0, top - int(rep["last_index"])))
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                pass
            await asyncio.sleep(self.cfg.refresh_interval_ms / 1000)


def _code(resp: httpx.Response) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None
