"""The drill's timeline as concrete, time-ordered actions: inject window N of fault F at offset a,
revert it at offset b. Pure: built from the spec, consumed by the engine's loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from drills.ledger import Entry


@dataclass(frozen=True, slots=True)
class Window:
    """One on/off window of one fault: ``entry.id`` is ``f<i>`` or ``f<i>#<n>`` for flaps."""

    entry: Entry
    on: float  # offset (s) from load start
    off: float


@dataclass(frozen=True, slots=True)
class Action:
    at: float
    verb: Literal["inject", "revert"]
    window: Window


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What the engine needs of one drill-file fault: kind, target, parameters, windows."""

    kind: str
    target: str
    params: Mapping[str, Any]
    windows: Sequence[tuple[float, float]]


def plan(faults: Sequence[FaultPlan]) -> list[Action]:
    """Every inject/revert in time order; at equal times reverts come first (a flap's off and the
    next on never overlap), then by fault order."""
    actions: list[Action] = []
    for i, fault in enumerate(faults):
        many = len(fault.windows) > 1
        for n, (on, off) in enumerate(fault.windows, start=1):
            fid = f"f{i}#{n}" if many else f"f{i}"
            w = Window(Entry(fid, fault.kind, fault.target, dict(fault.params)), on, off)
            actions += [Action(on, "inject", w), Action(off, "revert", w)]
    return sorted(actions, key=lambda a: (a.at, a.verb == "inject"))


def end_of_faults(actions: Sequence[Action]) -> float:
    return max((a.at for a in actions), default=0.0)
