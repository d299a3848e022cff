"""The timeline: baseline, fixed faults, a seeded nemesis schedule, settle, quiesce.

`Timeline.all_faults` is what every consumer schedules and checks: the fixed ``faults`` in
file order, then the faults the `NemesisSpec` generates, in round order. A fault's id is its
index in ``all_faults`` (``faults[i]`` keeps index i; nemesis round r is ``len(faults) + r - 1``).

The nemesis follows Jepsen's nemesis generator: from ``seed`` (drawn at load time when the file
has none, and kept in the model so that ``to_yaml`` and the journal record it), each round picks
one fault template, a duration and a pause uniformly, in whole milliseconds; round 1 starts at
``start`` and each next round starts when the previous fault ended plus its pause. Expansion
uses only `random.Random(seed).random()`, the one part of `random` whose sequence Python
guarantees across versions: the same seed and file always give the same faults.
"""

from __future__ import annotations

import math
import random
import secrets
from collections import defaultdict
from typing import Any

from pydantic import PrivateAttr, field_validator, model_validator

from drills.duration import Duration, PositiveDuration, format_duration
from drills.spec._base import SpecModel, invalid
from drills.spec._base import doc_field as _f
from drills.spec.faults import FaultSpec, FaultTemplate, FaultWindow, first_overlap

MAX_ROUNDS = 200
MAX_SEED = 2**63 - 1
MAX_SPAN = 3600.0  # the longest nemesis fault or pause, seconds


def draw_seed() -> int:
    """A fresh nemesis seed (nine digits: short enough to type into ``--set``)."""
    return secrets.randbelow(10**9)


def _ms_up(seconds: float) -> int:
    """The smallest whole number of milliseconds that is >= ``seconds``."""
    ms = math.ceil(seconds * 1000)
    while ms / 1000 < seconds:
        ms += 1
    while ms > 0 and (ms - 1) / 1000 >= seconds:
        ms -= 1
    return ms


def _ms_range(bounds: tuple[float, float]) -> tuple[int, int]:
    """[min, max] as whole milliseconds inside it (min rounded up; at least min)."""
    low = _ms_up(bounds[0])
    high = _ms_up(bounds[1])
    if high / 1000 > bounds[1]:
        high -= 1
    return low, max(low, high)


def _pick(rng: random.Random, low: int, high: int) -> int:
    """A whole number in [low, high], uniformly, from one ``rng.random()`` (version-stable,
    unlike ``randint``)."""
    return min(high, low + int(rng.random() * (high - low + 1)))


class NemesisSpec(SpecModel):
    """A seeded random fault schedule: rounds of one fault each, never overlapping each other."""

    seed: int = _f(typ="0 <= int <= 2^63-1", strict=True, ge=0, le=MAX_SEED,
                   default_factory=draw_seed, doc="Seeds the schedule: the same seed gives the "
                   "same faults. Left out, one is drawn at load time and recorded (to_yaml, "
                   "the journal), so a re-run with it replays exactly.")
    start: Duration | None = _f(None, typ="duration", doc="When round 1 starts (default: the "
                                "end of the baseline); must be >= baseline.")
    rounds: int = _f(typ=f"1 <= int <= {MAX_ROUNDS}", strict=True, ge=1, le=MAX_ROUNDS,
                     doc="How many faults to inject, one per round.")
    interval: tuple[Duration, Duration] = _f(
        typ="[min, max] durations", doc="Pause between the end of one round's fault and the "
        "start of the next, drawn uniformly (whole ms); one duration means [d, d]; max <= 1h.")
    duration: tuple[PositiveDuration, PositiveDuration] = _f(
        typ="[min, max] durations > 0", doc="How long each fault lasts, drawn uniformly "
        "(whole ms); one duration means [d, d]; max <= 1h.")
    faults: tuple[FaultTemplate, ...] = _f(
        typ="list of fault templates", doc="What a round may inject, picked "
        "uniformly: a fault without at/for/repeat/every, e.g. {power_down: dc-west}, "
        "{partition: store-east->store-west, mode: blackhole}, {latency: api->store-east, "
        "ms: 200} (below).")

    @field_validator("interval", "duration", mode="before")
    @classmethod
    def _one_is_a_pair(cls, value: Any) -> Any:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return [value, value]
        if isinstance(value, list | tuple) and len(value) != 2:
            raise invalid("", f"expected [min, max] (two durations) or one duration, got a "
                              f"list of {len(value)}")
        return value

    @model_validator(mode="after")
    def _ranges(self) -> NemesisSpec:
        if not self.faults:
            raise invalid("faults", "expected at least one fault template, e.g. "
                                    "[{power_down: dc-west}]")
        for name in ("interval", "duration"):
            low, high = getattr(self, name)
            if low > high:
                raise invalid(name, f"expected [min, max] with min <= max, got "
                                    f"[{format_duration(low)}, {format_duration(high)}]")
            if high > MAX_SPAN:
                raise invalid(f"{name}[1]", f"expected at most {format_duration(MAX_SPAN)}, "
                                            f"got {format_duration(high)}")
        return self

    def expand(self, start: float) -> tuple[FaultSpec, ...]:
        """The faults of every round, round 1 at ``start`` (rounded up to a whole ms).

        Per round, three draws in this order: the template, the fault's length, the pause after
        it (so adding rounds only appends faults)."""
        rng = random.Random(self.seed)
        durations, pauses = _ms_range(self.duration), _ms_range(self.interval)
        t = _ms_up(start)
        out: list[FaultSpec] = []
        for _ in range(self.rounds):
            template = self.faults[_pick(rng, 0, len(self.faults) - 1)]
            length = _pick(rng, *durations)
            pause = _pick(rng, *pauses)
            out.append(template.at(t / 1000, length / 1000))
            t += length + pause
        return tuple(out)


class Timeline(SpecModel):
    """Phases, offsets from load start: baseline, faults, settle; then quiesce (load off)."""

    baseline: PositiveDuration = _f(typ="duration > 0", doc="Steady load before any fault; the "
                                   "objectives must already hold.")
    faults: tuple[FaultSpec, ...] = _f((), typ="list of faults", doc="The fixed faults (below).")
    nemesis: NemesisSpec | None = _f(None, typ="mapping", doc="A seeded random schedule of "
                                     "more faults, after the fixed ones (below).")
    settle: PositiveDuration = _f(20.0, typ="duration > 0", doc="Load continues after the last "
                                 "fault window ends; recovery is measured here.")
    quiesce: PositiveDuration = _f(15.0, typ="duration > 0", doc="Load off: bounded wait for the "
                                  "replicas to converge before the final read.")

    _generated: tuple[FaultSpec, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _schedule(self) -> Timeline:
        for i, fault in enumerate(self.faults):
            if fault.at < self.baseline:
                raise invalid(f"faults[{i}].at", f"a fault must start at or after the baseline "
                              f"({format_duration(self.baseline)}), got "
                              f"{format_duration(fault.at)}")
        if self.nemesis is not None:
            start = self.baseline if self.nemesis.start is None else self.nemesis.start
            if start < self.baseline:
                raise invalid("nemesis.start", f"the nemesis must start at or after the "
                              f"baseline ({format_duration(self.baseline)}), got "
                              f"{format_duration(start)}")
            self._generated = self.nemesis.expand(start)
        self._same_kind_apart()
        return self

    def _same_kind_apart(self) -> None:
        """Two faults of one kind on one target must not overlap (one sweep per target)."""
        groups: dict[tuple[str, str], list[tuple[int, FaultWindow]]] = defaultdict(list)
        for i, fault in enumerate(self.all_faults):
            groups[fault.kind, fault.target] += [(i, w) for w in fault.windows()]
        for (kind, target), windows in groups.items():
            found = first_overlap(windows)
            if found is not None:
                later, earlier, _ = found
                raise invalid(self.fault_path(later), f"{self.describe_fault(later)} overlaps "
                              f"{self.describe_fault(earlier)}: two {kind} faults on {target} "
                              f"at once")

    @property
    def all_faults(self) -> tuple[FaultSpec, ...]:
        """The fixed ``faults``, then the nemesis's, in that order; ids are indices here."""
        return self.faults + self._generated

    def fault_ref(self, index: int) -> str:
        """How messages name fault ``index``: ``faults[2]`` or ``fault 5 (nemesis round 3)``."""
        if index < len(self.faults):
            return f"faults[{index}]"
        return f"fault {index} (nemesis round {index - len(self.faults) + 1})"

    def fault_path(self, index: int) -> str:
        """The field (relative to the timeline) that fault ``index`` comes from."""
        return f"faults[{index}]" if index < len(self.faults) else "nemesis"

    def describe_fault(self, index: int) -> str:
        """``faults[1] (crash store-east at 8s for 1s)`` or ``fault 5 (nemesis round 3: crash
        store-east at 12.5s for 2s)``."""
        what = self.all_faults[index].describe()
        if index < len(self.faults):
            return f"faults[{index}] ({what})"
        return f"fault {index} (nemesis round {index - len(self.faults) + 1}: {what})"

    @property
    def fault_end(self) -> float:
        """When the last fault window ends (the baseline's end if there are no faults)."""
        return max([self.baseline, *(w.off for f in self.all_faults for w in f.windows())])

    @property
    def load_duration(self) -> float:
        """How long the load runs: until the last fault window ends, plus settle."""
        return self.fault_end + self.settle

    def windows(self) -> tuple[tuple[int, FaultWindow], ...]:
        """Every window of every fault as (index in `all_faults`, window), sorted by start."""
        pairs = [(i, w) for i, f in enumerate(self.all_faults) for w in f.windows()]
        return tuple(sorted(pairs, key=lambda p: (p[1].on, p[0])))

    def injection_offsets(self, at_revert: bool = False) -> tuple[float, ...]:
        """When the load should burst: every window's start (and end, with ``at_revert``),
        sorted, each offset once."""
        offsets = {w.on for _, w in self.windows()}
        if at_revert:
            offsets |= {w.off for _, w in self.windows()}
        return tuple(sorted(offsets))
