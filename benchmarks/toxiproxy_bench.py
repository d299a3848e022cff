"""Benchmark: our Toxiproxy-compatible server against a direct connection, side by side.

Measures, in one run, on 127.0.0.1:
- added latency of one hop with no toxic: a 64-byte request and 64-byte answer over one
  keep-alive connection, repeated; p50 and p99 of the round trip direct and through the proxy
  (blocks alternate between the two so drift hits both alike);
- bulk throughput: 64 MiB sent client -> server (upload) and server -> client (download),
  direct and proxied, median of several runs, in MB/s (10^6 bytes).

The echo/sink/source servers run in a separate process from the client, and the proxy in a
third (``python -m drills.toxiproxy``), so each side has its own interpreter. ``--official``
adds a column for another Toxiproxy binary (e.g. the Go ``toxiproxy-server``) if one is at hand.

    python benchmarks/toxiproxy_bench.py [--rounds 20000] [--mib 64] [--json out.json]
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from drills.toxiproxy.client import ToxiproxyClient
from drills.toxiproxy.embedded import free_port, wait_ready

MSG = 64
ACK = b"done"

#: The upstream server, run as its own process: echo (E), sink (S) or source (R) per connection.
SERVER = r"""
import socket, sys, threading
MSG, ACK = 64, b"done"
def serve(conn):
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mode = conn.recv(1)
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
    upload_mb_s: float = 0.0
    download_mb_s: float = 0.0
    samples: list[float] = field(default_factory=list, repr=False)


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


def measure(
    paths: dict[str, tuple[str, int]], *, rounds: int, size: int, runs: int
) -> list[Figures]:
    """Every figure for every path; round trips alternate between paths in blocks."""
    figs = {name: Figures(name) for name in paths}
    socks = {name: _connect(addr, b"E") for name, addr in paths.items()}
    try:
        for sock in socks.values():
            rtt_block(sock, 500)  # warm-up
        block = 1000
        for _ in range(max(1, rounds // block)):
            for name, sock in socks.items():
                figs[name].samples += rtt_block(sock, block)
    finally:
        for sock in socks.values():
            sock.close()
    for name, addr in paths.items():
        fig = figs[name]
        cuts = statistics.quantiles(fig.samples, n=100)
        fig.rtt_p50_us, fig.rtt_p99_us = statistics.median(fig.samples), cuts[98]
        fig.upload_mb_s = statistics.median(upload(addr, size) for _ in range(runs))
        fig.download_mb_s = statistics.median(download(addr, size) for _ in range(runs))
    return list(figs.values())


def report(figs: list[Figures]) -> str:
    direct = figs[0]
    lines = [
        f"{'path':<12}{'p50 us':>9}{'p99 us':>9}{'+p50 us':>9}{'+p99 us':>9}"
        f"{'up MB/s':>10}{'down MB/s':>11}"
    ]
    for f in figs:
        lines.append(
            f"{f.name:<12}{f.rtt_p50_us:>9.1f}{f.rtt_p99_us:>9.1f}"
            f"{f.rtt_p50_us - direct.rtt_p50_us:>9.1f}"
            f"{f.rtt_p99_us - direct.rtt_p99_us:>9.1f}"
            f"{f.upload_mb_s:>10.0f}{f.download_mb_s:>11.0f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=20_000, help="round trips per path")
    p.add_argument("--mib", type=int, default=64, help="MiB per bulk transfer")
    p.add_argument("--runs", type=int, default=3, help="bulk transfers per path and direction")
    p.add_argument("--official", help="path of another toxiproxy-server binary to compare")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args(argv)
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
                    figs = measure(paths, rounds=args.rounds, size=args.mib << 20, runs=args.runs)
            else:
                figs = measure(paths, rounds=args.rounds, size=args.mib << 20, runs=args.runs)
    print(report(figs))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                [{k: v for k, v in asdict(f).items() if k != "samples"} for f in figs],
                out,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
