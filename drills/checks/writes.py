"""Acknowledged writes: the set check (lost / unexpected / recovered keys) and observed RPO.

Sets, over the keys of writes (``f="write"``; a write's ``key`` defaults to its op id):

- ``A`` attempted: every key the history shows a write of (an invoke, or a completion whose
  invoke line was lost: a completion proves an attempt).
- ``K`` acknowledged: keys whose write's merged outcome is ``ok`` (see
  `drills.checks.history`).
- ``R`` the authoritative final read: the primary's snapshot's keys.
- ``lost = K - R``, ``unexpected = R - A - preexisting``, ``recovered = (R & A) - K``.

The set check passes iff ``lost`` and ``unexpected`` are empty; with no authoritative final
read it cannot decide (passed None). ``recovered`` writes are fine (an indeterminate write
may land); among them, ones the client was told definitely failed (``fail``) are reported as
``failed_but_present`` - evidence that the system's "not applied" answer was wrong - without
failing this check. Each lost write is typed evidence (`drills.model.LostWrite`), earliest
acknowledgement first; its finding line is `LostWrite.describe`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from drills.checks.digest import HistoryDigest, as_digest
from drills.checks.findings import at, bounded
from drills.checks.history import Completion
from drills.model import CheckResult, FaultRecord, FinalRead, LostWrite, Op, StoreSnapshot


@dataclass(frozen=True, slots=True)
class WriteSets:
    """The sets of the set check, plus each key's merged write outcome for evidence."""

    attempted: frozenset[str]
    acked: frozenset[str]
    final: frozenset[str]
    lost: frozenset[str]
    unexpected: frozenset[str]
    recovered: frozenset[str]
    failed_but_present: frozenset[str]
    writes: Mapping[str, Completion]


def write_sets(
    history: Iterable[Op] | HistoryDigest, *, final: StoreSnapshot,
    preexisting: frozenset[str] = frozenset(),
) -> WriteSets:
    """Compute A, K, R and the derived sets from a history and one store's snapshot.

    Several op ids writing one key merge as one key: acknowledged if any was. Computed once
    per digest, final snapshot and ``preexisting`` (`HistoryDigest.memo`)."""
    digest = as_digest(history)
    return digest.memo("write_sets",
                       lambda: _write_sets(digest, final=final, preexisting=preexisting),
                       same=(final,), equal=preexisting)


def _write_sets(digest: HistoryDigest, *, final: StoreSnapshot,
                preexisting: frozenset[str]) -> WriteSets:
    writes: dict[str, Completion] = {}
    for c in digest.outcomes():
        if c.f != "write":
            continue
        key = c.key or c.id
        prev = writes.get(key)
        if prev is None or (prev.type != "ok" and c.type == "ok"):
            writes[key] = c
    attempted = frozenset(writes)
    acked = frozenset(k for k, c in writes.items() if c.type == "ok")
    found = frozenset(final.keys)
    recovered = (found & attempted) - acked
    return WriteSets(
        attempted=attempted,
        acked=acked,
        final=found,
        lost=acked - found,
        unexpected=found - attempted - preexisting,
        recovered=recovered,
        failed_but_present=frozenset(k for k in recovered if writes[k].type == "fail"),
        writes=writes,
    )


def lost_writes(sets: WriteSets, keys: Iterable[str]) -> tuple[LostWrite, ...]:
    """The writes of ``keys`` as `LostWrite` evidence, earliest acknowledgement first."""
    done = sorted((sets.writes[k] for k in keys),
                  key=lambda c: (c.completed_at if c.completed_at is not None else 0.0, c.id))
    return tuple(LostWrite(key=c.key or c.id, id=c.id, acked_at=c.completed_at,
                           invoked_at=c.invoked_at, store=c.store, epoch=c.epoch)
                 for c in done)


def check_acked_writes(
    history: Iterable[Op] | HistoryDigest,
    *,
    final: FinalRead,
    preexisting: frozenset[str] = frozenset(),
    allowed_lost: int = 0,
) -> CheckResult:
    """The set check (module docstring). Metrics: ``lost_acked_writes``, ``unexpected_writes``,
    ``attempted``, ``acknowledged``, ``recovered``, ``failed_but_present``.

    ``allowed_lost`` relaxes the verdict for drills that accept some loss (the objective
    ``lost_acked_writes``): passed iff at most that many acked writes are lost and none is
    unexpected. The default 0 is the definition's ``lost = {} and unexpected = {}``.

    Evidence: a `LostWrite` per lost key (earliest ack first, all of them). Findings: each
    lost key (its `LostWrite.describe`), each unexpected key, each failed-but-present key;
    bounded.
    """
    snap = final.authoritative
    if snap is None:
        return CheckResult(name="acked_writes", passed=None,
                           summary="no authoritative final read: lost writes unknown")
    sets = write_sets(history, final=snap, preexisting=preexisting)
    passed = len(sets.lost) <= allowed_lost and not sets.unexpected
    lost = lost_writes(sets, sets.lost)
    findings = [
        *(w.describe() for w in lost),
        *(f"unexpected key {k}: in the final read of {snap.name}, never written by the load"
          for k in sorted(sets.unexpected)),
        *(f"write of {k} answered 'fail' (definitely not applied) but is present"
          for k in sorted(sets.failed_but_present)),
    ]
    summary = (f"{len(sets.acked)} acked writes all present" if not sets.lost and passed else
               f"{len(sets.lost)} acked writes lost (allowed {allowed_lost}), "
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
        evidence=lost,
    )


def observed_rpo(
    lost: Sequence[LostWrite], *, faults: Sequence[FaultRecord]
) -> tuple[float | None, FaultRecord | None, tuple[str, ...]]:
    """RPO from lost acked writes: ``(rpo_s, fault, findings)``.

    0 with no loss. Else ``e`` is the earliest ack time among ``lost``, the fault is the first
    one injected at or after ``e`` (else the earliest fault), and ``rpo_s = t_f - e``. If every
    fault started before ``e`` the write was acknowledged during the fault and lost anyway:
    RPO 0, with a finding per such write. No fault at all: RPO None (nothing to measure from).
    """
    acks = sorted(w.acked_at for w in lost if w.acked_at is not None)
    if not acks:
        return 0.0, None, ()
    if not faults:
        return None, None, ("acked writes were lost but no fault was recorded",)
    e = acks[0]
    by_time = sorted(faults, key=lambda f: f.injected_at)
    fault = next((f for f in by_time if f.injected_at >= e), by_time[0])
    during = [w for w in lost if w.acked_at is not None and w.acked_at > fault.injected_at]
    notes = tuple(
        f"write of {w.key} acked at {at(w.acked_at)}, after fault {fault.id} started "
        f"at {at(fault.injected_at)}, and lost: lost after being acked during the fault"
        for w in sorted(during, key=lambda w: w.acked_at or 0.0)
    )
    return max(0.0, fault.injected_at - e), fault, notes


def check_rpo(
    history: Iterable[Op] | HistoryDigest,
    *,
    final: FinalRead,
    faults: Sequence[FaultRecord],
    preexisting: frozenset[str] = frozenset(),
    max_rpo_s: float = 0.0,
) -> CheckResult:
    """Observed RPO (see `observed_rpo`), judged against ``max_rpo_s`` (default 0: no loss).

    Passed is None without an authoritative final read, or when writes were lost with no
    fault to measure from. Metrics: ``rpo_s`` (float or None), ``rpo_fault`` (fault id or
    None), ``lost_acked_writes``. Evidence: the `LostWrite` records it measured from.
    """
    snap = final.authoritative
    if snap is None:
        return CheckResult(name="rpo", passed=None,
                           summary="no authoritative final read: RPO unknown")
    sets = write_sets(history, final=snap, preexisting=preexisting)
    lost = lost_writes(sets, sets.lost)
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
        findings=bounded([*notes, *(w.describe() for w in lost)]),
        evidence=lost,
    )
