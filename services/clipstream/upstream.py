"""How the api reaches the stores: writes to the primary with bounded retries, reads anywhere.

`Upstream` caches the route (primary name + epoch) learned from the coordinator (or, if the
coordinator cannot be reached, from the stores' own ``/healthz``); `watch` refreshes it in the
background, so a request never waits for a lookup while the route holds. A write that meets a
connection error, a timeout, a 503, or a store saying ``not_primary``/``stale_epoch``/
``unknown_epoch`` refreshes the route and is retried (tenacity, exponential backoff with
jitter) until ``write_retry_s`` has passed; retries are safe because every write carries a
client id. A read goes to the primary first, then to any other store (skipping for a second a
store that just failed); the caller marks the answer degraded when the answering store is
not the primary. Every node is dialled through one `clipstream.client.HostClient` (a pool of
keep-alive connections).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from clipstream.client import Answer, HostClient
from clipstream.config import ApiConfig
from clipstream.errors import Unavailable, Unreachable
from clipstream.web import HDR_ROLE

LOG = logging.getLogger("clipstream.api")
RETRY_CODES = frozenset({"not_primary", "stale_epoch", "unknown_epoch"})
ROLE = HDR_ROLE.lower()
DOWN_FOR_S = 1.0
RETRY_FIRST_S, RETRY_MAX_S, RETRY_JITTER_S = 0.05, 0.4, 0.05
MIN_REFRESH_S = 0.05


@dataclass(frozen=True, slots=True)
class Route:
    """Where writes go: the primary's name (None if unknown) and the epoch it rules."""

    primary: str | None
    epoch: int


@dataclass(frozen=True, slots=True)
class ReadAnswer:
    """A store's answer to a read, and whether it came from a non-primary (stale)."""

    response: Answer
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
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram, Counter | None]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request of ``route`` (a template) and its duration."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:  # labels() takes a lock and builds a tuple: once per key
            children = self._children[key] = (
                self.requests.labels(route, method, str(status)), self.latency.labels(route),
                self.errors.labels(route) if status >= 500 else None)
        requests, latency, errors = children
        requests.inc()
        latency.observe(seconds)
        if errors is not None:
            errors.inc()


class Upstream:
    """The api's connections to the coordinator and the stores (use inside its lifespan)."""

    def __init__(self, cfg: ApiConfig, *, stores: Mapping[str, HostClient],
                 coordinator: HostClient, metrics: ApiMetrics):
        self.cfg = cfg
        self.stores = stores
        self.coordinator = coordinator
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
            resp = await self.coordinator.request("GET", "/primary", timeout=self.timeout)
            d = resp.json()
            if resp.status_code != 200 or not isinstance(d, dict):
                return None
            return Route(str(d["primary"]), int(d["epoch"]))
        except (Unreachable, ValueError, KeyError, TypeError):
            return None

    async def _ask_stores(self) -> Route | None:
        async def one(name: str, store: HostClient) -> Route | None:
            try:
                d = (await store.request("GET", "/healthz", timeout=self.timeout)).json()
                if not isinstance(d, dict) or d.get("role") != "primary":
                    return None
                return Route(name, int(d["epoch"]))
            except (Unreachable, ValueError, KeyError, TypeError):
                return None

        found = [r for r in await asyncio.gather(*(one(n, c) for n, c in
                                                   self.stores.items())) if r]
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
                    content: bytes | None = None) -> Answer:
        """POST ``path`` to the primary; retried across failovers for ``write_retry_s``.

        Returns the store's answer (2xx, or a 4xx that retrying cannot change); raises
        `Unavailable` when no primary acknowledged in time. The first attempt goes out
        directly; only a failed one builds the retry loop (it costs ~50 us a write).
        """
        start = time.monotonic()
        deadline = start + self.cfg.write_retry_s
        try:
            return await self._write_once(path, params, content, deadline)
        except Unavailable:
            if time.monotonic() - start >= self.cfg.write_retry_s:
                raise
        # backoff 0.05 s, then 0.1, 0.2, 0.4, 0.4... (+ up to 0.05 s of jitter each)
        await asyncio.sleep(RETRY_FIRST_S + random.uniform(0, RETRY_JITTER_S))
        attempts = AsyncRetrying(
            stop=stop_after_delay(max(0.0, deadline - time.monotonic())),
            wait=wait_exponential_jitter(initial=2 * RETRY_FIRST_S, max=RETRY_MAX_S,
                                         jitter=RETRY_JITTER_S),
            retry=retry_if_exception_type(Unavailable), reraise=True,
        )
        async for attempt in attempts:
            with attempt:
                self.metrics.retries.inc()
                return await self._write_once(path, params, content, deadline)
        raise Unavailable("no attempt was made")  # pragma: no cover - tenacity always attempts

    async def _write_once(self, path: str, params: Mapping[str, str], content: bytes | None,
                          deadline: float) -> Answer:
        route = self.route if self.route.primary else await self.refresh()
        if route.primary is None or route.primary not in self.stores:
            raise Unavailable(f"no known primary (route names {route.primary!r})")
        timeout = max(0.05, min(self.timeout, deadline - time.monotonic()))
        try:
            resp = await self.stores[route.primary].request(
                "POST", path, params={**params, "epoch": str(route.epoch)}, content=content,
                timeout=timeout)
        except Unreachable as exc:
            self._mark_down(route.primary)
            await self.refresh()
            raise Unavailable(f"{route.primary}: {exc}") from exc
        if resp.status_code == 503 or (resp.status_code == 409 and _code(resp) in RETRY_CODES):
            await self.refresh()
            raise Unavailable(f"{route.primary} answered {resp.status_code} {_code(resp)}")
        if resp.status_code >= 500:
            raise Unavailable(f"{route.primary} answered {resp.status_code}")
        return resp

    # ----------------------------------------------------------------- reads
    def _read_order(self) -> list[str]:
        now = time.monotonic()
        names = list(self.stores)
        if self.route.primary in names:
            names.remove(self.route.primary)
            names.insert(0, self.route.primary)
        up = [n for n in names if self._down_until.get(n, 0.0) <= now]
        return up + [n for n in names if n not in up]

    async def read(self, path: str, *, params: dict[str, str] | None = None) -> ReadAnswer:
        """GET ``path`` from the primary, else from any store; raise `Unavailable` if none."""
        for name in self._read_order():
            try:
                resp = await self.stores[name].request("GET", path, params=params,
                                                       timeout=self.timeout)
            except Unreachable:
                self._mark_down(name)
                continue
            if resp.status_code >= 500:
                self._mark_down(name)
                continue
            degraded = resp.headers.get(ROLE) != "primary"
            if degraded:
                self.metrics.degraded.inc()
            return ReadAnswer(resp, name, degraded)
        raise Unavailable("no store could serve the read")

    async def watch(self) -> None:
        """Refresh the route and the replication-lag gauge every ``refresh_interval_ms``."""
        while True:
            await self.refresh()
            try:
                resp = await self.coordinator.request("GET", "/state", timeout=self.timeout)
                stores = resp.json()["stores"]  # type: ignore[index]
                reports = {n: s["report"] for n, s in stores.items() if s.get("report")}
                top = max((r["last_index"] for r in reports.values()), default=0)
                for name, rep in reports.items():
                    self.metrics.lag.labels(name).set(max(0, top - int(rep["last_index"])))
            except (Unreachable, ValueError, KeyError, TypeError):
                pass
            await asyncio.sleep(self.cfg.refresh_interval_ms / 1000)


def _code(resp: Answer) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None
