"""Typed records that cross module boundaries: requests, history operations, faults, final reads,
check results and their typed evidence.

The data vocabulary is generic (any system): a history writes keys (``f="write"``), increments
named counters of keys (``f="incr"``), and reads keys' counters (``f="read"``); a final read
holds each store's keys and counters. Which operation classes a run has is not known here: the
target (or the drill file, or the requests seen) says.

All times are wall-clock Unix seconds (``time.time()``) so that records written by separate
processes (Locust workers, the engine, the fault injector) share one clock on one machine.
Records are frozen dataclasses; ``to_dict``/``from_dict`` are the only (de)serialisers, used by
the JSON-lines files of a run directory (``requests.jsonl``, ``history.jsonl``).
"""

from __future__ import annotations

import json
import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal, TypeVar, cast

from drills.errors import SpecError

OpType = Literal["invoke", "ok", "fail", "info"]
OpF = Literal["write", "incr", "read"]
OP_TYPES: frozenset[str] = frozenset({"invoke", "ok", "fail", "info"})
OP_FS: frozenset[str] = frozenset({"write", "incr", "read"})


class Counts(Mapping[str, int]):
    """A read-only, hashable mapping counter name -> value (what one read saw of one key).

    `Op` stays hashable (records are compared and put in sets) because its ``counts`` and
    ``items`` hold `Counts`, never a plain dict: `Op.__post_init__` converts what it is given.
    Equal to any mapping with the same items (``Counts({"hits": 3}) == {"hits": 3}``); its
    hash is that of its items as a frozenset, so order does not matter. Iteration keeps the
    order it was given (JSON keeps it too).
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, int] | Iterable[tuple[str, int]] = ()) -> None:
        pairs = data.items() if isinstance(data, Mapping) else data
        self._data: dict[str, int] = {}
        for name, value in pairs:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"counter {name!r} must be an integer, got {value!r}")
            self._data[str(name)] = value
        self._hash: int | None = None

    def __getitem__(self, name: str) -> int:
        return self._data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"Counts({self._data!r})"

    def to_dict(self) -> dict[str, int]:
        return dict(self._data)


Item = tuple[str, Counts]


def _counts(value: Mapping[str, int] | None) -> Counts | None:
    return None if value is None or isinstance(value, Counts) else Counts(value)


def as_items(value: Iterable[tuple[str, Mapping[str, int]]] | None) -> tuple[Item, ...] | None:
    """A list read's ``(key, counts)`` items as `Item` tuples; `TypeError` for an item whose
    counts are not an object of integer counters."""
    if value is None:
        return None
    out: list[Item] = []
    for pair in value:
        key, counts = pair
        if not isinstance(counts, Mapping):
            raise TypeError(f"item {key!r}: counts must be an object, got {counts!r}")
        out.append((str(key), counts if isinstance(counts, Counts) else Counts(counts)))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Request:
    """One user-facing request as the load saw it (one line of ``requests.jsonl``).

    ``t`` is the start time, ``duration`` seconds until the answer or the error, ``op`` the
    operation class (free text: the target's classes, or a custom system's request names
    mapped by ``load.classes``), ``status`` the HTTP status (0 when no response arrived),
    ``error`` a short reason when ``ok`` is false.
    """

    t: float
    duration: float
    op: str
    ok: bool
    status: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Request:
        return cls(
            t=float(d["t"]),
            duration=float(d["duration"]),
            op=str(d["op"]),
            ok=bool(d["ok"]),
            status=int(d.get("status") or 0),
            error=d.get("error"),
        )


def classes_of(
    requests: Iterable[Request], classes: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The operation classes of a run: ``classes`` when given (non-empty), else the classes of
    ``requests`` in first-seen order. Pure."""
    if classes:
        return tuple(classes)
    return tuple(dict.fromkeys(r.op for r in requests))


def check_op_rules(d: Mapping[str, Any]) -> None:
    """The rule of a history line that its field types cannot say: an ``incr`` invoke names
    its counter. Raises `ValueError`."""
    if d.get("f") == "incr" and d["type"] == "invoke" and not d.get("counter"):
        raise ValueError("an incr invoke must name its counter")


@dataclass(frozen=True, slots=True)
class Op:
    """One entry of a Jepsen-style history (one line of ``history.jsonl``).

    Every write is recorded twice: an ``invoke`` before it is sent, then its completion with the
    same ``id``: ``ok`` (acknowledged), ``fail`` (definitely not applied: refused before sending or
    a 4xx), or ``info`` (indeterminate: timeout, reset, 5xx after sending). Reads (``f="read"``)
    record the counters they saw in ``counts`` (or ``items``) on ``ok``.

    - ``process``: the logical client (worker pid + user number), sequential within itself.
    - ``f``: ``write`` (key ``key`` is created or written; judged by the set check),
      ``incr`` (one increment of counter ``counter`` of ``key``; judged by the counter bounds
      check), ``read`` (a read of ``key``'s counters, or a list read with ``items``).
    - ``id``: the client-generated op id (an idempotency key: every attempt carries it).
    - ``counts``: on an ok read of ``key``, counter name -> value seen (`Counts`).
    - ``items``: a list read's counters, ``(key, counts)`` per item shown (``key`` is then
      None); the zero-read check judges each item as a read of that key.
    - ``epoch``/``store``: which store acknowledged, under which epoch, when known: used by the
      split-brain check.
    - ``attempt``: the client's attempt number for this ``id`` (1 = first send); each retry is
      its own invoke/completion pair with ``attempt`` 2, 3, ...; None = not recorded.
    - ``degraded``: a read answered by a non-primary (allowed to be stale); None = unknown.

    JSON: ``{"f":"incr","key":"v1","counter":"hits",...}``,
    ``{"f":"read","key":"v1","counts":{"hits":3}}``, ``"items":[["v1",{"hits":3}], ...]``.
    Hashable: ``counts`` and ``items`` are converted to `Counts` on construction.
    """

    process: str
    type: OpType
    f: OpF
    id: str
    time: float
    key: str | None = None
    counter: str | None = None
    counts: Counts | None = None
    epoch: int | None = None
    store: str | None = None
    error: str | None = None
    attempt: int | None = None
    degraded: bool | None = None
    items: tuple[Item, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in OP_TYPES:
            raise ValueError(f"op type must be invoke|ok|fail|info, got {self.type!r}")
        if self.f not in OP_FS:
            raise ValueError(f"op f must be write|incr|read, got {self.f!r}")
        if self.counts is not None and not isinstance(self.counts, Counts):
            object.__setattr__(self, "counts", _counts(self.counts))
        if self.items is not None:
            object.__setattr__(self, "items", as_items(self.items))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None:
                d[f.name] = v
        if self.counts is not None:
            d["counts"] = self.counts.to_dict()
        if self.items is not None:
            d["items"] = [[k, c.to_dict()] for k, c in self.items]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Op:
        """Parse one history line. Raises `ValueError`/`TypeError`/`KeyError` for a line that
        is not an op (unknown ``type`` or ``f``, an ``incr`` invoke without ``counter``)."""
        check_op_rules(d)
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if kw.get("counts") is not None and not isinstance(kw["counts"], Mapping):
            raise TypeError(f"counts must be an object, got {kw['counts']!r}")
        return cls(**kw)


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """A fault as it happened: what, where, when it was scheduled and when it really took effect.

    ``scheduled_at`` is the offset (s) from load start in the drill file; ``injected_at`` and
    ``reverted_at`` are wall-clock times: when the fault took effect (for a power-down, when
    the last node was seen dead) and when the harness began to revert it (from then on the
    revert's own effects can show: a zone booting, a store rejoining); ``reverted_at`` is None
    if it never was.
    """

    id: str
    kind: str
    target: str
    scheduled_at: float
    injected_at: float
    reverted_at: float | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["detail"] = dict(self.detail)
        return d


V = TypeVar("V")


def interned(value: V) -> V:
    """``value`` itself, or for a `str` the one shared copy of it (`sys.intern`): the keys of
    a run recur in every store's snapshot and in the history digest."""
    if isinstance(value, str) and type(value) is str:  # sys.intern takes no subclass
        return cast(V, sys.intern(value))
    return value


class CounterTable(Mapping[str, Mapping[str, int]]):
    """A store's counters, key -> counter name -> value, held as one row of 64-bit integers
    per key (a read-only `Mapping`; ``table[key]`` builds that key's dict).

    A long game day's final read holds ~150k keys with two counters each per store: as dicts
    of dicts that is ~40 MB a store, as rows ~15. `count` reads a value without building
    anything. Keys keep their order; a key's counters come in the order the names were first
    seen. A key whose values do not fit a row (not integers, or outside the 64-bit range)
    keeps its dict as given.
    """

    __slots__ = ("_extra", "_index", "_names", "_values")
    _ABSENT = -(2 ** 63)  # no such counter on this key

    def __init__(self, counters: Mapping[str, Mapping[str, int]] = MappingProxyType({})
                 ) -> None:
        names: dict[str, int] = {}
        for cs in counters.values():
            for name in cs:
                if name not in names:
                    names[name] = len(names)
        width = len(names)
        values = array("q", [self._ABSENT]) * (len(counters) * width)
        index: dict[str, int] = {}
        extra: dict[str, Mapping[str, int]] = {}
        for row, (key, cs) in enumerate(counters.items()):
            key = interned(key)
            base = row * width
            try:
                for name, value in cs.items():
                    if value == self._ABSENT or type(value) is not int:
                        raise OverflowError
                    values[base + names[name]] = value
            except OverflowError:
                extra[key] = cs
                values[base:base + width] = array("q", [self._ABSENT]) * width
            index[key] = row
        self._index, self._names, self._values, self._extra = index, tuple(names), values, extra

    def count(self, key: str, counter: str, default: int = 0) -> int:
        """The value of ``counter`` of ``key``, ``default`` when there is none."""
        row = self._index.get(key)
        if row is None:
            return default
        if self._extra and key in self._extra:
            return int(self._extra[key].get(counter, default))
        try:
            value = self._values[row * len(self._names) + self._names.index(counter)]
        except ValueError:  # a name no key has
            return default
        return default if value == self._ABSENT else value

    def __getitem__(self, key: str) -> Mapping[str, int]:
        row = self._index[key]
        if self._extra and key in self._extra:
            return self._extra[key]
        width = len(self._names)
        return {name: value for name, value in
                zip(self._names, self._values[row * width:(row + 1) * width], strict=True)
                if value != self._ABSENT}

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return f"CounterTable({dict(self.items())!r})"


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    """What one store held at the final read: every key and every counter of every key.

    ``keys`` are the keys written (set check); ``counters`` maps key -> counter -> value (a
    counter missing reads as 0, see `count`). ``reachable`` false means the read failed (then
    both are empty and must not be trusted; ``error`` says why).
    """

    name: str
    reachable: bool
    role: str | None = None
    epoch: int | None = None
    keys: frozenset[str] = frozenset()
    counters: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    error: str | None = None

    def __post_init__(self) -> None:
        # One str object per key (`interned`), shared by every store's snapshot and by the
        # history digest (as decoded, each of a long game day's ~150k keys is four copies of
        # ~80 bytes), and the counters as rows (`CounterTable`)
        object.__setattr__(self, "keys", frozenset(map(interned, self.keys)))
        if not isinstance(self.counters, CounterTable):
            object.__setattr__(self, "counters", CounterTable(self.counters))

    def count(self, key: str, counter: str) -> int:
        """The value of ``counter`` of ``key`` (0 when the store has none)."""
        return int(cast(CounterTable, self.counters).count(key, counter))  # __post_init__

    def counter_names(self) -> frozenset[str]:
        """Every counter name this snapshot holds for any key."""
        return frozenset(c for cs in self.counters.values() for c in cs)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "reachable": self.reachable, "role": self.role,
                "epoch": self.epoch, "keys": sorted(self.keys),
                "counters": {k: dict(cs) for k, cs in self.counters.items()},
                "error": self.error}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StoreSnapshot:
        """Inverse of `to_dict`; ``keys``/``counters``/``role``/``epoch``/``error`` optional.
        Raises `ValueError`/`TypeError`/`KeyError` for a malformed snapshot."""
        keys = d.get("keys") or []
        counters = d.get("counters") or {}
        if not isinstance(keys, list | tuple) or not isinstance(counters, Mapping):
            raise TypeError("keys must be a list and counters an object")
        epoch = d.get("epoch")
        return cls(
            name=str(d["name"]), reachable=bool(d.get("reachable", True)),
            role=None if d.get("role") is None else str(d["role"]),
            epoch=None if epoch is None else int(epoch),
            keys=frozenset(str(k) for k in keys),
            counters={str(k): {str(c): int(v) for c, v in dict(cs).items()}
                      for k, cs in counters.items()},
            error=None if d.get("error") is None else str(d["error"]),
        )


@dataclass(frozen=True, slots=True)
class FinalRead:
    """The final read after quiesce: one snapshot per store, and which one was primary."""

    primary: str | None
    stores: tuple[StoreSnapshot, ...]

    def store(self, name: str) -> StoreSnapshot | None:
        return next((s for s in self.stores if s.name == name), None)

    @property
    def authoritative(self) -> StoreSnapshot | None:
        """The primary's snapshot if it was reachable, else None (the read is then unknown)."""
        snap = self.store(self.primary) if self.primary else None
        return snap if snap is not None and snap.reachable else None

    def to_dict(self) -> dict[str, Any]:
        return {"primary": self.primary, "stores": [s.to_dict() for s in self.stores]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FinalRead:
        primary = d.get("primary")
        return cls(primary=None if primary is None else str(primary),
                   stores=tuple(StoreSnapshot.from_dict(s) for s in d.get("stores") or ()))


Verdict = bool | None  # True pass, False fail, None unknown (could not be decided)


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


@dataclass(frozen=True, slots=True)
class LostWrite:
    """Evidence: an acknowledged write whose key the authoritative final read does not have.

    ``acked_at``/``invoked_at`` are wall-clock times (None when not recorded); ``store`` and
    ``epoch`` say who acknowledged it, when the load recorded that.
    """

    kind: ClassVar[str] = "lost_write"

    key: str
    id: str
    acked_at: float | None
    invoked_at: float | None = None
    store: str | None = None
    epoch: int | None = None

    def describe(self) -> str:
        """The finding line of this lost write (wall-clock times as `drills.checks.findings`)."""
        where = f" by {self.store} epoch {self.epoch}" if self.store is not None else ""
        return (f"lost acked write {self.key}: acked at {_at(self.acked_at)}{where} "
                f"(invoked {_at(self.invoked_at)})")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LostWrite:
        return cls(key=str(d["key"]), id=str(d.get("id", d["key"])),
                   acked_at=_opt_float(d.get("acked_at")),
                   invoked_at=_opt_float(d.get("invoked_at")),
                   store=_opt_str(d.get("store")), epoch=_opt_int(d.get("epoch")))


@dataclass(frozen=True, slots=True)
class Rto:
    """Evidence: the recovery of one operation class after one fault (`drills.checks.rto`).

    ``rto_s`` is None when not recovered or not measured; `measured` is false when the class
    had no baseline traffic (then ``threshold`` and ``baseline_rate`` are None). Times in
    seconds relative to the fault's injection; ``bucket_s`` is the bucket width actually used
    (the measurement's resolution). ``failback`` is true when an outage began after the
    revert; ``failback_s`` is its recovery time from the revert (None if it never recovered,
    or there was none). ``stall_s`` is the longest stall's recovery time, None if none.
    """

    kind: ClassVar[str] = "rto"

    op: str
    fault_id: str
    rto_s: float | None
    recovered: bool
    first_error_s: float | None
    first_success_s: float | None
    below_s: float
    threshold: float | None
    baseline_rate: float | None
    baseline_per_bucket: float
    bucket_s: float
    failback: bool = False
    failback_s: float | None = None
    reverted_s: float | None = None
    stall_s: float | None = None

    @property
    def measured(self) -> bool:
        """True when the class had baseline traffic, so the RTO means something."""
        return self.baseline_rate is not None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Rto:
        return cls(
            op=str(d["op"]), fault_id=str(d["fault_id"]), rto_s=_opt_float(d.get("rto_s")),
            recovered=bool(d["recovered"]), first_error_s=_opt_float(d.get("first_error_s")),
            first_success_s=_opt_float(d.get("first_success_s")),
            below_s=float(d.get("below_s", 0.0)), threshold=_opt_float(d.get("threshold")),
            baseline_rate=_opt_float(d.get("baseline_rate")),
            baseline_per_bucket=float(d.get("baseline_per_bucket", 0.0)),
            bucket_s=float(d["bucket_s"]), failback=bool(d.get("failback", False)),
            failback_s=_opt_float(d.get("failback_s")),
            reverted_s=_opt_float(d.get("reverted_s")), stall_s=_opt_float(d.get("stall_s")),
        )


#: Typed evidence a `CheckResult` may carry.
Evidence = LostWrite | Rto
E = TypeVar("E", LostWrite, Rto)
#: Evidence kind (its ``"kind"`` in JSON) -> its class, for `CheckResult.from_dict`.
EVIDENCE_KINDS: Mapping[str, type[LostWrite] | type[Rto]] = MappingProxyType(
    {LostWrite.kind: LostWrite, Rto.kind: Rto})


def _at(t: float | None) -> str:
    return "?" if t is None else f"{t:.3f}"


def jsonable(value: Any) -> Any:
    """Plain JSON values from metrics: mappings with string keys, frozensets and sets as
    sorted lists, tuples as lists, NaN as None."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one pure check.

    ``passed`` is True, False, or None when the check could not decide (e.g. no final read).
    ``metrics`` holds the numbers the check measured (names as in the journal's ``metrics``);
    ``findings`` lists human-readable lines (bounded); ``evidence`` the typed records behind
    them that reports render (`LostWrite` per lost write, `Rto` per class and fault), never
    parsed back from the lines. `to_dict`/`from_dict` are its only (de)serialisers
    (``from_dict(to_dict(r)) == r`` up to metrics becoming plain JSON).
    """

    name: str
    passed: Verdict
    summary: str
    metrics: Mapping[str, Any] = field(default_factory=dict)
    findings: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()

    def of(self, kind: type[E]) -> tuple[E, ...]:
        """The evidence records of one class, in order."""
        return tuple(e for e in self.evidence if isinstance(e, kind))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: metrics through `jsonable`, evidence as objects with their ``kind``."""
        return {"name": self.name, "passed": self.passed, "summary": self.summary,
                "metrics": jsonable(self.metrics), "findings": list(self.findings),
                "evidence": [e.to_dict() for e in self.evidence]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CheckResult:
        """Inverse of `to_dict`. Raises `SpecError` whose ``field`` names what is wrong
        (``passed``, ``findings[2]``, ``evidence[0].kind``, ...) for malformed input."""
        if not isinstance(d, Mapping):
            raise SpecError(f"expected an object, got {type(d).__name__}")
        name, summary = _need(d, "name", str), _need(d, "summary", str)
        passed = d.get("passed")
        if passed is not None and not isinstance(passed, bool):
            raise SpecError(f"expected true, false or null, got {passed!r}", field="passed")
        metrics = d.get("metrics", {})
        if not isinstance(metrics, Mapping):
            raise SpecError(f"expected an object, got {type(metrics).__name__}", field="metrics")
        findings = _list(d, "findings")
        for i, f in enumerate(findings):
            if not isinstance(f, str):
                raise SpecError(f"expected a string, got {type(f).__name__}",
                                field=f"findings[{i}]")
        return cls(name=name, passed=passed, summary=summary, metrics=dict(metrics),
                   findings=tuple(findings),
                   evidence=tuple(_evidence(e, f"evidence[{i}]")
                                  for i, e in enumerate(_list(d, "evidence"))))


def _need(d: Mapping[str, Any], key: str, kind: type) -> Any:
    if key not in d:
        raise SpecError("missing", field=key)
    if not isinstance(d[key], kind):
        raise SpecError(f"expected {kind.__name__}, got {type(d[key]).__name__}", field=key)
    return d[key]


def _list(d: Mapping[str, Any], key: str) -> list[Any]:
    raw = d.get(key, [])
    if not isinstance(raw, list):
        raise SpecError(f"expected a list, got {type(raw).__name__}", field=key)
    return raw


def _evidence(e: Any, where: str) -> Evidence:
    kind = EVIDENCE_KINDS.get(str(e.get("kind"))) if isinstance(e, Mapping) else None
    if kind is None:
        raise SpecError(f"expected an object whose kind is one of {', '.join(EVIDENCE_KINDS)}",
                        field=f"{where}.kind")
    try:
        return kind.from_dict(e)
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"malformed {kind.kind}: {type(exc).__name__}: {exc}",
                        field=where) from exc


T = TypeVar("T", Request, Op)


def write_jsonl(path: Path, records: Iterable[Request | Op]) -> None:
    """Write records as JSON lines (one object per line)."""
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec.to_dict(), separators=(",", ":")) + "\n")


def read_jsonl(path: Path, kind: type[T]) -> Iterator[T]:
    """Read JSON lines into records of ``kind``; a torn last line (a killed writer) is skipped.

    Raises `SpecError` naming the file and line for any other malformed line.
    """
    with path.open(encoding="utf-8") as fh:
        lines = fh.readlines()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield kind.from_dict(json.loads(line))
        except (ValueError, KeyError, TypeError) as exc:
            if n == len(lines) and not line.endswith("\n"):
                return  # torn tail from a worker killed mid-write
            raise SpecError(f"line {n}: {exc}", source=str(path)) from exc
