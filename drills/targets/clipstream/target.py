"""ClipStream's shape: topology, links, planted bugs, and how drill knobs become its settings.

With `drills.targets.clipstream.ClipStream` (the `Target`), the only place in `drills` that knows
ClipStream. It speaks to ClipStream only through its command line, environment variables and
HTTP (``drills`` never imports ``clipstream``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

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

#: The disaster-recovery bugs ClipStream can be started with (``stack.config.bugs``), name ->
#: what goes wrong. The one list of them: the drill-file validation (`drills.catalog`) and its
#: reference take the names from here; ClipStream reads them from ``CLIPSTREAM_BUGS``.
BUGS: Mapping[str, str] = MappingProxyType({
    "ack-before-fsync": "stores acknowledge a write before it is fsync'd",
    "ack-before-replication": "a sync primary acknowledges before the replica has the write",
    "promote-lagging-replica": "the coordinator promotes a replica that is not in sync",
    "no-fencing": "a primary cut off from the coordinator keeps acknowledging writes alone",
    "count-retries-twice": "a retried increment is counted again after a failover",
    "zero-counts-when-degraded": "the api answers counters as 0 when the primary cannot be read",
    "failback-with-stale-data": "the old primary is made primary again before it caught up",
})

#: Drill ``stack.config`` keys -> (ClipStream environment variable, unit). Durations arrive in
#: seconds (the spec parses ``1500ms``/``1.5s``) and are converted to the unit ClipStream expects;
#: lists (``bugs``) are joined with commas.
KNOBS: Mapping[str, tuple[str, str]] = {
    "replication": ("CLIPSTREAM_REPLICATION", "str"),
    "fsync": ("CLIPSTREAM_FSYNC", "str"),
    "detection": ("CLIPSTREAM_DETECTION_MS", "ms"),
    "pull_interval": ("CLIPSTREAM_PULL_INTERVAL_MS", "ms"),
    "check_interval": ("CLIPSTREAM_CHECK_INTERVAL_MS", "ms"),
    "check_timeout": ("CLIPSTREAM_CHECK_TIMEOUT_MS", "ms"),
    "write_retry": ("CLIPSTREAM_WRITE_RETRY_S", "s"),
    "request_timeout": ("CLIPSTREAM_REQUEST_TIMEOUT_MS", "ms"),
    "api_workers": ("CLIPSTREAM_API_WORKERS", "str"),
    "bugs": ("CLIPSTREAM_BUGS", "list"),
}


def knob_env(config: Mapping[str, object]) -> dict[str, str]:
    """Translate a drill's ``stack.config`` into ClipStream environment variables.

    Unknown keys and bug names are left to the spec validator (which lists the allowed ones);
    here they raise ``KeyError`` because reaching this with one is a harness bug. ``bugs`` is
    joined with commas (empty: ``CLIPSTREAM_BUGS=""``, the correct system).
    """
    env: dict[str, str] = {}
    for key, value in config.items():
        var, unit = KNOBS[key]
        if unit == "list":
            env[var] = ",".join(_bug_names(value))
        elif unit == "ms":
            env[var] = str(round(float(value) * 1000))  # type: ignore[arg-type]
        elif unit == "s":
            env[var] = f"{float(value):g}"  # type: ignore[arg-type]
        else:
            env[var] = str(value)
    return env


def _bug_names(value: object) -> list[str]:
    """Bug names from a list or comma-separated text, each checked against `BUGS`."""
    if isinstance(value, str):
        names = [n.strip() for n in value.split(",") if n.strip()]
    elif isinstance(value, Iterable):
        names = [str(n) for n in value]
    else:
        raise TypeError(f"bugs: expected a list of names, got {value!r}")
    for name in names:
        if name not in BUGS:
            raise KeyError(name)
    return names
