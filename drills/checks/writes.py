"""Acknowledged writes: the set check (lost / unexpected / recovered uploads) and observed RPO.

Sets, over upload ids (an upload's id is its client-generated video id):

- ``A`` attempted: every upload the history shows (an invoke, or a completion whose invoke
  line was lost: a completion proves an attempt).
- ``K`` acknowledged: uploads whose merged outcome is ``ok`` (see `drills.checks.history`).
- ``R`` the authoritative final read: the primary's snapshot's videos.
- ``lost = K - R``, ``unexpected = R - A - preexisting``, ``recovered = (R & A) - K``.

The set check passes iff ``lost`` and ``unexpected`` are empty; with no authoritative final
read it cannot decide (passed None). ``recovered`` uploads are fine (an indeterminate write
may land); among them, ones the client was told definitely failed (``fail``) are reported as
``failed_but_present`` - evidence that the API's "not applied" answer was wrong - without
failing this check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from drills.checks.findings import at, bounded
from drills.checks.history import Completion, outcomes
from drills.model import CheckResult, FaultRecord, FinalRead, Op, StoreSnapshot


@dataclass(frozen=True, slots=True)
class WriteSets:
    """The sets of the set check, plus each upload's merged outcome for evidence."""

    attempted: frozenset[str]
    acked: frozenset[str]
    final: frozenset[str]
    lost: frozenset[str]
    unexpected: frozenset[str]
    recovered: frozenset[str]
    failed_but_present: frozenset[str]
    uploads: Mapping[str, Completion]


def write_sets(
    history: Iterable[Op], *, final: StoreSnapshot, preexisting: frozenset[str] = frozenset()
) -> WriteSets:
    """Compute A, K, R and the derived sets from a history and one store's snapshot."""
    uploads = {(c.video or c.id): c for c in outcomes(history).values() if c.f == "upload"}
    attempted = frozenset(uploads)
    acked = frozenset(v for v, c in uploads.items() if c.type == "ok")
    found = frozenset(final.videos)
    recovered = (found & attempted) - acked
    return WriteSets(
        attempted=attempted,
        acked=acked,
        final=found,
        lost=acked - found,
        unexpected=found - attempted - preexisting,
        recovered=recovered,
        failed_but_present=frozenset(v for v in recovered if uploads[v].type == "fail"),
        uploads=uploads,
    )


def _ack_order(sets: WriteSets, ids: Iterable[str]) -> list[Completion]:
    """The uploads of ``ids``, earliest acknowledgement first."""
    return sorted((sets.uploads[v] for v in ids),
                  key=lambda c: (c.completed_at if c.completed_at is not None else 0.0, c.id))


def _lost_line(c: Completion) -> str:
    where = f" by {c.store} epoch {c.epoch}" if c.store is not None else ""
    return (f"lost acked upload {c.video or c.id}: acked at {at(c.completed_at)}{where} "
            f"(invoked {at(c.invoked_at)})")


def check_acked_writes(
    history: Iterable[Op],
    *,
    final: FinalRead,
    preexisting: frozenset[str] = frozenset(),
    allowed_lost: int = 0,
) -> CheckResult:
    """The set check (module docstring). Metrics: ``lost_acked_writes``, ``unexpected_writes``,
    ``attempted``, ``acknowledged``, ``recovered``, ``failed_but_present``.

    ``allowed_lost`` relaxes the verdict for drills that accept some loss (the objective
    ``lost_acked_writes``): passed iff at most that many acked uploads are lost and none is
    unexpected. The default 0 is the definition's ``lost = {} and unexpected = {}``.

    Findings: each lost id with its ack time (earliest first), each unexpected id, each
    failed-but-present id; bounded.
    """
    snap = final.authoritative
    if snap is None:
        return CheckResult(name="acked_writes", passed=None,
                           summary="no authoritative final read: lost writes unknown")
    sets = write_sets(history, final=snap, preexisting=preexisting)
    passed = len(sets.lost) <= allowed_lost and not sets.unexpected
    findings = [
        *(_lost_line(c) for c in _ack_order(sets, sets.lost)),
        *(f"unexpected video {v}: in the final read of {snap.name}, never written by the load"
          for v in sorted(sets.unexpected)),
        *(f"upload {v} answered 'fail' (definitely not applied) but is present"
          for v in sorted(sets.failed_but_present)),
    ]
    summary = (f"{len(sets.acked)} acked uploads all present" if not sets.lost and passed else
               f"{len(sets.lost)} acked uploads lost (allowed {allowed_lost}), "
               f"{len(sets.unexpected)} unexpected")
    return CheckResult(
        name="acked_writes",
        passed=passed,
        summary=f"{summary} (final read from {snap.name})",
        metrics={"lost_acked_writes": len(sets.lost), "unexpected_writes": len(sets.unexpected),
                 "attempted": len(sets.attempted), "acknowledged": len(sets.acked),
                 "recovered": len(sets.recovered),
                 "failed_but_present": len(sets.failed_but_present)},
        findings=bounded(findings),
    )


def observed_rpo(
    lost: Sequence[Completion], *, faults: Sequence[FaultRecord]
) -> tuple[float | None, FaultRecord | None, tuple[str, ...]]:
    """RPO from lost acked writes: ``(rpo_s, fault, findings)``.

    0 with no loss. Else ``e`` is the earliest ack time among ``lost``, the fault is the first
    one injected at or after ``e`` (else the earliest fault), and ``rpo_s = t_f - e``. If every
    fault started before ``e`` the write was acknowledged during the fault and lost anyway:
    RPO 0, with a finding per such write. No fault at all: RPO None (nothing to measure from).
    """
    acks = sorted(c.completed_at for c in lost if c.completed_at is not None)
    if not acks:
        return 0.0, None, ()
    if not faults:
        return None, None, ("acked writes were lost but no fault was recorded",)
    e = acks[0]
    by_time = sorted(faults, key=lambda f: f.injected_at)
    fault = next((f for f in by_time if f.injected_at >= e), by_time[0])
    during = [c for c in lost if c.completed_at is not None and c.completed_at > fault.injected_at]
    notes = tuple(
        f"upload {c.video or c.id} acked at {at(c.completed_at)}, after fault {fault.id} started "
        f"at {at(fault.injected_at)}, and lost: lost after being acked during the fault"
        for c in sorted(during, key=lambda c: c.completed_at or 0.0)
    )
    return max(0.0, fault.injected_at - e), fault, notes


def check_rpo(
    history: Iterable[Op],
    *,
    final: FinalRead,
    faults: Sequence[FaultRecord],
    preexisting: frozenset[str] = frozenset(),
    max_rpo_s: float = 0.0,
) -> CheckResult:
    """Observed RPO (see `observed_rpo`), judged against ``max_rpo_s`` (default 0: no loss).

    Passed is None without an authoritative final read, or when writes were lost with no
    fault to measure from. Metrics: ``rpo_s`` (float or None), ``rpo_fault`` (fault id or
    None), ``lost_acked_writes``.
    """
    snap = final.authoritative
    if snap is None:
        return CheckResult(name="rpo", passed=None,
                           summary="no authoritative final read: RPO unknown")
    sets = write_sets(history, final=snap, preexisting=preexisting)
    lost = _ack_order(sets, sets.lost)
    rpo, fault, notes = observed_rpo(lost, faults=faults)
    passed = None if rpo is None else rpo <= max_rpo_s
    if rpo is None:
        summary = f"{len(lost)} acked writes lost with no fault recorded: RPO undefined"
    else:
        where = "" if fault is None else f" (fault {fault.id})"
        summary = f"observed RPO {rpo:.3f} s{where}, objective {max_rpo_s:g} s"
    return CheckResult(
        name="rpo",
        passed=passed,
        summary=summary,
        metrics={"rpo_s": rpo, "rpo_fault": None if fault is None else fault.id,
                 "lost_acked_writes": len(lost)},
        findings=bounded([*notes, *(_lost_line(c) for c in lost)]),
    )
