"""Counters: bounds on each video's final views/likes, and reads that saw zero too late.

An increment is one op id (``f="view"`` or ``f="like"``) merged over its attempts (see
`drills.checks.history`): ``ok`` = acked, ``info`` = indeterminate, ``fail`` = not applied.
For each video and counter, with ``base`` its value before the load:

    base + acked  <=  final value  <=  base + acked + indeterminate

``base`` is 0 for videos the load created; taken from ``initial`` (a snapshot read before the
load) when given; unknown for ``preexisting`` videos absent from ``initial``, which then get
the lower bound ``acked`` only. Videos checked: every video with increments in the history,
every video of the final read, every key of its counter maps; a missing counter reads as 0.
Below the lower bound = lost increments; above the upper bound = double counting.

Zero reads: a successful read (``f="read"``, ``ok``) that saw a counter at 0 while increments
of that counter for that video had been acknowledged before the read was invoked. Reads with
no invoke entry are skipped (their start is unknown), as are counters the read did not report.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from drills.checks.findings import at, bounded
from drills.checks.history import Completion, by_id, completions
from drills.model import CheckResult, FinalRead, Op, StoreSnapshot

Counter = Literal["views", "likes"]
#: Counter name -> the history ``f`` of one increment of it.
INCREMENT_OF: Mapping[Counter, str] = MappingProxyType({"views": "view", "likes": "like"})


@dataclass(frozen=True, slots=True)
class CounterBound:
    """One counter of one video: its final value against its bounds.

    ``high`` is None when no upper bound is known (a preexisting video, no initial read).
    """

    video: str
    counter: Counter
    value: int
    low: int
    high: int | None
    acked: int
    indeterminate: int

    @property
    def within(self) -> bool:
        """True when ``low <= value <= high`` (no upper check when ``high`` is None)."""
        return self.low <= self.value and (self.high is None or self.value <= self.high)


@dataclass(frozen=True, slots=True)
class ZeroRead:
    """A read that returned 0 for a counter with ``acked_before`` increments acked earlier."""

    read_id: str
    video: str
    counter: Counter
    invoked_at: float
    acked_before: int
    store: str | None


def _tallies(ops: Iterable[Completion], counter: Counter) -> dict[str, tuple[int, int]]:
    """video -> (acked, indeterminate) increments of ``counter`` (ops merged by id)."""
    out: dict[str, tuple[int, int]] = {}
    for c in ops:
        if c.f != INCREMENT_OF[counter] or c.video is None or c.type == "fail":
            continue
        acked, indet = out.get(c.video, (0, 0))
        out[c.video] = (acked + 1, indet) if c.type == "ok" else (acked, indet + 1)
    return out


def counter_bounds(
    history: Iterable[Op],
    *,
    final: StoreSnapshot,
    preexisting: frozenset[str] = frozenset(),
    initial: StoreSnapshot | None = None,
) -> tuple[CounterBound, ...]:
    """Bounds for every (video, counter) to check (module docstring), ordered by video."""
    merged = list(by_id(completions(history)).values())
    out: list[CounterBound] = []
    for counter in ("views", "likes"):
        tallies = _tallies(merged, counter)
        values = getattr(final, counter)
        before = {} if initial is None else getattr(initial, counter)
        known_before = set() if initial is None else set(initial.videos) | set(before)
        for video in sorted(set(tallies) | set(final.videos) | set(values)):
            acked, indet = tallies.get(video, (0, 0))
            base = before.get(video, 0) if video in known_before else 0
            unknown_base = video in preexisting and video not in known_before
            out.append(CounterBound(
                video=video, counter=counter, value=int(values.get(video, 0)),
                low=base + acked, high=None if unknown_base else base + acked + indet,
                acked=acked, indeterminate=indet,
            ))
    return tuple(sorted(out, key=lambda b: (b.video, b.counter)))


def _bound_line(b: CounterBound) -> str:
    high = "inf" if b.high is None else str(b.high)
    what = (f"{b.low - b.value} lost increments" if b.value < b.low
            else f"{b.value - (b.high or 0)} counted twice")
    return (f"{b.counter} of {b.video}: final {b.value} outside [{b.low}, {high}] "
            f"({b.acked} acked, {b.indeterminate} indeterminate): {what}")


def check_counters(
    history: Iterable[Op],
    *,
    final: FinalRead,
    preexisting: frozenset[str] = frozenset(),
    initial: StoreSnapshot | None = None,
) -> CheckResult:
    """The counter bounds check on the authoritative final read (None without one).

    Metrics: ``counters_out_of_bounds``, ``counters_below`` / ``counters_above`` (how many
    counters), ``lost_increments`` / ``extra_increments`` (how many increments),
    ``counters_checked``. Findings: each counter out of bounds with bounds and value.
    """
    snap = final.authoritative
    if snap is None:
        return CheckResult(name="counters", passed=None,
                           summary="no authoritative final read: counters unknown")
    bounds = counter_bounds(history, final=snap, preexisting=preexisting, initial=initial)
    below = [b for b in bounds if b.value < b.low]
    above = [b for b in bounds if b.high is not None and b.value > b.high]
    bad = len(below) + len(above)
    return CheckResult(
        name="counters",
        passed=bad == 0,
        summary=(f"{len(bounds)} counters within bounds" if bad == 0 else
                 f"{bad} of {len(bounds)} counters out of bounds ({len(below)} lost "
                 f"increments, {len(above)} double counted)") + f" (final read from {snap.name})",
        metrics={"counters_out_of_bounds": bad, "counters_below": len(below),
                 "counters_above": len(above),
                 "lost_increments": sum(b.low - b.value for b in below),
                 "extra_increments": sum(b.value - (b.high or 0) for b in above),
                 "counters_checked": len(bounds)},
        findings=bounded(_bound_line(b) for b in bounds if not b.within),
    )


def zero_reads(history: Iterable[Op]) -> tuple[ZeroRead, ...]:
    """Every read that saw 0 for a counter with increments acked before its invoke."""
    ops = completions(history)
    acks: dict[tuple[str, Counter], list[float]] = {}
    for c in by_id(ops).values():
        for counter, f in INCREMENT_OF.items():
            if c.f == f and c.type == "ok" and c.video is not None and c.completed_at is not None:
                acks.setdefault((c.video, counter), []).append(c.completed_at)
    for times in acks.values():
        times.sort()
    found: list[ZeroRead] = []
    for c in ops:
        if c.f != "read" or c.type != "ok" or c.video is None or c.invoked_at is None:
            continue
        for counter in INCREMENT_OF:
            seen = getattr(c, counter)
            before = bisect.bisect_left(acks.get((c.video, counter), []), c.invoked_at)
            if seen == 0 and before > 0:
                found.append(ZeroRead(c.id, c.video, counter, c.invoked_at, before, c.store))
    return tuple(sorted(found, key=lambda z: (z.invoked_at, z.read_id, z.counter)))


def check_zero_reads(history: Iterable[Op]) -> CheckResult:
    """Flag zero reads (module docstring). Metrics: ``zero_reads`` (count), ``zero_read_videos``.

    Passed iff there is none; findings give each one (read id, video, counter, time, store).
    """
    found = zero_reads(history)
    return CheckResult(
        name="zero_reads",
        passed=not found,
        summary="no read saw a counter at 0 after increments were acked" if not found else
        f"{len(found)} reads saw a counter at 0 after increments were acked",
        metrics={"zero_reads": len(found), "zero_read_videos": len({z.video for z in found})},
        findings=bounded(
            f"read {z.read_id} of {z.video} invoked at {at(z.invoked_at)} saw {z.counter}=0 "
            f"after {z.acked_before} acked increments (store {z.store or '?'})" for z in found
        ),
    )
