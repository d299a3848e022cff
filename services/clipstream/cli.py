"""``clipstream <role> ...``: start one node (store, coordinator, api) or the whole stack (dev).

Every flag has an environment twin ``CLIPSTREAM_<FLAG>`` (see `clipstream.config`). Exit status:
0 after a clean stop, 2 for bad flags or knobs, 3 if ``dev`` could not start the stack.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from clipstream.bugs import KNOWN_BUGS
from clipstream.config import (
    ApiConfig,
    CoordinatorConfig,
    StoreConfig,
    add_knob,
    add_store_list,
    bugs_arg,
    fsync_arg,
    name_arg,
    parse_store_list,
    positive_float,
    positive_int,
    replication_arg,
    url_arg,
)
from clipstream.errors import ClipStreamError, ConfigError

BUGS_HELP = ("planted DR bugs, comma separated (empty = none; for drills that must prove they "
             "catch them): " + ", ".join(KNOWN_BUGS))


def _bugs_knob(p: argparse.ArgumentParser) -> None:
    add_knob(p, "--bugs", type=bugs_arg, help=BUGS_HELP)


def _store_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("store", help="a store node (log, index, blobs, replication)")
    add_knob(p, "--name", type=name_arg, required=True, help="this store's name")
    add_knob(p, "--host", default="127.0.0.1", help="address to listen on")
    add_knob(p, "--port", type=positive_int, required=True, help="port to listen on")
    add_knob(p, "--data-dir", type=Path, required=True, help="where the log and blobs live")
    add_knob(p, "--peer-url", type=url_arg, help="how this store dials the other store")
    add_knob(p, "--fsync", type=fsync_arg, default="always", help="always|interval:<ms>|never")
    add_knob(p, "--replication", type=replication_arg, default="sync", help="sync|async")
    add_knob(p, "--pull-interval-ms", type=positive_int, default=200,
             help="async replica pull period")
    add_knob(p, "--replication-timeout-ms", type=positive_int, default=400,
             help="how long a sync write waits for the replica before the primary asks the "
                  "coordinator to drop it from the in-sync set (503 if not confirmed in as long)")
    add_knob(p, "--max-blob-bytes", type=positive_int, default=64 << 20,
             help="largest blob accepted")
    _bugs_knob(p)


def _coordinator_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("coordinator", help="the witness: health checks, promotion, epochs")
    add_knob(p, "--host", default="127.0.0.1", help="address to listen on")
    add_knob(p, "--port", type=positive_int, default=7100, help="port to listen on")
    add_knob(p, "--data-dir", type=Path, required=True, help="where epoch+primary persist")
    add_store_list(p)
    add_knob(p, "--primary", type=name_arg, help="the first primary (default: first --store)")
    add_knob(p, "--detection-ms", type=positive_int, default=1500,
             help="primary unreachable this long -> promote the replica")
    add_knob(p, "--check-interval-ms", type=positive_int, default=200, help="health check period")
    add_knob(p, "--check-timeout-ms", type=positive_int, default=300, help="health check timeout")
    _bugs_knob(p)


def _api_knobs(p: argparse.ArgumentParser) -> None:
    add_knob(p, "--max-upload-bytes", type=positive_int, default=8 << 20,
             help="larger uploads get 413")
    add_knob(p, "--write-retry-s", type=positive_float, default=4.0,
             help="how long a write is retried across a failover")
    add_knob(p, "--request-timeout-ms", type=positive_int, default=800,
             help="timeout of each call to a store or the coordinator")
    add_knob(p, "--api-workers", type=positive_int, default=1,
             help="api worker processes sharing the port, in the api's process group")
    _bugs_knob(p)


def _api_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("api", help="the public HTTP API (FastAPI)")
    add_knob(p, "--host", default="127.0.0.1", help="address to listen on")
    add_knob(p, "--port", type=positive_int, default=7000, help="port to listen on")
    add_knob(p, "--coordinator-url", type=url_arg, required=True, help="how to dial the witness")
    add_store_list(p)
    _api_knobs(p)
    add_knob(p, "--refresh-interval-ms", type=positive_int, default=1000,
             help="how often the api re-reads the primary and replication lag")


def _dev_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dev", help="start all four nodes locally; Ctrl-C stops them")
    add_knob(p, "--host", default="127.0.0.1", help="address every node listens on")
    add_knob(p, "--port", type=positive_int, default=7000, help="the api's port")
    add_knob(p, "--data-dir", type=Path, help="where nodes keep data (default: a temp dir)")
    add_knob(p, "--fsync", type=fsync_arg, default="always", help="always|interval:<ms>|never")
    add_knob(p, "--replication", type=replication_arg, default="sync", help="sync|async")
    add_knob(p, "--pull-interval-ms", type=positive_int, default=200, help="async pull period")
    add_knob(p, "--replication-timeout-ms", type=positive_int, default=400,
             help="sync wait for the replica")
    add_knob(p, "--detection-ms", type=positive_int, default=1500, help="failover detection")
    add_knob(p, "--check-interval-ms", type=positive_int, default=200, help="health check period")
    add_knob(p, "--check-timeout-ms", type=positive_int, default=300, help="health check timeout")
    _api_knobs(p)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (flags read their environment twins when built)."""
    parser = argparse.ArgumentParser(prog="clipstream", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    for add in (_store_parser, _coordinator_parser, _api_parser, _dev_parser):
        add(sub)
    return parser


def store_config(a: argparse.Namespace) -> StoreConfig:
    """The `StoreConfig` of parsed ``store`` arguments."""
    return StoreConfig(name=a.name, host=a.host, port=a.port, data_dir=a.data_dir,
                       peer_url=a.peer_url, fsync=a.fsync, replication=a.replication,
                       pull_interval_ms=a.pull_interval_ms,
                       replication_timeout_ms=a.replication_timeout_ms,
                       max_blob_bytes=a.max_blob_bytes, bugs=a.bugs or frozenset())


def coordinator_config(a: argparse.Namespace) -> CoordinatorConfig:
    """The `CoordinatorConfig` of parsed ``coordinator`` arguments; `ConfigError` if invalid."""
    stores = parse_store_list(a.store)
    primary = a.primary or next(iter(stores))
    if primary not in stores:
        raise ConfigError(f"--primary {primary} is not one of --store {', '.join(stores)}")
    return CoordinatorConfig(host=a.host, port=a.port, data_dir=a.data_dir, stores=stores,
                             primary=primary, detection_ms=a.detection_ms,
                             check_interval_ms=a.check_interval_ms,
                             check_timeout_ms=a.check_timeout_ms, bugs=a.bugs or frozenset())


def api_config(a: argparse.Namespace) -> ApiConfig:
    """The `ApiConfig` of parsed ``api`` arguments; `ConfigError` if invalid."""
    return ApiConfig(host=a.host, port=a.port, coordinator_url=a.coordinator_url,
                     stores=parse_store_list(a.store), max_upload_bytes=a.max_upload_bytes,
                     write_retry_s=a.write_retry_s, request_timeout_ms=a.request_timeout_ms,
                     refresh_interval_ms=a.refresh_interval_ms, workers=a.api_workers,
                     bugs=a.bugs or frozenset())


def _run_store(a: argparse.Namespace) -> None:
    from clipstream.store_app import create_store_app
    from clipstream.web import serve

    cfg = store_config(a)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    serve(create_store_app(cfg), host=cfg.host, port=cfg.port)


def _run_coordinator(a: argparse.Namespace) -> None:
    from clipstream.coordinator_app import create_coordinator_app
    from clipstream.web import serve

    cfg = coordinator_config(a)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    serve(create_coordinator_app(cfg), host=cfg.host, port=cfg.port)


def _run_api(a: argparse.Namespace) -> None:
    from clipstream.api_app import create_api_app
    from clipstream.web import serve
    from clipstream.workers import serve_workers

    cfg = api_config(a)
    if cfg.workers == 1:
        serve(create_api_app(cfg), host=cfg.host, port=cfg.port)
        return
    status = serve_workers(lambda: create_api_app(cfg), host=cfg.host, port=cfg.port,
                           workers=cfg.workers)
    if status:
        raise SystemExit(status)


def _run_dev(a: argparse.Namespace) -> None:
    from clipstream.launch import Knobs, LocalCluster

    knobs = Knobs(fsync=str(a.fsync), replication=a.replication,
                  pull_interval_ms=a.pull_interval_ms,
                  replication_timeout_ms=a.replication_timeout_ms, detection_ms=a.detection_ms,
                  check_interval_ms=a.check_interval_ms, check_timeout_ms=a.check_timeout_ms,
                  write_retry_s=a.write_retry_s, request_timeout_ms=a.request_timeout_ms,
                  max_upload_bytes=a.max_upload_bytes, bugs=",".join(sorted(a.bugs or ())),
                  api_workers=a.api_workers)
    base = a.data_dir or Path(tempfile.mkdtemp(prefix="clipstream-dev-"))
    stop = {"now": False}

    def _stop(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with LocalCluster(base, knobs=knobs, api_port=a.port, host=a.host) as cluster:
        print(f"ClipStream api: {cluster.api_url}", flush=True)
        print(f"  coordinator {cluster.url('coordinator')}  store-east "
              f"{cluster.url('store-east')}  store-west {cluster.url('store-west')}", flush=True)
        print(f"  data and logs in {base}; Ctrl-C stops everything", flush=True)
        while not stop["now"]:
            signal.pause()
    print("stopped", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``clipstream`` console script."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = build_parser()
    args = parser.parse_args(argv)
    runners = {"store": _run_store, "coordinator": _run_coordinator, "api": _run_api,
               "dev": _run_dev}
    try:
        runners[args.role](args)
    except ConfigError as exc:
        parser.error(str(exc))  # exits 2
    except ClipStreamError as exc:
        print(f"clipstream: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
