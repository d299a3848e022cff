"""A Toxiproxy-compatible fault proxy embedded in the harness, and the harness's client for it.

Storage partitions and slow links are injected through Toxiproxy. The official server is a Go
binary that a ``pip install`` does not bring, so the harness carries its own, written in
asyncio, speaking the same HTTP API with the same shapes, status codes and toxic semantics
(see ``../shared/TOXIPROXY.md``); any Toxiproxy client works with it unchanged.

Modules: ``daemon`` (the process: flags, signals, logging), ``httpd`` (HTTP/1.1), ``api``
(routes and responses), ``decode`` (bodies read as Go reads them), ``proxy`` (listeners and
the collection), ``link`` (one connection's two directions), ``toxics`` (every toxic type),
``client`` (what the rest of the harness calls) and ``embedded`` (the server as a child
process). Only ``main`` is exported here, so that starting the server imports no client code.
"""

from __future__ import annotations

from drills.toxiproxy.daemon import main

__all__ = ["main"]
