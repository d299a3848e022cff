"""Faults: the kinds a drill may inject, what each targets and takes, one fault's windows.

A `FaultSpec` is one entry of a drill's ``timeline.faults``: exactly one kind key naming its
target (a zone, a node or a link, see `TARGET_TYPE`), when it starts (``at``, seconds from load
start), how long it lasts (``for``) and how often it repeats (``repeat`` windows, ``every``
apart). Its `FaultWindow`s are the concrete [on, off) intervals the schedule acts on.

A `FaultTemplate` is a fault without a time (an entry of ``timeline.nemesis.faults``): the
nemesis schedule draws when it starts and how long it lasts, then `FaultTemplate.at` makes it a
`FaultSpec`. Both are validated by the same rules (one kind, the kind's own parameters).
`first_overlap` finds two windows sharing an instant by sorting and sweeping (n log n), so
schedules of thousands of faults validate quickly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from pydantic import model_validator

from drills.duration import Duration, PositiveDuration, format_duration
from drills.spec._base import SpecModel, invalid
from drills.spec._base import doc_field as _f

FAULT_KINDS: tuple[str, ...] = (
    "power_down", "crash", "freeze", "partition", "latency", "bandwidth",
)
#: What each fault kind targets: a zone, a node, or a link of the stack's topology.
TARGET_TYPE: Mapping[str, str] = MappingProxyType(
    {"power_down": "zone", "crash": "node", "freeze": "node",
     "partition": "link", "latency": "link", "bandwidth": "link"}
)
#: Kind-specific parameters (every kind also takes at / for / repeat / every).
FAULT_PARAMS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"partition": ("mode",), "latency": ("ms", "jitter", "direction"), "bandwidth": ("kbps",)}
)
MAX_REPEAT = 1000
_TIMING = ("at", "for", "repeat", "every")


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """One concrete on/off window of a fault, offsets in seconds from load start."""

    on: float
    off: float
    repeat_index: int = 0

    def overlaps(self, other: FaultWindow) -> bool:
        """True if the two half-open windows [on, off) share any instant."""
        return self.on < other.off and other.on < self.off


def first_overlap(windows: Iterable[tuple[int, FaultWindow]]) -> tuple[int, int, float] | None:
    """The first two windows, of different faults, that share an instant, as
    ``(later fault, earlier fault, when the overlap starts)``; None if none do.

    ``windows`` are (fault index, window) pairs. Sorted by start (then fault index) and swept
    once, keeping the window that reaches furthest: O(n log n). The windows of one fault never
    overlap each other (``every`` > ``for``), so both indices always differ.
    """
    reach, holder = -math.inf, -1
    for index, window in sorted(windows, key=lambda p: (p[1].on, p[0])):
        if window.on < reach and index != holder:
            return index, holder, window.on
        if window.off > reach:
            reach, holder = window.off, index
    return None


class _FaultKind(SpecModel):
    """The kind keys, and the rules tying a kind to its parameters (shared by faults and
    templates; the parameters themselves are declared by `_FaultParams`)."""

    power_down: str | None = _f(
        None, typ="zone", doc="Kill every node of the zone at once; started again when the "
        "window ends.")
    crash: str | None = _f(
        None, typ="node", doc="SIGKILL one node; started again when the window ends.")
    freeze: str | None = _f(
        None, typ="node", doc="Pause one node (SIGSTOP / docker pause); resumed when the "
        "window ends.")
    partition: str | None = _f(None, typ="link", doc="Cut a link (see mode).")
    latency: str | None = _f(None, typ="link", doc="Delay the link's traffic (see ms, jitter).")
    bandwidth: str | None = _f(None, typ="link", doc="Throttle the link (see kbps).")

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if data.get("partition") is not None and data.get("mode") is None:
                data = {**data, "mode": "down"}
            if data.get("latency") is not None and data.get("jitter") is None:
                data = {**data, "jitter": 0}
            if data.get("latency") is not None and data.get("direction") is None:
                data = {**data, "direction": "both"}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> _FaultKind:
        kinds = [k for k in FAULT_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            got = "none" if not kinds else " and ".join(kinds)
            raise invalid("", f"a fault needs exactly one kind key, got {got}; kinds: "
                              f"{', '.join(FAULT_KINDS)}")
        kind = kinds[0]
        for param in ("mode", "ms", "jitter", "direction", "kbps"):
            if getattr(self, param) is not None and param not in FAULT_PARAMS.get(kind, ()):
                takes = ", ".join(FAULT_PARAMS.get(kind, ())) or "no parameters"
                raise invalid(param, f"{param!r} does not apply to a {kind} fault "
                                     f"({kind} takes: {takes})")
        ms, jitter = getattr(self, "ms", None), getattr(self, "jitter", None)
        if kind == "latency" and ms is None:
            raise invalid("ms", "a latency fault needs ms (the added delay, int >= 1)")
        if kind == "latency" and ms is not None and (jitter or 0) > ms:
            raise invalid("jitter", f"jitter ({jitter}) must not exceed ms ({ms})")
        if kind == "bandwidth" and getattr(self, "kbps", None) is None:
            raise invalid("kbps", "a bandwidth fault needs kbps (kilobytes/s, int >= 1)")
        return self

    @property
    def kind(self) -> str:
        """The fault kind: one of `FAULT_KINDS`."""
        return next(k for k in FAULT_KINDS if getattr(self, k) is not None)

    @property
    def target(self) -> str:
        """The zone, node or link the fault hits (see `TARGET_TYPE`)."""
        return str(getattr(self, self.kind))

    @property
    def params(self) -> Mapping[str, str | int]:
        """The kind's own parameters: ``mode`` (partition), ``ms``/``jitter``/``direction``
        (latency), ``kbps`` (bandwidth); empty for node and zone faults."""
        names = FAULT_PARAMS.get(self.kind, ())
        return MappingProxyType({p: getattr(self, p) for p in names})


class _FaultWhen(SpecModel):
    """When a fault starts, how long it lasts, how often it repeats."""

    at: Duration = _f(typ="duration", doc="Offset from load start; must be >= baseline.")
    for_: PositiveDuration = _f(typ="duration > 0", alias="for", doc="How long the fault lasts.")
    repeat: int = _f(1, typ=f"1 <= int <= {MAX_REPEAT}", strict=True, ge=1, le=MAX_REPEAT,
                     doc="Number of windows (flapping).")
    every: PositiveDuration | None = _f(None, typ="duration > 0", doc="Period between window "
                                       "starts; required when repeat > 1, must be > for.")


class _FaultParams(SpecModel):
    """The kind-specific parameters (which apply to which kind: `FAULT_PARAMS`)."""

    mode: Literal["down", "blackhole", "reset"] | None = _f(
        None, typ="down|blackhole|reset", doc="partition only (default down): down = "
        "connections refused, blackhole = data silently dropped (connections hang), reset = "
        "connections reset (TCP RST).")
    ms: int | None = _f(None, typ="int >= 1", strict=True, ge=1,
                       doc="latency only (required): added delay in ms.")
    jitter: int | None = _f(None, typ="int >= 0", strict=True, ge=0,
                           doc="latency only (default 0): +/- ms of random jitter, <= ms.")
    direction: Literal["both", "upstream", "downstream"] | None = _f(
        None, typ="both|upstream|downstream", doc="latency only (default both): which way "
        "the delay applies - upstream = what the link's client sends (requests), downstream "
        "= what it receives (answers), both = each way (a round trip gains 2 x ms).")
    kbps: int | None = _f(None, typ="int >= 1", strict=True, ge=1, doc="bandwidth only "
                         "(required): limit in kilobytes/s (Toxiproxy rate, 1 KB = 1000 B).")


# Fields are ordered base-first in reverse MRO: kind keys, then at/for/repeat/every, then the
# kind's parameters (the order of the drill-file reference and of ``to_yaml``).
class FaultSpec(_FaultParams, _FaultWhen, _FaultKind):
    """One fault: exactly one kind key naming its target, when, for how long, how often."""

    @model_validator(mode="after")
    def _check_repeat(self) -> FaultSpec:
        if self.repeat > 1 and self.every is None:
            raise invalid("every", f"repeat is {self.repeat}: every (the period) is required")
        if self.repeat == 1 and self.every is not None:
            raise invalid("every", "every applies only when repeat > 1")
        if self.every is not None and self.every <= self.for_:
            raise invalid("every", f"every ({format_duration(self.every)}) must be longer than "
                                   f"for ({format_duration(self.for_)}): windows would overlap")
        return self

    def windows(self) -> tuple[FaultWindow, ...]:
        """The concrete windows: ``repeat`` of them, ``every`` apart, each ``for`` long."""
        period = self.every or 0.0
        return tuple(
            FaultWindow(on=self.at + i * period, off=self.at + i * period + self.for_,
                        repeat_index=i)
            for i in range(self.repeat)
        )

    def describe(self) -> str:
        """One line for logs and reports, e.g. ``power_down dc-east at 10s for 20s``."""
        text = (f"{self.kind} {self.target} at {format_duration(self.at)} "
                f"for {format_duration(self.for_)}")
        if self.repeat > 1 and self.every is not None:
            text += f" x{self.repeat} every {format_duration(self.every)}"
        return text

    def overlaps(self, other: FaultSpec) -> bool:
        """True if any window of this fault shares an instant with any window of ``other``."""
        return first_overlap([*((0, w) for w in self.windows()),
                              *((1, w) for w in other.windows())]) is not None


class FaultTemplate(_FaultParams, _FaultKind):
    """A fault the nemesis may pick: a kind key and its parameters, no time (drawn per round)."""

    @model_validator(mode="before")
    @classmethod
    def _no_timing(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in _TIMING:
                if key in data:
                    raise invalid(key, f"a nemesis fault takes no {key}: the schedule draws "
                                       f"when each fault starts and how long it lasts (see "
                                       f"nemesis start, interval, duration)")
        return data

    def at(self, start: float, length: float) -> FaultSpec:
        """This fault starting at ``start`` for ``length`` seconds, one window."""
        data = self.model_dump(by_alias=True, exclude_none=True)
        return FaultSpec.model_validate({**data, "at": start, "for": length})

    def describe(self) -> str:
        """``latency api->store-east (ms 200, jitter 0)``: the kind, target and parameters."""
        params = ", ".join(f"{k} {v}" for k, v in self.params.items())
        return f"{self.kind} {self.target}" + (f" ({params})" if params else "")
