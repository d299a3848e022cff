"""Measure ClipStream on this machine: node start-up, GET /feed requests/s, failover time.

Starts a real local ClipStream (four processes on 127.0.0.1, sync replication, fsync=always by
default), seeds videos, then:

1. start-up: seconds from spawning each node until it answers ``/healthz``;
2. feed: for each concurrency level, as many ``GET /feed?limit=20`` as possible for ``--duration``
   seconds (httpx.AsyncClient, one pooled client), reporting requests/s and latency percentiles;
3. failover: under a sequential upload loop, SIGKILL the primary and time (a) until the
   coordinator names the other store, (b) until the first upload acknowledged by it (the write
   outage a client sees); then restart the killed store, wait until it is back in sync, and
   repeat in the other direction.

Run: ``.venv/bin/python benchmarks/clipstream_feed.py [--duration 5] [--failovers 3] [--json]``.
Numbers are reported, never asserted (timing belongs here, not in tests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from clipstream.launch import Knobs, LocalCluster


@dataclass(frozen=True)
class FeedResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class FailoverResult:
    killed: str
    promoted_s: float
    first_write_s: float


def start_timed(cluster: LocalCluster, timeout: float = 30.0) -> dict[str, float]:
    """Start every node at once; seconds until each answers /healthz."""
    t0 = time.perf_counter()
    for node in cluster.nodes.values():
        node.start()
    ready: dict[str, float] = {}
    with httpx.Client(timeout=1.0) as client:
        while len(ready) < len(cluster.nodes) and time.perf_counter() - t0 < timeout:
            for name, node in cluster.nodes.items():
                if name in ready:
                    continue
                try:
                    if client.get(f"{node.url}/healthz").status_code == 200:
                        ready[name] = time.perf_counter() - t0
                except httpx.HTTPError:
                    pass
            time.sleep(0.02)
    return ready


def seed(api: str, n: int) -> None:
    with httpx.Client(base_url=api, timeout=10) as c:
        for i in range(n):
            c.post("/videos", params={"title": f"seed clip {i}", "client_id": f"seed-{i}"},
                   content=b"v" * 2048).raise_for_status()
            c.post(f"/videos/seed-{i}/likes", params={"op_id": f"seed-like-{i}"})


async def feed_load(api: str, concurrency: int, duration: float) -> FeedResult:
    """``concurrency`` workers issuing GET /feed back to back for ``duration`` seconds."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=api, timeout=5, limits=limits) as client:
        await client.get("/feed")  # warm the pool
        t_end = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                try:
                    r = await client.get("/feed", params={"limit": 20})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - t0
    lat = sorted(latencies) or [0.0]
    return FeedResult(concurrency, len(latencies), errors, round(seconds, 2),
                      round(len(latencies) / seconds, 1), round(statistics.median(lat) * 1000, 1),
                      round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1))


async def raw_feed_load(api: str, concurrency: int, duration: float) -> FeedResult:
    """Same as `feed_load` over bare keep-alive sockets: measures the server, not the client.

    httpx itself costs ~3 ms of CPU per request at high concurrency, which on a 2-core machine
    competes with the nodes; this minimal HTTP/1.1 client costs a fraction of that.
    """
    url = httpx.URL(api)
    request = (f"GET /feed?limit=20 HTTP/1.1\r\nHost: {url.host}\r\n\r\n").encode()
    latencies: list[float] = []
    errors = 0
    t_end = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                if head.startswith(b"HTTP/1.1 200"):
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - t0
    lat = sorted(latencies) or [0.0]
    return FeedResult(concurrency, len(latencies), errors, round(seconds, 2),
                      round(len(latencies) / seconds, 1), round(statistics.median(lat) * 1000, 1),
                      round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1))


def one_failover(cluster: LocalCluster, victim: str, survivor: str, round_no: int,
                 timeout: float = 20.0) -> FailoverResult:
    """Kill ``victim`` (the primary) under a write loop; time promotion and first new ack."""
    api, coord = cluster.api_url, cluster.url("coordinator")
    with httpx.Client(timeout=10) as c:
        for i in range(20):  # the loop is running before the kill
            c.post(f"{api}/videos", params={"title": "pre", "client_id": f"r{round_no}-pre{i}"},
                   content=b"x" * 512).raise_for_status()
        promoted: list[float] = []

        def watch() -> None:
            with httpx.Client(timeout=1) as w:
                while not promoted and time.perf_counter() - t_kill < timeout:
                    try:
                        if w.get(f"{coord}/primary").json()["primary"] == survivor:
                            promoted.append(time.perf_counter() - t_kill)
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.01)

        t_kill = time.perf_counter()
        cluster.nodes[victim].kill()
        watcher = threading.Thread(target=watch)
        watcher.start()
        first_write = None
        n = 0
        while first_write is None and time.perf_counter() - t_kill < timeout:
            n += 1
            try:
                r = c.post(f"{api}/videos", params={"title": "during",
                                                    "client_id": f"r{round_no}-w{n}"},
                           content=b"y" * 512)
                if r.status_code in (200, 201) and r.headers["X-ClipStream-Store"] == survivor:
                    first_write = time.perf_counter() - t_kill
            except httpx.HTTPError:
                pass
        watcher.join()
    return FailoverResult(victim, round(promoted[0] if promoted else float("nan"), 3),
                          round(first_write or float("nan"), 3))


def rejoin(cluster: LocalCluster, name: str, timeout: float = 30.0) -> None:
    """Restart ``name`` and wait until the coordinator has it back in sync."""
    cluster.nodes[name].start()
    cluster.nodes[name].wait_healthy()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{cluster.url('coordinator')}/primary", timeout=2).json()["in_sync"]:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not get back in sync in {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per feed level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--videos", type=int, default=200, help="videos seeded before")
    parser.add_argument("--failovers", type=int, default=3)
    parser.add_argument("--fsync", default="always")
    parser.add_argument("--replication", default="sync")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="clipstream-bench-") as tmp:
        cluster = LocalCluster(Path(tmp), knobs=Knobs(fsync=args.fsync,
                                                      replication=args.replication))
        try:
            startup = start_timed(cluster)
            seed(cluster.api_url, args.videos)
            feed = [asyncio.run(feed_load(cluster.api_url, c, args.duration))
                    for c in args.concurrency]
            raw = [asyncio.run(raw_feed_load(cluster.api_url, c, args.duration))
                   for c in args.concurrency]
            failovers = []
            victim, survivor = "store-east", "store-west"
            rejoin(cluster, victim)  # wait for the first in-sync before the first kill
            for k in range(args.failovers):
                failovers.append(one_failover(cluster, victim, survivor, k))
                rejoin(cluster, victim)
                victim, survivor = survivor, victim
        finally:
            cluster.stop()
    result = {"startup_s": {k: round(v, 3) for k, v in startup.items()},
              "feed": [asdict(f) for f in feed], "feed_raw_client": [asdict(f) for f in raw],
              "failover": [asdict(f) for f in failovers],
              "knobs": asdict(cluster.knobs)}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print("node start-up (s):", ", ".join(f"{k} {v:.2f}" for k, v in startup.items()))
    for title, rows in (("GET /feed?limit=20 (httpx.AsyncClient):", feed),
                        ("GET /feed?limit=20 (bare keep-alive sockets):", raw)):
        print(title)
        for f in rows:
            print(f"  concurrency {f.concurrency:3d}: {f.rps:7.1f} req/s  p50 {f.p50_ms:6.1f} ms"
                  f"  p99 {f.p99_ms:6.1f} ms  ({f.requests} ok, {f.errors} errors in {f.seconds}s)")
    print(f"failover (detection {cluster.knobs.detection_ms} ms):")
    for f in failovers:
        print(f"  kill -9 {f.killed}: promoted after {f.promoted_s:.2f}s, "
              f"first write on the new primary after {f.first_write_s:.2f}s")


if __name__ == "__main__":
    main()
