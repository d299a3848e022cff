"""``drills.record``: the public API a locustfile uses to record its history (stable, tiny).

Requests need nothing from a locustfile: the recording shim Locust runs beside it records
every request (`drills.load.locustfiles.recording`). The *data* checks (lost acknowledged
writes, counter bounds, zero reads, split brain, exposure) need to know what the load wrote
and read, as a Jepsen history: every operation an ``invoke``, then its completion ``ok``
(acknowledged), ``fail`` (definitely not applied) or ``info`` (indeterminate: it may or may
not have been applied)::

    from drills import record

    h = record.history()                       # this Locust process's history
    op = h.invoke("write", key="k1")           # before sending: a `Pending` op
    h.ok(op, store="redis-east", epoch=7)      # acknowledged (store/epoch when known)
    h.fail(op, error="http 409")               # or: definitely not applied
    h.info(op, error="timeout")                # or: may have been applied
    op = h.retry(op)                           # resend under the same id (attempt 2, ...)

    op = h.invoke("incr", key="c1", counter="hits")
    h.ok(op)
    h.read("c1", counts={"hits": 3}, started=t_sent)   # an ok read (invoke + ok at once)
    h.read(items=[("c1", {"hits": 3}), ("c2", {"hits": 0})])   # a list read

``write`` writes key ``key`` (the set check: an acknowledged key must be in the final read);
``incr`` is one increment of counter ``counter`` of ``key`` (any counter names); ``read``
reports counter values seen (``counts`` of ``key``, or ``items`` of a list read). ``process``
defaults to the calling greenlet (a Locust user runs in one), ``id`` to a fresh uuid.

To classify an answer the way the recorded requests are classified, hand the Locust response
(``HttpUser`` or ``FastHttpUser``, with ``catch_response`` or without) to `outcome_of`; it
returns a `drills.load.outcome.Outcome` whose ``write_type()`` says ok, fail or info.
`transport_error` is the exception behind it (None when an answer arrived).

The history goes to ``$DRILLS_RECORD_DIR/history-<pid>.jsonl`` (set by the runner), one
flushed line per entry; `history` returns the same object to every caller in the process (the
process's one record, as Locust's ``events`` is: the single place a locustfile and the shim
meet). `started_at` is the load's ``t0``, the time its first user could send: drill offsets
(faults, write bursts) count from it. Errors: `SpecError` for a misuse (unknown ``f``, an
``incr`` without counter) or a missing ``DRILLS_RECORD_DIR``.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3.exceptions as uex

from drills.errors import SpecError
from drills.load.outcome import Outcome, outcome
from drills.load.records import ENV_RECORD_DIR, Recorder
from drills.model import Op, OpF, OpType

__all__ = ["History", "Pending", "history", "outcome_of", "started_at", "transport_error"]

_FS = ("write", "incr", "read")
#: geventhttpclient's frames that open a connection: an error raised inside them sent nothing.
_CONNECT_FRAMES = frozenset({"_create_socket", "_create_tcp_socket", "_connect_socket"})


@dataclass(frozen=True, slots=True)
class Pending:
    """An invoked operation awaiting its completion (pass it to `History.ok` / ``fail`` /
    ``info``, or to `History.retry`)."""

    id: str
    f: OpF
    process: str
    key: str | None = None
    counter: str | None = None
    attempt: int | None = None


def _current_task() -> Any:
    """The calling greenlet (each Locust user runs in its own), else the calling thread."""
    try:
        import greenlet  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - Locust always brings greenlet
        return threading.current_thread()
    return greenlet.getcurrent()


class History:
    """One process's history writer over a `Recorder` (see the module docstring).

    Thread- and greenlet-safe (the recorder writes each line under a lock). ``clock`` is
    injectable for tests.
    """

    def __init__(self, recorder: Recorder, *, clock: Any = time.time) -> None:
        self.recorder = recorder
        self._clock = clock
        self._lock = threading.Lock()
        self._names: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    def process(self) -> str:
        """The logical client name of the caller: one per greenlet (or thread), ``<pid>-<n>``."""
        task = _current_task()
        with self._lock:
            name = self._names.get(task)
            if name is None:
                name = self._names[task] = self.recorder.new_process()
            return name

    def invoke(self, f: str, *, key: str | None = None, counter: str | None = None,
               id: str | None = None, attempt: int | None = None,
               process: str | None = None) -> Pending:
        """Record that operation ``f`` is about to be sent; return it as `Pending`.

        ``write`` needs no ``key`` (its ``id`` stands for it); ``incr`` needs ``key`` and
        ``counter``. Raises `SpecError` otherwise.
        """
        if f not in _FS:
            raise SpecError(f"must be write, incr or read, got {f!r}", source="drills.record",
                            field="f")
        if f == "incr" and (not key or not counter):
            raise SpecError("an incr needs key and counter", source="drills.record",
                            field="counter")
        op = Pending(id=id or uuid.uuid4().hex, f=f, process=process or self.process(),  # type: ignore[arg-type]
                     key=key, counter=counter, attempt=attempt)
        self._write(op, "invoke")
        return op

    def retry(self, op: Pending) -> Pending:
        """Invoke ``op`` again under the same id (an idempotency key), attempt + 1."""
        return self.invoke(op.f, key=op.key, counter=op.counter, id=op.id,
                           attempt=(op.attempt or 1) + 1, process=op.process)

    def ok(self, op: Pending, *, store: str | None = None, epoch: int | None = None,
           counts: Mapping[str, int] | None = None,
           items: Iterable[tuple[str, Mapping[str, int]]] | None = None,
           degraded: bool | None = None) -> None:
        """``op`` was acknowledged (by ``store`` under ``epoch``, when known); for a read,
        with the counters it saw (``counts`` of its key, or ``items``) and whether a
        non-primary answered (``degraded``)."""
        self._write(op, "ok", store=store, epoch=epoch, counts=counts,
                    items=None if items is None else tuple(items), degraded=degraded)

    def fail(self, op: Pending, *, error: str | None = None) -> None:
        """``op`` was definitely not applied (refused before sending, a 4xx, ...)."""
        self._write(op, "fail", error=error)

    def info(self, op: Pending, *, error: str | None = None) -> None:
        """``op`` may or may not have been applied (timeout, reset, 5xx after sending)."""
        self._write(op, "info", error=error)

    def read(self, key: str | None = None, *, counts: Mapping[str, int] | None = None,
             items: Iterable[tuple[str, Mapping[str, int]]] | None = None,
             started: float | None = None, store: str | None = None,
             epoch: int | None = None, degraded: bool | None = None,
             process: str | None = None) -> Pending:
        """An ok read, invoke and completion at once. ``started`` is when it was sent
        (default: now); pass it, since the zero-read check compares it with ack times."""
        op = Pending(id=uuid.uuid4().hex, f="read", process=process or self.process(),
                     key=key)
        self._write(op, "invoke", at=started)
        self.ok(op, store=store, epoch=epoch, counts=counts, items=items, degraded=degraded)
        return op

    def _write(self, op: Pending, type_: OpType, *, at: float | None = None,
               **extra: Any) -> None:
        self.recorder.op(Op(process=op.process, type=type_, f=op.f, id=op.id,
                            time=self._clock() if at is None else at, key=op.key,
                            counter=op.counter, attempt=op.attempt, **extra))


@dataclass(slots=True)
class _Process:
    """This process's recorder and history, created on first use (see the module docstring)."""

    lock: threading.Lock
    history: History | None = None


_PROCESS = _Process(threading.Lock())


def history() -> History:
    """This process's `History`, writing under ``$DRILLS_RECORD_DIR`` (created on first call;
    every later call returns the same one). Raises `SpecError` without that variable."""
    with _PROCESS.lock:
        if _PROCESS.history is None or _PROCESS.history.recorder.closed:
            where = os.environ.get(ENV_RECORD_DIR)
            if not where:
                raise SpecError("must name the record directory (is this running under "
                                "drills?)", source="environment", field=ENV_RECORD_DIR)
            _PROCESS.history = History(Recorder(Path(where)).__enter__())
        return _PROCESS.history


def started_at() -> float | None:
    """The load's ``t0``: when its first user could send (the start marker this process
    wrote), None before. Offsets of the drill (faults, write bursts) count from it."""
    return history().recorder.started_at


def transport_error(response: Any) -> BaseException | None:
    """The exception a Locust HTTP client got instead of an answer; None if an answer arrived.

    ``HttpUser`` (requests) sets ``response.error`` only then. ``FastHttpUser``
    (geventhttpclient) also sets it for an answer with a non-2xx status (a ``BadStatusCode``
    carrying the answer), which is no transport error: a status > 0 means an answer came.
    geventhttpclient's own errors are translated at this boundary into those
    `drills.load.outcome` knows (the original as ``__cause__``): ``RetriesExceeded`` is
    unwrapped to the error behind it, ``HTTPConnectionClosed`` (the peer closed without an
    answer) is a `ConnectionResetError`, and a timeout raised while connecting is urllib3's
    ``ConnectTimeoutError`` (nothing was sent). Pure; never raises.
    """
    if int(getattr(response, "status_code", 0) or 0) > 0:
        return None
    err = getattr(response, "error", None)
    if not isinstance(err, BaseException):
        return None
    original = getattr(err, "original", None)  # geventhttpclient's RetriesExceeded
    if isinstance(original, BaseException):
        err = original
    if type(err).__name__ == "HTTPConnectionClosed":
        return _caused(ConnectionResetError(f"connection closed without an answer: {err}"), err)
    if isinstance(err, TimeoutError) and _raised_in(err, _CONNECT_FRAMES):
        return _caused(uex.ConnectTimeoutError(f"connect timed out: {err}"), err)
    return err


def outcome_of(response: Any, failure: str | None = None) -> Outcome:
    """The `Outcome` of a Locust response (``HttpUser`` or ``FastHttpUser``): its status, the
    `transport_error` if no answer came, and ``failure``, a reason the caller found in a 2xx
    answer (a body that does not parse, say)."""
    return outcome(int(getattr(response, "status_code", 0) or 0), transport_error(response),
                   failure)


def _caused(new: BaseException, cause: BaseException) -> BaseException:
    new.__cause__ = cause
    return new


def _raised_in(exc: BaseException, names: frozenset[str]) -> bool:
    """True if a frame of ``exc``'s traceback runs a function named in ``names``."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name in names:
            return True
        tb = tb.tb_next
    return False
