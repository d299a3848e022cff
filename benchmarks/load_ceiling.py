"""The harness's load ceiling against plain Locust ``FastHttpUser``, side by side in one run.

One trivial server (raw asyncio on uvloop, in its own process: it answers every request with
``200 {}`` on a keep-alive connection and does nothing else) takes, one after the other:

- **plain**: Locust with a ``FastHttpUser`` locustfile and nothing of ours - no recording;
- **ours**: `drills.load.runner.LoadRunner` (the recording shim beside the locustfile, so every
  request is a JSON line in ``requests-<pid>.jsonl``) with the same locustfile plus a history
  of every write through `drills.record` (an invoke and an ok line each), as ClipStream's
  locustfile records;

each with one Locust process and with ``workers=2`` (Locust's master and two workers; plain
Locust started the same way as the runner starts it). The users never wait (``constant(0)``):
4 of 5 tasks are ``GET /r``, 1 in 5 a ``POST /w`` with a 64-byte body, so each step measures
how many requests per second the load generator can drive, not a pacing.

Per step: requests completed (Locust's own count for plain; the request records for ours,
which the shim writes per request), achieved req/s over the step's measured window, and the
CPU the Locust processes used per request (user + system of the reaped children, from
``resource.getrusage(RUSAGE_CHILDREN)``; for ours the harness process's own CPU while it
waited, which is polling only, is added). Then the ratio ours/plain of req/s and of CPU per
request at 1 and 2 workers. Each step runs ``--step-s`` seconds (default 12; under 20 s with
start and stop).

Run: ``.venv/bin/python benchmarks/load_ceiling.py [--step-s 12] [--users 48] [--json]``
(about a minute on two cores). Numbers are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from drills.load.records import read_requests
from drills.load.runner import LoadConfig, LoadRunner, resolve_locustfile

PLAIN = '''
from locust import FastHttpUser, constant, task


class Plain(FastHttpUser):
    wait_time = constant(0)

    @task(4)
    def read(self):
        self.client.get("/r", name="read")

    @task(1)
    def write(self):
        self.client.post("/w", data=b"x" * 64, name="write")
'''

#: The same load, recording a history of every write as ClipStream's locustfile does.
RECORDED = '''
from locust import FastHttpUser, constant, task

from drills import record


class Recorded(FastHttpUser):
    wait_time = constant(0)

    def on_start(self):
        self.h = record.history()

    @task(4)
    def read(self):
        self.client.get("/r", name="read")

    @task(1)
    def write(self):
        op = self.h.invoke("write", key="k")
        with self.client.post("/w", data=b"x" * 64, name="write", catch_response=True) as r:
            out = record.outcome_of(r)
        if out.ok:
            self.h.ok(op, store="trivial")
        else:
            self.h.info(op, error=out.error)
'''


# -- the trivial server (its own process) --------------------------------------------------


class _Answer(asyncio.Protocol):
    """HTTP/1.1 keep-alive: every request (headers, then Content-Length bytes) gets 200 {}."""

    REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport  # uvloop's, not an asyncio.Transport subclass
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15:].split(b"\r\n", 1)[0])
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length:]
            self.transport.write(self.REPLY)


def serve(port: int) -> None:
    """Run the trivial server on 127.0.0.1:``port`` until killed."""
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Answer, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    uvloop.run(main())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the trivial server did not listen on {port}")


# -- the steps -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One measured run of the load generator."""

    variant: str  # plain | ours
    workers: int
    requests: int
    seconds: float
    cpu_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000.0 * self.cpu_s / self.requests if self.requests else float("nan")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def plain_step(work: Path, host: str, *, workers: int, users: int, step_s: float) -> Step:
    """Plain Locust: one headless process, or a master and ``workers`` workers."""
    lf = work / "plain.py"
    lf.write_text(PLAIN)
    out = work / f"plain-{workers}.json"
    common = [sys.executable, "-m", "locust", "-f", str(lf), "-H", host, "--loglevel", "ERROR"]
    lead = [*common, "--headless", "--only-summary", "-u", str(users), "-r", str(users),
            "-t", f"{round(step_s)}s", "--json-file", str(out.with_suffix(""))]
    log = (work / f"plain-{workers}.log").open("wb")
    before = _children_cpu()
    procs = []
    if workers > 1:
        port = _free_port()
        procs.append(subprocess.Popen(
            [*lead, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
             str(port), "--expect-workers", str(workers)], stdout=log, stderr=log))
        procs += [subprocess.Popen([*common, "--worker", "--master-host", "127.0.0.1",
                                    "--master-port", str(port)], stdout=log, stderr=log)
                  for _ in range(workers)]
    else:
        procs.append(subprocess.Popen(lead, stdout=log, stderr=log))
    for proc in procs:
        proc.wait(timeout=step_s + 60)
    cpu = _children_cpu() - before
    log.close()
    if not out.exists():
        tail = (work / f"plain-{workers}.log").read_text()[-3000:]
        raise SystemExit(f"plain locust wrote no stats:\n{tail}")
    stats = json.loads(out.read_text())
    total = sum(s["num_requests"] for s in stats)
    first = min(s["start_time"] for s in stats)
    last = max(s["last_request_timestamp"] for s in stats)
    return Step("plain", workers, total, last - first, cpu)


def ours_step(work: Path, host: str, *, workers: int, users: int, step_s: float) -> Step:
    """The harness's runner: the recording shim beside a locustfile that records writes."""
    lf = work / "recorded.py"
    lf.write_text(RECORDED)
    cfg = LoadConfig(locustfile=resolve_locustfile(lf), host=host, users=users,
                     rate=1_000_000.0, timeout_s=5.0, record_dir=work / f"ours-{workers}",
                     workers=workers)
    before, own = _children_cpu(), _self_cpu()
    with LoadRunner(cfg):
        time.sleep(step_s)
    cpu = _children_cpu() - before + (_self_cpu() - own)
    reqs = read_requests(cfg.record_dir)
    seconds = max(r.t + r.duration for r in reqs) - min(r.t for r in reqs)
    return Step("ours", workers, len(reqs), seconds, cpu)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--step-s", type=float, default=12.0)
    ap.add_argument("--users", type=int, default=48)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", action="store_true", help="print the steps as JSON too")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    steps: list[Step] = []
    try:
        _wait_listening(port)
        host = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory(prefix="load-ceiling-") as tmp:
            for workers in args.workers:
                for step in (plain_step, ours_step):
                    done = step(Path(tmp), host, workers=workers, users=args.users,
                                step_s=args.step_s)
                    steps.append(done)
                    print(f"{done.variant:>5}  workers={done.workers}  {done.requests:>7} req "
                          f"in {done.seconds:5.1f} s  {done.rps:7.0f} req/s  "
                          f"{done.cpu_ms_per_request:.3f} ms CPU/req", flush=True)
    finally:
        server.kill()
        server.wait()
    print()
    for workers in args.workers:
        plain = next(s for s in steps if s.variant == "plain" and s.workers == workers)
        ours = next(s for s in steps if s.variant == "ours" and s.workers == workers)
        print(f"workers={workers}: ours/plain req/s {ours.rps / plain.rps:.2f}, "
              f"CPU per request {ours.cpu_ms_per_request / plain.cpu_ms_per_request:.2f}x")
    if args.json:
        print(json.dumps([{**asdict(s), "rps": s.rps, "cpu_ms_per_request":
                           s.cpu_ms_per_request} for s in steps], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
