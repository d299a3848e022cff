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

- **One Locust process by default**: with ``FastHttpUser`` one gevent process drives ~1,000
  req/s of the demonstration target's mix on one core, and one process keeps start and stop
  simple.
- **Several: Locust's own master/worker mode** (``workers`` > 1, the drill's
  ``load.workers``; ``auto`` = one per CPU core). The runner starts ``locust --master
  --headless --expect-workers N`` bound to a free loopback port, then N ``locust --worker
  --master-host 127.0.0.1 --master-port P``. The master only dispatches users (the shim and
  the demonstration target's locustfile record nothing there and write no start marker);
  Locust spreads the users over the workers and every user keeps pacing at ``rate / users``,
  so the total rate holds. Every worker writes its own ``requests-<pid>.jsonl``,
  ``history-<pid>.jsonl`` and ``started-<pid>.json``: `read_requests`/`read_history` (and the
  engine's one merge, `drills.runstore.merge_records`) merge all files sorted by time
  (requests by start, history stably by time, so an invoke stays before its completion),
  `poll` sorts each batch, and ``started_at`` is the earliest worker marker - when the first
  user of any worker could send. (Locust's ``--processes`` forks workers itself; starting
  them ourselves keeps one code path for local and remote workers and every pid ours.)
- **Own process group** (the first process leads a new one, the workers join it; not a new
  session, as a process may only join a group of its own session): a Ctrl-C at the terminal
  reaches the foreground group, the harness, only, which then stops the load in order. One
  process: the group gets SIGTERM (Locust's graceful shutdown: users finish the request in
  flight within ``--stop-timeout``). Distributed: the master alone gets SIGTERM
  and sends every worker Locust's ``quit`` (each stops its users gracefully, the same way);
  signalling the workers too would make each leave on its own, and the master would hand a
  leaving worker's users to one still running. After a bounded wait, SIGKILL to the group.
- **Locust never judges**: ``--exit-code-on-error 0``; failures are data for the checks.
- **started_at** is the shim's ``started-<pid>.json`` marker, written as Locust starts its
  first user, i.e. when the first request could be sent. `LoadRunner.__enter__` waits for it.
  It is also the locustfile's ``t0`` for write bursts (``drills.record.started_at()``;
  ``bursts`` are offsets from it), so a burst and a fault scheduled at the same offset from
  load start meet.
- **Orphan safety**: the shim watches the harness pid (``DRILLS_PARENT_PID``) in every
  process (master and workers alike are the harness's children) and quits when the harness is
  gone, so a SIGKILLed harness does not leave load running.
- Locust's stdout/stderr go to ``record_dir/locust.log`` (``--loglevel WARNING``,
  ``--only-summary`` keep it small); its tail is put into every `LoadError`.

Honouring the settings (`drills.load.records.LoadSettings`: rate, users, timeout, and the
data-at-risk bursts, retries, hot keys) is up to the locustfile: one that ignores them still
runs, it just does not pace or put data at risk that way.

**Workers on other machines** (when one machine cannot drive the target): supported by
`LoadConfig` (``remote_workers``, ``master_bind``), not yet by ``drill run``. With
``remote_workers=N`` and ``master_bind="0.0.0.0:5557"`` the master listens there and waits for
N workers it does not start, besides its own ``workers``. Start each beforehand (a worker keeps
trying to reach its master for about five minutes)::

    DRILLS_RECORD_DIR=/mnt/shared/load DRILLS_RATE=1000 DRILLS_USERS=200 ... \
    python -m locust --worker --master-host <harness host> --master-port 5557 \
        -f <drills>/load/locustfiles/recording.py,<locustfile>

with the ``DRILLS_*`` settings the harness gives its own workers (`LoadConfig.environment`,
less ``DRILLS_PARENT_PID``). Limitations, and why ``drill run`` does not offer it yet: the
records must reach the harness's record directory, so that must be a shared volume mounted
at the same path everywhere, and known before the run (``drill run`` makes a fresh one per run);
record files are named by pid, so workers on two machines with the same pid (containers:
likely) would share a file; records are merged by timestamp, so clocks must be synchronised
(NTP); the start waits at most ``start_timeout_s`` for all workers. The Locust Kubernetes
operator runs the same master/worker pair and has the same needs.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Literal
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
)
from drills.model import Op, Request

#: The recording shim Locust loads beside every locustfile (see the module docstring).
RECORDING_SHIM = Path(__file__).parent / "locustfiles" / "recording.py"
LOG_NAME = "locust.log"
#: Users started per second at most when ``spawn_rate`` is None: 200 users take 0.2 s, about
#: one pacing interval at 1,000 req/s, so their phases still spread over that interval while
#: the load reaches its rate at once (at 100/s the first two seconds ran at half the rate).
MAX_SPAWN_RATE = 1000.0
#: The most Locust worker processes one run starts (``load.workers``).
MAX_WORKERS = 64
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
    timeout. ``spawn_rate`` None starts all users within ~0.1 s
    (at most `MAX_SPAWN_RATE` per second). ``start_timeout_s`` bounds
    the wait for the first user; ``stop_grace_s`` (default ``timeout_s + 2``) the time users get
    to finish their request in flight on stop; after ``kill_after_s`` more, SIGKILL.

    ``classes`` maps a Locust request name (``"items"``, or ``"GET /items"`` with its method)
    to its operation class (None: every name is its own class); the shim applies it.

    ``workers`` is how many Locust worker processes to start (``"auto"``: one per CPU core,
    resolved here); 1 with no ``remote_workers`` runs one plain Locust process, anything more
    Locust's master/worker mode (see the module docstring). ``remote_workers`` more workers
    that the harness does not start may join the master at ``master_bind`` (``host:port``;
    default: a free loopback port, reachable from this machine only).

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
    workers: int | Literal["auto"] = 1
    remote_workers: int = 0
    master_bind: str | None = None

    def __post_init__(self) -> None:
        if self.workers == "auto":
            object.__setattr__(self, "workers", max(1, min(os.cpu_count() or 1, MAX_WORKERS)))
        if type(self.workers) is not int or not 1 <= self.workers <= MAX_WORKERS:
            raise SpecError(f"must be 1..{MAX_WORKERS} or auto, got {self.workers!r}",
                            field="load.workers")
        if not 0 <= self.remote_workers <= MAX_WORKERS:
            raise SpecError(f"must be 0..{MAX_WORKERS}, got {self.remote_workers}",
                            field="load.remote_workers")
        if self.master_bind is not None:
            _split_bind(self.master_bind)
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

    @property
    def distributed(self) -> bool:
        """True when Locust runs as a master and workers (more than one worker in all)."""
        assert isinstance(self.workers, int)
        return self.workers + self.remote_workers > 1

    def command(self, *, master_port: int | None = None) -> list[str]:
        """The first process's Locust command line: the recording shim and the locustfile,
        headless, starting the users - as the master listening on ``master_port`` (required
        then) when `distributed`, else as the one process."""
        spawn = (self.spawn_rate if self.spawn_rate is not None
                 else min(self.users * 10.0, MAX_SPAWN_RATE))
        cmd = [*self._base(), "--headless", "--only-summary",
               "-u", str(self.users), "-r", repr(float(spawn))]
        if self.distributed:
            if master_port is None:
                raise LoadError("a distributed load's master needs its port")
            assert isinstance(self.workers, int)
            host = _split_bind(self.master_bind)[0] if self.master_bind else "127.0.0.1"
            cmd += ["--master", "--master-bind-host", host, "--master-bind-port", str(master_port),
                    "--expect-workers", str(self.workers + self.remote_workers)]
        return cmd

    def worker_command(self, master_port: int) -> list[str]:
        """The Locust command line of one local worker of the master on ``master_port``."""
        return [*self._base(), "--worker", "--master-host", "127.0.0.1",
                "--master-port", str(master_port)]

    def _base(self) -> list[str]:
        return [sys.executable, "-m", "locust", "-f", f"{RECORDING_SHIM},{self.locustfile}",
                "-H", self.host, "--loglevel", "WARNING", "--exit-code-on-error", "0",
                "--stop-timeout", str(math.ceil(self.grace_s))]

    def master_port(self) -> int:
        """The port ``master_bind`` names, else a free loopback port (bound, then released)."""
        if self.master_bind is not None:
            return _split_bind(self.master_bind)[1]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

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


def _split_bind(bind: str) -> tuple[str, int]:
    """``host:port`` as (host, port); `SpecError` (``load.master_bind``) if it is not one."""
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError(f"must be host:port, got {bind!r}", field="load.master_bind")
    return host, int(port)


class LoadRunner:
    """One Locust run (one process, or a master and its workers) as a context manager.

    ``__enter__`` starts Locust and returns once a first user has started (``started_at``);
    it raises `LoadError` with the log tail if a Locust process dies or no user starts, and
    leaves nothing running. ``__exit__`` stops Locust (SIGTERM, bounded wait, SIGKILL to the
    group) and raises `LoadError` if a Locust process had died on its own meanwhile or reported
    an internal error - unless another exception is already propagating. Records stay in
    ``record_dir`` and are read with `poll` (live), `requests`, `history`, `merge_into` (any
    time, complete after exit). ``clock``/``sleep`` are injectable for the waits.
    """

    def __init__(self, config: LoadConfig, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, poll_interval_s: float = 0.05):
        self.config = config
        self.record_dir = config.record_dir
        self._clock = clock
        self._sleep = sleep
        self._poll_interval_s = poll_interval_s
        self._procs: list[subprocess.Popen[bytes]] = []  # the first leads the process group
        self._log: IO[bytes] | None = None
        self._started_at: float | None = None
        self._tail: RecordTail[Request] = RecordTail(self.record_dir, REQUESTS_GLOB, Request)

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LoadRunner:
        self._prepare_dir()
        cfg = self.config
        try:
            self._log = (self.record_dir / LOG_NAME).open("ab")
            if cfg.distributed:
                port = cfg.master_port()
                self._spawn(cfg.command(master_port=port))
                assert isinstance(cfg.workers, int)
                for _ in range(cfg.workers):
                    self._spawn(cfg.worker_command(port))
            else:
                self._spawn(cfg.command())
        except OSError as exc:
            self._stop()
            raise LoadError(f"cannot start locust: {exc}") from exc
        try:
            self._started_at = self._wait_started()
        except BaseException:
            self._stop()
            raise
        return self

    def _spawn(self, cmd: list[str]) -> None:
        """Start one Locust process: the first leads a new process group, the others join it."""
        self._procs.append(subprocess.Popen(
            cmd, env=self.config.environment(), cwd=self.record_dir, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT,
            process_group=self._procs[0].pid if self._procs else 0))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        died = [p for p in self._procs if p.poll() is not None]
        self._stop()
        if exc_type is not None:
            return
        if died:
            raise LoadError(f"locust exited on its own ({self._describe(died)}) before it was "
                            f"stopped\n{self.log_tail()}")
        failed = [p for p in self._procs
                  if p.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL)]
        if failed:
            raise LoadError(f"locust reported an internal error ({self._describe(failed)})\n"
                            f"{self.log_tail()}")

    def _describe(self, procs: list[subprocess.Popen[bytes]]) -> str:
        """``exit code 2`` for the one process; ``master exit code 2, worker 1234 exit code
        -9`` for a distributed load."""
        if not self.config.distributed:
            return f"exit code {procs[0].returncode}"
        return ", ".join(f"{'master' if p is self._procs[0] else f'worker {p.pid}'} exit code "
                         f"{p.returncode}" for p in procs)

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
        deadline = self._clock() + self.config.start_timeout_s
        while True:
            started = read_started(self.record_dir)
            if started is not None:
                return started
            died = [p for p in self._procs if p.poll() is not None]
            if died:
                raise LoadError(f"locust exited during start-up ({self._describe(died)})\n"
                                f"{self.log_tail()}")
            if self._clock() >= deadline:
                waiting = (f" (waiting for {self.config.remote_workers} remote workers)"
                           if self.config.remote_workers else "")
                raise LoadError(f"locust started no user within {self.config.start_timeout_s} s"
                                f"{waiting}\n{self.log_tail()}")
            self._sleep(self._poll_interval_s)

    def _stop(self) -> None:
        """Stop every Locust process (idempotent): SIGTERM to the group - to the master only
        while it runs, which then tells its workers to quit (see the module docstring) - then,
        after the grace and kill delays, SIGKILL to the group."""
        if not self._procs:
            self._close_log()
            return
        lead = self._procs[0]
        if any(p.poll() is None for p in self._procs):
            if self.config.distributed and lead.poll() is None:
                self._signal(lead, signal.SIGTERM)
            else:
                self._signal_group(lead.pid, signal.SIGTERM)
            deadline = time.monotonic() + self.config.grace_s + self.config.kill_after_s
            for proc in self._procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        # Whatever is left (a stuck worker, anything the locustfile started).
        self._signal_group(lead.pid, signal.SIGKILL)
        for proc in self._procs:
            proc.wait(timeout=10)
        self._close_log()

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)

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
        """True while every Locust process this runner started runs."""
        return bool(self._procs) and all(p.poll() is None for p in self._procs)

    @property
    def pid(self) -> int | None:
        """The first Locust process's id - the one process, or the master - which is also
        the process group id of them all; None before start."""
        return self._procs[0].pid if self._procs else None

    @property
    def worker_pids(self) -> tuple[int, ...]:
        """The ids of the worker processes this runner started (none for one process)."""
        return tuple(p.pid for p in self._procs[1:])

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
        """Write ``run_dir/requests.jsonl`` and ``run_dir/history.jsonl`` (fsync'd; the
        engine's one merge, `drills.runstore.merge_records`); return them."""
        from drills.runstore import HISTORY_FILE, REQUESTS_FILE, merge_records

        merge_records(self.record_dir, run_dir, digest=False)
        return run_dir / REQUESTS_FILE, run_dir / HISTORY_FILE

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of Locust's log (empty if there is none)."""
        try:
            text = (self.record_dir / LOG_NAME).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
