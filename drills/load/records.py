"""The records the load writes, and how the harness reads them back.

Layout of a load record directory (one set of files per Locust process, ``<pid>`` its pid)::

    requests-<pid>.jsonl   one `drills.model.Request` per request, in completion order
    history-<pid>.jsonl    `drills.model.Op` lines: invoke, then ok|fail|info, per operation
    started-<pid>.json     {"t": unix time} written once, when the first user starts
    locust.log             Locust's own stdout/stderr (written by the runner)

Writers (`Recorder`) flush every line, so a killed process leaves at most a torn last line,
which the readers skip. Readers (`RecordTail` for live tailing, `read_requests` /
`read_history` after the fact) never import Locust. `LoadSettings` is the typed form of the
environment variables through which the runner configures the locustfile.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Generic, TypeVar

from drills.errors import LoadError, SpecError
from drills.model import Op, Request, read_jsonl

T = TypeVar("T", Request, Op)

ENV_RECORD_DIR = "DRILLS_RECORD_DIR"
ENV_RATE = "DRILLS_RATE"
ENV_USERS = "DRILLS_USERS"
ENV_TIMEOUT = "DRILLS_TIMEOUT_S"
ENV_PARENT_PID = "DRILLS_PARENT_PID"

REQUESTS_GLOB = "requests-*.jsonl"
HISTORY_GLOB = "history-*.jsonl"
STARTED_GLOB = "started-*.json"


@dataclass(frozen=True, slots=True)
class LoadSettings:
    """What a locustfile needs from the harness, passed as environment variables.

    ``rate`` is the target total request rate (req/s) over ``users`` users; ``timeout_s`` the
    client's connect and read timeout; ``parent_pid`` the harness pid the locustfile watches
    (it stops itself when that process is gone), None to not watch.
    """

    record_dir: Path
    rate: float = 150.0
    users: int = 30
    timeout_s: float = 1.5
    parent_pid: int | None = None

    @property
    def per_user_rate(self) -> float:
        """Task runs per second each user aims for, so that all users together reach ``rate``."""
        return self.rate / self.users

    def to_env(self) -> dict[str, str]:
        """The environment variables that `from_env` reads back."""
        env = {
            ENV_RECORD_DIR: str(self.record_dir),
            ENV_RATE: repr(self.rate),
            ENV_USERS: str(self.users),
            ENV_TIMEOUT: repr(self.timeout_s),
        }
        if self.parent_pid is not None:
            env[ENV_PARENT_PID] = str(self.parent_pid)
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LoadSettings:
        """Parse the settings; raises `SpecError` naming the variable that is missing or bad."""
        if not env.get(ENV_RECORD_DIR):
            raise SpecError("must name the record directory", source="environment",
                            field=ENV_RECORD_DIR)
        try:
            settings = cls(
                record_dir=Path(env[ENV_RECORD_DIR]),
                rate=float(env.get(ENV_RATE, "150")),
                users=int(env.get(ENV_USERS, "30")),
                timeout_s=float(env.get(ENV_TIMEOUT, "1.5")),
                parent_pid=int(env[ENV_PARENT_PID]) if env.get(ENV_PARENT_PID) else None,
            )
        except ValueError as exc:
            raise SpecError(f"not a number: {exc}", source="environment") from exc
        for name, value in ((ENV_RATE, settings.rate), (ENV_USERS, settings.users),
                            (ENV_TIMEOUT, settings.timeout_s)):
            if not value > 0:
                raise SpecError(f"must be > 0, got {value}", source="environment", field=name)
        return settings


class Recorder:
    """Writes one process's request records and history, one flushed JSON line each.

    Use as a context manager (files are opened on enter, closed on exit). ``pid`` names the
    files (default: this process). Not thread-safe; under gevent every write is one
    uninterrupted call, so greenlets never interleave inside a line.
    """

    def __init__(self, record_dir: Path, *, pid: int | None = None):
        self.record_dir = record_dir
        self.pid = os.getpid() if pid is None else pid
        self._users = itertools.count(1)
        self._started = False
        self._requests: IO[str] | None = None
        self._history: IO[str] | None = None

    def __enter__(self) -> Recorder:
        self.record_dir.mkdir(parents=True, exist_ok=True)
        d, pid = self.record_dir, self.pid
        self._requests = (d / f"requests-{pid}.jsonl").open("a", encoding="utf-8")
        self._history = (d / f"history-{pid}.jsonl").open("a", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close both files (idempotent)."""
        for fh in (self._requests, self._history):
            if fh is not None:
                fh.close()
        self._requests = self._history = None

    def new_process(self) -> str:
        """A fresh logical client name for the history: ``<pid>-<n>``."""
        return f"{self.pid}-{next(self._users)}"

    def request(self, rec: Request) -> None:
        """Append one request record."""
        _line(self._requests, rec.to_dict())

    def op(self, op: Op) -> None:
        """Append one history operation."""
        _line(self._history, op.to_dict())

    def mark_started(self, t: float) -> None:
        """Record, once, the time the first user started (atomically: write then rename)."""
        if self._started:
            return
        self._started = True
        final = self.record_dir / f"started-{self.pid}.json"
        tmp = final.with_suffix(".tmp")
        tmp.write_text(json.dumps({"t": t}), encoding="utf-8")
        tmp.replace(final)


def _line(fh: IO[str] | None, obj: Mapping[str, object]) -> None:
    if fh is None:
        raise LoadError("recorder is closed")
    fh.write(json.dumps(obj, separators=(",", ":")) + "\n")
    fh.flush()


class RecordTail(Generic[T]):
    """Reads, poll after poll, the complete lines newly appended to every file of one kind.

    ``pattern`` is a glob inside ``record_dir`` (files that appear later are picked up). A line
    without its newline yet is left for the next poll. Raises `LoadError` on a complete line
    that does not parse (the writer flushes whole lines, so that is a bug, not a race).
    """

    def __init__(self, record_dir: Path, pattern: str, kind: type[T]):
        self.record_dir = record_dir
        self.pattern = pattern
        self.kind = kind
        self._offsets: dict[Path, int] = {}

    def poll(self) -> list[T]:
        """New records from all files since the previous poll, in file then line order."""
        out: list[T] = []
        for path in sorted(self.record_dir.glob(self.pattern)):
            out.extend(self._read_new(path))
        return out

    def _read_new(self, path: Path) -> list[T]:
        offset = self._offsets.get(path, 0)
        try:
            with path.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
        except OSError as exc:
            raise LoadError(f"cannot read {path}: {exc}") from exc
        end = chunk.rfind(b"\n") + 1
        self._offsets[path] = offset + end
        out: list[T] = []
        for line in chunk[:end].splitlines():
            if not line.strip():
                continue
            try:
                out.append(self.kind.from_dict(json.loads(line)))  # type: ignore[arg-type]
            except (ValueError, KeyError, TypeError) as exc:
                raise LoadError(f"{path}: malformed record {line[:200]!r}: {exc}") from exc
        return out


def read_requests(record_dir: Path) -> list[Request]:
    """Every request record of every process, sorted by start time (torn tails skipped)."""
    recs = [r for p in sorted(record_dir.glob(REQUESTS_GLOB)) for r in read_jsonl(p, Request)]
    return sorted(recs, key=lambda r: r.t)


def read_history(record_dir: Path) -> list[Op]:
    """Every history operation of every process, sorted by time (stable: an invoke stays
    before its completion); torn tails skipped."""
    ops = [o for p in sorted(record_dir.glob(HISTORY_GLOB)) for o in read_jsonl(p, Op)]
    return sorted(ops, key=lambda o: o.time)


def read_started(record_dir: Path) -> float | None:
    """The earliest time a process recorded its first user start, None if none has yet."""
    times: list[float] = []
    for path in record_dir.glob(STARTED_GLOB):
        try:
            times.append(float(json.loads(path.read_text(encoding="utf-8"))["t"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LoadError(f"{path}: unreadable start marker: {exc}") from exc
    return min(times) if times else None


def write_synced(path: Path, records: list[Request] | list[Op]) -> None:
    """Write records as JSON lines to ``path`` and fsync it before returning."""
    try:
        with path.open("w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec.to_dict(), separators=(",", ":")) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise LoadError(f"cannot write {path}: {exc}") from exc
