"""``/metrics`` with Toxiproxy's ``-proxy-metrics`` / ``-runtime-metrics`` flags: the two byte
counters per proxy and direction, with Toxiproxy's names and labels, growing with the traffic and
for the life of the process; 404 without the flags, as Toxiproxy answers."""

from __future__ import annotations

import re

import httpx
import pytest
from tp_support import TcpServer, connect, round_trip, unique

from drills.toxiproxy.embedded import EmbeddedServer


def _counters(url: str) -> dict[tuple[str, str, str], int]:
    """(family, proxy, direction) -> value, from /metrics."""
    out: dict[tuple[str, str, str], int] = {}
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        m = re.match(r'(toxiproxy_proxy_\w+_bytes_total)\{direction="(\w+)",listener="[^"]*",'
                     r'proxy="([^"]+)",upstream="[^"]*"\} (\d+)$', line)
        if m:
            out[m[1], m[3], m[2]] = int(m[4])
    return out


@pytest.fixture(scope="module")
def metered() -> str:
    with EmbeddedServer(flags=("-proxy-metrics", "-runtime-metrics")) as server:
        yield server.url


def test_byte_counters_grow_with_the_traffic_each_way(metered: str) -> None:
    name = unique()
    with TcpServer() as up:
        created = httpx.post(f"{metered}/proxies", json={
            "name": name, "listen": "127.0.0.1:0", "upstream": up.addr}).json()
        with connect(created["listen"]) as sock:
            round_trip(sock, b"x" * 1000)
        before = _counters(metered)
        for family in ("toxiproxy_proxy_received_bytes_total", "toxiproxy_proxy_sent_bytes_total"):
            for direction in ("upstream", "downstream"):
                assert before[family, name, direction] >= 1000, (family, direction)
        # deleted and created again with the same labels: the counters go on growing
        httpx.delete(f"{metered}/proxies/{name}")
        assert _counters(metered)[("toxiproxy_proxy_sent_bytes_total", name, "upstream")] >= 1000
    text = httpx.get(f"{metered}/metrics", timeout=5).text
    assert "# TYPE toxiproxy_proxy_received_bytes_total counter" in text
    assert "process_resident_memory_bytes" in text  # -runtime-metrics


def test_metrics_are_404_without_the_flags() -> None:
    with EmbeddedServer() as plain:
        assert httpx.get(f"{plain.url}/metrics", timeout=5).status_code == 404
