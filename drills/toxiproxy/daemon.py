"""The server process: ``drill toxiproxy`` / ``python -m drills.toxiproxy``.

Flags as Toxiproxy's server (Go's single-dash spellings, ``-host``, ``-port=8474``, work too):
``--host`` (default ``localhost``), ``--port`` (8474), ``--config``
(a JSON array of proxies, as ``/populate``, loaded before the API listens; an unreadable or
invalid file is logged and skipped, as in Go), ``--seed`` (seed of the toxicity and jitter draws),
``--proxy-metrics`` / ``--runtime-metrics`` (``/metrics``, see `drills.toxiproxy.metrics`).
Logs one line per proxy or toxic change to stderr. SIGTERM or SIGINT stops it cleanly: the API
stops listening, every proxy is stopped, exit status 0.

One extension: leases (`drills.toxiproxy.lease`, under ``/drills/``): proxies whose lease
holder stops renewing are healed when it lapses - the dead-man switch of a harness.

Unlike the Go server, which keeps running without its API when the API port is taken, this one
exits with status 1: a harness waiting for it learns at once. If the environment names a parent
process (``DRILLS_TOXIPROXY_PARENT_PID``, set by the harness that starts it), the server also
stops when that process is gone, so a harness killed with SIGKILL leaves no server behind.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from drills.toxiproxy.api import VERSION, Api, Request
from drills.toxiproxy.decode import ApiError
from drills.toxiproxy.httpd import start_http
from drills.toxiproxy.proxy import ProxyCollection, bind, format_addr

PARENT_ENV = "DRILLS_TOXIPROXY_PARENT_PID"
PARENT_POLL = 1.0
LEASE_POLL = 0.1

log = logging.getLogger("drills.toxiproxy")


@dataclass(frozen=True, slots=True)
class Options:
    """The server's command line, parsed."""

    host: str = "localhost"
    port: int = 8474
    config: Path | None = None
    seed: int | None = None
    parent_pid: int | None = None
    proxy_metrics: bool = False
    runtime_metrics: bool = False


def parse_args(argv: Sequence[str] | None) -> Options:
    """Options from ``argv`` (argparse exits with status 2 on bad input, as for every CLI)."""
    p = argparse.ArgumentParser(
        prog="drill toxiproxy", description="A Toxiproxy-compatible fault proxy server."
    )
    p.add_argument("--host", "-host", default="localhost", help="host for the API to listen on")
    p.add_argument("--port", "-port", type=int, default=8474, help="port for the API to listen on")
    p.add_argument(
        "--config", "-config", type=Path, help="JSON file of proxies to create on startup"
    )
    p.add_argument("--seed", "-seed", type=int, help="seed for toxicity and jitter (default: time)")
    p.add_argument("--proxy-metrics", "-proxy-metrics", action="store_true",
                   help="serve the proxies' byte counters on /metrics")
    p.add_argument("--runtime-metrics", "-runtime-metrics", action="store_true",
                   help="serve the process's own metrics on /metrics")
    p.add_argument(
        "--version", "-version", action="version", version=f"toxiproxy-server version {VERSION}"
    )
    args = p.parse_args(argv)
    parent = os.environ.get(PARENT_ENV, "")
    return Options(
        host=args.host,
        port=args.port,
        config=args.config,
        seed=args.seed,
        parent_pid=int(parent) if parent.isdigit() else None,
        proxy_metrics=args.proxy_metrics,
        runtime_metrics=args.runtime_metrics,
    )


async def _load_config(api: Api, path: Path) -> None:
    try:
        body = path.read_bytes()
    except OSError as exc:
        log.error("error reading config file %s: %s", path, exc)
        return
    resp = await api.handle(Request("POST", "/populate", (), body))
    if resp.status == 201:
        log.info("populated proxies from file %s", path)
    else:
        log.error("failed to populate proxies from file %s: %s", path, resp.body.decode())


async def _watch_parent(pid: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            log.info("parent process %d is gone: shutting down", pid)
            stop.set()
            return
        except PermissionError:
            pass
        await asyncio.sleep(PARENT_POLL)


async def _heal_lapsed_leases(api: Api, stop: asyncio.Event) -> None:
    """Heal the proxies of lapsed leases (`drills.toxiproxy.lease`), every `LEASE_POLL` s."""
    while not stop.is_set():
        await asyncio.sleep(LEASE_POLL)
        await api.heal_lapsed()


async def serve(opts: Options) -> int:
    """Run the server until SIGTERM/SIGINT (or the parent goes); 0 on a clean stop, 1 if the
    API address cannot be bound."""
    seed = opts.seed if opts.seed is not None else time.time_ns()
    rng = random.Random(seed)
    collection = ProxyCollection()
    api = Api(collection, rng, proxy_metrics=opts.proxy_metrics,
              runtime_metrics=opts.runtime_metrics)
    log.info("starting Toxiproxy-compatible server version=%s seed=%d", VERSION, seed)
    if opts.config is not None:
        await _load_config(api, opts.config)
    try:
        sock, bound = bind(format_addr(opts.host, opts.port) if opts.host else f":{opts.port}")
    except ApiError as exc:
        log.error("API server could not start: %s", exc.message)
        collection.clear()
        return 1
    server = await start_http(api.handle, sock)
    log.info("API listening on http://%s", bound)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = loop.create_task(_watch_parent(opts.parent_pid, stop)) if opts.parent_pid else None
    leases = loop.create_task(_heal_lapsed_leases(api, stop))
    try:
        await stop.wait()
    finally:
        log.info("shutdown started")
        server.close()
        leases.cancel()
        collection.clear()
        if watcher is not None:
            watcher.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("shutdown complete")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``drill toxiproxy`` and ``python -m drills.toxiproxy``; the exit status."""
    opts = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("drills.toxiproxy")
    logger.addHandler(handler)
    logger.setLevel(
        logging.DEBUG if os.environ.get("LOG_LEVEL", "").lower() == "debug" else logging.INFO
    )
    logger.propagate = False
    try:
        return asyncio.run(serve(opts))
    finally:
        logger.removeHandler(handler)
