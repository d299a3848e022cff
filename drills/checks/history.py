"""Pair the entries of a Jepsen-style history into completed operations.

A history (`drills.model.Op`) records each operation twice: an ``invoke`` and then its
completion (``ok``, ``fail`` or ``info``) carrying the same ``id``. The checks reason about
operations, not entries, so this module turns the history into `Completion` records:

- `completions` pairs each invoke with the next completion of the same id, in history order.
  Pairing is by ``id`` alone (a client may retry an op under the same id, even from a
  restarted worker), and relies on the entries of one id being in the order they were written
  (they all come from one logical client; merged worker files keep that order).
- An invoke with no completion (the client died, or the record was cut) is indeterminate:
  ``type="info"`` with ``completed_at=None``. So is an invoke followed by another invoke of the
  same id before any completion.
- A completion with no pending invoke (its invoke line was lost) is kept with
  ``invoked_at=None``: an acknowledgement is evidence even without its invocation.
- `by_id` merges every attempt of an id into one outcome: ``ok`` if any attempt was
  acknowledged (the first acknowledgement wins), else ``info`` if any attempt was
  indeterminate (a later ``fail`` cannot undo an earlier attempt that may have applied), else
  ``fail``. So an op id completed more than once counts once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Literal

import msgspec
import numpy as np

from drills.model import Counts, Item, Op, OpF

CompletionType = Literal["ok", "fail", "info"]

#: The ``f`` of operations that write: a key written, or one increment of a counter.
WRITES: frozenset[str] = frozenset({"write", "incr"})
#: The ``f`` of increments (one increment of counter ``counter`` of ``key``).
INCREMENTS: frozenset[str] = frozenset({"incr"})


class Completion(msgspec.Struct, frozen=True, gc=False):
    """One operation: its invocation paired with its outcome.

    ``invoked_at`` is None when the invoke entry was missing; ``completed_at`` is None when no
    completion arrived (then ``type`` is ``info``). ``counts``, ``epoch``, ``store``,
    ``error``, ``degraded`` and ``items`` come from the completion; ``key``, ``counter`` and
    ``attempt`` from the completion, falling back to the invoke.

    A frozen `msgspec.Struct` rather than a dataclass: a 30-minute game day holds ~700k of
    them, and a struct is built ~5x faster than a frozen dataclass, is smaller, and (with
    ``gc=False``: it holds only strings, numbers and tuples, never a cycle) is invisible to
    the garbage collector, whose passes over millions of objects otherwise cost seconds.
    Same fields, equality, hashing and ``replace`` (`msgspec.structs.replace`).
    """

    id: str
    f: OpF
    process: str
    type: CompletionType
    invoked_at: float | None
    completed_at: float | None
    key: str | None = None
    counter: str | None = None
    counts: Counts | None = None
    epoch: int | None = None
    store: str | None = None
    error: str | None = None
    attempt: int | None = None
    degraded: bool | None = None
    items: tuple[Item, ...] | None = None


def _pair(invoke: Op | None, done: Op | None) -> Completion:
    """Build one Completion from an invoke, its completion, or both (never neither)."""
    src = done if done is not None else invoke
    if src is None:
        raise TypeError("an operation needs an invoke or a completion")
    key = src.key if src.key is not None or invoke is None else invoke.key
    counter = src.counter if src.counter is not None or invoke is None else invoke.counter
    return Completion(
        id=src.id,
        f=src.f,
        process=src.process,
        type="info" if done is None else done.type,  # type: ignore[arg-type]
        invoked_at=None if invoke is None else invoke.time,
        completed_at=None if done is None else done.time,
        key=key,
        counter=counter,
        counts=None if done is None else done.counts,
        epoch=None if done is None else done.epoch,
        store=None if done is None else done.store,
        error=None if done is None else done.error,
        attempt=src.attempt if src.attempt is not None or invoke is None else invoke.attempt,
        degraded=None if done is None else done.degraded,
        items=None if done is None else done.items,
    )


def completions(history: Iterable[Op]) -> tuple[Completion, ...]:
    """Pair every invoke with its completion; see the module docstring for the rules.

    Returns one `Completion` per invocation (plus one per orphan completion), in the order the
    invocations appear in the history. Pure; never raises on an odd history.
    """
    slots: list[Completion | None] = []
    pending: dict[str, tuple[int, Op]] = {}
    for op in history:
        if op.type == "invoke":
            stale = pending.pop(op.id, None)
            if stale is not None:  # re-invoked before completing: the first try is unknown
                slots[stale[0]] = _pair(stale[1], None)
            pending[op.id] = (len(slots), op)
            slots.append(None)
            continue
        opened = pending.pop(op.id, None)
        if opened is None:
            slots.append(_pair(None, op))
        else:
            slots[opened[0]] = _pair(opened[1], op)
    for index, invoke in pending.values():
        slots[index] = _pair(invoke, None)
    return tuple(c for c in slots if c is not None)


_RANK = {"ok": 2, "info": 1, "fail": 0}


def by_id(ops: Iterable[Completion]) -> Mapping[str, Completion]:
    """Merge every attempt of an op id into one outcome (ok > info > fail).

    The merged record keeps the fields of the deciding attempt (the first ``ok``, else the
    first ``info``, else the last ``fail``), the earliest known ``invoked_at``, and the first
    known ``key`` and ``counter``. Returns a new mapping id -> Completion in first-seen order.
    """
    merged: dict[str, Completion] = {}
    for c in ops:
        prev = merged.get(c.id)
        if prev is None:
            merged[c.id] = c
            continue
        keep = c if _RANK[c.type] > _RANK[prev.type] or prev.type == c.type == "fail" else prev
        starts = [t for t in (prev.invoked_at, c.invoked_at) if t is not None]
        merged[c.id] = msgspec.structs.replace(
            keep,
            invoked_at=min(starts) if starts else None,
            key=prev.key if prev.key is not None else c.key,
            counter=prev.counter if prev.counter is not None else c.counter,
        )
    return merged


def repeated_hashes(ids: Iterable[object]) -> set[int]:
    """The hashes that two or more of ``ids`` have: every id that occurs twice has one, and so
    do ids whose hashes collide (a caller then compares the ids themselves). Finds a long game
    day's few repeated ids among ~700k without a mapping of them all (~40 MB)."""
    values, counts = np.unique(np.fromiter(map(hash, ids), dtype=np.int64), return_counts=True)
    return set(values[counts > 1].tolist())


def merged(attempts: Sequence[Completion]) -> Iterator[Completion]:
    """``by_id(attempts).values()``, the same outcomes in the same order, without a mapping
    of every id: an id whose hash no other attempt shares has one attempt, which is its
    outcome; only the attempts of the others (`repeated_hashes`: retries, and ids whose
    hashes collide) are merged by `by_id`."""
    shared = repeated_hashes(c.id for c in attempts)
    if not shared:
        yield from attempts
        return
    several = dict(by_id(c for c in attempts if hash(c.id) in shared))
    for c in attempts:
        if hash(c.id) not in shared:
            yield c
        else:
            outcome = several.pop(c.id, None)  # at its first attempt, once
            if outcome is not None:
                yield outcome


def outcomes(history: Iterable[Op]) -> Mapping[str, Completion]:
    """Shorthand for ``by_id(completions(history))``: one merged outcome per op id."""
    return by_id(completions(history))
