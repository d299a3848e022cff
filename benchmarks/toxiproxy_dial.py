"""Benchmark: the cost of a fresh proxied connection, upstream given as an address or a name.

Every round opens a new TCP connection, sends 64 bytes, reads the echo and closes: the path a
client without keep-alive (or one reconnecting after a fault) takes through the proxy, where
the proxy dials its upstream for each connection. Three paths side by side in one run, blocks
alternating so drift hits all alike: ``direct`` to the echo server, through our Toxiproxy
server with upstream ``127.0.0.1:<port>`` (no lookup), and with upstream ``localhost:<port>``
(a name: one lookup per dial, on a thread of its own, shared by dials less than 250 ms apart;
see drills/toxiproxy/resolve.py). Reports p50/p99 per path and the ratios to ``direct``.

    python benchmarks/toxiproxy_dial.py [--rounds 3000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from drills.toxiproxy.client import ToxiproxyClient
from drills.toxiproxy.embedded import free_port

ECHO = r"""
import socket, sys, threading
def serve(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
srv = socket.create_server(("127.0.0.1", int(sys.argv[1])), backlog=512)
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""
MSG = b"x" * 64
BLOCK = 100


def dial_once(addr: tuple[str, int]) -> float:
    start = time.perf_counter()
    with socket.create_connection(addr, timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(MSG)
        got = b""
        while len(got) < len(MSG):
            chunk = sock.recv(len(MSG) - len(got))
            if not chunk:
                raise ConnectionError(f"{addr}: closed after {len(got)} bytes")
            got += chunk
    return time.perf_counter() - start


def measure(paths: dict[str, tuple[str, int]], rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for addr in paths.values():  # warm-up
        for _ in range(20):
            dial_once(addr)
    done = 0
    while done < rounds:
        n = min(BLOCK, rounds - done)
        for name, addr in paths.items():
            samples[name].extend(dial_once(addr) for _ in range(n))
        done += n
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3000, help="fresh connections per path")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args(argv)
    port = free_port()
    echo = subprocess.Popen([sys.executable, "-c", ECHO, str(port)], stdout=subprocess.PIPE)
    try:
        assert echo.stdout is not None and echo.stdout.readline().strip() == b"ready"
        with ToxiproxyClient.connect(url=None) as tp:
            by_ip = tp.create_link("dial_ip", upstream=f"127.0.0.1:{port}")
            by_name = tp.create_link("dial_name", upstream=f"localhost:{port}")
            paths = {"direct": ("127.0.0.1", port)}
            for name, link in (("proxy, address", by_ip), ("proxy, name", by_name)):
                host, _, listen = link.listen.rpartition(":")
                paths[name] = (host, int(listen))
            samples = measure(paths, args.rounds)
    finally:
        echo.kill()
        echo.wait()
    figures = {}
    base = statistics.median(samples["direct"])
    print(f"fresh connection + 64 B echo, {args.rounds} per path (µs)")
    print(f"{'path':<16}{'p50':>10}{'p99':>10}{'p50 / direct':>15}")
    for name, values in samples.items():
        p50, p99 = statistics.median(values), statistics.quantiles(values, n=100)[98]
        figures[name] = {"p50_us": p50 * 1e6, "p99_us": p99 * 1e6, "ratio": p50 / base}
        print(f"{name:<16}{p50 * 1e6:>10.0f}{p99 * 1e6:>10.0f}{p50 / base:>15.2f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
