"""The records the load writes, and how the harness reads them back.

Layout of a load record directory (one set of files per Locust process, ``<pid>`` its pid)::

    requests-<pid>.jsonl   one `drills.model.Request` per request, in completion order
    history-<pid>.jsonl    `drills.model.Op` lines: invoke, then ok|fail|info, per operation
    started-<pid>.json     {"t": unix time} written once, when the first user can send
    locust.log             Locust's own stdout/stderr (written by the runner)

Writers (`Recorder`) flush every line under a lock, so threads and greenlets never interleave
inside a line and a killed process leaves at most a torn last line, which the readers skip.
Readers (`RecordTail` for live tailing, `read_requests` / `read_history` after the fact)
never import Locust. `LoadSettings` is the typed form of the environment variables through
which the runner configures the recording shim and the locustfile; `risk_problems` holds the
limits of its data-at-risk values (bursts, retries, hot keys) for both sides.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Generic, Protocol, TypeVar

from drills.errors import LoadError, SpecError
from drills.load.pacing import Bursts
from drills.model import Op, Request, read_jsonl

T = TypeVar("T", Request, Op)

ENV_RECORD_DIR = "DRILLS_RECORD_DIR"
ENV_RATE = "DRILLS_RATE"
ENV_USERS = "DRILLS_USERS"
ENV_TIMEOUT = "DRILLS_TIMEOUT_S"
ENV_PARENT_PID = "DRILLS_PARENT_PID"
ENV_BURSTS = "DRILLS_BURSTS"
ENV_BURST_MULTIPLIER = "DRILLS_BURST_MULTIPLIER"
ENV_BURST_WIDTH = "DRILLS_BURST_WIDTH_S"
ENV_RETRIES = "DRILLS_RETRIES"
ENV_HOT_KEYS = "DRILLS_HOT_KEYS"
ENV_HOT_SHARE = "DRILLS_HOT_SHARE"
ENV_CLASSES = "DRILLS_CLASSES"

REQUESTS_GLOB = "requests-*.jsonl"
HISTORY_GLOB = "history-*.jsonl"
STARTED_GLOB = "started-*.json"

MAX_RETRIES = 10
MAX_HOT_KEYS = 1000


@dataclass(frozen=True, slots=True)
class LoadSettings:
    """What a locustfile needs from the harness, passed as environment variables.

    ``rate`` is the target total request rate (req/s) over ``users`` users; ``timeout_s`` the
    client's connect and read timeout; ``parent_pid`` the harness pid the locustfile watches
    (it stops itself when that process is gone), None to not watch. ``classes`` maps a
    Locust request name (``"items"``, or ``"GET /items"`` with its method) to its operation
    class; names it lacks are their own class.

    The rest puts data at risk (defaults: off); a locustfile may ignore it. Write users pace
    at ``burst_multiplier`` times their rate within ``burst_width_s / 2`` of ``t0 + b`` for
    every offset ``b`` in ``bursts`` (``t0``: the start marker, see `Recorder.mark_started`).
    A write whose answer is indeterminate is sent again with the same id up to ``retries``
    more times. The first ``hot_keys`` keys learned are never forgotten and are the target
    of an increment or a read of one key with probability ``hot_share``.
    """

    record_dir: Path
    rate: float = 150.0
    users: int = 30
    timeout_s: float = 1.5
    parent_pid: int | None = None
    bursts: tuple[float, ...] = ()
    burst_multiplier: float = 1.0
    burst_width_s: float = 2.0
    retries: int = 0
    hot_keys: int = 0
    hot_share: float = 0.0
    classes: Mapping[str, str] = field(default_factory=dict)

    @property
    def per_user_rate(self) -> float:
        """Task runs per second each user aims for, so that all users together reach ``rate``."""
        return self.rate / self.users

    @property
    def burst_plan(self) -> Bursts:
        """The write bursts as `drills.load.pacing.Bursts`."""
        return Bursts(self.bursts, self.burst_multiplier, self.burst_width_s)

    def to_env(self) -> dict[str, str]:
        """The environment variables that `from_env` reads back."""
        env = {
            ENV_RECORD_DIR: str(self.record_dir),
            ENV_RATE: repr(self.rate),
            ENV_USERS: str(self.users),
            ENV_TIMEOUT: repr(self.timeout_s),
            ENV_BURSTS: ",".join(repr(float(b)) for b in self.bursts),
            ENV_BURST_MULTIPLIER: repr(float(self.burst_multiplier)),
            ENV_BURST_WIDTH: repr(float(self.burst_width_s)),
            ENV_RETRIES: str(self.retries),
            ENV_HOT_KEYS: str(self.hot_keys),
            ENV_HOT_SHARE: repr(float(self.hot_share)),
            ENV_CLASSES: json.dumps(dict(self.classes), separators=(",", ":")),
        }
        if self.parent_pid is not None:
            env[ENV_PARENT_PID] = str(self.parent_pid)
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LoadSettings:
        """Parse the settings; raises `SpecError` naming the variable that is missing or bad.

        Variables left out take the defaults, so an older harness (which does not set the
        data-at-risk variables) still configures a newer locustfile.
        """
        if not env.get(ENV_RECORD_DIR):
            raise SpecError("must name the record directory", source="environment",
                            field=ENV_RECORD_DIR)
        settings = cls(
            record_dir=Path(env[ENV_RECORD_DIR]),
            rate=_parse(env, ENV_RATE, float, 150.0),
            users=_parse(env, ENV_USERS, int, 30),
            timeout_s=_parse(env, ENV_TIMEOUT, float, 1.5),
            parent_pid=_parse(env, ENV_PARENT_PID, int, 0) or None,
            bursts=_parse_offsets(env.get(ENV_BURSTS, "")),
            burst_multiplier=_parse(env, ENV_BURST_MULTIPLIER, float, 1.0),
            burst_width_s=_parse(env, ENV_BURST_WIDTH, float, 2.0),
            retries=_parse(env, ENV_RETRIES, int, 0),
            hot_keys=_parse(env, ENV_HOT_KEYS, int, 0),
            hot_share=_parse(env, ENV_HOT_SHARE, float, 0.0),
            classes=parse_classes(env.get(ENV_CLASSES, "")),
        )
        for name, value in ((ENV_RATE, settings.rate), (ENV_USERS, settings.users),
                            (ENV_TIMEOUT, settings.timeout_s)):
            if not value > 0:
                raise SpecError(f"must be > 0, got {value}", source="environment", field=name)
        problems = risk_problems(settings)
        if problems:
            name, message = problems[0]
            raise SpecError(message, source="environment", field=_RISK_ENV[name])
        return settings


class RiskValues(Protocol):
    """The data-at-risk settings, as both `LoadSettings` and the runner's config carry them."""

    @property
    def bursts(self) -> tuple[float, ...]: ...
    @property
    def burst_multiplier(self) -> float: ...
    @property
    def burst_width_s(self) -> float: ...
    @property
    def retries(self) -> int: ...
    @property
    def hot_keys(self) -> int: ...
    @property
    def hot_share(self) -> float: ...


_RISK_ENV = {
    "bursts": ENV_BURSTS, "burst_multiplier": ENV_BURST_MULTIPLIER,
    "burst_width_s": ENV_BURST_WIDTH, "retries": ENV_RETRIES, "hot_keys": ENV_HOT_KEYS,
    "hot_share": ENV_HOT_SHARE,
}


def risk_problems(v: RiskValues) -> list[tuple[str, str]]:
    """``(attribute, message)`` for every data-at-risk value that cannot work, in field order.

    The one place the limits live: offsets finite and >= 0, multiplier finite and >= 1, width
    finite and > 0, retries 0..10, hot keys 0..1000, hot share in [0, 1].
    """
    out: list[tuple[str, str]] = []
    if not all(math.isfinite(b) and b >= 0 for b in v.bursts):
        out.append(("bursts", f"offsets must be finite and >= 0, got {list(v.bursts)}"))
    if not (math.isfinite(v.burst_multiplier) and v.burst_multiplier >= 1):
        out.append(("burst_multiplier", f"must be finite and >= 1, got {v.burst_multiplier}"))
    if not (math.isfinite(v.burst_width_s) and v.burst_width_s > 0):
        out.append(("burst_width_s", f"must be finite and > 0, got {v.burst_width_s}"))
    if not 0 <= v.retries <= MAX_RETRIES:
        out.append(("retries", f"must be 0..{MAX_RETRIES}, got {v.retries}"))
    if not 0 <= v.hot_keys <= MAX_HOT_KEYS:
        out.append(("hot_keys", f"must be 0..{MAX_HOT_KEYS}, got {v.hot_keys}"))
    if not 0 <= v.hot_share <= 1:
        out.append(("hot_share", f"must be in [0, 1], got {v.hot_share}"))
    return out


N = TypeVar("N", int, float)


def _parse(env: Mapping[str, str], name: str, kind: type[N], default: N) -> N:
    """``env[name]`` as ``kind`` (``default`` when unset or empty); `SpecError` naming it."""
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        return kind(text)
    except ValueError as exc:
        raise SpecError(f"not {'an integer' if kind is int else 'a number'}: {text!r}",
                        source="environment", field=name) from exc


def parse_classes(text: str) -> dict[str, str]:
    """``DRILLS_CLASSES``: a JSON object request name -> class (empty text: none). Raises
    `SpecError` naming the variable for anything else."""
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise SpecError(f"not JSON: {exc}", source="environment", field=ENV_CLASSES) from exc
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) and v
                                            for k, v in raw.items()):
        raise SpecError(f"must be a JSON object of request name -> class, got {text!r}",
                        source="environment", field=ENV_CLASSES)
    return raw


def class_of(classes: Mapping[str, str], *, name: str, method: str | None = None) -> str:
    """The operation class of a request: ``classes["<METHOD> <name>"]``, else
    ``classes[name]``, else ``name`` itself."""
    if method:
        found = classes.get(f"{method.upper()} {name}")
        if found is not None:
            return found
    return classes.get(name, name)


def _parse_offsets(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError as exc:
        raise SpecError(f"must be comma-separated seconds, got {text!r}",
                        source="environment", field=ENV_BURSTS) from exc


class Recorder:
    """Writes one process's request records and history, one flushed JSON line each.

    Use as a context manager (files are opened on enter, closed on exit). ``pid`` names the
    files (default: this process). Thread- and greenlet-safe: each line is written and
    flushed under a lock (a gevent lock once Locust has monkey-patched ``threading``).
    """

    def __init__(self, record_dir: Path, *, pid: int | None = None):
        self.record_dir = record_dir
        self.pid = os.getpid() if pid is None else pid
        self._users = itertools.count(1)
        self._started_at: float | None = None
        self._requests: IO[str] | None = None
        self._history: IO[str] | None = None
        self._lock = threading.Lock()

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
        with self._lock:
            for fh in (self._requests, self._history):
                if fh is not None:
                    fh.close()
            self._requests = self._history = None

    @property
    def closed(self) -> bool:
        """True before `__enter__` and after `close`."""
        return self._requests is None

    def new_process(self) -> str:
        """A fresh logical client name for the history: ``<pid>-<n>``."""
        with self._lock:
            return f"{self.pid}-{next(self._users)}"

    def request(self, rec: Request) -> None:
        """Append one request record."""
        with self._lock:
            _line(self._requests, rec.to_dict())

    def op(self, op: Op) -> None:
        """Append one history operation."""
        with self._lock:
            _line(self._history, op.to_dict())

    @property
    def started_at(self) -> float | None:
        """The time passed to the first `mark_started` (None before): this process's ``t0``,
        the same time the harness reads as the load's start."""
        return self._started_at

    def mark_started(self, t: float) -> None:
        """Record, once, the time the first user can send (atomically: write then rename)."""
        with self._lock:
            if self._started_at is not None:
                return
            self._started_at = t
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

    def __init__(self, record_dir: Path, pattern: str, kind: type[T]) -> None:
        self.record_dir = record_dir
        self.pattern = pattern
        self.kind: type[T] = kind
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
                out.append(self.kind.from_dict(json.loads(line)))
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
