"""Counters: bounds on every counter's final value, and reads that saw zero too late.

An increment is one op id (``f="incr"``, counter ``counter`` of key ``key``) merged over its
attempts (see `drills.checks.history`): ``ok`` = acked, ``info`` = indeterminate, ``fail`` =
not applied. Counter names are the system's own (any string). For each key and counter, with
``base`` its value before the load:

    base + acked  <=  final value  <=  base + acked + indeterminate

``base`` is 0 for keys the load created; taken from ``initial`` (a snapshot read before the
load) when given; unknown for ``preexisting`` keys absent from ``initial``, which then get
the lower bound ``acked`` only. Counters checked: every (key, counter) with increments in the
history, every (key, counter) of the final read, and every key of the final read with every
counter name seen in the run (increments, final read, initial read); a missing counter reads
as 0. Below the lower bound = lost increments; above the upper bound = double counting.

Zero reads: a successful read (``f="read"``, ``ok``) that saw counter ``c`` of key ``k`` at 0
while increments of ``c`` of ``k`` had been acknowledged before the read was invoked. A read
of one key reports ``key`` and ``counts``; a list read reports each key it showed (``items``),
and each item is judged as a read of that key invoked when the list read was. An increment
counts as acknowledged from its first ``ok`` (attempts merged by op id). Reads with no invoke
entry are skipped (their start is unknown), as are counters the read did not report. Reads
answered as degraded (``degraded`` True: by a replica, allowed to be stale) are judged unless
``include_degraded`` is False, and counted apart either way.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import msgspec

from drills.checks.digest import HistoryDigest, as_digest
from drills.checks.findings import at, bounded
from drills.checks.history import Completion
from drills.model import CheckResult, FinalRead, Op, StoreSnapshot


class CounterBound(msgspec.Struct, frozen=True, gc=False):
    """One counter of one key: its final value against its bounds.

    ``high`` is None when no upper bound is known (a preexisting key, no initial read). A
    gc-less `msgspec.Struct` (as `Completion`): a long game day has ~300k of them.
    """

    key: str
    counter: str
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
    """A read that returned 0 for counter ``counter`` of ``key`` with ``acked_before``
    increments acked earlier.

    ``degraded`` is the read's own flag (None = unknown); ``item`` is True when the 0 was one
    item of a list read rather than a read of one key.
    """

    read_id: str
    key: str
    counter: str
    invoked_at: float
    acked_before: int
    store: str | None
    degraded: bool | None = None
    item: bool = False


def _tallies(ops: Iterable[Completion]
             ) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """(key, counter) -> acked increments, for every pair with an increment not failed, and
    (key, counter) -> indeterminate increments, for the pairs that have any (ops merged by
    id). Two mappings of plain counts, not one of pairs: a long game day tallies ~300k
    counters, nearly all without an indeterminate increment."""
    acked: dict[tuple[str, str], int] = {}
    indet: dict[tuple[str, str], int] = {}
    for c in ops:
        if c.f != "incr" or c.key is None or c.counter is None or c.type == "fail":
            continue
        pair = (c.key, c.counter)
        if c.type == "ok":
            acked[pair] = acked.get(pair, 0) + 1
        else:
            acked.setdefault(pair, 0)
            indet[pair] = indet.get(pair, 0) + 1
    return acked, indet


def _pairs(snap: StoreSnapshot) -> Iterator[tuple[str, str]]:
    return ((k, c) for k, cs in snap.counters.items() for c in cs)


def counter_bounds(
    history: Iterable[Op] | HistoryDigest,
    *,
    final: StoreSnapshot,
    preexisting: frozenset[str] = frozenset(),
    initial: StoreSnapshot | None = None,
) -> tuple[CounterBound, ...]:
    """Bounds for every (key, counter) to check (module docstring), ordered by key, counter.
    Computed once per digest and arguments (`HistoryDigest.memo`)."""
    digest = as_digest(history)
    return digest.memo("counter_bounds",
                       lambda: _bounds(digest, final=final, preexisting=preexisting,
                                       initial=initial),
                       same=(final, initial), equal=preexisting)


def _bounds(digest: HistoryDigest, *, final: StoreSnapshot, preexisting: frozenset[str],
            initial: StoreSnapshot | None) -> tuple[CounterBound, ...]:
    tallies, indeterminate = _tallies(digest.outcomes())
    names = {c for _, c in tallies} | final.counter_names() | (
        set() if initial is None else initial.counter_names())
    # every counter name on every key that has counters anywhere (a key written but never
    # counted - a Redis string beside the counters - has none to check)
    counted = {k for k, _ in tallies}
    counted.update(final.counters)
    if initial is not None:
        counted.update(initial.counters)
    # one set, grown in place: on a long game day each of its parts is ~300k pairs
    wanted = set(tallies)
    wanted.update(_pairs(final))
    wanted.update((k, c) for k in counted for c in names)
    known_before = set() if initial is None else set(initial.keys) | set(initial.counters)
    out: list[CounterBound] = []
    for key, counter in sorted(wanted):
        acked, indet = tallies.get((key, counter), 0), indeterminate.get((key, counter), 0)
        base = initial.count(key, counter) if initial is not None and key in known_before else 0
        unknown_base = key in preexisting and key not in known_before
        out.append(CounterBound(
            key=key, counter=counter, value=final.count(key, counter),
            low=base + acked, high=None if unknown_base else base + acked + indet,
            acked=acked, indeterminate=indet,
        ))
    return tuple(out)


def _bound_line(b: CounterBound) -> str:
    high = "inf" if b.high is None else str(b.high)
    what = (f"{b.low - b.value} lost increments" if b.value < b.low
            else f"{b.value - (b.high or 0)} counted twice")
    return (f"counter {b.counter} of {b.key}: final {b.value} outside [{b.low}, {high}] "
            f"({b.acked} acked, {b.indeterminate} indeterminate): {what}")


def check_counters(
    history: Iterable[Op] | HistoryDigest,
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
                 f"{bad} of {len(bounds)} counters out of bounds ({len(below)} below: "
                 f"{sum(b.low - b.value for b in below)} increments lost; {len(above)} above: "
                 f"{sum(b.value - (b.high or 0) for b in above)} counted twice)")
        + f" (final read from {snap.name})",
        metrics={"counters_out_of_bounds": bad, "counters_below": len(below),
                 "counters_above": len(above),
                 "lost_increments": sum(b.low - b.value for b in below),
                 "extra_increments": sum(b.value - (b.high or 0) for b in above),
                 "counters_checked": len(bounds)},
        findings=bounded(_bound_line(b) for b in bounds if not b.within),
    )


def _seen(c: Completion) -> list[tuple[str, Mapping[str, int], bool]]:
    """What one ok read reported: (key, counts, from an item) per key shown."""
    out: list[tuple[str, Mapping[str, int], bool]] = []
    if c.key is not None and c.counts is not None:
        out.append((c.key, c.counts, False))
    out.extend((key, counts, True) for key, counts in c.items or ())
    return out


def _judged_reads(ops: Iterable[Completion], *, include_degraded: bool) -> list[Completion]:
    """The ok reads with a known invoke time that report something, minus skipped degraded."""
    return [c for c in ops
            if c.f == "read" and c.type == "ok" and c.invoked_at is not None
            and ((c.key is not None and c.counts is not None) or c.items is not None)
            and (include_degraded or c.degraded is not True)]


def _ack_times(merged: Iterable[Completion], wanted: set[tuple[str, str]]
               ) -> dict[tuple[str, str], list[float]]:
    """(key, counter) -> sorted first-ack times of its increments (``merged``: attempts
    merged by id), for the pairs ``wanted`` only (a long game day acks ~300k pairs, and
    only those a read saw at 0 are looked up)."""
    acks: dict[tuple[str, str], list[float]] = {}
    for c in merged:
        if (c.f == "incr" and c.type == "ok" and c.key is not None and c.counter is not None
                and c.completed_at is not None and (c.key, c.counter) in wanted):
            acks.setdefault((c.key, c.counter), []).append(c.completed_at)
    for times in acks.values():
        times.sort()
    return acks


def zero_reads(history: Iterable[Op] | HistoryDigest, *,
               include_degraded: bool = True) -> tuple[ZeroRead, ...]:
    """Every read (or list-read item) that saw 0 for a counter with increments acked before
    its invoke (module docstring), earliest first; one per (read, key, counter)."""
    digest = as_digest(history)
    reads = _judged_reads(digest.attempts, include_degraded=include_degraded)
    zeros = {(key, counter) for c in reads for key, counts, _item in _seen(c)
             for counter, seen in counts.items() if seen == 0}
    acks = _ack_times(digest.outcomes(), zeros) if zeros else {}
    found: dict[tuple[str, float, str, str], ZeroRead] = {}
    for c in reads:
        start = c.invoked_at or 0.0
        for key, counts, item in _seen(c):
            for counter, seen in counts.items():
                if seen != 0:
                    continue
                before = bisect.bisect_left(acks.get((key, counter), []), start)
                slot = (c.id, start, key, counter)
                if before > 0 and slot not in found:
                    found[slot] = ZeroRead(c.id, key, counter, start, before, c.store,
                                           c.degraded, item)
    return tuple(sorted(found.values(), key=lambda z: (z.invoked_at, z.read_id, z.key,
                                                       z.counter)))


def check_zero_reads(history: Iterable[Op] | HistoryDigest, *,
                     include_degraded: bool = True) -> CheckResult:
    """Flag zero reads (module docstring); ``include_degraded=False`` leaves degraded reads
    unjudged (``zero_reads: fresh`` in a drill file).

    Passed iff there is none. Metrics: ``zero_reads`` (how many (read, key, counter) saw 0),
    ``zero_read_keys``, ``zero_reads_degraded`` (how many of those came from degraded reads),
    ``reads_judged`` (ok reads judged), ``reads_skipped_degraded``. Findings give each one
    (read id, key, counter, time, store, degraded or not).
    """
    digest = as_digest(history)
    judged = digest.reads_judged + (digest.reads_judged_degraded if include_degraded else 0)
    skipped = 0 if include_degraded else digest.reads_judged_degraded
    found = zero_reads(digest, include_degraded=include_degraded)
    degraded = sum(1 for z in found if z.degraded is True)
    note = f" ({skipped} degraded reads not judged)" if skipped else ""
    return CheckResult(
        name="zero_reads",
        passed=not found,
        summary=(f"no read saw a counter at 0 after increments were acked ({judged} reads "
                 f"judged){note}" if not found else
                 f"{len(found)} reads saw a counter at 0 after increments were acked "
                 f"({degraded} of them degraded){note}"),
        metrics={"zero_reads": len(found), "zero_read_keys": len({z.key for z in found}),
                 "zero_reads_degraded": degraded, "reads_judged": judged,
                 "reads_skipped_degraded": skipped},
        findings=bounded(
            f"read {z.read_id}{' (list item)' if z.item else ''} of {z.key} invoked at "
            f"{at(z.invoked_at)} saw counter {z.counter} at 0 after {z.acked_before} acked "
            f"increments (store {z.store or '?'}{', degraded' if z.degraded else ''})"
            for z in found
        ),
    )
