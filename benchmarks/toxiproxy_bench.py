"""Benchmark: our Toxiproxy-compatible server against a direct connection, side by side.

Measures, in one run, on 127.0.0.1:
- added latency of one hop with no toxic: a 64-byte request and 64-byte answer over one
  keep-alive connection, repeated; p50 and p99 of the round trip direct and through the proxy
  (blocks alternate between the two so drift hits both alike);
- added latency of a 100 KB HTTP response over keep-alive: a GET answered with its head, then
  the body in ``--http-parts`` writes ``--http-pause-us`` apart (an application streaming its
  answer, which makes the proxy forward several segments); p50 and p99 direct and proxied.
  This is where Nagle's algorithm on a proxy socket shows (+40 ms, the delayed-ACK minimum);
- bulk throughput: 64 MiB sent client -> server (upload) and server -> client (download),
  direct and proxied, median of several runs, in MB/s (10^6 bytes).

The echo/sink/source/HTTP servers run in a separate process from the client, and the proxy in a
third (``python -m drills.toxiproxy``), so each side has its own interpreter. ``--official``
adds a column for another Toxiproxy binary (e.g. the Go ``toxiproxy-server``) if one is at hand.

    python benchmarks/toxiproxy_bench.py [--rounds 20000] [--http-rounds 300] [--mib 64]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from drills.toxiproxy.client import ToxiproxyClient
from drills.toxiproxy.embedded import free_port, wait_ready

MSG = 64
ACK = b"done"

#: The upstream server, run as its own process: echo (E), sink (S), source (R) or HTTP (H) per
#: connection. H reads a body size, a part count and a pause (µs), then answers every request.
SERVER = r"""
import socket, sys, threading, time
MSG, ACK = 64, b"done"
def http(conn):
    fields = conn.recv(12, socket.MSG_WAITALL)
    size, parts, pause = (int.from_bytes(fields[i : i + 4], "big") for i in (0, 4, 8))
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size
    body, step = b"h" * size, -(-size // parts)
    pending = b""
    while True:
        while b"\r\n\r\n" not in pending:
            data = conn.recv(65536)
            if not data:
                return
            pending += data
        pending = pending.partition(b"\r\n\r\n")[2]
        conn.sendall(head)
        for i in range(0, size, step):
            time.sleep(pause / 1e6)
            conn.sendall(body[i : i + step])
def serve(conn):
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mode = conn.recv(1)
        if mode == b"H":
            return http(conn)
        if mode == b"E":
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)
        size = int.from_bytes(conn.recv(8, socket.MSG_WAITALL), "big")
        if mode == b"S":
            buf, got = bytearray(1 << 20), 0
            while got < size:
                n = conn.recv_into(buf)
                if not n:
                    return
                got += n
            conn.sendall(ACK)
        elif mode == b"R":
            block = b"r" * (1 << 20)
            sent = 0
            while sent < size:
                conn.sendall(block[: min(len(block), size - sent)])
                sent += min(len(block), size - sent)
            conn.recv(1)
srv = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


@dataclass
class Figures:
    """One path's measurements (``direct`` or a proxy)."""

    name: str
    rtt_p50_us: float = 0.0
    rtt_p99_us: float = 0.0
    http_p50_us: float = 0.0
    http_p99_us: float = 0.0
    upload_mb_s: float = 0.0
    download_mb_s: float = 0.0
    samples: list[float] = field(default_factory=list, repr=False)
    http_samples: list[float] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class HttpShape:
    """The HTTP case: body size, the writes the server splits it into, the pause before each."""

    size: int = 100_000
    parts: int = 4
    pause_us: int = 500

    def head(self) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.size

    def hello(self) -> bytes:
        return b"".join(n.to_bytes(4, "big") for n in (self.size, self.parts, self.pause_us))


def _connect(addr: tuple[str, int], mode: bytes) -> socket.socket:
    sock = socket.create_connection(addr)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(mode)
    return sock


def _recv_exact(sock: socket.socket, n: int) -> None:
    got = 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            raise ConnectionError("closed early")
        got += len(chunk)


def rtt_block(sock: socket.socket, rounds: int) -> list[float]:
    """``rounds`` request/answer round trips on ``sock``, in microseconds."""
    payload = b"q" * MSG
    out = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        t = clock()
        sock.sendall(payload)
        _recv_exact(sock, MSG)
        out.append((clock() - t) / 1000)
    return out


def http_block(sock: socket.socket, rounds: int, shape: HttpShape) -> list[float]:
    """``rounds`` keep-alive GETs answered with ``shape``'s response, in microseconds."""
    request = b"GET /blob HTTP/1.1\r\nHost: bench\r\n\r\n"
    want = len(shape.head()) + shape.size
    out = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        t = clock()
        sock.sendall(request)
        _recv_exact(sock, want)
        out.append((clock() - t) / 1000)
    return out


def upload(addr: tuple[str, int], size: int) -> float:
    """MB/s sending ``size`` bytes to the sink until it acknowledges all of them."""
    block = memoryview(b"u" * (1 << 20))
    with _connect(addr, b"S") as sock:
        start = time.perf_counter()
        sock.sendall(size.to_bytes(8, "big"))
        sent = 0
        while sent < size:
            n = min(len(block), size - sent)
            sock.sendall(block[:n])
            sent += n
        _recv_exact(sock, len(ACK))
        return size / (time.perf_counter() - start) / 1e6


def download(addr: tuple[str, int], size: int) -> float:
    """MB/s receiving ``size`` bytes from the source."""
    buf = bytearray(1 << 20)
    with _connect(addr, b"R") as sock:
        start = time.perf_counter()
        sock.sendall(size.to_bytes(8, "big"))
        got = 0
        while got < size:
            n = sock.recv_into(buf)
            if not n:
                raise ConnectionError("closed early")
            got += n
        elapsed = time.perf_counter() - start
        sock.sendall(b"x")
        return size / elapsed / 1e6


@contextmanager
def process(argv: Sequence[str], *, ready_url: str | None = None) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        if ready_url:
            wait_ready(ready_url, 15, alive=lambda: proc.poll() is None)
        else:
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _p50_p99(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), statistics.quantiles(samples, n=100)[98]


def _alternate(
    socks: dict[str, socket.socket],
    block: Callable[[socket.socket, int], list[float]],
    *,
    rounds: int,
    per_block: int,
) -> dict[str, list[float]]:
    """``rounds`` samples per socket, taken in blocks of ``per_block`` that alternate between
    the sockets (so drift hits every path alike), after one warm-up block each."""
    for sock in socks.values():
        block(sock, per_block)
    samples: dict[str, list[float]] = {name: [] for name in socks}
    for _ in range(max(1, rounds // per_block)):
        for name, sock in socks.items():
            samples[name] += block(sock, per_block)
    return samples


@dataclass(frozen=True)
class Plan:
    """How much of each measurement to take."""

    rounds: int = 20_000
    http_rounds: int = 300
    shape: HttpShape = HttpShape()
    size: int = 64 << 20
    runs: int = 3


def measure(paths: dict[str, tuple[str, int]], plan: Plan) -> list[Figures]:
    """Every figure for every path: round trips, HTTP responses, then bulk transfers."""
    figs = {name: Figures(name) for name in paths}
    socks = {name: _connect(addr, b"E") for name, addr in paths.items()}
    try:
        rtts = _alternate(socks, rtt_block, rounds=plan.rounds, per_block=1000)
    finally:
        for sock in socks.values():
            sock.close()
    socks = {name: _connect(addr, b"H") for name, addr in paths.items()}
    try:
        for sock in socks.values():
            sock.sendall(plan.shape.hello())
        https = _alternate(
            socks,
            lambda sock, n: http_block(sock, n, plan.shape),
            rounds=plan.http_rounds,
            per_block=20,
        )
    finally:
        for sock in socks.values():
            sock.close()
    for name, addr in paths.items():
        fig = figs[name]
        fig.samples, fig.http_samples = rtts[name], https[name]
        fig.rtt_p50_us, fig.rtt_p99_us = _p50_p99(fig.samples)
        fig.http_p50_us, fig.http_p99_us = _p50_p99(fig.http_samples)
        fig.upload_mb_s = statistics.median(upload(addr, plan.size) for _ in range(plan.runs))
        fig.download_mb_s = statistics.median(download(addr, plan.size) for _ in range(plan.runs))
    return list(figs.values())


def report(figs: list[Figures], shape: HttpShape) -> str:
    direct = figs[0]
    http = f"{shape.size // 1000}KB"
    lines = [
        f"{'path':<12}{'p50 us':>9}{'p99 us':>9}{'+p50 us':>9}{'+p99 us':>9}"
        f"{http + ' p50':>11}{http + ' p99':>11}{'+p50 us':>9}{'+p99 us':>9}"
        f"{'up MB/s':>10}{'down MB/s':>11}"
    ]
    for f in figs:
        lines.append(
            f"{f.name:<12}{f.rtt_p50_us:>9.1f}{f.rtt_p99_us:>9.1f}"
            f"{f.rtt_p50_us - direct.rtt_p50_us:>9.1f}"
            f"{f.rtt_p99_us - direct.rtt_p99_us:>9.1f}"
            f"{f.http_p50_us:>11.0f}{f.http_p99_us:>11.0f}"
            f"{f.http_p50_us - direct.http_p50_us:>9.0f}"
            f"{f.http_p99_us - direct.http_p99_us:>9.0f}"
            f"{f.upload_mb_s:>10.0f}{f.download_mb_s:>11.0f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=20_000, help="round trips per path")
    p.add_argument("--http-rounds", type=int, default=300, help="HTTP responses per path")
    p.add_argument("--http-size", type=int, default=100_000, help="HTTP body bytes")
    p.add_argument("--http-parts", type=int, default=4, help="writes the body is split into")
    p.add_argument("--http-pause-us", type=int, default=500, help="pause before each part, us")
    p.add_argument("--mib", type=int, default=64, help="MiB per bulk transfer")
    p.add_argument("--runs", type=int, default=3, help="bulk transfers per path and direction")
    p.add_argument("--official", help="path of another toxiproxy-server binary to compare")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args(argv)
    shape = HttpShape(args.http_size, args.http_parts, args.http_pause_us)
    plan = Plan(args.rounds, args.http_rounds, shape, args.mib << 20, args.runs)
    up_port = free_port()
    with process([sys.executable, "-c", SERVER, str(up_port)]):
        upstream = f"127.0.0.1:{up_port}"
        paths = {"direct": ("127.0.0.1", up_port)}
        with ToxiproxyClient.connect(url=None) as tp:
            link = tp.create_link(f"bench->{up_port}", upstream=upstream)
            paths["ours"] = _addr(link.listen)
            if args.official:
                port = free_port()
                argv = [args.official, "-host", "127.0.0.1", "-port", str(port)]
                with (
                    process(argv, ready_url=f"http://127.0.0.1:{port}"),
                    ToxiproxyClient.connect(f"http://127.0.0.1:{port}") as go,
                ):
                    paths["official"] = _addr(go.create_link("bench", upstream=upstream).listen)
                    figs = measure(paths, plan)
            else:
                figs = measure(paths, plan)
    print(report(figs, shape))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                [
                    {k: v for k, v in asdict(f).items() if k not in ("samples", "http_samples")}
                    for f in figs
                ],
                out,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
