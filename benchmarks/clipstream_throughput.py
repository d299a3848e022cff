"""Sustained throughput of ClipStream under the harness's mixed load: a git ref against this tree.

Checks the ``--baseline-ref`` commit (default ``HEAD``) out into a temporary git worktree, then,
one after the other, starts the baseline's ClipStream and this tree's (four local processes
each, through `clipstream.launch.LocalCluster`, the baseline's code put first on
``PYTHONPATH``; sync replication, fsync=always: the nodes' defaults) and drives the same
open-loop load at rising rates against each api:

- the mix is the harness's (`MIX`: feed 50 %, view 20 %, like 10 %, upload 8 % of 1-16 KiB,
  search 6 %, stats 6 %), over seeded videos and the ones uploaded since;
- open loop: request *i* of a step is due at ``t0 + i / rate`` whatever the answers do, and
  its latency runs from that due time (a slow server cannot slow the load down and hide its
  queue); each request takes a free keep-alive connection or opens one (up to
  ``--max-connections``) and fails after ``--timeout-s`` (1.5 s, the harness's default);
- the client is a minimal HTTP/1.1 one over asyncio streams on uvloop (about a tenth of
  httpx's CPU per request: on two cores the load generator competes with the nodes).

A step *holds* when under 1 % of its requests failed (status >= 400, timeout, reset) and the
answered requests per second reached 95 % of the offered rate (and, with ``--p99-ms``, its p99
latency is within that); the rates stop rising at the first step that does not hold.
Printed per variant: every step (offered and achieved req/s, error %, p50/p99 latency, p99 per
request class, CPU ms per request of the api's process group, of the primary store, of all
nodes together and of the load generator, from ``/proc``), then the highest step that held and
the ratio new/old of their achieved req/s.

Run: ``.venv/bin/python benchmarks/clipstream_throughput.py [--baseline-ref HEAD]
[--rates 200,250,...] [--step-s 4] [--api-workers 2] [--p99-ms MS] [--only old|new] [--json]``
(about 80 s on two cores). Numbers are reported, never asserted (timing belongs here, not in
tests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop
from clipstream.launch import Knobs, LocalCluster

REPO = Path(__file__).resolve().parent.parent
#: The harness's ClipStream mix, percent of requests per class (its load gives each class that
#: share of its users, every user paced alike); kept here so the benchmark does not depend on
#: the harness's load module, which is being reorganised.
MIX = {"feed": 50, "view": 20, "like": 10, "upload": 8, "search": 6, "stats": 6}
WORDS = ("sunset", "harbor", "kitten", "mountain", "river", "guitar", "skate", "recipe",
         "garden", "robot", "ocean", "desert", "forest", "piano", "soccer", "dance")
CLK_TCK = os.sysconf("SC_CLK_TCK")
ERROR_BUDGET = 0.01
ACHIEVED_SHARE = 0.95


# ---------------------------------------------------------------------------- the variants
@dataclass(frozen=True, slots=True)
class Variant:
    """One ClipStream to measure: its label, the ``services`` folder its code comes from, and
    the number of api workers (None: the node's default, for code that has no such knob)."""

    key: str
    label: str
    services: Path
    api_workers: int | None


@contextlib.contextmanager
def worktree(ref: str) -> Iterator[Path]:
    """``ref`` checked out (detached) into a temporary git worktree, removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="clipstream-baseline-"))
    tree = base / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(tree),
                    ref], check=True)
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                       check=False)
        with contextlib.suppress(OSError):
            base.rmdir()


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of process group ``pgid``."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp ... utime stime
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


# ---------------------------------------------------------------------------- the client
class Failed(Exception):
    """A request that got no usable answer (reset, malformed, connection refused)."""


class Connection:
    """One keep-alive HTTP/1.1 connection; answers must carry a Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.reusable = True

    async def exchange(self, request: bytes) -> int:
        """Send ``request``, read the whole answer; its status code."""
        self.writer.write(request)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise Failed(type(exc).__name__) from exc
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                self.reusable = False
            elif name == b"transfer-encoding":
                raise Failed("chunked answer")
        if length:
            await self.reader.readexactly(length)
        return int(head[9:12])

    def close(self) -> None:
        self.reusable = False
        self.writer.close()


class Pool:
    """Keep-alive connections to one host: an idle one, a new one, or wait for one."""

    def __init__(self, host: str, port: int, limit: int):
        self.host, self.port, self.limit = host, port, limit
        self.idle: list[Connection] = []
        self.opened = 0
        self.waiters: list[asyncio.Future[Connection | None]] = []

    async def acquire(self) -> Connection:
        if self.idle:
            return self.idle.pop()
        if self.opened < self.limit:
            self.opened += 1
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError as exc:
                self.opened -= 1
                raise Failed(type(exc).__name__) from exc
            return Connection(reader, writer)
        waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            conn = await waiter
        finally:
            if waiter in self.waiters:
                self.waiters.remove(waiter)
        return conn if conn is not None else await self.acquire()

    def release(self, conn: Connection) -> None:
        handed: Connection | None = conn
        if not conn.reusable:
            conn.close()
            self.opened -= 1
            handed = None  # a slot freed: the waiter opens a connection
        while self.waiters:
            waiter = self.waiters.pop(0)
            if not waiter.done():
                waiter.set_result(handed)
                return
        if handed is not None:
            self.idle.append(handed)

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


# ---------------------------------------------------------------------------- the load
@dataclass(slots=True)
class Step:
    """What one rate step saw."""

    offered: float
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    by_op: dict[str, list[float]] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)
    p99_limit_ms: float | None = None

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def achieved(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def error_share(self) -> float:
        return self.failed / self.sent if self.sent else 1.0

    @property
    def holds(self) -> bool:
        return (self.error_share < ERROR_BUDGET
                and self.achieved >= ACHIEVED_SHARE * self.offered
                and (self.p99_limit_ms is None
                     or self.percentile_ms(0.99) <= self.p99_limit_ms))

    def percentile_ms(self, p: float) -> float:
        lat = sorted(self.latencies)
        return 1000 * lat[min(len(lat) - 1, int(len(lat) * p))] if lat else float("nan")

    def op_p99_ms(self) -> dict[str, float]:
        """p99 latency of each request class."""
        return {op: round(1000 * sorted(lat)[min(len(lat) - 1, int(len(lat) * 0.99))], 1)
                for op, lat in sorted(self.by_op.items())}

    def summary(self) -> dict[str, object]:
        return {"offered": self.offered, "achieved": round(self.achieved, 1), "sent": self.sent,
                "ok": self.ok, "errors": dict(self.errors),
                "error_pct": round(100 * self.error_share, 2),
                "p50_ms": round(self.percentile_ms(0.50), 1),
                "p99_ms": round(self.percentile_ms(0.99), 1), "holds": self.holds,
                "p99_ms_by_class": self.op_p99_ms(),
                "cpu_ms_per_request": {k: round(v, 3) for k, v in self.cpu_ms.items()}}


class MixedLoad:
    """Builds the requests of the harness's mix (`MIX`) and sends them open-loop."""

    def __init__(self, api: str, videos: list[str], *, timeout_s: float, max_connections: int,
                 rng: random.Random):
        url = httpx.URL(api)
        self.host = f"{url.host}:{url.port}"
        self.pool = Pool(str(url.host), int(url.port or 80), max_connections)
        self.videos = videos
        self.timeout_s = timeout_s
        self.rng = rng
        self.ops = list(MIX)
        self.weights = list(MIX.values())
        self.bodies = [rng.randbytes(rng.randint(1024, 16 * 1024)) for _ in range(16)]

    def _request(self, method: str, target: str, body: bytes = b"") -> bytes:
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.host}\r\n"
        if method == "POST":
            head += f"Content-Length: {len(body)}\r\nContent-Type: application/octet-stream\r\n"
        return head.encode() + b"\r\n" + body

    def next_request(self) -> tuple[str, bytes, str | None]:
        """One request of the mix: its class, its bytes, the id of the video it uploads."""
        op = self.rng.choices(self.ops, self.weights)[0]
        vid = self.rng.choice(self.videos)
        if op == "feed":
            return op, self._request("GET", "/feed?limit=20"), None
        if op in ("view", "like"):
            return op, self._request("POST", f"/videos/{vid}/{op}s?op_id={uuid.uuid4().hex}"), None
        if op == "upload":
            new = uuid.uuid4().hex
            title = "+".join(self.rng.sample(WORDS, 3))
            return op, self._request("POST", f"/videos?title={title}&client_id={new}",
                                     self.rng.choice(self.bodies)), new
        if op == "search":
            return op, self._request("GET", f"/search?q={self.rng.choice(WORDS)}"), None
        return op, self._request("GET", self.rng.choice((f"/videos/{vid}/stats",
                                                         f"/videos/{vid}"))), None

    async def _one(self, step: Step, op: str, request: bytes, upload: str | None,
                   due: float) -> None:
        conn: Connection | None = None
        try:
            async with asyncio.timeout(self.timeout_s - (time.perf_counter() - due)):
                conn = await self.pool.acquire()
                status = await conn.exchange(request)
        except TimeoutError:
            step.errors["timeout"] = step.errors.get("timeout", 0) + 1
            if conn is not None:
                conn.close()
            return
        except (Failed, OSError) as exc:
            step.errors[type(exc).__name__] = step.errors.get(type(exc).__name__, 0) + 1
            if conn is not None:
                conn.close()
            return
        finally:
            if conn is not None:
                self.pool.release(conn)
        if status >= 400:
            step.errors[str(status)] = step.errors.get(str(status), 0) + 1
            return
        step.ok += 1
        took = time.perf_counter() - due
        step.latencies.append(took)
        step.by_op.setdefault(op, []).append(took)
        if upload is not None:
            self.videos.append(upload)

    async def step(self, rate: float, seconds: float) -> Step:
        """Send ``rate`` requests/s for ``seconds``; wait for every answer or timeout."""
        step = Step(offered=rate)
        tasks: set[asyncio.Task[None]] = set()
        t0 = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            op, request, upload = self.next_request()
            task = asyncio.create_task(self._one(step, op, request, upload, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        step.sent = n
        while tasks:
            await asyncio.gather(*list(tasks))
        step.seconds = max(seconds, time.perf_counter() - t0)
        return step


# ---------------------------------------------------------------------------- a run
def seed(api: str, count: int) -> list[str]:
    """Upload ``count`` videos through the api; their ids."""
    ids = []
    with httpx.Client(base_url=api, timeout=10) as client:
        for i in range(count):
            vid = f"seed-{i}"
            client.post("/videos", params={"title": f"{WORDS[i % len(WORDS)]} seed {i}",
                                           "client_id": vid},
                        content=os.urandom(2048)).raise_for_status()
            ids.append(vid)
    return ids


async def ramp(cluster: LocalCluster, videos: list[str], args: argparse.Namespace) -> list[Step]:
    """The rising steps against ``cluster``, up to the first that does not hold."""
    load = MixedLoad(cluster.api_url, videos, timeout_s=args.timeout_s,
                     max_connections=args.max_connections, rng=random.Random(7))
    groups = {name: node.proc.pid for name, node in cluster.nodes.items() if node.proc}
    steps = []
    try:
        for rate in args.rates:
            before = {name: group_cpu_s(pid) for name, pid in groups.items()}
            mine = time.process_time()
            step = await load.step(rate, args.step_s)
            step.p99_limit_ms = args.p99_ms
            used = {name: group_cpu_s(pid) - before[name] for name, pid in groups.items()}
            done = max(1, step.ok + step.failed)
            step.cpu_ms = {"api": 1000 * used["api"] / done,
                           "store-east": 1000 * used["store-east"] / done,
                           "nodes": 1000 * sum(used.values()) / done,
                           "load": 1000 * (time.process_time() - mine) / done}
            steps.append(step)
            print(format_step(step), flush=True)
            print(f"    p99 ms by class: {step.op_p99_ms()}", flush=True)
            if not step.holds:
                break
            await asyncio.sleep(0.5)
    finally:
        load.pool.close()
    return steps


def measure(variant: Variant, args: argparse.Namespace) -> list[Step]:
    """Start ``variant``'s ClipStream, seed it, ramp the load; stopped whatever happens."""
    base = Path(tempfile.mkdtemp(prefix=f"clipstream-bench-{variant.key}-"))
    env = {"PYTHONPATH": str(variant.services)}
    code = subprocess.run([sys.executable, "-c", "import clipstream; print(clipstream.__file__)"],
                          env={**os.environ, **env}, capture_output=True, text=True,
                          check=True).stdout.strip()
    print(f"\n== {variant.label}: clipstream from {Path(code).parent} (api workers: "
          f"{variant.api_workers or 'default'}; logs in {base / 'logs'}"
          f"{'' if args.keep else ', removed at the end (--keep keeps them)'})", flush=True)
    try:
        with LocalCluster(base, knobs=Knobs(api_workers=variant.api_workers),
                          env=env) as cluster:
            videos = seed(cluster.api_url, args.seed)
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(ramp(cluster, videos, args))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def best(steps: Sequence[Step]) -> Step | None:
    """The highest step that held."""
    held = [s for s in steps if s.holds]
    return max(held, key=lambda s: s.offered) if held else None


def format_step(s: Step) -> str:
    cpu = "  ".join(f"{k} {v:.2f}" for k, v in s.cpu_ms.items())
    errors = f" {dict(sorted(s.errors.items()))}" if s.errors else ""
    return (f"  offered {s.offered:6.0f}/s  achieved {s.achieved:7.1f}/s  "
            f"errors {100 * s.error_share:5.2f}%  p50 {s.percentile_ms(0.5):7.1f} ms  "
            f"p99 {s.percentile_ms(0.99):7.1f} ms  {'holds' if s.holds else 'FAILS'}{errors}\n"
            f"    cpu ms per request: {cpu}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--baseline-ref", default="HEAD", help="git commit of the old code [HEAD]")
    p.add_argument("--rates", type=lambda s: [float(r) for r in s.split(",")],
                   default="200,250,300,350,400,500,650,800,1000,1200,1400,1700,2000,2400",
                   help="offered req/s of each step, rising")
    p.add_argument("--step-s", type=float, default=4.0, help="seconds per step [4]")
    p.add_argument("--p99-ms", type=float, help="a step holds only if its p99 is within this "
                   "too [no limit]")
    p.add_argument("--api-workers", type=int, default=2, help="api workers of the new code [2]")
    p.add_argument("--seed", type=int, default=100, help="videos uploaded before the load")
    p.add_argument("--timeout-s", type=float, default=1.5, help="per request [1.5]")
    p.add_argument("--max-connections", type=int, default=512, help="client connections")
    p.add_argument("--only", choices=("old", "new"), help="measure one variant only")
    p.add_argument("--keep", action="store_true", help="keep the nodes' data and logs")
    p.add_argument("--json", action="store_true", help="print the results as JSON at the end")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (other processes "
          f"compete with the nodes and the load: compare variants of one run)", flush=True)
    results: dict[str, list[Step]] = {}
    with worktree(args.baseline_ref) as old_tree:
        variants = [Variant("old", f"old ({args.baseline_ref})", old_tree / "services", None),
                    Variant("new", "new (this tree)", REPO / "services", args.api_workers)]
        for variant in variants:
            if args.only in (None, variant.key):
                results[variant.key] = measure(variant, args)
    slo = f", p99 <= {args.p99_ms:.0f} ms" if args.p99_ms else ""
    print(f"\n== sustained (<{100 * ERROR_BUDGET:.0f}% errors, achieved >= "
          f"{100 * ACHIEVED_SHARE:.0f}% of offered{slo}), {time.perf_counter() - t0:.0f} s in all")
    top = {key: best(steps) for key, steps in results.items()}
    for key, step in top.items():
        if step is None:
            print(f"  {key}: no step held")
        else:
            print(f"  {key}: {step.achieved:.0f} req/s at offered {step.offered:.0f}/s, "
                  f"p99 {step.percentile_ms(0.99):.1f} ms, errors {100 * step.error_share:.2f}%, "
                  f"cpu ms/request: api {step.cpu_ms['api']:.2f}, all nodes "
                  f"{step.cpu_ms['nodes']:.2f}")
    old, new = top.get("old"), top.get("new")
    if old is not None and new is not None:
        print(f"  ratio new/old: {new.achieved / old.achieved:.2f}")
    if args.json:
        print(json.dumps({k: [s.summary() for s in v] for k, v in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
