"""Fault targets checked against a stack's shape, and the "did you mean" helpers.

A drill names its targets as text; whether ``dc-east`` is a zone, ``store-east`` a node and
``api->store-east`` a link depends on the stack. `validate_targets` checks a `DrillSpec` against
anything shaped like a topology (`TopologyLike`; ClipStream's is
``drills.stack.clipstream.TOPOLOGY``). This package never imports `drills.stack`: the stack
side depends on the spec, not the reverse.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Protocol

from drills.errors import SpecError
from drills.spec.faults import TARGET_TYPE, FaultSpec
from drills.spec.models import DrillSpec


class TopologyLike(Protocol):
    """What target validation needs of a stack's shape (`drills.stack.base.Topology` fits)."""

    @property
    def zones(self) -> Mapping[str, Sequence[str]]: ...

    @property
    def links(self) -> Sequence[str]: ...


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` (difflib), or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown(what: str, word: str, choices: Sequence[str], *, where: str = "",
            listing: str = "allowed") -> str:
    """``unknown zone 'dc-eats'; did you mean 'dc-east'? (zones: edge, dc-east, ...)``."""
    place = f" in {where}" if where else ""
    return (f"unknown {what} {word!r}{place}{did_you_mean(word, choices)} "
            f"({listing}: {', '.join(choices)})")


def validate_targets(spec: DrillSpec, topology: TopologyLike) -> None:
    """Check every fault's target exists in ``topology`` and no two node faults overlap.

    Raises `SpecError` (source: the drill's file) naming ``timeline.faults[i].<kind>`` and
    listing the allowed targets, with a "did you mean" when one is close; or naming
    ``timeline.faults[i]`` when it stops a node another fault is already stopping at the
    same time (a node cannot be killed twice, nor paused while down).
    """
    nodes = tuple(n for members in topology.zones.values() for n in members)
    allowed_by = {"zone": tuple(topology.zones), "node": nodes, "link": tuple(topology.links)}
    faults = spec.timeline.faults
    for i, fault in enumerate(faults):
        what = TARGET_TYPE[fault.kind]
        allowed = allowed_by[what]
        if fault.target not in allowed:
            raise SpecError(unknown(what, fault.target, allowed, listing=f"{what}s") +
                            _kind_hint(fault.target, topology),
                            source=spec.source,
                            field=f"timeline.faults[{i}].{fault.kind}")
    hit = [_nodes_hit(f, topology) for f in faults]
    for i, fault in enumerate(faults):
        for j in range(i):
            shared = hit[i] & hit[j]
            if shared and faults[j].overlaps(fault):
                raise SpecError(f"overlaps faults[{j}] ({faults[j].describe()}) on node "
                                f"{', '.join(sorted(shared))}: faults stopping one node must "
                                f"not overlap in time", source=spec.source,
                                field=f"timeline.faults[{i}]")


def _kind_hint(target: str, topology: TopologyLike) -> str:
    """"; 'dc-east' is a zone (...)" when a target names a zone where a node is wanted, etc."""
    if target in topology.zones:
        return (f"; {target!r} is a zone: power_down it, or target one of its nodes "
                f"({', '.join(topology.zones[target])})")
    zone = next((z for z, members in topology.zones.items() if target in members), None)
    if zone is not None:
        return f"; {target!r} is a node of zone {zone}: crash or freeze it, or name the zone"
    return ""


def _nodes_hit(fault: FaultSpec, topology: TopologyLike) -> frozenset[str]:
    """The nodes a zone or node fault stops (none for link faults)."""
    if TARGET_TYPE[fault.kind] == "zone":
        return frozenset(topology.zones.get(fault.target, ()))
    return frozenset({fault.target}) if TARGET_TYPE[fault.kind] == "node" else frozenset()
