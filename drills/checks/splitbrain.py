"""Split brain: two stores accepting writes at once, told by the history, by the epochs the
stores reported, and by replicas that never converged.

Two sources judge the run while it was live; a third judges the stores after quiesce.

**History** (``history``), from the ops alone, no epoch needed. The *winner* is the final
read's primary and its snapshot the final state (`FinalRead.authoritative`). A write of the
winner *survived* if its key is in the final state (the key written, or the key whose counter
an increment counts). The winner was *acknowledging* at instant ``t`` when it acknowledged
surviving writes at some ``x <= t`` and some ``y >= t`` with ``y - x <= OVERLAP_GAP_S`` (1 s):
its lineage of writes was in force, continuously, around ``t``.

(d) **Overlapping acks**: an acknowledged write absent from the final state, acknowledged
    by a store other than the winner at an instant ``t`` when the winner was acknowledging,
    with the winner's ``x`` at or after the write's own invoke (the winner had accepted a
    write since this one was sent): two stores accepted writes at once, and the loser's were
    thrown away. Increments acknowledged the same way whose (key, counter) ended below its
    lower bound (`drills.checks.counters.counter_bounds`) are reported with them as *suspect*
    increments (which of a counter's increments were lost cannot be told).
(e) **Vanished reads**: a successful read served by a store other than the winner, answered
    while the winner was acknowledging, that showed a key absent from the final state (a
    read's ``key``, or an item of a list read): a deposed store served data
    that was then thrown away.

Only acknowledgements (``ok``) are evidence: an indeterminate write that vanished may never
have been applied. The overlap rule keeps the other ways of losing data out of this source: an
old primary whose unreplicated tail is lost acknowledged it *before* the winner's first
acknowledgement (the lost-writes check's business), and a winner that takes over again
without catching up (a stale failback) was silent while the other store acknowledged what it
then threw away; in both the two stores did not accept writes at once.

**Epochs** (``epochs``), from acknowledged writes (``ok`` writes and increments) that carry
``store`` and ``epoch`` as the store reported them:

(a) **Same epoch, two stores**: two different stores acknowledged writes under one epoch.
(b) **Stale epoch**: a store acknowledged a write under epoch ``e`` although a write under an
    epoch ``> e`` had been acknowledged (by any store) *before this write was invoked*. Order
    is by acknowledgement time, compared with the later write's invocation, not its own
    acknowledgement: the store handled the write somewhere between its invoke and its ack,
    so only then is it certain that the newer epoch was already in force. Comparing two ack
    times would flag a write accepted by the old primary just before the failover whose
    answer merely arrived late.

**Divergence** (``divergence``):

(c) after quiesce, the reachable stores' snapshots differ. Divergent keys are
    ``key:<key>`` (present in some stores only) and ``counter:<key>/<counter>`` (values
    differ; a missing counter reads as 0).

``split_brain`` is (a), (b), (d) or (e). Passed is False on any evidence (c included); else
None when it cannot be sure (no final read, a store unreachable, or acknowledged writes that
carried no store/epoch at all); else True.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from drills.checks.counters import CounterBound, counter_bounds
from drills.checks.digest import HistoryDigest, as_digest
from drills.checks.findings import at, bounded
from drills.checks.history import INCREMENTS, WRITES, Completion
from drills.model import CheckResult, FinalRead, Op, StoreSnapshot

#: How many of a read's vanished keys a finding names.
_SHOWN = 5


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


@dataclass(frozen=True, slots=True)
class OverlappingAck:
    """Evidence (d): ``ack`` (one attempt, by a store other than the winner) was invoked after
    the winner acknowledged ``after``, a write that survived; the write is absent from the
    final state, or, for an increment, ``bound`` is its counter, ended below its lower bound."""

    ack: Completion
    after: Completion
    bound: CounterBound | None = None

    @property
    def suspect(self) -> bool:
        """True for an increment: its counter lost increments, maybe not this one."""
        return self.bound is not None


@dataclass(frozen=True, slots=True)
class VanishedRead:
    """Evidence (e): ``read``, served by a store other than the winner and invoked after the
    winner acknowledged ``after``, showed ``keys`` (sorted) absent from the final state."""

    read: Completion
    keys: tuple[str, ...]
    after: Completion


def _by_time(ops: Iterable[Completion], time: Callable[[Completion], float]
             ) -> list[Completion]:
    """``ops`` sorted by ``(time(c), c.id)``, as sorting on that pair does, without building
    the pair: sorted by time, then each run of equal times (rare with float clocks) by id. A
    long game day sorts ~700k acks, and their pairs alone would be ~40 MB."""
    out = sorted(ops, key=time)
    times = [time(c) for c in out]
    # k where out[k] and out[k + 1] tie; consecutive ks make one run of equal times
    ties = [k for k, (a, b) in enumerate(itertools.pairwise(times)) if a == b]
    runs: list[list[int]] = []
    for k in ties:
        if runs and runs[-1][1] == k:
            runs[-1][1] = k + 1
        else:
            runs.append([k, k + 1])
    for lo, hi in runs:
        out[lo:hi + 1] = sorted(out[lo:hi + 1], key=_id)
    return out


def _id(c: Completion) -> str:
    return c.id


def _acked_at(c: Completion) -> float:
    return c.completed_at or 0.0


def _acks(ops: Iterable[Completion]) -> list[Completion]:
    """Acknowledged writes carrying store and epoch, by acknowledgement time."""
    return _by_time(
        (c for c in ops if c.type == "ok" and c.f in WRITES and c.store is not None
         and c.epoch is not None and c.completed_at is not None),
        _acked_at,
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
    """Evidence (c): keys on which the given snapshots disagree (sorted; empty for < 2):
    ``key:<key>`` (held by some stores only), ``counter:<key>/<counter>`` (values differ)."""
    return tuple(sorted(_divergence(snapshots)))


def _divergence(snapshots: Sequence[StoreSnapshot]) -> dict[str, tuple[str, str | None]]:
    """Divergent key text -> (key, counter or None for presence)."""
    if len(snapshots) < 2:
        return {}
    out: dict[str, tuple[str, str | None]] = {}
    every: set[str] = set().union(*(s.keys for s in snapshots))
    for k in every:
        if any(k not in s.keys for s in snapshots):
            out[f"key:{k}"] = (k, None)
    counted: set[str] = set().union(*(s.counters for s in snapshots))
    for k in counted:  # key by key: no set of every (key, counter) pair of a long game day
        for c in set().union(*(s.counters.get(k, ()) for s in snapshots)):
            if len({s.count(k, c) for s in snapshots}) > 1:
                out[f"counter:{k}/{c}"] = (k, c)
    return out


def _key(c: Completion) -> str | None:
    """The key a write touches (a write's id stands for its key if none was recorded)."""
    return c.key if c.key is not None or c.f != "write" else c.id


#: Longest pause between two of the winner's acknowledgements that still counts as the winner
#: acknowledging continuously (see the module docstring): well above the pause between writes
#: of any load worth a drill (tens of ms), well below a failover.
OVERLAP_GAP_S = 1.0


def winner_first_ack(ops: Iterable[Completion], *, winner: StoreSnapshot) -> Completion | None:
    """The winner's earliest acknowledged write (attempt) that survived."""
    return next(iter(_winner_acks(ops, winner=winner)), None)


def _winner_acks(ops: Iterable[Completion], *, winner: StoreSnapshot) -> list[Completion]:
    """The winner's acknowledged writes (attempts) that survived, by acknowledgement time."""
    return _by_time((c for c in ops if c.type == "ok" and c.f in WRITES
                     and c.store == winner.name and c.completed_at is not None
                     and _key(c) in winner.keys), _acked_at)


class _Tenure:
    """When the winner was acknowledging (module docstring), from its surviving acks."""

    def __init__(self, acks: Sequence[Completion]) -> None:
        self.acks = acks
        self.times = [c.completed_at or 0.0 for c in acks]

    def around(self, t: float, *, since: float | None = None) -> Completion | None:
        """The winner's last surviving ack at or before ``t`` (at or after ``since``) when a next
        one follows within `OVERLAP_GAP_S`; None when the winner was not acknowledging."""
        i = bisect.bisect_right(self.times, t)
        if i == 0 or i == len(self.times):
            return None
        x, y = self.times[i - 1], self.times[i]
        if y - x > OVERLAP_GAP_S or (since is not None and x < since):
            return None
        return self.acks[i - 1]


def _by_others(ops: Iterable[Completion], *, winner: str) -> list[Completion]:
    """Ok attempts answered by a known store other than ``winner``, earliest invoke first."""
    return _by_time((c for c in ops if c.type == "ok" and c.store is not None
                     and c.store != winner and c.completed_at is not None),
                    lambda c: c.invoked_at or 0.0)


def overlapping_acks(
    ops: Sequence[Completion], *, winner: StoreSnapshot, bounds: Sequence[CounterBound]
) -> tuple[OverlappingAck, ...]:
    """Evidence (d) from a history's attempts (`completions`), the winner's final snapshot and
    its counter bounds; one per op id, earliest invoke first."""
    tenure = _Tenure(_winner_acks(ops, winner=winner))
    below = {(b.key, b.counter): b for b in bounds if b.value < b.low}
    out: dict[str, OverlappingAck] = {}
    for c in _by_others(ops, winner=winner.name):
        if c.id in out or c.f not in WRITES or c.invoked_at is None:
            continue
        after = tenure.around(c.completed_at or 0.0, since=c.invoked_at)
        if after is None:
            continue
        key = _key(c)
        if c.f == "write" and key not in winner.keys:
            out[c.id] = OverlappingAck(c, after)
        elif c.f in INCREMENTS and key is not None and c.counter is not None:
            bound = below.get((key, c.counter))
            if bound is not None:
                out[c.id] = OverlappingAck(c, after, bound)
    return tuple(out.values())


def vanished_reads(ops: Sequence[Completion], *, winner: StoreSnapshot) -> tuple[VanishedRead, ...]:
    """Evidence (e) from a history's attempts (`completions`) and the winner's final snapshot,
    earliest invoke first."""
    tenure = _Tenure(_winner_acks(ops, winner=winner))
    out: list[VanishedRead] = []
    for c in _by_others(ops, winner=winner.name):
        if c.f != "read":
            continue
        after = tenure.around(c.completed_at or 0.0)
        seen = {k for k, _ in c.items or ()} | ({c.key} if c.key is not None else set())
        gone = tuple(sorted(seen - winner.keys))
        if gone and after is not None:
            out.append(VanishedRead(c, gone, after))
    return tuple(out)


def _key_line(text: str, what: tuple[str, str | None],
              snapshots: Sequence[StoreSnapshot]) -> str:
    key, counter = what
    if counter is None:
        shown = ", ".join(f"{s.name}={'yes' if key in s.keys else 'no'}" for s in snapshots)
    else:
        shown = ", ".join(f"{s.name}={s.count(key, counter)}" for s in snapshots)
    return f"divergent {text}: {shown}"


def _epoch_lines(conflicts: Sequence[EpochConflict], stale: Sequence[StaleAck]) -> list[str]:
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


def _after(w: Completion) -> str:
    return f"after {w.store} had acked {w.f} {w.id} at {at(w.completed_at)}, which survived"


def _history_lines(overlap: Sequence[OverlappingAck], vanished: Sequence[VanishedRead],
                   winner: str) -> list[str]:
    lines: list[str] = []
    for o in overlap:
        c, b = o.ack, o.bound
        what = c.id if c.f == "write" else f"{c.id} of {c.key}"
        head = (f"{c.store} acked {c.f} {what} (invoked at {at(c.invoked_at)}, acked at "
                f"{at(c.completed_at)}) {_after(o.after)}")
        lines.append(f"{head}: absent from {winner}'s final state" if b is None else
                     f"{head}: suspect increment, counter {b.counter} of {b.key} ended at "
                     f"{b.value}, below its lower bound {b.low}")
    for v in vanished:
        shown = ", ".join(v.keys[:_SHOWN]) + (
            f" (+{len(v.keys) - _SHOWN} more)" if len(v.keys) > _SHOWN else "")
        lines.append(f"read {v.read.id} served by {v.read.store} (invoked at "
                     f"{at(v.read.invoked_at)}) {_after(v.after)}, showed {shown}: absent from "
                     f"{winner}'s final state")
    return lines


def _history_part(overlap: Sequence[OverlappingAck], vanished: Sequence[VanishedRead],
                  winner: str | None) -> str:
    if winner is None:
        return "not evaluated"
    if not overlap and not vanished:
        return "none"
    parts: list[str] = []
    if overlap:
        suspect = sum(o.suspect for o in overlap)
        parts.append(f"{len(overlap)} acks" + (f" ({suspect} suspect increments)" if suspect
                                               else "")
                     + " by " + ", ".join(sorted({o.ack.store or "?" for o in overlap})))
    if vanished:
        parts.append(f"{len(vanished)} reads from "
                     + ", ".join(sorted({v.read.store or "?" for v in vanished})))
    return " and ".join(parts) + f" after {winner} took over"


def check_split_brain(history: Iterable[Op] | HistoryDigest, *,
                      final: FinalRead | None,
                      preexisting: frozenset[str] = frozenset()) -> CheckResult:
    """Split-brain check (module docstring). ``preexisting`` changes no verdict here (only
    the upper counter bounds, which this check does not read); given as the counter check
    gets it, the two share one computation of the bounds.

    Metrics: ``split_brain`` ((a), (b), (d) or (e)), ``sources`` (sorted names among
    ``history``, ``epochs``, ``divergence`` that found something), ``history_evidence``
    ((d) + (e) items), ``overlapping_acks`` ((d), suspect increments included),
    ``suspect_increments``, ``vanished_reads`` ((e)), ``epoch_evidence`` ((a) + (b)),
    ``epoch_conflicts``, ``stale_epoch_acks``, ``divergent_keys``, ``acks_with_epoch``,
    ``acks_without_epoch``, ``stores_compared``, ``stores_unreachable``. Findings: history
    evidence, then epoch evidence, then divergent keys, then what could not be judged.
    """
    winner = None if final is None else final.authoritative
    digest = as_digest(history, winner)
    attempts = digest.attempts
    ops = [c for c in attempts if c.type == "ok" and c.f in WRITES]
    acks = _acks(ops)
    conflicts, stale = epoch_conflicts(acks), stale_acks(acks)
    overlap = () if winner is None else overlapping_acks(
        attempts, winner=winner,
        bounds=counter_bounds(digest, final=winner, preexisting=preexisting))
    vanished = () if winner is None else vanished_reads(attempts, winner=winner)
    stores = () if final is None else final.stores
    reachable = [s for s in stores if s.reachable]
    unreachable = [s.name for s in stores if not s.reachable]
    divergence = _divergence(reachable)
    diverged = tuple(sorted(divergence))
    found = {"history": bool(overlap or vanished), "epochs": bool(conflicts or stale),
             "divergence": bool(diverged)}
    split = found["history"] or found["epochs"]
    unsure = final is None or bool(unreachable) or (bool(ops) and not acks)
    passed = False if split or diverged else (None if unsure else True)
    notes = [f"store {n} unreachable at the final read: not compared" for n in unreachable]
    if final is None:
        notes.append("no final read: replicas not compared, history evidence not evaluated")
    elif winner is None:
        notes.append("no reachable primary at the final read: history evidence not evaluated")
    if ops and not acks:
        notes.append(f"{len(ops)} acknowledged writes carried no store/epoch")
    if passed is False:
        winner_name = None if winner is None else winner.name
        epochs = (f"{len(conflicts)} epochs acked by several stores, {len(stale)} stale-epoch "
                  f"acks" if found["epochs"] else "none")
        summary = (("split brain" if split else "replicas diverged after quiesce")
                   + f" (history: {_history_part(overlap, vanished, winner_name)}; "
                   + f"epochs: {epochs}"
                   + (f"; divergence: {len(diverged)} divergent keys" if diverged else "") + ")")
    else:
        summary = "no split brain evidence" + (
            " (incomplete: " + "; ".join(notes) + ")" if unsure else "")
    suspect = sum(o.suspect for o in overlap)
    return CheckResult(
        name="split_brain",
        passed=passed,
        summary=summary,
        metrics={"split_brain": split, "sources": sorted(k for k, v in found.items() if v),
                 "history_evidence": len(overlap) + len(vanished),
                 "overlapping_acks": len(overlap), "suspect_increments": suspect,
                 "vanished_reads": len(vanished),
                 "epoch_evidence": len(conflicts) + len(stale),
                 "divergent_keys": len(diverged),
                 "epoch_conflicts": len(conflicts), "stale_epoch_acks": len(stale),
                 "acks_with_epoch": len(acks), "acks_without_epoch": len(ops) - len(acks),
                 "stores_compared": len(reachable), "stores_unreachable": len(unreachable)},
        findings=bounded([
            *_history_lines(overlap, vanished, winner.name if winner else "?"),
            *_epoch_lines(conflicts, stale),
            *(_key_line(k, divergence[k], reachable) for k in diverged),
            *notes]),
    )
