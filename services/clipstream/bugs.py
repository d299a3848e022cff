"""Planted disaster-recovery bugs: the ``--bugs`` knob (``CLIPSTREAM_BUGS``), off by default.

ClipStream is the harness's reference target; to prove that its drills catch real DR bugs,
the harness can plant named ones. Each is a few lines in the node it concerns, of a kind real
databases have shipped; with the bug off, the correct code path runs unchanged. Every node
parses the whole list (all nodes get the same environment), refuses unknown names, reports it
(store and coordinator ``GET /state``, api ``GET /healthz``: ``"bugs": [...]``) and acts only
on the bugs of its own kind (`BUG_NODES`). The README describes each bug, the real failure it
mirrors, and the drill that should expose it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from clipstream.errors import ConfigError

Node = Literal["store", "coordinator", "api"]


class Bug(StrEnum):
    """The name of one planted bug (a `str`: ``Bug.NO_FENCING in cfg.bugs`` works)."""

    ACK_BEFORE_FSYNC = "ack-before-fsync"
    ACK_BEFORE_REPLICATION = "ack-before-replication"
    PROMOTE_LAGGING_REPLICA = "promote-lagging-replica"
    NO_FENCING = "no-fencing"
    COUNT_RETRIES_TWICE = "count-retries-twice"
    ZERO_COUNTS_WHEN_DEGRADED = "zero-counts-when-degraded"
    FAILBACK_WITH_STALE_DATA = "failback-with-stale-data"


#: name -> one-line description (the only list of bugs; the README explains each at length)
KNOWN_BUGS: Mapping[str, str] = MappingProxyType({
    Bug.ACK_BEFORE_FSYNC: "store, fsync=always: acks once the record is buffered, flushes every "
                          "200 ms; a replica acks pulled records before they are durable",
    Bug.ACK_BEFORE_REPLICATION: "store, replication=sync: acks once durable locally without "
                                "waiting for the in-sync replica (which stays promotable)",
    Bug.PROMOTE_LAGGING_REPLICA: "coordinator: promotes a reachable replica of this epoch even "
                                 "when it is not in sync / not reconciled",
    Bug.NO_FENCING: "store, replication=sync: a write that waited the replication timeout is "
                    "acked alone without the coordinator confirming the replica's drop",
    Bug.COUNT_RETRIES_TWICE: "store: increment dedup only within one epoch; a retry of an op "
                             "recorded under an older epoch counts again",
    Bug.ZERO_COUNTS_WHEN_DEGRADED: "api: when the primary cannot answer a counter read, answers "
                                   "200 with views/likes 0 and no degraded header",
    Bug.FAILBACK_WITH_STALE_DATA: "coordinator: fails back to the home primary as soon as it is "
                                  "reachable, without waiting for it to catch up",
})

#: name -> the node that acts on it
BUG_NODES: Mapping[str, Node] = MappingProxyType({
    Bug.ACK_BEFORE_FSYNC: "store",
    Bug.ACK_BEFORE_REPLICATION: "store",
    Bug.PROMOTE_LAGGING_REPLICA: "coordinator",
    Bug.NO_FENCING: "store",
    Bug.COUNT_RETRIES_TWICE: "store",
    Bug.ZERO_COUNTS_WHEN_DEGRADED: "api",
    Bug.FAILBACK_WITH_STALE_DATA: "coordinator",
})


def parse_bugs(text: str | Iterable[str]) -> frozenset[str]:
    """Parse ``"name[,name...]"`` (or names) into a set; empty text = no bug.

    Blanks around names are ignored. Raises `ConfigError` naming the first unknown name and
    listing the known ones.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip() for n in items if n.strip()]
    for name in names:
        if name not in KNOWN_BUGS:
            raise ConfigError(f"unknown bug {name!r}; known bugs: {', '.join(KNOWN_BUGS)}")
    return frozenset(str(Bug(n)) for n in names)


def warn_active(log: logging.Logger, node: Node, bugs: frozenset[str]) -> None:
    """Log a WARNING listing the planted bugs (those this ``node`` acts on first); no-op if none."""
    if not bugs:
        return
    here = sorted(b for b in bugs if BUG_NODES[b] == node)
    elsewhere = sorted(b for b in bugs if BUG_NODES[b] != node)
    log.warning("PLANTED BUGS active (for DR drills only, never in production): "
                "acting here: %s; for other nodes: %s",
                ", ".join(here) or "none", ", ".join(elsewhere) or "none")
