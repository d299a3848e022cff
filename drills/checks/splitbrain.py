"""Split brain: conflicting acknowledgements across stores, and replicas that never converged.

Evidence, from acknowledged writes (``ok`` uploads, views, likes) that carry ``store`` and
``epoch``, and from the final read:

(a) **Same epoch, two stores**: two different stores acknowledged writes under one epoch.
(b) **Stale epoch**: a store acknowledged a write under epoch ``e`` although a write under an
    epoch ``> e`` had been acknowledged (by any store) *before this write was invoked*. Order
    is by acknowledgement time, compared with the later write's invocation, not its own
    acknowledgement: the store handled the write somewhere between its invoke and its ack,
    so only then is it certain that the newer epoch was already in force. Comparing two ack
    times would flag a write accepted by the old primary just before the failover whose
    answer merely arrived late.
(c) **Divergence**: after quiesce, the reachable stores' snapshots differ. Keys are
    ``video:<id>`` (present in some stores only), ``views:<id>`` and ``likes:<id>`` (values
    differ; a missing counter reads as 0).

Passed is False on any evidence; else None when it cannot be sure (no final read, a store
unreachable, or acknowledged writes that carried no store/epoch at all); else True.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from drills.checks.findings import at, bounded
from drills.checks.history import Completion, completions
from drills.model import CheckResult, FinalRead, Op, StoreSnapshot

WRITES = frozenset({"upload", "view", "like"})


@dataclass(frozen=True, slots=True)
class EpochConflict:
    """Evidence (a): ``epoch`` acknowledged by more than one store (``stores`` sorted)."""

    epoch: int
    stores: tuple[str, ...]
    first_acks: tuple[Completion, ...]  # the first ack of each store, same order as stores


@dataclass(frozen=True, slots=True)
class StaleAck:
    """Evidence (b): ``ack`` was under an older epoch than ``newer``, acked before its invoke."""

    ack: Completion
    newer: Completion


def _acks(ops: Iterable[Completion]) -> list[Completion]:
    """Acknowledged writes carrying store and epoch, by acknowledgement time."""
    return sorted(
        (c for c in ops if c.type == "ok" and c.f in WRITES and c.store is not None
         and c.epoch is not None and c.completed_at is not None),
        key=lambda c: (c.completed_at, c.id),
    )


def epoch_conflicts(acks: Sequence[Completion]) -> tuple[EpochConflict, ...]:
    """Evidence (a) from acks sorted by ack time (as `_acks` returns them)."""
    first: dict[int, dict[str, Completion]] = {}
    for c in acks:
        first.setdefault(c.epoch or 0, {}).setdefault(c.store or "", c)
    return tuple(
        EpochConflict(epoch, tuple(sorted(by_store)),
                      tuple(by_store[s] for s in sorted(by_store)))
        for epoch, by_store in sorted(first.items()) if len(by_store) > 1
    )


def stale_acks(acks: Sequence[Completion]) -> tuple[StaleAck, ...]:
    """Evidence (b) from acks sorted by ack time (as `_acks` returns them)."""
    times = [c.completed_at or 0.0 for c in acks]
    best: list[Completion] = []  # best[i]: highest-epoch ack among acks[0..i]
    for c in acks:
        best.append(c if not best or (c.epoch or 0) > (best[-1].epoch or 0) else best[-1])
    out: list[StaleAck] = []
    for c in acks:
        if c.invoked_at is None:
            continue
        i = bisect.bisect_left(times, c.invoked_at)  # acks completed strictly before invoke
        if i and (best[i - 1].epoch or 0) > (c.epoch or 0):
            out.append(StaleAck(ack=c, newer=best[i - 1]))
    return tuple(out)


def divergent_keys(snapshots: Sequence[StoreSnapshot]) -> tuple[str, ...]:
    """Evidence (c): keys on which the given snapshots disagree (sorted; empty for < 2)."""
    if len(snapshots) < 2:
        return ()
    keys: set[str] = set()
    every = set().union(*(s.videos for s in snapshots))
    keys.update(f"video:{v}" for v in every if any(v not in s.videos for s in snapshots))
    for counter in ("views", "likes"):
        maps = [getattr(s, counter) for s in snapshots]
        for v in set().union(*maps):
            if len({int(m.get(v, 0)) for m in maps}) > 1:
                keys.add(f"{counter}:{v}")
    return tuple(sorted(keys))


def _key_line(key: str, snapshots: Sequence[StoreSnapshot]) -> str:
    kind, _, video = key.partition(":")
    if kind == "video":
        shown = ", ".join(f"{s.name}={'yes' if video in s.videos else 'no'}" for s in snapshots)
    else:
        shown = ", ".join(f"{s.name}={getattr(s, kind).get(video, 0)}" for s in snapshots)
    return f"divergent {key}: {shown}"


def _evidence(conflicts: Sequence[EpochConflict], stale: Sequence[StaleAck]) -> list[str]:
    lines = [
        f"epoch {e.epoch} acknowledged by {len(e.stores)} stores: " + ", ".join(
            f"{c.store} (first ack {c.id} at {at(c.completed_at)})" for c in e.first_acks)
        for e in conflicts
    ]
    lines += [
        f"{s.ack.store} acked {s.ack.f} {s.ack.id} under epoch {s.ack.epoch} (invoked at "
        f"{at(s.ack.invoked_at)}) after {s.newer.store} had acked {s.newer.id} under epoch "
        f"{s.newer.epoch} at {at(s.newer.completed_at)}"
        for s in stale
    ]
    return lines


def check_split_brain(history: Iterable[Op], *, final: FinalRead | None) -> CheckResult:
    """Split-brain check (module docstring). Metrics: ``split_brain`` ((a) or (b)),
    ``divergent_keys``, ``epoch_conflicts``, ``stale_epoch_acks``, ``acks_with_epoch``,
    ``acks_without_epoch``, ``stores_compared``, ``stores_unreachable``.
    """
    ops = [c for c in completions(history) if c.type == "ok" and c.f in WRITES]
    acks = _acks(ops)
    conflicts, stale = epoch_conflicts(acks), stale_acks(acks)
    stores = () if final is None else final.stores
    reachable = [s for s in stores if s.reachable]
    unreachable = [s.name for s in stores if not s.reachable]
    diverged = divergent_keys(reachable)
    split = bool(conflicts or stale)
    unsure = final is None or bool(unreachable) or (bool(ops) and not acks)
    passed = False if split or diverged else (None if unsure else True)
    notes = [f"store {n} unreachable at the final read: not compared" for n in unreachable]
    if final is None:
        notes.append("no final read: replicas not compared")
    if ops and not acks:
        notes.append(f"{len(ops)} acknowledged writes carried no store/epoch")
    summary = (
        f"split brain: {len(conflicts)} epochs acked by several stores, {len(stale)} stale-epoch "
        f"acks; {len(diverged)} divergent keys" if passed is False else
        "no split brain evidence" + (" (incomplete: " + "; ".join(notes) + ")" if unsure else "")
    )
    return CheckResult(
        name="split_brain",
        passed=passed,
        summary=summary,
        metrics={"split_brain": split, "divergent_keys": len(diverged),
                 "epoch_conflicts": len(conflicts), "stale_epoch_acks": len(stale),
                 "acks_with_epoch": len(acks), "acks_without_epoch": len(ops) - len(acks),
                 "stores_compared": len(reachable), "stores_unreachable": len(unreachable)},
        findings=bounded([*_evidence(conflicts, stale),
                          *(_key_line(k, reachable) for k in diverged), *notes]),
    )
