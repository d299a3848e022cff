"""Faults: the kinds a drill may inject, what each targets and takes, one fault's windows.

A `FaultSpec` is one entry of a drill's ``timeline.faults``: exactly one kind key naming its
target (a zone, a node or a link, see `TARGET_TYPE`), when it starts (``at``, seconds from load
start), how long it lasts (``for``) and how often it repeats (``repeat`` windows, ``every``
apart). Its `FaultWindow`s are the concrete [on, off) intervals the schedule acts on.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    {"partition": ("mode",), "latency": ("ms", "jitter"), "bandwidth": ("kbps",)}
)


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """One concrete on/off window of a fault, offsets in seconds from load start."""

    on: float
    off: float
    repeat_index: int = 0

    def overlaps(self, other: FaultWindow) -> bool:
        """True if the two half-open windows [on, off) share any instant."""
        return self.on < other.off and other.on < self.off


class FaultSpec(SpecModel):
    """One fault: exactly one kind key naming its target, when, for how long, how often."""

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
    at: Duration = _f(typ="duration", doc="Offset from load start; must be >= baseline.")
    for_: PositiveDuration = _f(typ="duration > 0", alias="for", doc="How long the fault lasts.")
    repeat: int = _f(1, typ="int >= 1", strict=True, ge=1, doc="Number of windows (flapping).")
    every: PositiveDuration | None = _f(None, typ="duration > 0", doc="Period between window "
                                       "starts; required when repeat > 1, must be > for.")
    mode: Literal["down", "blackhole", "reset"] | None = _f(
        None, typ="down|blackhole|reset", doc="partition only (default down): down = "
        "connections refused, blackhole = data silently dropped (connections hang), reset = "
        "connections reset (TCP RST).")
    ms: int | None = _f(None, typ="int >= 1", strict=True, ge=1,
                       doc="latency only (required): added delay in ms.")
    jitter: int | None = _f(None, typ="int >= 0", strict=True, ge=0,
                           doc="latency only (default 0): +/- ms of random jitter, <= ms.")
    kbps: int | None = _f(None, typ="int >= 1", strict=True, ge=1, doc="bandwidth only "
                         "(required): limit in kilobytes/s (Toxiproxy rate, 1 KB = 1000 B).")

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if data.get("partition") is not None and data.get("mode") is None:
                data = {**data, "mode": "down"}
            if data.get("latency") is not None and data.get("jitter") is None:
                data = {**data, "jitter": 0}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> FaultSpec:
        kinds = [k for k in FAULT_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            got = "none" if not kinds else " and ".join(kinds)
            raise invalid("", f"a fault needs exactly one kind key, got {got}; kinds: "
                              f"{', '.join(FAULT_KINDS)}")
        kind = kinds[0]
        for param in ("mode", "ms", "jitter", "kbps"):
            if getattr(self, param) is not None and param not in FAULT_PARAMS.get(kind, ()):
                takes = ", ".join(FAULT_PARAMS.get(kind, ())) or "no parameters"
                raise invalid(param, f"{param!r} does not apply to a {kind} fault "
                                     f"({kind} takes: {takes})")
        if kind == "latency" and self.ms is None:
            raise invalid("ms", "a latency fault needs ms (the added delay, int >= 1)")
        if kind == "latency" and self.ms is not None and (self.jitter or 0) > self.ms:
            raise invalid("jitter", f"jitter ({self.jitter}) must not exceed ms ({self.ms})")
        if kind == "bandwidth" and self.kbps is None:
            raise invalid("kbps", "a bandwidth fault needs kbps (kilobytes/s, int >= 1)")
        self._check_repeat()
        return self

    def _check_repeat(self) -> None:
        if self.repeat > 1 and self.every is None:
            raise invalid("every", f"repeat is {self.repeat}: every (the period) is required")
        if self.repeat == 1 and self.every is not None:
            raise invalid("every", "every applies only when repeat > 1")
        if self.every is not None and self.every <= self.for_:
            raise invalid("every", f"every ({format_duration(self.every)}) must be longer than "
                                   f"for ({format_duration(self.for_)}): windows would overlap")

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
        """The kind's own parameters: ``mode`` (partition), ``ms``/``jitter`` (latency),
        ``kbps`` (bandwidth); empty for node and zone faults."""
        names = FAULT_PARAMS.get(self.kind, ())
        return MappingProxyType({p: getattr(self, p) for p in names})

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
        return any(a.overlaps(b) for a in self.windows() for b in other.windows())
