"""Run the load: Locust as a subprocess, never imported here.

Locust (gevent) monkey-patches the process that imports it, so the harness only ever starts
``<this python> -m locust --headless -f <recording shim>,<locustfile>`` and reads the
JSON-lines records they write (see `drills.load.records`). Decisions, so they are not
rediscovered:

- **Any locustfile**: Locust 2.x accepts a comma-separated ``-f`` list and merges the User
  classes of every file, so the recording shim (`drills.load.locustfiles.recording`, no User
  class of its own) rides beside the locustfile as a second module: it records every request
  (``requests-<pid>.jsonl``, class per ``DRILLS_CLASSES``), writes the start marker, watches
  the harness pid. The locustfile needs no cooperation for requests; for the data checks it
  records its history through the public `drills.record` API.

- **One Locust process** (no ``--processes``): ~150 req/s is well within one gevent process,
  and one process keeps start, stop and the record files simple. Records are still read as
  ``*-<pid>.jsonl`` globs, so a multi-process locustfile would merge unchanged.
- **Own process group** (``start_new_session``): a Ctrl-C at the terminal reaches the harness
  only, which then stops the load in order; on exit the whole group gets SIGTERM (Locust's
  graceful shutdown: users finish the request in flight within ``--stop-timeout``), then
  SIGKILL after a bounded wait.
- **Locust never judges**: ``--exit-code-on-error 0``; failures are data for the checks.
- **started_at** is the shim's ``started-<pid>.json`` marker, written as Locust starts its
  first user, i.e. when the first request could be sent. `LoadRunner.__enter__` waits for it.
  It is also the locustfile's ``t0`` for write bursts (``drills.record.started_at()``;
  ``bursts`` are offsets from it), so a burst and a fault scheduled at the same offset from
  load start meet.
- **Orphan safety**: the shim watches the harness pid (``DRILLS_PARENT_PID``) and quits
  when the harness is gone, so a SIGKILLed harness does not leave load running.
- Locust's stdout/stderr go to ``record_dir/locust.log`` (``--loglevel WARNING``,
  ``--only-summary`` keep it small); its tail is put into every `LoadError`.

Honouring the settings (`drills.load.records.LoadSettings`: rate, users, timeout, and the
data-at-risk bursts, retries, hot keys) is up to the locustfile: one that ignores them still
runs, it just does not pace or put data at risk that way.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import urlsplit

import drills
from drills.errors import LoadError, SpecError
from drills.load.records import (
    HISTORY_GLOB,
    REQUESTS_GLOB,
    STARTED_GLOB,
    LoadSettings,
    RecordTail,
    read_history,
    read_requests,
    read_started,
    risk_problems,
    write_synced,
)
from drills.model import Op, Request

#: The recording shim Locust loads beside every locustfile (see the module docstring).
RECORDING_SHIM = Path(__file__).parent / "locustfiles" / "recording.py"
LOG_NAME = "locust.log"
_RISK_FIELDS = {
    "bursts": "load.bursts", "burst_multiplier": "load.burst.multiplier",
    "burst_width_s": "load.burst.width", "retries": "load.retries",
    "hot_keys": "load.hot.keys", "hot_share": "load.hot.share",
}


def resolve_locustfile(path: str | Path) -> Path:
    """The absolute path of an existing ``.py`` locustfile (a drill file's ``load.locustfile``
    or a target's default). Raises `SpecError` (field ``load.locustfile``) otherwise."""
    found = Path(path).expanduser()
    if found.suffix != ".py" or not found.is_file():
        raise SpecError(f"no locustfile {str(path)!r}: expected an existing .py file",
                        field="load.locustfile")
    if "," in str(found.resolve()):
        raise SpecError(f"{str(path)!r}: Locust cannot load a path with a comma in it",
                        field="load.locustfile")
    return found.resolve()


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """How to run the load.

    ``host`` is the base URL of the system under test; ``users`` concurrent Locust users pace
    themselves to ``rate`` requests/s in total; ``timeout_s`` is the client connect and read
    timeout. ``spawn_rate`` None starts all users within ~0.1 s. ``start_timeout_s`` bounds
    the wait for the first user; ``stop_grace_s`` (default ``timeout_s + 2``) the time users get
    to finish their request in flight on stop; after ``kill_after_s`` more, SIGKILL.

    ``classes`` maps a Locust request name (``"items"``, or ``"GET /items"`` with its method)
    to its operation class (None: every name is its own class); the shim applies it.

    Data at risk (all off by default; see `drills.load.records.LoadSettings`): write users
    pace ``burst_multiplier`` times faster within ``burst_width_s / 2`` of ``started_at + b``
    for each offset ``b`` in ``bursts`` (the engine passes the scheduled injections); an
    indeterminate write is resent with the same id up to ``retries`` times; the first
    ``hot_keys`` keys learned take ``hot_share`` of the increments and reads of one key.
    Raises `SpecError` for values that cannot work.
    """

    locustfile: Path
    host: str
    record_dir: Path
    users: int = 30
    rate: float = 150.0
    timeout_s: float = 1.5
    spawn_rate: float | None = None
    start_timeout_s: float = 30.0
    stop_grace_s: float | None = None
    kill_after_s: float = 5.0
    extra_env: tuple[tuple[str, str], ...] = field(default=())
    bursts: tuple[float, ...] = ()
    burst_multiplier: float = 1.0
    burst_width_s: float = 2.0
    retries: int = 0
    hot_keys: int = 0
    hot_share: float = 0.0
    classes: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        url = urlsplit(self.host)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise SpecError(f"must be an http(s) URL, got {self.host!r}", field="load.host")
        for name in ("users", "rate", "timeout_s", "start_timeout_s"):
            if not getattr(self, name) > 0:
                raise SpecError(f"must be > 0, got {getattr(self, name)}", field=f"load.{name}")
        if self.spawn_rate is not None and not self.spawn_rate > 0:
            raise SpecError(f"must be > 0, got {self.spawn_rate}", field="load.spawn_rate")
        object.__setattr__(self, "bursts", tuple(self.bursts))
        if self.classes is not None and not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in self.classes.items()):
            raise SpecError("must map request names to class names", field="load.classes")
        problems = risk_problems(self)
        if problems:
            name, message = problems[0]
            raise SpecError(message, field=_RISK_FIELDS[name])

    @property
    def grace_s(self) -> float:
        """Seconds users get to finish their in-flight request when the load stops."""
        return self.timeout_s + 2.0 if self.stop_grace_s is None else self.stop_grace_s

    def command(self) -> list[str]:
        """The Locust command line: the recording shim and the locustfile, headless."""
        spawn = self.spawn_rate if self.spawn_rate is not None else min(self.users * 10.0, 100.0)
        return [
            sys.executable, "-m", "locust", "--headless", "--only-summary",
            "-f", f"{RECORDING_SHIM},{self.locustfile}", "-H", self.host,
            "-u", str(self.users), "-r", repr(float(spawn)),
            "--loglevel", "WARNING", "--exit-code-on-error", "0",
            "--stop-timeout", str(math.ceil(self.grace_s)),
        ]

    def environment(self) -> dict[str, str]:
        """The child's environment: ours, the settings, and ``drills`` importable."""
        settings = LoadSettings(
            record_dir=self.record_dir.resolve(), rate=self.rate, users=self.users,
            timeout_s=self.timeout_s, parent_pid=os.getpid(), bursts=self.bursts,
            burst_multiplier=self.burst_multiplier, burst_width_s=self.burst_width_s,
            retries=self.retries, hot_keys=self.hot_keys, hot_share=self.hot_share,
            classes=dict(self.classes or {}),
        )
        env = dict(os.environ)
        env.update(settings.to_env())
        env.update(dict(self.extra_env))
        root = str(Path(drills.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        return env


class LoadRunner:
    """One Locust run as a context manager.

    ``__enter__`` starts Locust and returns once its first user has started (``started_at``);
    it raises `LoadError` with the log tail if Locust dies or never starts, and leaves nothing
    running. ``__exit__`` stops Locust (SIGTERM to its group, bounded wait, SIGKILL) and raises
    `LoadError` if Locust had died on its own meanwhile or reported an internal error — unless
    another exception is already propagating. Records stay in ``record_dir`` and are read with
    `poll` (live), `requests`, `history`, `merge_into` (any time, complete after exit).
    ``clock``/``sleep`` are injectable for the waits.
    """

    def __init__(self, config: LoadConfig, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, poll_interval_s: float = 0.05):
        self.config = config
        self.record_dir = config.record_dir
        self._clock = clock
        self._sleep = sleep
        self._poll_interval_s = poll_interval_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._started_at: float | None = None
        self._tail: RecordTail[Request] = RecordTail(self.record_dir, REQUESTS_GLOB, Request)

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LoadRunner:
        self._prepare_dir()
        try:
            self._log = (self.record_dir / LOG_NAME).open("ab")
            self._proc = subprocess.Popen(
                self.config.command(), env=self.config.environment(), cwd=self.record_dir,
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            self._close_log()
            raise LoadError(f"cannot start locust: {exc}") from exc
        try:
            self._started_at = self._wait_started()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        died_on_its_own = self._proc is not None and self._proc.poll() is not None
        rc = self._stop()
        if exc_type is not None:
            return
        if died_on_its_own:
            raise LoadError(f"locust exited on its own (exit code {rc}) before it was stopped\n"
                            f"{self.log_tail()}")
        if rc not in (0, -signal.SIGTERM, -signal.SIGKILL):
            raise LoadError(f"locust reported an internal error (exit code {rc})\n"
                            f"{self.log_tail()}")

    def _prepare_dir(self) -> None:
        try:
            self.record_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LoadError(f"cannot create {self.record_dir}: {exc}") from exc
        leftovers = [p.name for g in (REQUESTS_GLOB, HISTORY_GLOB, STARTED_GLOB)
                     for p in self.record_dir.glob(g)]
        if leftovers:
            raise LoadError(f"{self.record_dir} already holds load records "
                            f"({', '.join(sorted(leftovers)[:5])}); use a fresh directory")

    def _wait_started(self) -> float:
        assert self._proc is not None
        deadline = self._clock() + self.config.start_timeout_s
        while True:
            started = read_started(self.record_dir)
            if started is not None:
                return started
            rc = self._proc.poll()
            if rc is not None:
                raise LoadError(f"locust exited during start-up (exit code {rc})\n"
                                f"{self.log_tail()}")
            if self._clock() >= deadline:
                raise LoadError(f"locust started no user within {self.config.start_timeout_s} s\n"
                                f"{self.log_tail()}")
            self._sleep(self._poll_interval_s)

    def _stop(self) -> int | None:
        """Stop Locust's process group (idempotent); return its exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=self.config.grace_s + self.config.kill_after_s)
            except subprocess.TimeoutExpired:
                self._signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # Anything the locustfile may have left in the group (it should be none).
        self._signal_group(proc.pid, signal.SIGKILL)
        self._close_log()
        return proc.returncode

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- observation -------------------------------------------------------------------------

    @property
    def started_at(self) -> float:
        """Unix time the first Locust user started (when the first request could be sent)."""
        if self._started_at is None:
            raise LoadError("the load has not started")
        return self._started_at

    @property
    def alive(self) -> bool:
        """True while the Locust process runs."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The Locust process id (also its process group id), None before start."""
        return None if self._proc is None else self._proc.pid

    def poll(self) -> list[Request]:
        """Request records completed since the previous poll, sorted by start time.

        Records arrive when requests complete, so a slow request that started earlier can
        come in a later batch than a fast one that started after it.
        """
        return sorted(self._tail.poll(), key=lambda r: r.t)

    def requests(self) -> list[Request]:
        """Every request record so far (complete after exit), sorted by start time."""
        return read_requests(self.record_dir)

    def history(self) -> list[Op]:
        """Every history operation so far (complete after exit), sorted by time."""
        return read_history(self.record_dir)

    def merge_into(self, run_dir: Path) -> tuple[Path, Path]:
        """Write ``run_dir/requests.jsonl`` and ``run_dir/history.jsonl`` (fsync'd); return them."""
        run_dir.mkdir(parents=True, exist_ok=True)
        req_path, hist_path = run_dir / "requests.jsonl", run_dir / "history.jsonl"
        write_synced(req_path, self.requests())
        write_synced(hist_path, self.history())
        return req_path, hist_path

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of Locust's log (empty if there is none)."""
        try:
            text = (self.record_dir / LOG_NAME).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
