"""Typed records that cross module boundaries: requests, history operations, faults, final reads,
check results.

All times are wall-clock Unix seconds (``time.time()``) so that records written by separate
processes (Locust workers, the engine, the fault injector) share one clock on one machine.
Records are frozen dataclasses; ``to_dict``/``from_dict`` are the only (de)serialisers, used by
the JSON-lines files of a run directory (``requests.jsonl``, ``history.jsonl``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

from drills.errors import SpecError

#: Operation classes a request belongs to (one RTO per class).
OP_CLASSES: tuple[str, ...] = ("upload", "feed", "view", "like", "search", "stats")

OpType = Literal["invoke", "ok", "fail", "info"]
OpF = Literal["upload", "view", "like", "read"]


@dataclass(frozen=True, slots=True)
class Request:
    """One user-facing request as the load saw it (one line of ``requests.jsonl``).

    ``t`` is the start time, ``duration`` seconds until the answer or the error, ``op`` the
    operation class, ``status`` the HTTP status (0 when no response arrived), ``error`` a short
    reason when ``ok`` is false.
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


@dataclass(frozen=True, slots=True)
class Op:
    """One entry of a Jepsen-style history (one line of ``history.jsonl``).

    Every write is recorded twice: an ``invoke`` before it is sent, then its completion with the
    same ``id``: ``ok`` (acknowledged), ``fail`` (definitely not applied: refused before sending or
    a 4xx), or ``info`` (indeterminate: timeout, reset, 5xx after sending). Reads (``f="read"``)
    record the counters they saw in ``views``/``likes`` on ``ok``.

    - ``process``: the logical client (worker pid + user number), sequential within itself.
    - ``f``: ``upload`` (``video`` is the client-generated video id, ``id`` the same id),
      ``view``/``like`` (one increment of ``video``, ``id`` the client op id), ``read``.
    - ``epoch``/``store``: which store acknowledged, under which epoch (from the response), when
      known: used by the split-brain check.
    - ``attempt``: the client's attempt number for this ``id`` (1 = first send). A client that
      got an indeterminate answer retries with the same id (an idempotency key), and each
      retry is its own invoke/completion pair with ``attempt`` 2, 3, ...; None = not recorded.
    - ``degraded``: a read answered by a non-primary (allowed to be stale); None = unknown.
    - ``items``: a feed or search read's counters, ``(video, views, likes)`` per item shown
      (``video`` is then None); the zero-read check judges each item like a stats read.
    """

    process: str
    type: OpType
    f: OpF
    id: str
    time: float
    video: str | None = None
    views: int | None = None
    likes: int | None = None
    epoch: int | None = None
    store: str | None = None
    error: str | None = None
    attempt: int | None = None
    degraded: bool | None = None
    items: tuple[tuple[str, int, int], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        if self.items is not None:
            d["items"] = [list(i) for i in self.items]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Op:
        if d.get("type") not in ("invoke", "ok", "fail", "info"):
            raise ValueError(f"op type must be invoke|ok|fail|info, got {d.get('type')!r}")
        if d.get("f") not in ("upload", "view", "like", "read"):
            raise ValueError(f"op f must be upload|view|like|read, got {d.get('f')!r}")
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if kw.get("items") is not None:
            kw["items"] = tuple((str(v), int(a), int(b)) for v, a, b in kw["items"])
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


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    """What one store held at the final read: every video id and every counter.

    ``reachable`` false means the read failed (then the sets are empty and must not be trusted).
    """

    name: str
    reachable: bool
    role: str | None = None
    epoch: int | None = None
    videos: frozenset[str] = frozenset()
    views: Mapping[str, int] = field(default_factory=dict)
    likes: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None


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


Verdict = bool | None  # True pass, False fail, None unknown (could not be decided)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one pure check.

    ``passed`` is True, False, or None when the check could not decide (e.g. no final read).
    ``metrics`` holds the numbers the check measured (names as in the journal's ``metrics``);
    ``findings`` lists human-readable evidence (each lost id, each counter out of bounds, ...).
    """

    name: str
    passed: Verdict
    summary: str
    metrics: Mapping[str, Any] = field(default_factory=dict)
    findings: tuple[str, ...] = ()


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
