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
of that counter for that video had been acknowledged before the read was invoked. A stats read
reports one video (``video``, ``views``, ``likes``); a feed or search read reports each video it
showed (``items``), and each item is judged like a stats read of that video invoked when the
feed read was. An increment counts as acknowledged from its first ``ok`` (attempts merged by
op id). Reads with no invoke entry are skipped (their start is unknown), as are counters the
read did not report. Reads answered as degraded (``degraded`` True: by a replica, allowed to
be stale) are judged unless ``include_degraded`` is False, and counted apart either way.
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
    """A read that returned 0 for a counter with ``acked_before`` increments acked earlier.

    ``degraded`` is the read's own flag (None = unknown); ``item`` is True when the 0 was one
    item of a feed or search read rather than a stats read.
    """

    read_id: str
    video: str
    counter: Counter
    invoked_at: float
    acked_before: int
    store: str | None
    degraded: bool | None = None
    item: bool = False


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


def _seen(c: Completion) -> list[tuple[str, int | None, int | None, bool]]:
    """What one ok read reported: (video, views, likes, from an item) per video shown."""
    out: list[tuple[str, int | None, int | None, bool]] = []
    if c.video is not None:
        out.append((c.video, c.views, c.likes, False))
    out.extend((video, views, likes, True) for video, views, likes in c.items or ())
    return out


def _judged_reads(ops: Iterable[Completion], *, include_degraded: bool) -> list[Completion]:
    """The ok reads with a known invoke time that report something, minus skipped degraded."""
    return [c for c in ops
            if c.f == "read" and c.type == "ok" and c.invoked_at is not None
            and (c.video is not None or c.items is not None)
            and (include_degraded or c.degraded is not True)]


def _ack_times(ops: Iterable[Completion]) -> dict[tuple[str, Counter], list[float]]:
    """(video, counter) -> sorted first-ack times of its increments (attempts merged by id)."""
    acks: dict[tuple[str, Counter], list[float]] = {}
    for c in by_id(ops).values():
        for counter, f in INCREMENT_OF.items():
            if c.f == f and c.type == "ok" and c.video is not None and c.completed_at is not None:
                acks.setdefault((c.video, counter), []).append(c.completed_at)
    for times in acks.values():
        times.sort()
    return acks


def zero_reads(history: Iterable[Op], *, include_degraded: bool = True) -> tuple[ZeroRead, ...]:
    """Every read (or feed/search item) that saw 0 for a counter with increments acked before
    its invoke (module docstring), earliest first; one per (read, video, counter)."""
    ops = completions(history)
    acks = _ack_times(ops)
    found: dict[tuple[str, float, str, Counter], ZeroRead] = {}
    for c in _judged_reads(ops, include_degraded=include_degraded):
        start = c.invoked_at or 0.0
        for video, views, likes, item in _seen(c):
            shown: dict[Counter, int | None] = {"views": views, "likes": likes}
            for counter, seen in shown.items():
                before = bisect.bisect_left(acks.get((video, counter), []), start)
                key = (c.id, start, video, counter)
                if seen == 0 and before > 0 and key not in found:
                    found[key] = ZeroRead(c.id, video, counter, start, before, c.store,
                                          c.degraded, item)
    return tuple(sorted(found.values(), key=lambda z: (z.invoked_at, z.read_id, z.video,
                                                       z.counter)))


def check_zero_reads(history: Iterable[Op], *, include_degraded: bool = True) -> CheckResult:
    """Flag zero reads (module docstring); ``include_degraded=False`` leaves degraded reads
    unjudged (``zero_reads: fresh`` in a drill file).

    Passed iff there is none. Metrics: ``zero_reads`` (how many (read, video, counter) saw
    0), ``zero_read_videos``, ``zero_reads_degraded`` (how many of those came from degraded
    reads), ``reads_judged`` (ok reads judged), ``reads_skipped_degraded``. Findings give each
    one (read id, video, counter, time, store, degraded or not).
    """
    history = list(history)
    ops = completions(history)
    judged = _judged_reads(ops, include_degraded=include_degraded)
    skipped = len(_judged_reads(ops, include_degraded=True)) - len(judged)
    found = zero_reads(history, include_degraded=include_degraded)
    degraded = sum(1 for z in found if z.degraded is True)
    note = f" ({skipped} degraded reads not judged)" if skipped else ""
    return CheckResult(
        name="zero_reads",
        passed=not found,
        summary=(f"no read saw a counter at 0 after increments were acked ({len(judged)} reads "
                 f"judged){note}" if not found else
                 f"{len(found)} reads saw a counter at 0 after increments were acked "
                 f"({degraded} of them degraded){note}"),
        metrics={"zero_reads": len(found), "zero_read_videos": len({z.video for z in found}),
                 "zero_reads_degraded": degraded, "reads_judged": len(judged),
                 "reads_skipped_degraded": skipped},
        findings=bounded(
            f"read {z.read_id}{' (feed/search item)' if z.item else ''} of {z.video} invoked at "
            f"{at(z.invoked_at)} saw {z.counter}=0 after {z.acked_before} acked increments "
            f"(store {z.store or '?'}{', degraded' if z.degraded else ''})" for z in found
        ),
    )
