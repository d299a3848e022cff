"""The request record as columns: one numpy array per field, sorted by start time.

A 30-minute game day at 1,000 req/s is 1.8M requests: as `Request` objects that is over a
gigabyte, as columns about 30 MB. `RequestFrame` holds ``t``, ``duration``, ``ok``, ``status``
and codes of the class (``op``) and of the error text; `FrameBuilder` fills one from parsed
JSON lines (or `Request` objects) in any order and sorts it by start time, stably, as
``sorted(requests, key=lambda r: r.t)`` does. The time-based checks (`drills.checks.rto`,
`drills.checks.buckets`) and the reports compute on the columns; `rows` gives the records back
as `Request` objects for whoever needs them one at a time. Pure: no I/O.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from drills.model import Request

F64 = npt.NDArray[np.float64]
#: class codes, error codes and statuses: int16 when every value fits (nearly always), else
#: int32 (`FrameBuilder.build`)
Codes = npt.NDArray[np.int16] | npt.NDArray[np.int32]
BOOL = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class RequestFrame:
    """Requests as columns, sorted by start time ``t`` (stable: ties keep record order).

    ``op`` indexes ``ops`` (the class names), ``error`` indexes ``errors`` (the error texts,
    None included). ``classes`` is the classes in first-seen order along ``t``.
    """

    t: F64
    duration: F64
    ok: BOOL
    status: Codes
    op: Codes
    error: Codes
    ops: tuple[str, ...]
    errors: tuple[Any, ...]

    def __len__(self) -> int:
        return int(self.t.shape[0])

    @classmethod
    def of(cls, requests: Iterable[Request]) -> RequestFrame:
        """The frame of ``requests`` (any order)."""
        b = FrameBuilder()
        for r in requests:
            b.add(r.t, r.duration, r.op, r.ok, r.status, r.error)
        return b.build()

    @property
    def classes(self) -> tuple[str, ...]:
        """The classes in first-seen order along ``t`` (as `drills.model.classes_of`)."""
        if not len(self):
            return ()
        codes, first = np.unique(self.op, return_index=True)
        return tuple(self.ops[int(codes[i])] for i in np.argsort(first, kind="stable"))

    def code(self, op: str) -> int:
        """The code of class ``op`` (-1 when the record has none)."""
        try:
            return self.ops.index(op)
        except ValueError:
            return -1

    def errors_count(self) -> int:
        """How many requests failed."""
        return int(len(self) - np.count_nonzero(self.ok))

    def per_class(self) -> dict[str, tuple[int, int]]:
        """Class -> (requests, failed), classes in first-seen order."""
        total = np.bincount(self.op, minlength=len(self.ops))
        failed = np.bincount(self.op, weights=~self.ok, minlength=len(self.ops))
        return {op: (int(total[self.code(op)]), int(failed[self.code(op)]))
                for op in self.classes}

    def rows(self) -> Iterator[Request]:
        """The records as `Request` objects, in ``t`` order."""
        ops, errors = self.ops, self.errors
        for t, d, ok, status, op, err in zip(self.t.tolist(), self.duration.tolist(),
                                             self.ok.tolist(), self.status.tolist(),
                                             self.op.tolist(), self.error.tolist(), strict=True):
            yield Request(t=t, duration=d, op=ops[op], ok=ok, status=status, error=errors[err])


class FrameBuilder:
    """Appends requests to growing columns; `build` sorts them into a `RequestFrame`."""

    def __init__(self) -> None:
        self._t = array("d")
        self._d = array("d")
        self._ok = array("b")
        self._status = array("q")
        self._op = array("i")
        self._err = array("i")
        self._ops: dict[str, int] = {}
        self._errors: dict[Any, int] = {}

    def __len__(self) -> int:
        return len(self._t)

    def add(self, t: float, duration: float, op: str, ok: bool, status: int,
            error: Any = None) -> None:
        """Append one request (fields as `Request`)."""
        self._t.append(t)
        self._d.append(duration)
        self._ok.append(1 if ok else 0)
        self._status.append(status)
        code = self._ops.get(op)
        if code is None:
            code = self._ops[op] = len(self._ops)
        self._op.append(code)
        self._err.append(self._error_code(error))

    def add_dict(self, d: Mapping[str, Any]) -> None:
        """Append one parsed ``requests.jsonl`` line (as `Request.from_dict` reads it; raises
        `KeyError`/`ValueError`/`TypeError` for one that is no request)."""
        self.add(float(d["t"]), float(d["duration"]), str(d["op"]), bool(d["ok"]),
                 int(d.get("status") or 0), d.get("error"))

    def _error_code(self, error: Any) -> int:
        try:
            code = self._errors.get(error)
        except TypeError:  # an unhashable error (not a string): keep it as its JSON text
            error = json.dumps(error)
            code = self._errors.get(error)
        if code is None:
            code = self._errors[error] = len(self._errors)
        return code

    def build(self) -> RequestFrame:
        """The columns sorted by start time (stable). Each column is moved out of the builder
        as it is sorted (a long game day's columns are tens of MB each), which empties it."""
        t = np.frombuffer(self._t, dtype=np.float64) if len(self._t) else np.zeros(0)
        order = np.argsort(t, kind="stable")
        del t

        def col(name: str, dtype: Any) -> Any:
            a: array[Any] = getattr(self, name)
            raw = np.frombuffer(a, dtype=np.dtype(a.typecode)) if len(a) else np.zeros(0, dtype)
            if dtype is None:  # a code column: as narrow as its values allow
                small = not len(raw) or (int(raw.min()) >= -(2 ** 15)
                                         and int(raw.max()) < 2 ** 15)
                dtype = np.int16 if small else np.int32
            out = raw[order].astype(dtype, copy=False)
            del raw
            setattr(self, name, array(a.typecode))
            return out

        return RequestFrame(
            t=col("_t", np.float64), duration=col("_d", np.float64),
            ok=col("_ok", np.bool_), status=col("_status", None),
            op=col("_op", None), error=col("_err", None),
            ops=tuple(self._ops), errors=tuple(self._errors))


def as_frame(requests: Sequence[Request] | RequestFrame) -> RequestFrame:
    """``requests`` as a frame (itself when it is one)."""
    return requests if isinstance(requests, RequestFrame) else RequestFrame.of(requests)
