"""Knobs of every ClipStream node: typed configs, and flags that each have an environment twin.

Every flag ``--some-knob`` has the twin ``CLIPSTREAM_SOME_KNOB``; the flag wins over the
variable, the variable over the default. Repeated flags (``--store name=url``) take a
comma-separated list in their twin (``CLIPSTREAM_STORE=store-east=http://..,store-west=http://..``).
Invalid values raise `ConfigError` (the CLI turns it into exit status 2).
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from clipstream.bugs import parse_bugs
from clipstream.errors import ConfigError

ENV_PREFIX = "CLIPSTREAM_"
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
NAME_RE = re.compile(ID_PATTERN)
NEVER_WRITEBACK_S = 5.0  # fsync=never: the simulated OS writes dirty data back every 5 s
NEVER_WRITEBACK_BYTES = 1 << 20  # ... or as soon as 1 MiB is dirty


@dataclass(frozen=True, slots=True)
class FsyncPolicy:
    """When the log's write-back buffer reaches the disk.

    ``always``: before each write is acknowledged (group commit); ``interval``: every
    ``interval_ms`` (acks do not wait); ``never``: ClipStream never fsyncs, the simulated OS
    writes back every 5 s or per MiB (without fsync).
    """

    mode: Literal["always", "interval", "never"]
    interval_ms: int = 0

    @classmethod
    def parse(cls, text: str) -> FsyncPolicy:
        """Parse ``always`` | ``interval:<ms>`` | ``never``; raise `ConfigError` otherwise."""
        text = text.strip()
        if text in ("always", "never"):
            return cls(text)  # type: ignore[arg-type]
        m = re.fullmatch(r"interval:(\d{1,7})", text)
        if m and int(m.group(1)) > 0:
            return cls("interval", int(m.group(1)))
        raise ConfigError(f"fsync must be always, interval:<ms> (ms > 0) or never, got {text!r}")

    def __str__(self) -> str:
        return f"interval:{self.interval_ms}" if self.mode == "interval" else self.mode


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """A store node: who it is, where it keeps data, how it dials its peer, its policies."""

    name: str
    host: str
    port: int
    data_dir: Path
    peer_url: str | None
    fsync: FsyncPolicy
    replication: Literal["sync", "async"]
    pull_interval_ms: int = 200
    replication_timeout_ms: int = 400
    max_blob_bytes: int = 64 << 20
    pull_batch: int = 512
    bugs: frozenset[str] = frozenset()  # planted DR bugs (clipstream.bugs); none by default


@dataclass(frozen=True, slots=True)
class CoordinatorConfig:
    """The witness: the stores it watches (name -> url it dials) and its timing knobs."""

    host: str
    port: int
    data_dir: Path
    stores: Mapping[str, str]
    primary: str
    detection_ms: int = 1500
    check_interval_ms: int = 200
    check_timeout_ms: int = 300
    bugs: frozenset[str] = frozenset()  # planted DR bugs (clipstream.bugs); none by default


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """The edge: how it dials the coordinator and each store, and its request limits."""

    host: str
    port: int
    coordinator_url: str
    stores: Mapping[str, str]
    max_upload_bytes: int = 8 << 20
    write_retry_s: float = 4.0
    request_timeout_ms: int = 800
    refresh_interval_ms: int = 1000
    workers: int = 1  # worker processes sharing the port (clipstream.workers)
    bugs: frozenset[str] = frozenset()  # planted DR bugs (clipstream.bugs); none by default


def env_name(flag: str) -> str:
    """``--detection-ms`` -> ``CLIPSTREAM_DETECTION_MS``."""
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def add_knob(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    type: Callable[[str], Any] = str,
    default: Any = None,
    required: bool = False,
    help: str = "",
) -> None:
    """Add ``flag`` whose default comes from its environment twin, then from ``default``."""
    env = env_name(flag)
    value = os.environ.get(env)
    if value is not None and value != "":
        default, required = value, False  # argparse converts string defaults through `type`
    parser.add_argument(
        flag,
        type=type,
        default=default,
        required=required,
        help=f"{help} [env {env}]" + ("" if default is None else f" (default: {default})"),
    )


def add_store_list(parser: argparse.ArgumentParser) -> None:
    """Add the repeatable ``--store name=url`` flag (twin ``CLIPSTREAM_STORE``, comma-separated)."""
    parser.add_argument(
        "--store",
        action="append",
        default=None,
        metavar="NAME=URL",
        help=f"a store and the URL this node dials it at; repeat [env {env_name('--store')}]",
    )


def parse_store_list(values: list[str] | None) -> dict[str, str]:
    """Turn ``["store-east=http://..", ...]`` (or the env twin) into an ordered name -> url map."""
    if not values:
        raw = os.environ.get(env_name("--store"), "")
        values = [v for v in raw.split(",") if v.strip()]
    stores: dict[str, str] = {}
    for item in values:
        name, sep, url = item.partition("=")
        name, url = name.strip(), url.strip().rstrip("/")
        if not sep or not NAME_RE.match(name) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"--store wants NAME=http://HOST:PORT, got {item!r}")
        if name in stores:
            raise ConfigError(f"--store {name} given twice")
        stores[name] = url
    if len(stores) != 2:
        raise ConfigError(f"exactly two --store NAME=URL are needed, got {len(stores)}")
    return stores


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def fsync_arg(text: str) -> FsyncPolicy:
    """argparse type for ``--fsync``."""
    try:
        return FsyncPolicy.parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def bugs_arg(text: str) -> frozenset[str]:
    """argparse type for ``--bugs``: comma-separated names of `clipstream.bugs.KNOWN_BUGS`."""
    try:
        return parse_bugs(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def replication_arg(text: str) -> str:
    """argparse type for ``--replication``: ``sync`` or ``async``."""
    if text not in ("sync", "async"):
        raise argparse.ArgumentTypeError(f"must be sync or async, got {text!r}")
    return text


def name_arg(text: str) -> str:
    """argparse type for a node name: ``[A-Za-z0-9_-]{1,64}``."""
    if not NAME_RE.match(text):
        raise argparse.ArgumentTypeError(f"must match {ID_PATTERN}, got {text!r}")
    return text


def url_arg(text: str) -> str:
    """argparse type for a base URL ``http(s)://host:port``."""
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"must start with http:// or https://, got {text!r}")
    return text.rstrip("/")
