"""ClipStream's data contract: after quiesce, read every video and counter from every store.

Talks to each store's HTTP API (``GET /dump``, ``GET /state``) on its direct, un-proxied address,
so a link fault left behind by a bug cannot hide data. A video is a key; its ``views`` and
``likes`` are that key's counters. Returns typed `FinalRead` snapshots; all judging happens
later in the pure checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import httpx

from drills.model import FinalRead, StoreSnapshot
from drills.targets.data import primary_of


def snapshot(client: httpx.Client, name: str, url: str) -> StoreSnapshot:
    """Read one store's whole state; an unreachable store gives ``reachable=False``."""
    try:
        resp = client.get(f"{url}/dump")
        resp.raise_for_status()
        body = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        return StoreSnapshot(name=name, reachable=False, error=f"{type(exc).__name__}: {exc}")
    counters: Mapping[str, Mapping[str, int]] = body.get("counters", {})
    return StoreSnapshot(
        name=name,
        reachable=True,
        role=body.get("role"),
        epoch=body.get("epoch"),
        keys=frozenset(v["id"] for v in body.get("videos", [])),
        counters={vid: {"views": int(c.get("views", 0)), "likes": int(c.get("likes", 0))}
                  for vid, c in counters.items()},
    )


def final_read(store_urls: Mapping[str, str], *, timeout: float = 10.0) -> FinalRead:
    """Snapshot every store; the primary is the reachable store claiming ``primary`` with the
    highest epoch (None if no store claims it)."""
    with httpx.Client(timeout=timeout) as client:
        snaps = tuple(snapshot(client, n, u) for n, u in store_urls.items())
    return FinalRead(primary=primary_of(snaps), stores=snaps)


def _positions(client: httpx.Client, store_urls: Mapping[str, str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, url in store_urls.items():
        try:
            state = client.get(f"{url}/state").json()
            out[name] = (state.get("role"), state.get("last_index"), state.get("replication_lag"))
        except (httpx.HTTPError, ValueError):
            out[name] = None
    return out


def wait_converged(
    store_urls: Mapping[str, str],
    *,
    timeout: float,
    interval: float = 0.25,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bool, float]:
    """Wait (bounded) until every store is reachable, one is primary, and all replicas report the
    primary's last log index with no lag. Returns (converged, seconds waited).

    Not converging is not an error here: the split-brain / divergence check reports it.
    """
    start = clock()
    with httpx.Client(timeout=max(1.0, interval * 4)) as client:
        while True:
            pos = _positions(client, store_urls)
            if all(p is not None for p in pos.values()):
                roles = [p[0] for p in pos.values()]  # type: ignore[index]
                indexes = {p[1] for p in pos.values()}  # type: ignore[index]
                lags = [p[2] or 0 for p in pos.values()]  # type: ignore[index]
                if roles.count("primary") == 1 and len(indexes) == 1 and not any(lags):
                    return True, clock() - start
            if clock() - start >= timeout:
                return False, clock() - start
            sleep(interval)
