"""``GET /metrics``: Toxiproxy's Prometheus metrics, as its ``-proxy-metrics`` and
``-runtime-metrics`` flags enable them.

Proxy metrics are Toxiproxy's two byte counters per proxy and direction,
``toxiproxy_proxy_received_bytes_total`` and ``toxiproxy_proxy_sent_bytes_total``, labelled
``direction`` (``upstream``: client to server; ``downstream``), ``listener``, ``proxy`` and
``upstream``; like Go's CounterVec they only grow for the life of the process (a proxy deleted
and created again with the same labels goes on counting). Runtime metrics are the process's own
(Python's instead of Go's: ``process_*``, ``python_gc_*``, ``python_info``). With neither flag
``/metrics`` answers 404, as Toxiproxy does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

Labels = tuple[str, str, str]  # (proxy, listener, upstream)


@dataclass(slots=True)
class Traffic:
    """Bytes one proxy received and sent, per direction: ``up``/``down`` are [received, sent]
    (mutable, counted in place by the connection's pipes)."""

    up: list[int] = field(default_factory=lambda: [0, 0])
    down: list[int] = field(default_factory=lambda: [0, 0])

    def add(self, other: Traffic) -> None:
        for mine, theirs in ((self.up, other.up), (self.down, other.down)):
            mine[0] += theirs[0]
            mine[1] += theirs[1]


def _line(name: str, labels: Labels, direction: str, value: int) -> str:
    proxy, listener, upstream = (v.replace("\\", "\\\\").replace('"', '\\"') for v in labels)
    return (f'{name}{{direction="{direction}",listener="{listener}",proxy="{proxy}",'
            f'upstream="{upstream}"}} {value}')


def render(traffic: Iterable[tuple[Labels, Traffic]], *, proxy: bool, runtime: bool) -> str:
    """The Prometheus text of the enabled metric families (sorted by labels)."""
    out: list[str] = []
    if proxy:
        rows = sorted(traffic, key=lambda row: row[0])
        for name, idx, doc in (("toxiproxy_proxy_received_bytes_total", 0, "received"),
                               ("toxiproxy_proxy_sent_bytes_total", 1, "sent")):
            out += [f"# HELP {name} The total bytes {doc} on a given proxy link in a given "
                    "direction", f"# TYPE {name} counter"]
            for labels, t in rows:
                out.append(_line(name, labels, "downstream", t.down[idx]))
                out.append(_line(name, labels, "upstream", t.up[idx]))
    text = "\n".join(out) + ("\n" if out else "")
    if runtime:
        registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=registry)
        text += generate_latest(registry).decode()
    return text
