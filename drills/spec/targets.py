"""Fault targets checked against a stack's shape, and schedules that could not be reverted.

A drill names its targets as text; whether ``dc-east`` is a zone, ``store-east`` a node and
``api->store-east`` a link depends on the stack. `validate_targets` checks a `DrillSpec` against
anything shaped like a topology (`TopologyLike`: a target's, or the one a drill file's own
nodes and links make). This package never imports `drills.stack` or `drills.targets`: they
depend on the spec, not the reverse.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Protocol

from drills.duration import format_duration
from drills.errors import SpecError
from drills.spec._base import did_you_mean, unknown
from drills.spec.faults import TARGET_TYPE, FaultSpec, FaultTemplate, FaultWindow, first_overlap
from drills.spec.models import DrillSpec

__all__ = ["TopologyLike", "did_you_mean", "unknown", "validate_targets"]


class TopologyLike(Protocol):
    """What target validation needs of a stack's shape (`drills.stack.base.Topology` fits)."""

    @property
    def zones(self) -> Mapping[str, Sequence[str]]: ...

    @property
    def links(self) -> Sequence[str]: ...


def validate_targets(spec: DrillSpec, topology: TopologyLike) -> None:
    """Check every fault's target exists in ``topology`` and no node is stopped twice at once.

    Targets: the fixed faults (``timeline.faults[i].<kind>``) and every nemesis template
    (``timeline.nemesis.faults[k].<kind>``, so generated faults need no check of their own).
    Raises `SpecError` (source: the drill's file) listing the allowed targets, with a "did you
    mean" when one is close.

    Revertability: two faults of `Timeline.all_faults` whose windows overlap and that stop the
    same node (power_down of its zone, crash, freeze) are refused, naming both (by index in
    ``all_faults``) and the node: reverting the first would restart or resume a node the other
    still holds down. Link faults may overlap anything. One sort-and-sweep per node.
    """
    nodes = tuple(n for members in topology.zones.values() for n in members)
    allowed_by = {"zone": tuple(topology.zones), "node": nodes, "link": tuple(topology.links)}
    timeline = spec.timeline
    named: list[tuple[str, FaultSpec | FaultTemplate]] = [(f"timeline.faults[{i}]", f)
                                          for i, f in enumerate(timeline.faults)]
    if timeline.nemesis is not None:
        named += [(f"timeline.nemesis.faults[{k}]", t)
                  for k, t in enumerate(timeline.nemesis.faults)]
    for path, fault in named:
        what = TARGET_TYPE[fault.kind]
        allowed = allowed_by[what]
        if fault.target not in allowed:
            raise SpecError(unknown(what, fault.target, allowed, listing=f"{what}s") +
                            _kind_hint(fault.target, topology),
                            source=spec.source, field=f"{path}.{fault.kind}")
    _check_revertable(spec, topology)


def _check_revertable(spec: DrillSpec, topology: TopologyLike) -> None:
    timeline = spec.timeline
    by_node: dict[str, list[tuple[int, FaultWindow]]] = defaultdict(list)
    for i, fault in enumerate(timeline.all_faults):
        windows = fault.windows()
        for node in _nodes_hit(fault, topology):
            by_node[node] += [(i, w) for w in windows]
    clashes = []
    for node, hit in by_node.items():
        found = first_overlap(hit)
        if found is not None:
            clashes.append((found[2], node, found[0], found[1]))
    if not clashes:
        return
    when, node, later, earlier = min(clashes)  # the earliest clash in time
    raise SpecError(
        f"{timeline.describe_fault(later)} overlaps {timeline.describe_fault(earlier)} on node "
        f"{node} (from {format_duration(when)}): both stop it at once, and reverting one would "
        f"restart it while the other still holds it down; faults stopping one node must not "
        f"overlap in time", source=spec.source, field=f"timeline.{timeline.fault_path(later)}")


def _kind_hint(target: str, topology: TopologyLike) -> str:
    """"; 'dc-east' is a zone (...)" when a target names a zone where a node is wanted, etc."""
    if target in topology.zones:
        return (f"; {target!r} is a zone: power_down it, or target one of its nodes "
                f"({', '.join(topology.zones[target])})")
    zone = next((z for z, members in topology.zones.items() if target in members), None)
    if zone is not None:
        return f"; {target!r} is a node of zone {zone}: crash or freeze it, or name the zone"
    return ""


def _nodes_hit(fault: FaultSpec | FaultTemplate, topology: TopologyLike) -> tuple[str, ...]:
    """The nodes a zone or node fault stops (none for link faults)."""
    if TARGET_TYPE[fault.kind] == "zone":
        return tuple(topology.zones.get(fault.target, ()))
    return (fault.target,) if TARGET_TYPE[fault.kind] == "node" else ()
