"""Exposure: what a drill put at risk around each fault (DESIGN.md "Measurements").

A data objective (no lost acked writes, exact counters) proves something only if the drill put
data in danger: a fault injected while nothing was being written passes every data check
without testing anything. This module measures that danger, per fault, from the history.

Writes are operations with ``f`` in {write, incr}. An *attempt* is one invoke/completion
pair (`drills.checks.history.completions`); a write's *outcome* merges its attempts by op id
(`by_id`), so its acknowledgement time is the time of its first ``ok``. For a fault with
``t_f`` = ``injected_at``, ``t_r`` = ``reverted_at`` (else the ``end`` of the record, else
``t_f``; never before ``t_f``) and ``w`` = ``window_s``, as sets of op ids:

- ``acked_before``: writes whose outcome is ``ok`` with acknowledgement time in
  ``[t_f - w, t_f)``: acknowledged shortly before the fault, when they could still be
  un-replicated or un-fsync'd.
- ``in_flight``: writes with an attempt invoked before ``t_f`` that completed at or after
  ``t_f`` or never completed (its fate was unknown at the instant). Attempts whose invoke
  entry is missing are not judged (when they started is unknown).
- ``acked_during``: writes whose outcome is ``ok`` with acknowledgement time in
  ``[t_f, t_r + w)``: acknowledged during the failover and the failback.
- ``retried``: writes with two or more attempts (invokes), or an attempt numbered above 1
  (``Op.attempt``), any attempt of which was invoked in ``[t_f - w, t_r + w)``.
- ``degraded_reads``: ids of successful reads (``f="read"``, ``ok``) answered as degraded
  (``degraded`` True) and completed in ``[t_f, t_r + w)``.
- ``at_risk = acked_before | in_flight | acked_during``, split into key writes
  (``f="write"``) and increments.

The totals of a drill are unions of ids over its faults, so overlapping faults do not count a
write twice. `check_exposure` measures only unless given ``min_writes_at_risk``; then it passes
iff at least that many writes were at risk, and is *inconclusive* (False) otherwise: too
little exposure never passes silently. With no fault nothing was at risk.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from drills.checks.digest import HistoryDigest, as_digest
from drills.checks.findings import at, bounded
from drills.checks.history import INCREMENTS, WRITES, Completion, repeated_hashes
from drills.checks.history import merged as merged_outcomes
from drills.errors import SpecError
from drills.model import CheckResult, FaultRecord, Op


@dataclass(frozen=True, slots=True)
class FaultExposure:
    """What one fault put at risk (module docstring); every field but the times is op ids.

    ``start`` is ``t_f``, ``end`` is ``t_r`` as used (``reverted_at``, else the record's end,
    else ``t_f``). ``degraded_reads`` holds read ids (its count is the measure).
    """

    fault: FaultRecord
    start: float
    end: float
    acked_before: frozenset[str]
    in_flight: frozenset[str]
    acked_during: frozenset[str]
    retried: frozenset[str]
    degraded_reads: frozenset[str]
    at_risk: frozenset[str]
    keys_at_risk: frozenset[str]
    increments_at_risk: frozenset[str]


@dataclass(frozen=True, slots=True)
class Exposure:
    """Every fault's exposure, and the unions of their id sets over all faults."""

    faults: tuple[FaultExposure, ...]
    writes_at_risk: frozenset[str]
    keys_at_risk: frozenset[str]
    increments_at_risk: frozenset[str]
    acked_before: frozenset[str]
    in_flight: frozenset[str]
    acked_during: frozenset[str]
    retried: frozenset[str]
    degraded_reads: frozenset[str]


def _within(t: float | None, lo: float, hi: float) -> bool:
    return t is not None and lo <= t < hi


def _retries(attempts: Sequence[Completion]) -> dict[str, list[float]]:
    """Retried write id -> the invoke times of its attempts (single plain attempts left out).

    Only the ids whose hash repeats among the invoked attempts (`repeated_hashes`) and the
    numbered attempts gather their times: a long game day's ~700k single attempts build no
    list and no dict entry each. A hash shared by two ids only adds a candidate, judged as
    any other."""
    numbered = {c.id for c in attempts if c.attempt is not None and c.attempt > 1}
    twice = repeated_hashes(c.id for c in attempts if c.invoked_at is not None)
    invokes: dict[str, list[float]] = {}
    for c in attempts:
        if c.invoked_at is not None and (c.id in numbered or hash(c.id) in twice):
            invokes.setdefault(c.id, []).append(c.invoked_at)
    return {i: ts for i, ts in invokes.items() if len(ts) > 1 or i in numbered}


class _Acks:
    """The acknowledged outcomes sorted by acknowledgement time, to take the ids of those
    acknowledged in a time range by bisection (a fault's window holds a few thousand of a
    long game day's ~700k)."""

    def __init__(self, merged: Iterable[Completion]) -> None:
        acks = [c for c in merged if c.type == "ok" and c.completed_at is not None
                and c.completed_at == c.completed_at]  # a NaN time is in no range
        acks.sort(key=lambda c: cast(float, c.completed_at))
        self._acks = acks
        self._times = [cast(float, c.completed_at) for c in acks]

    def ids_in(self, lo: float, hi: float) -> frozenset[str]:
        """Ids acknowledged in ``[lo, hi)`` (as `_within`)."""
        times = self._times
        return frozenset(c.id for c in
                         self._acks[bisect.bisect_left(times, lo):bisect.bisect_left(times, hi)])


def _one_fault(
    fault: FaultRecord,
    *,
    attempts: Sequence[Completion],
    merged: Iterable[Completion],
    acks: _Acks,
    reads: Sequence[Completion],
    retries: dict[str, list[float]],
    window_s: float,
    end: float | None,
) -> FaultExposure:
    t_f = fault.injected_at
    t_r = fault.reverted_at if fault.reverted_at is not None else end
    t_r = t_f if t_r is None else max(t_r, t_f)
    before = acks.ids_in(t_f - window_s, t_f)
    during = acks.ids_in(t_f, t_r + window_s)
    flight = frozenset(
        c.id for c in attempts
        if c.invoked_at is not None and c.invoked_at < t_f
        and (c.completed_at is None or c.completed_at >= t_f)
    )
    retried = frozenset(
        i for i, ts in retries.items()
        if any(_within(t, t_f - window_s, t_r + window_s) for t in ts)
    )
    degraded = frozenset(c.id for c in reads if _within(c.completed_at, t_f, t_r + window_s))
    risk = before | flight | during
    kind = {c.id: c.f for c in merged if c.id in risk}
    return FaultExposure(
        fault=fault, start=t_f, end=t_r, acked_before=before, in_flight=flight,
        acked_during=during, retried=retried, degraded_reads=degraded, at_risk=risk,
        keys_at_risk=frozenset(i for i in risk if kind[i] == "write"),
        increments_at_risk=frozenset(i for i in risk if kind[i] in INCREMENTS),
    )


def _union(sets: Iterable[frozenset[str]]) -> frozenset[str]:
    return frozenset().union(*sets)


def measure_exposure(
    history: Iterable[Op] | HistoryDigest,
    *,
    faults: Sequence[FaultRecord],
    window_s: float,
    end: float | None = None,
) -> Exposure:
    """Measure every fault's exposure (module docstring), in order of injection.

    ``end`` stands for ``t_r`` of a fault never reverted (usually the end of the load).
    Raises `SpecError` (field ``window_s``) for a negative or non-finite window.
    """
    if not (math.isfinite(window_s) and window_s >= 0):
        raise SpecError(f"must be a number of seconds >= 0, got {window_s!r}", field="window_s")
    everything = as_digest(history).attempts
    attempts = [c for c in everything if c.f in WRITES]
    merged = list(merged_outcomes(attempts))
    acks = _Acks(merged)
    reads = [c for c in everything if c.f == "read" and c.type == "ok" and c.degraded is True]
    retries = _retries(attempts)
    per = tuple(
        _one_fault(f, attempts=attempts, merged=merged, acks=acks, reads=reads,
                   retries=retries, window_s=window_s, end=end)
        for f in sorted(faults, key=lambda f: (f.injected_at, f.id))
    )
    return Exposure(
        faults=per,
        writes_at_risk=_union(p.at_risk for p in per),
        keys_at_risk=_union(p.keys_at_risk for p in per),
        increments_at_risk=_union(p.increments_at_risk for p in per),
        acked_before=_union(p.acked_before for p in per),
        in_flight=_union(p.in_flight for p in per),
        acked_during=_union(p.acked_during for p in per),
        retried=_union(p.retried for p in per),
        degraded_reads=_union(p.degraded_reads for p in per),
    )


def _fault_line(p: FaultExposure) -> str:
    f = p.fault
    if f.reverted_at is not None:
        until = f"reverted at {at(f.reverted_at)}"
    else:
        until = "never reverted" + ("" if p.end == p.start else f", measured to {at(p.end)}")
    return (f"fault {f.id} ({f.kind} on {f.target}) injected at {at(p.start)}, {until}: "
            f"{len(p.acked_before)} acked before, {len(p.in_flight)} in flight, "
            f"{len(p.acked_during)} acked during, {len(p.retried)} retried, "
            f"{len(p.degraded_reads)} degraded reads: {len(p.at_risk)} writes at risk "
            f"({len(p.keys_at_risk)} key writes, {len(p.increments_at_risk)} increments)")


def _per_fault(p: FaultExposure) -> dict[str, object]:
    return {"fault": p.fault.id, "kind": p.fault.kind, "target": p.fault.target,
            "acked_before": len(p.acked_before), "in_flight": len(p.in_flight),
            "acked_during": len(p.acked_during), "retried": len(p.retried),
            "degraded_reads": len(p.degraded_reads), "writes_at_risk": len(p.at_risk)}


def check_exposure(
    history: Iterable[Op] | HistoryDigest,
    *,
    faults: Sequence[FaultRecord],
    window_s: float,
    end: float | None = None,
    min_writes_at_risk: int | None = None,
) -> CheckResult:
    """Measure exposure (`measure_exposure`) and judge it against ``min_writes_at_risk``.

    Passed is None when no minimum is given (measured only), else True iff
    ``writes_at_risk >= min_writes_at_risk``, else False with an ``inconclusive:`` summary.
    Metrics: ``writes_at_risk``, ``keys_at_risk``, ``increments_at_risk``,
    ``acked_before``, ``in_flight``, ``acked_during``, ``retried``, ``degraded_reads`` (counts
    of the unions over faults), ``min_writes_at_risk``, and ``per_fault``: one dict per fault
    (``fault``, ``kind``, ``target``, the five counts, ``writes_at_risk``). Findings: one line
    per fault. Raises `SpecError` as `measure_exposure` does.
    """
    e = measure_exposure(history, faults=faults, window_s=window_s, end=end)
    n = len(e.writes_at_risk)
    if not e.faults:
        detail = "no fault injected"
    else:
        detail = (f"{len(e.keys_at_risk)} key writes, {len(e.increments_at_risk)} increments "
                  f"over {len(e.faults)} faults: {len(e.acked_before)} acked before, "
                  f"{len(e.in_flight)} in flight, {len(e.acked_during)} acked during; "
                  f"{len(e.retried)} retried, {len(e.degraded_reads)} degraded reads")
    measured = f"{n} writes at risk ({detail})"
    if min_writes_at_risk is None:
        passed, summary = None, measured
    elif n >= min_writes_at_risk:
        passed, summary = True, f"{measured}, at least {min_writes_at_risk} needed"
    else:
        passed = False
        summary = (f"inconclusive: only {n} writes at risk, {min_writes_at_risk} needed "
                   f"({detail})")
    return CheckResult(
        name="exposure",
        passed=passed,
        summary=summary,
        metrics={"writes_at_risk": n, "keys_at_risk": len(e.keys_at_risk),
                 "increments_at_risk": len(e.increments_at_risk),
                 "acked_before": len(e.acked_before), "in_flight": len(e.in_flight),
                 "acked_during": len(e.acked_during), "retried": len(e.retried),
                 "degraded_reads": len(e.degraded_reads),
                 "min_writes_at_risk": min_writes_at_risk,
                 "per_fault": [_per_fault(p) for p in e.faults]},
        findings=bounded(_fault_line(p) for p in e.faults),
    )
