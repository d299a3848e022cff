"""Building blocks of hand-written drills: the session's stack, background load, the final read,
and the checks as functions a test asserts with.

The pytest plugin (`drills.pytest_plugin`) turns these into fixtures: ``drill_stack`` is
`open_session`'s stack, ``drill_load`` a `BackgroundLoad`, ``chaos`` a `drills.chaos.Chaos`.
A ten-line drill::

    def test_writes_survive_losing_dc_east(drill_stack, chaos, drill_load):
        drill_load.wait(5)                                  # baseline
        with chaos.power_down("dc-east") as outage:
            drill_load.wait(5)
        drill_load.wait(8)                                  # settle: recovery is measured here
        drill_load.stop()
        assert_recovered(drill_load.timeline(), outage, within={"write": 10, "read": 5})
        assert_no_lost_writes(drill_load.history(), final_read(drill_stack))

The checks are the engine's own pure checks (`drills.checks`) on the load's records; an
``assert_*`` raises `AssertionError` with the check's summary and evidence when the check fails
*or cannot decide* (a check that could not look is not a pass).

Layout of a session directory (``<root>/pytest-<time>``), the same as a drill's run directory,
so ``drill rollback DIR`` and the next run under the same root clean up after a killed
harness: ``stack/`` (the stack's state, logs and data), ``ledger.jsonl`` (every fault of every
test), ``load/<test>/`` (each test's load records).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

import yaml

from drills.chaos import ActiveFault
from drills.checks import (
    AnalysisParams,
    check_acked_writes,
    check_counters,
    check_split_brain,
    check_zero_reads,
    measure_rtos,
)
from drills.checks.buckets import Series, p95, series_by_class
from drills.errors import LoadError, SpecError, StackError
from drills.ledger import Ledger
from drills.load.runner import LoadConfig, LoadRunner, resolve_locustfile
from drills.model import CheckResult, FaultRecord, FinalRead, Op, Request, StoreSnapshot
from drills.spec import DrillSpec
from drills.stack.base import Stack
from drills.targets import for_spec
from drills.targets.base import Target

log = logging.getLogger("drills")

#: Analysis defaults for hand-written drills: the engine's, with a 2 s hold (tests are short).
TEST_PARAMS = AnalysisParams(hold_s=2.0)


# -- the session's stack --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StackOptions:
    """Which stack the session runs: the provider, the target's knobs (``stack.config`` keys of
    a drill file, e.g. ``{"fsync": "never"}``), or the system of a ``drill`` file (your own
    Compose stack or local processes: its ``stack`` section is used, with ``config`` on top)."""

    provider: str = "local"
    config: Mapping[str, Any] = field(default_factory=dict)
    drill: Path | None = None

    def as_spec(self) -> DrillSpec:
        """These options as the stack section of a drill (validated like one: `SpecError`)."""
        from drills.catalog import load_drill, parse_drill

        sets = [f"stack.provider={self.provider}"] + [
            f"stack.config.{k}={yaml.safe_dump(v, default_flow_style=True).strip()}"
            for k, v in self.config.items()]
        if self.drill is not None:
            return load_drill(Path(self.drill), sets=sets)
        raw = {"drill": "pytest-session", "description": "the stack of a pytest session",
               "stack": {"provider": self.provider, "config": dict(self.config)},
               "timeline": {"baseline": 1}}
        return parse_drill(yaml.safe_dump(raw), source="drill_stack_options")


#: The target of every stack a session opened (`final_read` and `BackgroundLoad` ask it).
_TARGETS: weakref.WeakKeyDictionary[Any, Target] = weakref.WeakKeyDictionary()


def target_of(stack: Stack) -> Target:
    """The target ``stack`` runs (`StackError` for a stack no session opened)."""
    try:
        return _TARGETS[stack]
    except (KeyError, TypeError):
        raise StackError("this stack was not opened by open_session: its target is unknown "
                         "(pass target=)") from None


@dataclass(frozen=True, slots=True)
class StackSession:
    """A running stack, its target, and the directory (and ledger) of the session using it."""

    stack: Stack
    dir: Path
    ledger: Ledger
    target: Target


def fresh_dir(root: Path, name: str) -> Path:
    """``root/name``, or ``root/name-2``, ... : the first that does not exist yet (created)."""
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = root / (name if n == 1 else f"{name}-{n}")
        with contextlib.suppress(FileExistsError):
            path.mkdir()
            return path
    raise StackError(f"no free directory name for {name} under {root}")


def slug(text: str, limit: int = 80) -> str:
    """``text`` made safe as one path component (a test's node id, say)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[-limit:] or "x"


@contextlib.contextmanager
def open_session(options: StackOptions, *, root: Path, keep: bool = False
                 ) -> Iterator[StackSession]:
    """Start the stack ``options`` describe under a new ``root/pytest-<time>``; stop it on exit
    (unless ``keep``). First reverts what killed harnesses left under ``root`` (their ledgers).

    SIGTERM is Ctrl-C while it runs, so a cancelled CI job tears the stack down too. Raises
    `SpecError` for bad options, `StackError` if the stack does not start.
    """
    from drills.engine import rollback_stale
    from drills.interrupts import sigterm_as_interrupt
    from drills.stack.open import open_stack

    spec = options.as_spec()
    target = for_spec(spec, options.provider)
    root = Path(root).resolve()
    session_dir = fresh_dir(root, f"pytest-{time.strftime('%Y%m%d-%H%M%S')}")
    for line in rollback_stale(root, exclude=session_dir):
        log.warning("drills: %s", line)
    with contextlib.ExitStack() as lifecycle:
        lifecycle.enter_context(sigterm_as_interrupt())
        try:
            stack = lifecycle.enter_context(open_stack(
                spec, provider=options.provider, work_dir=session_dir / "stack", keep=keep,
                target=target))
        except ImportError as exc:  # the docker provider's module or the Docker SDK is missing
            raise StackError(f"the {options.provider} provider is not available: {exc}") \
                from exc
        _TARGETS[stack] = target
        yield StackSession(stack=stack, dir=session_dir, ledger=Ledger(session_dir),
                           target=target)


def final_read(stack: Stack, *, quiesce: float = 15.0, target: Target | None = None
               ) -> FinalRead:
    """Wait (at most ``quiesce`` s) for the stores to converge, then read every key and counter
    from each store directly. Stop the load first: a store still taking writes never settles.
    `StackError` when the target has no data contract (there is nothing to read)."""
    target = target or target_of(stack)
    target.wait_converged(stack, timeout=quiesce)
    final = target.final_read(stack)
    if final is None:
        raise StackError(f"target {target.info.name} has no final-read contract (stack.data)")
    return final


# -- background load ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LoadOptions:
    """The load of one test (``@pytest.mark.drill_load(users=..., rate=...)``): Locust users,
    total requests/s, client timeout (s), and the locustfile (a path; None: the target's)."""

    users: int = 8
    rate: float = 40.0
    timeout: float = 1.5
    locustfile: str | None = None

    def __post_init__(self) -> None:
        for name in ("users", "rate", "timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise SpecError(f"must be a number > 0, got {value!r}", source="drill_load",
                                field=name)


@dataclass(frozen=True, slots=True)
class ClassStats:
    """One operation class so far: requests, successes, success rate and p95 latency (None
    when it had no request)."""

    op: str
    requests: int
    ok: int
    success_rate: float | None
    p95_s: float | None


@dataclass(frozen=True, slots=True)
class LoadStats:
    """The load so far: totals and one `ClassStats` per class that had requests."""

    requests: int
    ok: int
    by_class: Mapping[str, ClassStats]

    @property
    def errors(self) -> int:
        return self.requests - self.ok

    @property
    def success_rate(self) -> float | None:
        return self.ok / self.requests if self.requests else None


def load_stats(requests: Sequence[Request]) -> LoadStats:
    """`LoadStats` of a request record. Pure."""
    by: dict[str, list[Request]] = {}
    for r in requests:
        by.setdefault(r.op, []).append(r)
    classes = {op: ClassStats(op, len(rs), sum(r.ok for r in rs), sum(r.ok for r in rs) / len(rs),
                              p95([r.duration for r in rs]))
               for op, rs in sorted(by.items())}
    return LoadStats(len(requests), sum(r.ok for r in requests), MappingProxyType(classes))


@dataclass(frozen=True, slots=True)
class RequestTimeline:
    """Every request of a load, by start time, and when the load started and stopped."""

    requests: tuple[Request, ...]
    started_at: float
    stopped_at: float | None
    classes: tuple[str, ...] = ()  # the target's classes, in report order (empty: as seen)

    def series(self, bucket_s: float = 0.25) -> tuple[Series, ...]:
        """Requests/s, success rate and p95 per class over time (`series_by_class`)."""
        return series_by_class(self.requests, bucket_s=bucket_s, origin=self.started_at,
                               classes=self.classes or None)


@dataclass(frozen=True, slots=True)
class History:
    """The load's operation history, with what the stores held before it started
    (``preexisting`` keys, and the ``initial`` snapshot for counter baselines)."""

    ops: tuple[Op, ...]
    preexisting: frozenset[str] = frozenset()
    initial: StoreSnapshot | None = None


class BackgroundLoad:
    """Locust against ``stack``'s api in the background (`drills.load.runner.LoadRunner`: a
    subprocess), as a context manager. Records go to ``record_dir``.

    Entering reads what the stores hold (for `History`) and returns once the first user has
    started; leaving stops Locust (as `stop` does). Raises `LoadError` if Locust fails.
    """

    def __init__(self, stack: Stack, *, record_dir: Path, options: LoadOptions | None = None,
                 poll_s: float = 0.1, target: Target | None = None) -> None:
        self.stack = stack
        self.target = target or target_of(stack)
        self.options = options or LoadOptions()
        self.record_dir = Path(record_dir)
        self._poll_s = poll_s
        self._runner: LoadRunner | None = None
        self._initial: StoreSnapshot | None = None
        self._stopped_at: float | None = None

    def __enter__(self) -> BackgroundLoad:
        before = self.target.final_read(self.stack)
        self._initial = before.authoritative if before is not None else None
        o = self.options
        own = self.target.locustfile()
        if o.locustfile is None and own is None:
            raise SpecError("the target ships no load: give drill_load a locustfile",
                            source="drill_load", field="locustfile")
        runner = LoadRunner(LoadConfig(
            locustfile=resolve_locustfile(o.locustfile or str(own)),
            host=self.target.entry_url(self.stack),
            record_dir=self.record_dir, users=o.users, rate=float(o.rate), timeout_s=o.timeout,
        ))
        self._runner = runner.__enter__()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None and self._stopped_at is None:
            self._stopped_at = time.time()
            self._runner.__exit__(t, e, tb)

    def _live(self) -> LoadRunner:
        if self._runner is None:
            raise LoadError("the load was never started (use it as a context manager)")
        return self._runner

    @property
    def started_at(self) -> float:
        """When the first user started (Unix time)."""
        return self._live().started_at

    @property
    def running(self) -> bool:
        return self._stopped_at is None and self._live().alive

    def wait(self, seconds: float) -> None:
        """Let the load run for ``seconds``; raises `LoadError` (with Locust's log) if it dies."""
        runner = self._live()
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._stopped_at is None and not runner.alive:
                raise LoadError("the load generator died:\n" + runner.log_tail())
            time.sleep(min(self._poll_s, left))

    def stop(self) -> None:
        """Stop the load (idempotent); afterwards every record is complete."""
        self.__exit__(None, None, None)

    def timeline(self) -> RequestTimeline:
        """Every request so far (all of them after `stop`)."""
        runner = self._live()
        return RequestTimeline(tuple(runner.requests()), runner.started_at, self._stopped_at,
                               tuple(self.target.info.classes or ()))

    def history(self) -> History:
        """Every operation so far (all of them after `stop`), with the stores' prior contents."""
        pre = frozenset(self._initial.keys) if self._initial else frozenset()
        return History(tuple(self._live().history()), pre, self._initial)

    def stats(self) -> LoadStats:
        """Requests, successes and p95 latency so far, in total and per class."""
        return load_stats(self._live().requests())


# -- checks a test asserts with -------------------------------------------------------------------

def _record(fault: FaultRecord | ActiveFault) -> FaultRecord:
    return fault.record if isinstance(fault, ActiveFault) else fault


def rto(timeline: RequestTimeline, fault: FaultRecord | ActiveFault, *,
        params: AnalysisParams = TEST_PARAMS, baseline_end: float | None = None
        ) -> Mapping[str, float]:
    """Recovery time per operation class after ``fault`` (DESIGN.md's definition, the engine's
    `drills.checks.measure_rtos`): class -> seconds, ``math.inf`` if it never recovered, 0 if
    it never dipped. Classes with no baseline traffic are absent.

    The baseline runs from the load's start to ``baseline_end`` (default: the injection).
    Raises `SpecError` when there is no baseline before the fault.
    """
    record = _record(fault)
    end = record.injected_at if baseline_end is None else baseline_end
    if not end > timeline.started_at:
        raise SpecError("no baseline: the fault took effect before the load started",
                        source="rto")
    rtos = measure_rtos(timeline.requests, faults=[record], baseline_start=timeline.started_at,
                        baseline_end=end, params=params)
    return MappingProxyType({r.op: math.inf if r.rto_s is None else r.rto_s
                             for r in rtos if r.measured})


def assert_recovered(timeline: RequestTimeline, fault: FaultRecord | ActiveFault, *,
                     within: float | Mapping[str, float], params: AnalysisParams = TEST_PARAMS
                     ) -> Mapping[str, float]:
    """Assert every class (``within`` a number) or each named class (a mapping class ->
    seconds) recovered from ``fault`` within its limit; returns `rto`'s mapping. A class named
    in ``within`` that had no baseline traffic fails: it cannot be shown to recover."""
    measured = rto(timeline, fault, params=params)
    limits = dict.fromkeys(measured, float(within)) if isinstance(within, int | float) \
        else dict(within)
    problems = []
    for op, limit in limits.items():
        got = measured.get(op)
        if got is None:
            problems.append(f"{op}: not measured (no requests before the fault)")
        elif got > limit:
            problems.append(f"{op}: " + ("never recovered" if math.isinf(got) else
                                         f"RTO {got:.2f} s") + f" > {limit:g} s")
    if problems:
        seen = ", ".join(f"{op} {'not recovered' if math.isinf(v) else f'{v:.2f} s'}"
                         for op, v in measured.items())
        raise AssertionError(f"recovery from {_record(fault).kind} {_record(fault).target} "
                             "missed:\n  " + "\n  ".join(problems) + f"\n(measured: {seen})")
    return measured


def _verdict(result: CheckResult) -> CheckResult:
    """Return a passing check; raise `AssertionError` with its evidence otherwise."""
    if result.passed is True:
        return result
    head = "could not decide" if result.passed is None else "failed"
    lines = [f"{result.name} {head}: {result.summary}", *(f"  {f}" for f in result.findings[:20])]
    if len(result.findings) > 20:
        lines.append(f"  ... and {len(result.findings) - 20} more")
    raise AssertionError("\n".join(lines))


def assert_no_lost_writes(history: History, final: FinalRead, *, allowed: int = 0) -> CheckResult:
    """Every acknowledged write is in the final read, and nothing unexpected is
    (`drills.checks.check_acked_writes`)."""
    return _verdict(check_acked_writes(history.ops, final=final, preexisting=history.preexisting,
                                       allowed_lost=allowed))


def assert_counters_exact(history: History, final: FinalRead) -> CheckResult:
    """Every counter lies within [acked, acked + indeterminate] increments, and no read
    saw 0 after increments were acknowledged (`check_counters`, `check_zero_reads`)."""
    _verdict(check_zero_reads(history.ops))
    return _verdict(check_counters(history.ops, final=final, preexisting=history.preexisting,
                                   initial=history.initial))


def assert_no_split_brain(history: History, final: FinalRead) -> CheckResult:
    """No two stores acknowledged under one epoch, no stale-epoch ack, and the stores agree
    (`drills.checks.check_split_brain`)."""
    return _verdict(check_split_brain(history.ops, final=final))


__all__ = [
    "TEST_PARAMS",
    "BackgroundLoad",
    "ClassStats",
    "History",
    "LoadOptions",
    "LoadStats",
    "RequestTimeline",
    "StackOptions",
    "StackSession",
    "assert_counters_exact",
    "assert_no_lost_writes",
    "assert_no_split_brain",
    "assert_recovered",
    "final_read",
    "load_stats",
    "open_session",
    "rto",
    "target_of",
]
