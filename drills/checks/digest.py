"""A history reduced to what the checks read, built in one streaming pass (bounded by the writes).

The history checks (acked writes, RPO, counters, zero reads, split brain, exposure) work on the
attempts of a history (`drills.checks.history.completions`). A long game day's history is
mostly reads - a list read shows ten keys' counters - and the checks need few of them, so
holding every `Op` costs gigabytes. A `HistoryDigest` holds:

- every attempt of every write and increment (`Completion`, strings shared);
- the counts the zero-read check reports (ok reads with a known invoke that show something,
  degraded or not);
- only the read attempts a check can use: an ok read that showed a counter at 0 for a (key,
  counter) with an acknowledged increment earlier in the stream (a zero-read candidate), an ok
  read served by a store other than the final primary that showed a key the primary does not
  hold (a vanished-read candidate), and an ok degraded read (exposure). Their ``items`` keep
  only the entries that show a 0 or a key the primary lacks.

So every check gives on a digest exactly what it gives on the whole history (the tests compare
both on the same histories). `HistoryDigest.of` builds the reference digest of a list of ops
with `completions` (nothing dropped); `DigestBuilder` builds one from a stream of ops in time
order (``trim=True`` drops reads as above and requires the time order, which a merged record
has). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Required, TypedDict, TypeVar, cast

from drills.checks.history import Completion, completions, merged
from drills.model import (
    OP_FS,
    OP_TYPES,
    Counts,
    Item,
    Op,
    StoreSnapshot,
    as_items,
    check_op_rules,
    interned,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HistoryDigest:
    """What the history checks read (module docstring).

    ``attempts`` are in the order `completions` gives them (invocation order). ``reads_judged``
    and ``reads_judged_degraded`` count the ok read attempts with a known invoke that show a
    key's counts or a list (not degraded / degraded). ``winner`` names the final primary the
    reads were trimmed against and ``winner_keys`` its keys (None: reads were not trimmed for
    vanished reads, so the digest serves only a check without a winner); ``trimmed`` is False
    when nothing was dropped.
    """

    attempts: tuple[Completion, ...]
    reads_judged: int = 0
    reads_judged_degraded: int = 0
    trimmed: bool = False
    winner: str | None = None
    winner_keys: frozenset[str] | None = None
    _memo: dict[Hashable, tuple[tuple[object, ...], Any]] = field(
        default_factory=dict, compare=False, repr=False)

    def outcomes(self) -> Iterator[Completion]:
        """One merged outcome per op id, as ``by_id(attempts).values()`` (`merged`). Computed
        on each call, not held: each check that reads it keeps only what it derives (the
        write sets, the counter bounds, the ack times)."""
        return merged(self.attempts)

    def memo(self, name: str, compute: Callable[[], T], *, same: tuple[object, ...] = (),
             equal: Hashable = None) -> T:
        """``compute()``, once per ``name``, objects ``same`` (compared by identity: snapshots
        are not hashable, and the checks get the very objects the verdict holds) and value
        ``equal``. Several checks derive the same thing from one digest (the write sets: acked
        writes and RPO; the counter bounds: counters and split brain); on a long game day
        each costs seconds. The value is shared: do not modify it."""
        key = (name, equal, *map(id, same))
        hit = self._memo.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], same, strict=True)):
            return cast(T, hit[1])
        value = compute()
        self._memo[key] = (same, value)  # the objects are kept: their ids stay theirs
        return value

    @classmethod
    def of(cls, history: Iterable[Op] | HistoryDigest) -> HistoryDigest:
        """The reference digest of ``history`` (nothing dropped), or ``history`` itself."""
        if isinstance(history, HistoryDigest):
            return history
        attempts = completions(history)
        judged = [c for c in attempts if _judged(c)]
        degraded = sum(1 for c in judged if c.degraded is True)
        return cls(attempts, len(judged) - degraded, degraded)

    def serves(self, winner: StoreSnapshot | None) -> bool:
        """True when this digest holds every read a check judging ``winner`` needs."""
        if not self.trimmed or winner is None:
            return True
        return self.winner == winner.name and self.winner_keys is winner.keys


def as_digest(history: Iterable[Op] | HistoryDigest,
              winner: StoreSnapshot | None = None) -> HistoryDigest:
    """``history`` as a digest (`HistoryDigest.of`); raises `ValueError` for a trimmed digest
    built for another final primary than ``winner`` (a bug in the caller)."""
    digest = HistoryDigest.of(history)
    if not digest.serves(winner):
        raise ValueError("this history digest was trimmed for another final read")
    return digest


def _judged(c: Completion) -> bool:
    """An ok read attempt with a known invoke that shows something (zero-read check)."""
    return (c.f == "read" and c.type == "ok" and c.invoked_at is not None
            and ((c.key is not None and c.counts is not None) or c.items is not None))


_OP_FIELDS = ("process", "type", "f", "id", "time", "key", "counter", "counts", "epoch", "store",
              "error", "attempt", "degraded", "items")


def _op_dict(op: Op) -> dict[str, Any]:
    return {name: getattr(op, name) for name in _OP_FIELDS if getattr(op, name) is not None}


class DigestBuilder:
    """Folds ops, one at a time, into a `HistoryDigest` (see the module docstring).

    ``trim`` drops the reads no check can use; ``winner`` (the final read's authoritative
    snapshot, None without one) decides which reads may show vanished keys. Ops are given
    as `Op` (`add`) or as parsed JSON lines (`add_dict`, validated as `Op.from_dict` does:
    `ValueError`/`TypeError`/`KeyError` for a line that is not an op). With ``trim`` the ops
    must come in time order (`ValueError` otherwise), as a merged record does.
    """

    def __init__(self, *, trim: bool = False, winner: StoreSnapshot | None = None) -> None:
        self.trim = trim
        self.winner = winner
        self._winner_keys: frozenset[str] = winner.keys if winner is not None else frozenset()
        self._slots: list[Completion | None] = []
        self._pending: dict[str, tuple[int, Mapping[str, Any]]] = {}
        self._acked: set[tuple[str, str]] = set()  # (key, counter) with an ok increment so far
        self._acked_keys: set[str] = set()  # their keys (most items shown have none)
        self._last = float("-inf")
        self.judged = 0
        self.judged_degraded = 0

    # -- input -------------------------------------------------------------------------------
    def add(self, op: Op) -> None:
        """Fold one `Op`."""
        self.fold(_op_dict(op))

    def add_dict(self, d: Mapping[str, Any]) -> None:
        """Fold one parsed history line (raises as `Op.from_dict` for one that is no op)."""
        validate_op(d)
        self.fold(d)

    def fold(self, d: Mapping[str, Any]) -> None:
        """Fold one op given as a mapping that `validate_op` accepted."""
        if self.trim:
            t = d["time"]
            if t < self._last:
                raise ValueError("a trimmed history digest needs its ops in time order")
            self._last = t
        op_id = d["id"]
        if d["type"] == "invoke":
            stale = self._pending.pop(op_id, None)
            if stale is not None:  # re-invoked before completing: the first try is unknown
                self._slots[stale[0]] = self._pair(stale[1], None)
            self._pending[op_id] = (len(self._slots), d)
            self._slots.append(None)
            return
        opened = self._pending.pop(op_id, None)
        if self.trim and d["f"] == "read":  # most of a history: decided without a Completion
            invoke = None if opened is None else opened[1]
            if not self._keep_read(invoke, d):
                return
            pair = self._pair(invoke, d)
        else:
            pair = self._pair(None if opened is None else opened[1], d)
        if opened is None:
            self._slots.append(pair)
        else:
            self._slots[opened[0]] = pair

    # -- output ------------------------------------------------------------------------------
    def build(self) -> HistoryDigest:
        """The digest of every op folded so far (ops still pending count as indeterminate)."""
        slots, pending = self._slots, list(self._pending.values())
        for index, invoke in pending:  # filled in place for the tuple, then emptied again:
            slots[index] = self._pair(invoke, None)  # no copy of ~2M slots
        try:
            attempts = tuple(c for c in slots if c is not None)
        finally:
            for index, _invoke in pending:
                slots[index] = None
        return HistoryDigest(
            attempts=attempts, reads_judged=self.judged,
            reads_judged_degraded=self.judged_degraded, trimmed=self.trim,
            winner=None if self.winner is None or not self.trim else self.winner.name,
            winner_keys=None if self.winner is None or not self.trim else self.winner.keys)

    # -- pairing -----------------------------------------------------------------------------
    def _pair(self, invoke: Mapping[str, Any] | None,
              done: Mapping[str, Any] | None) -> Completion | None:
        """The `Completion` of an invoke and/or its completion (`drills.checks.history._pair`),
        None for a read this digest does not keep."""
        src = done if done is not None else invoke
        assert src is not None
        f = src["f"]
        if (not self.trim and f == "read" and done is not None and done["type"] == "ok"
                and invoke is not None and _shows(done)):
            if done.get("degraded") is True:
                self.judged_degraded += 1
            else:
                self.judged += 1
        key = src.get("key")
        if key is None and invoke is not None:
            key = invoke.get("key")
        counter = src.get("counter")
        if counter is None and invoke is not None:
            counter = invoke.get("counter")
        attempt = src.get("attempt")
        if attempt is None and invoke is not None:
            attempt = invoke.get("attempt")
        counts: Counts | None = None
        items: tuple[Item, ...] | None = None
        if done is not None:
            if f == "read" and self.trim:
                kept = self._read_kept(done, invoke is not None)
                if kept is None:
                    return None
                counts, items = kept
            else:
                raw_counts, raw_items = done.get("counts"), done.get("items")
                counts = None if raw_counts is None else _as_counts(raw_counts)
                items = None if raw_items is None else tuple(
                    (str(k), _as_counts(cs)) for k, cs in raw_items)
            if f == "incr" and done["type"] == "ok" and key is not None and counter is not None:
                self._acked.add((key, counter))
                self._acked_keys.add(key)
        elif f == "read" and self.trim:
            return None  # a read that never completed: no check reads it
        s = interned  # keys, stores, processes recur: one object each, the snapshots' keys
        return Completion(
            id=s(src["id"]) if src["id"] == key else src["id"], f=f, process=s(src["process"]),
            type="info" if done is None else done["type"],
            invoked_at=None if invoke is None else invoke["time"],
            completed_at=None if done is None else done["time"],
            key=s(key), counter=s(counter), counts=counts,
            epoch=None if done is None else done.get("epoch"),
            store=None if done is None else s(done.get("store")),
            error=None if done is None else s(done.get("error")),
            attempt=attempt, degraded=None if done is None else done.get("degraded"),
            items=items,
        )

    def _keep_read(self, invoke: Mapping[str, Any] | None, done: Mapping[str, Any]) -> bool:
        """Count a completed read for the zero-read check and tell whether a check can use
        it: exactly the reads `_read_kept` keeps (the module docstring's rules), decided
        without building anything, for the reads that are dropped: most of a history."""
        if done["type"] != "ok":
            return False
        get = done.get
        key, raw_counts, raw_items = get("key"), get("counts"), get("items")
        invoked = invoke is not None
        if invoked and ((key is not None and raw_counts is not None) or raw_items is not None):
            if get("degraded") is True:
                self.judged_degraded += 1
            else:
                self.judged += 1
        if get("degraded") is True:
            return True
        store, winner = get("store"), self.winner
        if winner is not None and store is not None and store != winner.name:
            shown = self._winner_keys  # served by another store: a key the primary lacks?
            if key is not None and key not in shown:
                return True
            if raw_items is not None:
                for k, _cs in raw_items:
                    if k not in shown:
                        return True
        if not invoked:
            return False
        acked, keys = self._acked, self._acked_keys
        if raw_counts is not None and key in keys and _zero_acked(key, raw_counts, acked):
            return True
        if raw_items is not None:
            for k, cs in raw_items:  # the hot loop of a long game day: a feed shows 20 keys
                if 0 in cs.values() and k in keys and _zero_acked(k, cs, acked):
                    return True
        return False

    def _read_kept(self, done: Mapping[str, Any], invoked: bool
                   ) -> tuple[Counts | None, tuple[Item, ...] | None] | None:
        """(counts, trimmed items) of a completed read worth keeping, else None."""
        if done["type"] != "ok":
            return None
        key, raw_counts, raw_items = done.get("key"), done.get("counts"), done.get("items")
        store = done.get("store")
        other = (self.winner is not None and store is not None and store != self.winner.name)
        winner_keys = self._winner_keys
        keep = done.get("degraded") is True
        if other and key is not None and key not in winner_keys:
            keep = True
        acked, keys = self._acked, self._acked_keys
        if (invoked and raw_counts is not None and key in keys
                and _zero_acked(key, raw_counts, acked)):
            keep = True
        items: list[tuple[str, Mapping[str, Any]]] | None = None
        if raw_items is not None:
            items = []
            for k, cs in raw_items:
                gone = other and k not in winner_keys
                zero = invoked and k in keys and _zero_acked(k, cs, acked)
                if gone or zero:
                    items.append((k, cs))
                    keep = True
        if not keep:
            return None
        counts = None if raw_counts is None else _as_counts(raw_counts)
        return counts, None if items is None else tuple(
            (str(k), _as_counts(cs)) for k, cs in items)


class OpLine(TypedDict, total=False):
    """One history line as the typed decoder reads it (`drills.runstore`): a plain dict whose
    fields have the types an `Op` needs (counters are integers, not booleans), so the digest
    need not check them again. ``process``, ``id`` and the text fields are taken as they come,
    as `Op.from_dict` takes them."""

    process: Required[Any]
    type: Required[Literal["invoke", "ok", "fail", "info"]]
    f: Required[Literal["write", "incr", "read"]]
    id: Required[Any]
    time: Required[float]
    key: Any
    counter: Any
    counts: dict[str, int] | None
    epoch: Any
    store: Any
    error: Any
    attempt: Any
    degraded: Any
    items: list[tuple[Any, dict[str, int]]] | None


def validate_op(d: Mapping[str, Any]) -> None:
    """Raise `ValueError`/`TypeError`/`KeyError` for a parsed history line that is not an op
    (as `Op.from_dict` does), for a ``time`` that is not a number, and for counts or items
    whose counters are not integers: everything `OpLine` and `check_op_rules` check, for a
    mapping that did not come through the typed decoder."""
    kind, f = d["type"], d["f"]
    if kind not in OP_TYPES:
        raise ValueError(f"op type must be invoke|ok|fail|info, got {kind!r}")
    if f not in OP_FS:
        raise ValueError(f"op f must be write|incr|read, got {f!r}")
    check_op_rules(d)
    for name in ("process", "id", "time"):
        if name not in d:
            raise TypeError(f"missing op field {name!r}")
    t = d["time"]
    if isinstance(t, bool) or not isinstance(t, int | float):
        raise TypeError(f"time must be a number, got {t!r}")
    counts = d.get("counts")
    if counts is not None:
        _as_counts(counts)  # the model's rules (Counts, as_items), not a copy of them
    as_items(d.get("items"))


def _shows(done: Mapping[str, Any]) -> bool:
    return (done.get("key") is not None and done.get("counts") is not None) \
        or done.get("items") is not None


def _zero_acked(key: Any, counts: Mapping[str, int], acked: set[tuple[str, str]]) -> bool:
    """True when ``counts`` (validated) shows 0 for a counter of ``key`` with an ok increment
    so far."""
    return any(value == 0 and (key, name) in acked for name, value in counts.items())


def _as_counts(value: Any) -> Counts:
    if isinstance(value, Counts):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"counts must be an object, got {value!r}")
    return Counts(value)
