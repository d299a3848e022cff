"""What a run directory keeps so that the run can be judged again from disk (`drill analyze`).

Beside ``journal.json`` (faults, load start, classes) and the records (``requests.jsonl``,
``history.jsonl``), a run keeps:

- ``drill.yaml``: the effective drill (defaults and ``--set`` overrides applied, paths absolute);
- ``preexisting.json``: the keys the primary held before the load started (they are neither
  attempted nor unexpected);
- ``final-read.json``: every store's keys and counters after quiesce, whether the stores
  converged and how long that took, and when the timeline ended.

`merge_records` writes the run's ``requests.jsonl`` and ``history.jsonl`` from the load's
per-process files in one streaming pass and hands the checks what they read from it: the
requests as columns (`RequestFrame`) and the history as a `HistoryDigest` (every write, and
only the reads a check can use), so a 30-minute game day at 1,000 req/s is judged in a few
hundred MB. Requests are sorted by start time in columns (a process writes them as they
complete), and ``requests.jsonl`` keeps the lines as recorded, one file after another (a
reader sorts them back into the same columns: formatting 1.8M lines again cost seconds);
history lines, which every process writes in time order, are merged by time in batches (a
small reorder window absorbs ops written with an earlier time, such as a read recorded with
its send time; a file out of order beyond it is sorted whole) into ``history.jsonl``. Both
orders are the stable sort of the files' concatenation, as
`drills.load.records.read_requests` and `read_history` give. The files are written by a
thread of their own (`_Writer`) while the records are decoded, and fsync'd while the run is
judged (`RunRecords.durable`).

`analyze` re-runs every check on those files with the drill as it is now, and returns the new
`Judgement`: the same verdict when nothing changed, a different one when a definition did.
"""

from __future__ import annotations

import bisect
import functools
import gc
import heapq
import itertools
import json
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

import msgspec

from drills.checks.digest import DigestBuilder, HistoryDigest, OpLine
from drills.checks.frame import FrameBuilder, RequestFrame
from drills.errors import SpecError
from drills.journal import JOURNAL_FILE, Judgement
from drills.load.records import HISTORY_GLOB, REQUESTS_GLOB
from drills.model import FaultRecord, FinalRead, StoreSnapshot, check_op_rules

DRILL_FILE = "drill.yaml"
PREEXISTING_FILE = "preexisting.json"
FINAL_READ_FILE = "final-read.json"
REQUESTS_FILE = "requests.jsonl"
HISTORY_FILE = "history.jsonl"
#: History lines of one file may be this many seconds out of time order and still stream.
REORDER_S = 5.0
#: Lines decoded, merged and written per step: enough to make the per-step work negligible,
#: few enough that the decoded lines stay in the CPU cache (4096 was slower than per line).
CHUNK = 256
_Line = tuple[float, bytes, dict[str, Any]]


def _decoder() -> Callable[[bytes], Any]:
    """A JSON decoder for record lines: msgspec's (the same values as `json.loads` gives, five
    times faster: most of a long game day's analysis is decoding). It raises `ValueError` for
    malformed JSON, as `json.loads` does (the tests swap it in: both paths read alike)."""
    decode: Callable[[bytes], Any] = msgspec.json.Decoder().decode
    return decode


@functools.cache
def _history_decoder() -> tuple[Callable[[bytes], Any], Callable[[Mapping[str, Any]], None]]:
    """(decode, check) for history lines: msgspec's decoder typed as `OpLine` (it checks every
    field's type in C, counters included, and gives the same dict `json.loads` would, less
    unknown fields) with the one rule a type cannot say (`check_op_rules`). The tests swap in
    `json.loads` and the whole `validate_op` in Python: both refuse the same lines."""
    decode: Callable[[bytes], Any] = msgspec.json.Decoder(OpLine).decode
    return decode, check_op_rules


class _Unsorted(Exception):
    """A history file is out of time order by more than the reorder window."""


class _RequestLine(msgspec.Struct, gc=False):
    """A ``requests.jsonl`` line as the typed decoder reads it: the fields of a `Request` in
    the JSON types the recorder writes (a line in other types, such as ``"status": "200"``,
    is read as `Request.from_dict` reads it)."""

    t: float
    duration: float
    op: str
    ok: bool
    status: int | None = 0
    error: Any = None


def _request_decoder() -> Callable[[bytes], Any]:
    """Decode a request line: typed (`_RequestLine`: no dict, fields checked in C) when its
    fields have the recorder's types, else as a plain JSON value for `FrameBuilder.add_dict`,
    which reads it as `Request.from_dict` does. So both give the same frame, and a line that
    is not JSON is a `ValueError` as before."""
    typed = msgspec.json.Decoder(_RequestLine).decode
    loose = _decoder()

    def decode(line: bytes) -> Any:
        try:
            return typed(line)
        except msgspec.ValidationError:
            return loose(line)

    return decode


def read_frame(paths: Iterable[Path], out: _Writer | None = None) -> RequestFrame:
    """The requests of every file of ``paths`` (in that order) as a frame sorted by start
    time; with ``out``, every record line is also written there as it was read (the files'
    lines one after another; a torn last line left out). `SpecError` naming the file and line
    of a malformed record."""
    frame = FrameBuilder()
    decode = _request_decoder()
    add, add_dict = frame.add, frame.add_dict

    def accept(d: Any) -> None:
        if type(d) is _RequestLine:
            add(d.t, d.duration, d.op, d.ok, d.status or 0, d.error)
        else:
            add_dict(d)

    for path in paths:
        for batch in _accepted(path, decode, accept):  # each record added as read
            if out is not None:
                out.write(b"".join([line for line, _d in batch]))
    return frame.build()


def _accepted(path: Path, decode: Callable[[bytes], Any], accept: Callable[[Any], object]
              ) -> Iterator[list[tuple[bytes, Any]]]:
    """(line, record) of every non-blank line of ``path`` that parses and that ``accept``
    takes, in file order, in lists of up to `CHUNK` (a last line that parses without its
    newline gets one); a torn last line (no newline: a killed writer) that does not ends the
    file, any other line that does not is a `SpecError` naming the file and line
    (`_refused`). One tight loop per chunk: a long game day's records are millions of lines,
    and a generator step per line costs more than decoding it."""
    batch: list[tuple[bytes, Any]] = []
    chunk = CHUNK
    with _opened(path) as fh:
        for n, line in enumerate(fh, start=1):
            try:
                d = decode(line)
                accept(d)
            except (ValueError, KeyError, TypeError) as exc:
                if _refused(path, n, line, exc):
                    break
                continue
            batch.append((line, d))
            if len(batch) >= chunk:
                yield batch
                batch = []
    if batch:
        if not batch[-1][0].endswith(b"\n"):  # the file's last line, without its newline
            line, d = batch[-1]
            batch[-1] = (line + b"\n", d)
        yield batch


@contextmanager
def _opened(path: Path) -> Iterator[IO[bytes]]:
    """``path`` open for reading; `SpecError` naming it when it cannot be read."""
    try:
        with path.open("rb") as fh:
            yield fh
    except OSError as exc:
        raise SpecError(f"cannot read it: {exc.strerror or exc}", source=str(path)) from exc


def _refused(path: Path, n: int, line: bytes, exc: Exception) -> bool:
    """Line ``n`` of ``path`` did not parse (``exc``): False for a blank line (skip it), True
    for a torn last line (no newline: a killed writer; the file ends before it), else a
    `SpecError` naming the file and line."""
    if not line.strip():
        return False
    if not line.endswith(b"\n"):
        return True
    raise SpecError(f"line {n}: {exc}", source=str(path)) from exc


def _ops(path: Path, *, ordered: bool = False) -> Iterator[list[_Line]]:
    """The ops of one history file as lists of (time, line, op) in file order, validated (as
    `_accepted` reads lines; a last line without its newline gets one); with ``ordered``,
    raises `_Unsorted` at the first op that is earlier than the one before. Its own loop,
    not `_accepted`'s: this is the hottest loop of a long game day's analysis."""
    decode, check = _history_decoder()
    last = float("-inf")
    batch: list[_Line] = []
    chunk = CHUNK
    with _opened(path) as fh:
        for n, line in enumerate(fh, start=1):
            try:
                d = decode(line)
                check(d)
                t = d["time"]
            except (ValueError, KeyError, TypeError) as exc:
                if _refused(path, n, line, exc):
                    break
                continue
            if t < last and ordered:
                raise _Unsorted(str(path))
            last = t
            batch.append((t, line, d))
            if len(batch) >= chunk:
                yield batch
                batch = []
    if batch:
        if not batch[-1][1].endswith(b"\n"):  # the file's last line, without its newline
            t, line, d = batch[-1]
            batch[-1] = (t, line + b"\n", d)
        yield batch


def _reordered(path: Path, window: float) -> Iterator[_Line]:
    """`_ops` of one file in time order (stable) through a reorder window of ``window`` s;
    raises `_Unsorted` when an op comes later than that (``window`` inf: sort the file)."""
    heap: list[tuple[float, int, bytes, dict[str, Any]]] = []
    newest = last = float("-inf")
    seq = 0
    for batch in _ops(path):
        for t, line, d in batch:
            if t < last:
                raise _Unsorted(str(path))
            heapq.heappush(heap, (t, seq, line, d))
            seq += 1
            newest = max(newest, t)
            while heap and heap[0][0] < newest - window:
                last, _, line_, d_ = heapq.heappop(heap)
                yield last, line_, d_
    while heap:
        t, _, line, d = heapq.heappop(heap)
        yield t, line, d


def _merged_batches(paths: list[Path]) -> Iterator[list[_Line]]:
    """The ops of files that are each in time order, merged by time in batches: exactly the
    order of ``heapq.merge`` (stable: file order, then line order, for equal times), without
    a heap step per line. Each round takes, from every file's buffered chunk, the ops earlier
    than the horizon (the earliest last time among the files with more to read: none of them
    can still hold an op before it) and sorts them stably in file order; when every op left
    is at or after the horizon, the files that end it read on. `_Unsorted` as `_ops` with
    ``ordered``."""
    if len(paths) == 1:  # one Locust process, the default: its file is the order
        yield from _ops(paths[0], ordered=True)
        return
    streams = [_ops(p, ordered=True) for p in paths]
    buffers: list[list[_Line]] = [[] for _ in paths]
    more = [True] * len(paths)  # the file may hold more chunks
    time_of = itemgetter(0)

    def read_on(i: int) -> None:
        chunk = next(streams[i], None)
        if chunk is None:
            more[i] = False
        else:
            buffers[i] += chunk

    while True:
        for i in range(len(paths)):
            if more[i] and not buffers[i]:
                read_on(i)
        bounding = [i for i in range(len(paths)) if more[i]]  # each holds a chunk
        if not bounding:
            rest = [op for buffer in buffers for op in buffer]
            if rest:
                rest.sort(key=time_of)
                yield rest
            return
        horizon = min(buffers[i][-1][0] for i in bounding)
        taken: list[_Line] = []
        for i, buffer in enumerate(buffers):
            cut = bisect.bisect_left(buffer, horizon, key=time_of)
            if cut:
                taken += buffer[:cut]
                buffers[i] = buffer[cut:]
        if taken:
            taken.sort(key=time_of)  # stable: ties keep file order, then line order
            yield taken
            continue
        for i in bounding:
            if buffers[i][-1][0] == horizon:
                read_on(i)


def _merge_history(paths: list[Path], out: _Writer | None, builder: DigestBuilder | None,
                   window: float | None) -> None:
    """Every op of ``paths`` in time order (stable: file order, then line order) to ``out``
    and ``builder``; ``window`` None: the files must be in time order (`_Unsorted`)."""
    batches: Iterator[list[_Line]]
    if window is None:
        batches = _merged_batches(paths)
    else:
        merged = heapq.merge(*(_reordered(p, window) for p in paths), key=itemgetter(0))
        batches = iter(lambda: list(itertools.islice(merged, CHUNK)), [])
    fold = builder.fold if builder is not None else None
    for batch in batches:
        if out is not None:
            out.write(b"".join([line for _t, line, _d in batch]))
        if fold is not None:
            for _t, _line, d in batch:
                fold(d)


@dataclass(frozen=True, eq=False)
class RunRecords:
    """What the checks read from a run's records: the requests as columns and the history
    digest (None when it was not built). The run files may still be on their way to disk
    (`merge_records` with ``wait=False``): `durable` waits for them."""

    requests: RequestFrame
    history: HistoryDigest | None
    syncing: tuple[_Writer, ...] = ()

    def durable(self) -> None:
        """Wait until the run's ``requests.jsonl`` and ``history.jsonl`` are written and
        fsync'd; the `OSError` a write met. Idempotent."""
        for out in self.syncing:
            out.wait()


def merge_records(record_dir: Path, run_dir: Path, *, digest: bool = True,
                  winner: StoreSnapshot | None = None, wait: bool = True) -> RunRecords:
    """Write ``run_dir/requests.jsonl`` and ``run_dir/history.jsonl`` (fsync'd) from the load's
    files in ``record_dir``, reading each once, and return the requests as columns and (with
    ``digest``) the history digest trimmed for ``winner``, the final read's authoritative
    snapshot (module docstring). ``requests.jsonl`` holds the load's lines as they were
    recorded (each file's lines in turn: no request is reformatted), ``history.jsonl`` the ops
    merged in time order. With ``wait`` False the last blocks and the fsyncs are still under
    way when it returns (a long game day's history is over a gigabyte: its fsync overlaps the
    judging): call `RunRecords.durable` before relying on the files. `SpecError` for a
    malformed record, `OSError` if a file cannot be written."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with _written(run_dir / REQUESTS_FILE, wait=wait) as out:
        frame = read_frame(sorted(record_dir.glob(REQUESTS_GLOB)), out)
    paths = sorted(record_dir.glob(HISTORY_GLOB))
    builder: DigestBuilder | None = None
    hist: _Writer | None = None
    for window in (None, REORDER_S, float("inf")):  # in order; nearly; sort each file
        builder = DigestBuilder(trim=True, winner=winner) if digest else None
        try:
            with _written(run_dir / HISTORY_FILE, wait=wait) as hist:
                if paths:
                    _merge_history(paths, hist, builder, window)
        except _Unsorted:
            continue
        break
    assert hist is not None  # the last window sorts: it cannot fail as _Unsorted
    return RunRecords(frame, None if builder is None else builder.build(), (out, hist))


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block (back as it was after): judging a long
    game day builds millions of objects that live until the end, none in a cycle, and the
    collector's passes over them cost ~15 % of the time (reference counting frees the rest)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _Writer:
    """A file written by a thread of its own and fsync'd when closed: the merge hands it blocks
    and goes on decoding while the kernel copies them (a long game day's history is over a
    gigabyte; ``write`` and ``fsync`` release the GIL). At most `_Writer.QUEUED` blocks wait, so
    memory stays bounded. `finish` hands over the rest, `wait` raises the `OSError` a write or
    the fsync met (`_written` does both)."""

    QUEUED = 4
    #: bytes gathered before a block is handed to the thread (one queue step per block)
    BLOCK = 1 << 20

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = path.open("wb")
        self._queue: queue.Queue[bytes | None] = queue.Queue(self.QUEUED)
        self._pending: list[bytes] = []
        self._size = 0
        self._error: OSError | None = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._drain, name=f"write {path.name}",
                                        daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._size += len(data)
        if self._size >= self.BLOCK:
            self._hand_over()

    def _hand_over(self) -> None:
        if self._error is not None:
            raise self._error
        if self._pending:
            self._queue.put(b"".join(self._pending))
            self._pending, self._size = [], 0

    def _drain(self) -> None:
        while (block := self._queue.get()) is not None:
            if self._error is None and not self._abandoned:
                try:
                    self._fh.write(block)
                except OSError as exc:
                    self._error = exc
        if self._error is None and not self._abandoned:
            try:
                self._fh.flush()
                os.fsync(self._fh.fileno())
            except OSError as exc:
                self._error = exc

    def finish(self) -> None:
        """Hand over what is left: the thread writes it and fsyncs (`wait` for it)."""
        try:
            self._hand_over()
        finally:
            self._queue.put(None)

    def wait(self) -> None:
        """Wait for the thread after `finish`, close; raise the first `OSError` met."""
        self._thread.join()
        self._fh.close()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """Stop without fsync (the merge failed; the file is rewritten or never used); also
        after a `finish` that raised."""
        self._pending, self._abandoned = [], True
        if self._thread.is_alive():
            self._queue.put(None)
        self._thread.join()
        self._fh.close()


@contextmanager
def _written(path: Path, *, wait: bool = True) -> Iterator[_Writer]:
    """A `_Writer` for ``path``: on a clean exit finished and (``wait``) waited for, so
    written and fsync'd; abandoned when the block raises."""
    out = _Writer(path)
    try:
        yield out
        out.finish()
    except BaseException:
        out.abandon()
        raise
    if wait:
        out.wait()


def read_history(path: Path, *, winner: StoreSnapshot | None) -> HistoryDigest:
    """The digest of a run's ``history.jsonl`` (trimmed for ``winner``; untrimmed when the
    file is out of time order); `SpecError` for a malformed line."""
    for trim in (True, False):
        builder = DigestBuilder(trim=trim, winner=winner)
        try:
            for batch in _ops(path):
                for _t, _line, d in batch:
                    builder.fold(d)
        except ValueError:  # out of time order: only an untrimmed digest is exact
            continue
        return builder.build()
    raise AssertionError("unreachable")


def _write(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def save_drill(run_dir: Path, text: str) -> None:
    Path(run_dir, DRILL_FILE).write_text(text, encoding="utf-8")


def save_preexisting(run_dir: Path, keys: frozenset[str]) -> None:
    _write(Path(run_dir) / PREEXISTING_FILE, sorted(keys))


def _snapshot_dict(s: StoreSnapshot) -> dict[str, Any]:
    return {"name": s.name, "reachable": s.reachable, "role": s.role, "epoch": s.epoch,
            "error": s.error, "keys": sorted(s.keys),
            "counters": {k: dict(cs) for k, cs in sorted(s.counters.items())}}


def save_final_read(run_dir: Path, final: FinalRead | None, *, converged: bool,
                    quiesce_s: float, load_end: float | None) -> None:
    """The final read (None: the target has no data contract) and the quiesce outcome."""
    _write(Path(run_dir) / FINAL_READ_FILE, {
        "converged": converged, "quiesce_s": quiesce_s, "load_end": load_end,
        "final": None if final is None else {
            "primary": final.primary, "stores": [_snapshot_dict(s) for s in final.stores]},
    })


@dataclass(frozen=True, slots=True)
class StoredRun:
    """Everything judging needs, read back from a run directory."""

    drill_text: str
    journal: Mapping[str, Any]
    requests: RequestFrame
    history: HistoryDigest
    faults: list[FaultRecord]
    final: FinalRead | None
    preexisting: frozenset[str]
    converged: bool
    quiesce_s: float
    load_end: float | None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"cannot read it: {exc.strerror or exc}", source=str(path)) from exc
    except ValueError as exc:
        raise SpecError(f"not valid JSON: {exc}", source=str(path)) from exc


def _final_from(data: Mapping[str, Any] | None) -> FinalRead | None:
    if data is None:
        return None
    stores = tuple(StoreSnapshot(
        name=s["name"], reachable=bool(s["reachable"]), role=s.get("role"), epoch=s.get("epoch"),
        error=s.get("error"), keys=frozenset(s.get("keys") or ()),
        counters={k: dict(cs) for k, cs in (s.get("counters") or {}).items()},
    ) for s in data["stores"])
    return FinalRead(primary=data.get("primary"), stores=stores)


def load_run(run_dir: Path) -> StoredRun:
    """Read a run directory back; `SpecError` naming the file that is missing or malformed
    (a run from before these files were kept cannot be re-judged, and says so)."""
    run_dir = Path(run_dir)
    journal = _read_json(run_dir / JOURNAL_FILE)
    for name in (DRILL_FILE, FINAL_READ_FILE, PREEXISTING_FILE):
        if not (run_dir / name).is_file():
            raise SpecError(f"{name} is missing: this run did not get as far as its final "
                            f"read, or was made by a drills that did not keep it",
                            source=str(run_dir))
    stored = _read_json(run_dir / FINAL_READ_FILE)
    try:
        faults = [FaultRecord(**f) for f in journal.get("faults") or ()]
        final = _final_from(stored.get("final"))
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"malformed: {exc}", source=str(run_dir)) from exc
    requests = read_frame([p for p in (run_dir / REQUESTS_FILE,) if p.is_file()])
    winner = None if final is None else final.authoritative
    history = read_history(run_dir / HISTORY_FILE, winner=winner) \
        if (run_dir / HISTORY_FILE).is_file() else HistoryDigest(())
    return StoredRun(
        drill_text=(run_dir / DRILL_FILE).read_text(encoding="utf-8"), journal=journal,
        requests=requests, history=history, faults=faults, final=final,
        preexisting=frozenset(_read_json(run_dir / PREEXISTING_FILE)),
        converged=bool(stored.get("converged", True)),
        quiesce_s=float(stored.get("quiesce_s") or 0.0), load_end=stored.get("load_end"),
    )


def analyze(run_dir: Path) -> tuple[StoredRun, Judgement]:
    """Judge the run in ``run_dir`` again from its files (see the module docstring)."""
    from drills.catalog import parse_drill
    from drills.verdict import judge

    with gc_paused():
        run = load_run(run_dir)
        spec = parse_drill(run.drill_text, source=str(Path(run_dir) / DRILL_FILE))
        judgement = judge(
            spec, requests=run.requests, history=run.history, faults=run.faults,
            final=run.final, t0=float(run.journal.get("load_started_at") or 0.0),
            preexisting=run.preexisting, converged=run.converged, quiesce_s=run.quiesce_s,
            load_end=run.load_end, classes=tuple(run.journal.get("classes") or ()),
        )
    return run, judgement
