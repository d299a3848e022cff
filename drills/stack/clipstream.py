"""ClipStream as a target: its topology, its links, and how drill knobs become its settings.

This is the only place in `drills` that knows ClipStream's shape. It speaks to ClipStream only
through its command line, environment variables and HTTP (``drills`` never imports ``clipstream``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from drills.stack.base import Topology

TOPOLOGY = Topology(
    zones={
        "edge": ("api",),
        "dc-east": ("store-east",),
        "dc-west": ("store-west",),
        "witness": ("coordinator",),
    },
    links=(
        "api->coordinator",
        "api->store-east",
        "api->store-west",
        "coordinator->store-east",
        "coordinator->store-west",
        "store-east->store-west",
        "store-west->store-east",
    ),
)

STORES: tuple[str, ...] = ("store-east", "store-west")

#: Drill ``stack.config`` keys -> (ClipStream environment variable, unit). Durations arrive in
#: seconds (the spec parses ``1500ms``/``1.5s``) and are converted to the unit ClipStream expects.
KNOBS: Mapping[str, tuple[str, str]] = {
    "replication": ("CLIPSTREAM_REPLICATION", "str"),
    "fsync": ("CLIPSTREAM_FSYNC", "str"),
    "detection": ("CLIPSTREAM_DETECTION_MS", "ms"),
    "pull_interval": ("CLIPSTREAM_PULL_INTERVAL_MS", "ms"),
    "check_interval": ("CLIPSTREAM_CHECK_INTERVAL_MS", "ms"),
    "check_timeout": ("CLIPSTREAM_CHECK_TIMEOUT_MS", "ms"),
    "write_retry": ("CLIPSTREAM_WRITE_RETRY_S", "s"),
    "request_timeout": ("CLIPSTREAM_REQUEST_TIMEOUT_MS", "ms"),
}


def knob_env(config: Mapping[str, object]) -> dict[str, str]:
    """Translate a drill's ``stack.config`` into ClipStream environment variables.

    Unknown keys are left to the spec validator (which lists the allowed ones); here they raise
    ``KeyError`` because reaching this with one is a harness bug.
    """
    env: dict[str, str] = {}
    for key, value in config.items():
        var, unit = KNOBS[key]
        if unit == "ms":
            env[var] = str(round(float(value) * 1000))  # type: ignore[arg-type]
        elif unit == "s":
            env[var] = f"{float(value):g}"  # type: ignore[arg-type]
        else:
            env[var] = str(value)
    return env


@dataclass(frozen=True, slots=True)
class Wiring:
    """How each node is reached: ``direct`` (node -> host:port it listens on) and ``via`` (link
    name -> host:port a client dials for that link, i.e. the proxy's listen address)."""

    direct: Mapping[str, str]
    via: Mapping[str, str]


def node_args(node: str, wiring: Wiring, *, data_dir: str, bind_host: str) -> list[str]:
    """The ``clipstream`` arguments that start ``node`` with every peer dialled through its link."""
    port = wiring.direct[node].rsplit(":", 1)[1]
    common = ["--host", bind_host, "--port", port]
    if node == "api":
        return [
            "api", *common,
            "--coordinator-url", f"http://{wiring.via['api->coordinator']}",
            "--store", f"store-east=http://{wiring.via['api->store-east']}",
            "--store", f"store-west=http://{wiring.via['api->store-west']}",
        ]
    if node == "coordinator":
        return [
            "coordinator", *common, "--data-dir", data_dir, "--primary", "store-east",
            "--store", f"store-east=http://{wiring.via['coordinator->store-east']}",
            "--store", f"store-west=http://{wiring.via['coordinator->store-west']}",
        ]
    if node in STORES:
        peer = STORES[1 - STORES.index(node)]
        return [
            "store", *common, "--name", node, "--data-dir", data_dir,
            "--peer-url", f"http://{wiring.via[f'{node}->{peer}']}",
        ]
    raise KeyError(node)


def link_upstream(link: str) -> str:
    """The node a link leads to (``api->store-east`` -> ``store-east``)."""
    return link.split("->", 1)[1]
