"""The engine: runs one drill from a validated spec to a verdict and a run directory.

Phases (DESIGN.md): prepare -> baseline -> inject -> restore -> settle -> quiesce -> final read ->
verify -> report -> teardown.

Memory stays bounded on a long game day: during the load the engine keeps only the baseline's
requests, until the gate has judged them (the guardrails and the live view keep windows of
their own); after it, `verify` reads the load's records once, in one streaming pass that
writes the run's record files and hands the checks columns and a history digest
(`drills.runstore.merge_records`), and the reports are rendered once, at the very end, from
those columns. The lifecycle is an `ExitStack`: the stack is entered first and the
fault injector second, so whatever fails (an exception, Ctrl-C, SIGTERM), every fault is reverted
before the stack is torn down, and the load is stopped before either. SIGTERM is turned into
KeyboardInterrupt for the duration of a run so that it takes the same path as Ctrl-C.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from drills import watchdog
from drills.checks.frame import RequestFrame
from drills.errors import (
    Aborted,
    DrillsError,
    EnvironmentError_,
    HarnessError,
    Interrupted,
    LoadError,
    RevertError,
    SpecError,
)
from drills.events import Observer, Quiet, Safe, describe
from drills.faults import Injector, rollback
from drills.guardrails import Guard
from drills.interrupts import Teardown, sigterm_as_interrupt
from drills.journal import Journal, Judgement, PhaseRecord
from drills.ledger import Ledger
from drills.load.runner import LoadConfig, LoadRunner, resolve_locustfile
from drills.model import FinalRead, Request
from drills.report import write_reports
from drills.runstore import (
    RunRecords,
    gc_paused,
    merge_records,
    save_drill,
    save_final_read,
    save_preexisting,
)
from drills.schedule import Action, end_of_faults, plan
from drills.spec import DrillSpec, validate_targets
from drills.stack.open import open_stack, stale_stacks
from drills.stack.process import LABEL_ENV
from drills.targets import for_spec
from drills.targets.base import Target
from drills.verdict import baseline_health, fault_plans, judge

#: The watchdog's deadline before the load has started: at most this long to start the load.
LOAD_START_SLACK_S = 60.0
#: Below this success rate in the baseline, the system is unhealthy before any fault: abort.
BASELINE_MIN_SUCCESS = 0.9
POLL_S = 0.1


@dataclass(frozen=True)
class RunOptions:
    """How to run a drill: where (``out``), on which provider (overrides the file), keep the
    stack afterwards, and who watches (``observer``)."""

    out: Path | None = None
    provider: str | None = None
    keep: bool = False
    observer: Observer = field(default_factory=Quiet)
    runs_root: Path = Path("runs")


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    journal: Journal
    error: DrillsError | None = None

    @property
    def verdict(self) -> str:
        return self.journal.verdict


def run_dir_for(spec: DrillSpec, options: RunOptions) -> Path:
    if options.out is not None:
        return Path(options.out)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return options.runs_root / f"{spec.drill}-{stamp}"


class Run:
    """One drill run: holds the records as they are made and the journal being written."""

    def __init__(self, spec: DrillSpec, options: RunOptions) -> None:
        self.spec = spec
        self.options = options
        self.obs = Safe(options.observer)
        self.provider = options.provider or spec.stack.provider
        self.run_dir = run_dir_for(spec, options).resolve()
        self.journal = Journal.start(spec, provider=self.provider)
        #: the baseline's requests, for the gate (then dropped: memory stays bounded)
        self.requests: list[Request] = []
        self.gated = False
        self.injector: Injector | None = None
        self.guard: Guard | None = None
        self.load_started = False
        self.records: RunRecords | None = None

    # -- phases -----------------------------------------------------------------------------
    def phase(self, name: str) -> None:
        self.journal.enter(PhaseRecord(name=name, started_at=time.time()))
        self.obs.phase(name, time.time())

    def execute(self) -> RunResult:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        error: DrillsError | None = None
        try:
            with sigterm_as_interrupt():
                self._lifecycle()
        except KeyboardInterrupt:
            error = Interrupted("interrupted (Ctrl-C or SIGTERM); every fault was reverted")
        except DrillsError as exc:
            error = exc
        if self.injector is not None and self.injector.failures:
            error = RevertError(
                "faults still in force (see ledger.jsonl; run `drill rollback "
                f"{self.run_dir}`): " + "; ".join(f.reason for f in self.injector.failures)
            )
        if error is not None:
            self.journal.fail(error)
            self.obs.message(f"error: {error}")
            with contextlib.suppress(DrillsError, OSError):
                reports(self.run_dir, self.journal, requests=self._salvage())
        return RunResult(self.run_dir, self.journal, error)

    def _salvage(self) -> RequestFrame | None:
        """The request record of a run that ended in error: the one already merged, else the
        load's files merged now (so the report still plots them), None without a load."""
        if self.records is not None:
            return self.records.requests
        if not self.load_started:
            return None
        with contextlib.suppress(DrillsError, OSError):
            return merge_records(self.run_dir / "load", self.run_dir, digest=False).requests
        return None

    def _lifecycle(self) -> None:
        spec = self.spec
        self.phase("prepare")
        for line in rollback_stale(self.options.runs_root, exclude=self.run_dir):
            self.obs.message(line)
        target = preflight(spec, self.provider)
        self.journal.classes = classes_of(spec, target)
        save_drill(self.run_dir, spec.to_yaml())
        with ExitStack() as lifecycle:
            stack = lifecycle.enter_context(Teardown(
                open_stack(spec, provider=self.provider, work_dir=self.run_dir / "stack",
                           keep=self.options.keep, target=target)
            ))
            # the dead-man switch: outlives a SIGKILLed harness and reverts its faults past
            # their scheduled end (+ grace); until the load starts, a generous estimate
            guard = watchdog.start(self.run_dir, owner=os.getpid(), until=time.time()
                                   + LOAD_START_SLACK_S + spec.timeline.fault_end,
                                   env={LABEL_ENV: str(self.run_dir / "stack")})
            lifecycle.callback(_stop_process, guard)
            injector = lifecycle.enter_context(Teardown(Injector(stack, Ledger(self.run_dir))))
            self.injector = injector
            before = target.final_read(stack)
            before_primary = before.authoritative if before is not None else None
            preexisting = before_primary.keys if before_primary else frozenset()
            save_preexisting(self.run_dir, preexisting)
            load_cfg = load_config(spec, host=target.entry_url(stack),
                                   record_dir=self.run_dir / "load", target=target)
            with Teardown(LoadRunner(load_cfg)) as load:
                self.load_started = True
                # the analysis ends when the timeline does, before stopping the load thins it
                load_end = self._timeline(load, injector)
            self.journal.faults = list(injector.records)
            self.phase("quiesce")
            converged, waited = target.wait_converged(stack, timeout=spec.timeline.quiesce)
            self.phase("final read")
            final = target.final_read(stack)
            save_final_read(self.run_dir, final, converged=converged, quiesce_s=waited,
                            load_end=load_end)
            self.phase("verify")
            self.records, judgement = verify(
                self.run_dir, load.record_dir, spec=spec, journal=self.journal, final=final,
                t0=self.journal.load_started_at or 0.0, preexisting=preexisting,
                converged=converged, quiesce_s=waited, load_end=load_end)
            del final  # judged: not held through the teardown and the reports
            if judgement.crashed:
                raise HarnessError(f"check(s) {', '.join(judgement.crashed)} crashed (a bug in "
                                   f"drills): their objectives are unknown; the records are "
                                   f"kept in {self.run_dir}")
            self.phase("report")
            self.journal.write(self.run_dir)  # the verdict is on disk before the teardown
            self.phase("teardown")
        self.journal.finish()
        reports(self.run_dir, self.journal, requests=self.records.requests)

    def _timeline(self, load: LoadRunner, injector: Injector) -> float:
        """Baseline, then every inject/revert on schedule, then settle; load runs throughout.
        Returns the time the timeline ended (the load is still at full rate then)."""
        spec = self.spec
        actions = plan(fault_plans(spec))
        t0 = load.started_at
        self.journal.load_started_at = t0
        watchdog.write_deadline(self.run_dir, t0 + end_of_faults(actions))
        self.phase("baseline")
        end = max(spec.timeline.baseline, end_of_faults(actions)) + spec.timeline.settle
        gate_at = spec.timeline.baseline
        pending = list(actions)
        gated = False
        with Guard(spec.guardrails, since=t0 + gate_at) as guard:
            self.guard = guard
            while True:
                now = time.time() - t0
                self._pump(load)
                if not gated and now >= gate_at:
                    gated = True
                    self._gate(t0)
                while pending and pending[0].at <= now and gated:
                    self._act(pending.pop(0), injector)
                    if not pending:
                        self.phase("settle")
                if gated and (reason := guard.check(now=time.time())):
                    raise Aborted(f"{reason}; every fault was reverted")
                if now >= end and gated and not pending:
                    return t0 + now
                if not load.alive:
                    raise LoadError("the load generator died: " + load.log_tail())
                # sleep until the next action (so an injection lands within ~ms of its time),
                # at most POLL_S (the load's records and the guardrails are read meanwhile)
                nxt = pending[0].at if pending and gated else gate_at if not gated else end
                time.sleep(min(POLL_S, max(0.001, nxt - (time.time() - t0))))

    def _pump(self, load: LoadRunner) -> None:
        batch = load.poll()
        if batch:
            if not self.gated:
                self.requests.extend(batch)
            self.obs.requests(batch, time.time())
            if self.guard is not None:
                self.guard.observe(batch, now=time.time())

    def _gate(self, t0: float) -> None:
        """Abort if the system is unhealthy before any fault (baseline phase). The baseline's
        requests are dropped afterwards: nothing else during the run needs them."""
        health = baseline_health(self.requests, t0=t0, baseline_s=self.spec.timeline.baseline)
        self.gated = True
        self.requests = []
        self.journal.baseline = health
        bad = {op: s for op, s in health.items() if s < BASELINE_MIN_SUCCESS}
        if not health or bad:
            detail = ", ".join(f"{op} {s:.0%}" for op, s in bad.items()) or "no requests at all"
            raise EnvironmentError_(f"the system was unhealthy before any fault: {detail}")

    def _act(self, action: Action, injector: Injector) -> None:
        w = action.window
        what = describe(w.entry.kind, w.entry.target)
        if action.verb == "inject":
            if not injector.active:
                self.phase("inject")
            injector.inject(w.entry, scheduled_at=w.on)
            self.obs.fault(w.entry.id, what, True, time.time())
        else:
            injector.revert(w.entry.id)
            self.obs.fault(w.entry.id, what, False, time.time())
            if not injector.active:
                self.phase("restore")


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop the watchdog at the end of a run that reverted its own faults."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        proc.terminate()
        proc.wait(timeout=5)


def verify(run_dir: Path, record_dir: Path, *, spec: DrillSpec, journal: Journal,
           final: FinalRead | None, t0: float, preexisting: frozenset[str] = frozenset(),
           converged: bool = True, quiesce_s: float = 0.0, load_end: float | None = None
           ) -> tuple[RunRecords, Judgement]:
    """The verify phase: merge the load's records from ``record_dir`` into ``run_dir`` in one
    streaming pass (`merge_records`, the history trimmed for the final read) and judge them
    against ``spec`` (faults and classes from ``journal``, which takes the judgement).
    Returns the records (their request columns feed the reports; the history digest, judged,
    is dropped so that it is not held while they render) and the judgement. Raises
    `SpecError` for a malformed record, `OSError` if the run files cannot be written."""
    with gc_paused():
        records = merge_records(record_dir, run_dir, wait=False,
                                winner=None if final is None else final.authoritative)
        try:
            judgement = judge(
                spec, requests=records.requests, history=records.history or (),
                faults=journal.faults, final=final, t0=t0, preexisting=preexisting,
                converged=converged, quiesce_s=quiesce_s, load_end=load_end,
                classes=journal.classes,
            )
        finally:
            records.durable()  # the records' fsync ran while the checks did
    journal.judge(judgement)
    # the digest is judged: freed now, it is not held while the reports render
    return dataclasses.replace(records, history=None), judgement


def reports(run_dir: Path, journal: Journal, *,
            requests: RequestFrame | None = None) -> None:
    """`write_reports` (from ``requests`` when given, else from ``requests.jsonl``), with a
    crash inside a report (a bug in drills) turned into a `HarnessError` once
    ``journal.json`` is safely written: the run's verdict is never lost."""
    try:
        write_reports(run_dir, journal, requests=requests)
    except (DrillsError, OSError):
        raise
    except Exception as exc:
        with contextlib.suppress(OSError):
            journal.write(run_dir)
        raise HarnessError(f"a report crashed (a bug in drills): {type(exc).__name__}: {exc}; "
                           f"journal.json is written") from exc


def preflight(spec: DrillSpec, provider: str) -> Target:
    """Every check `drill run` makes before it starts anything (``drill validate`` and game days
    make the same): the target (registered, or the drill file's own system), the fault targets
    against its topology, and the locustfile (the drill's, else the target's). Raises
    `SpecError`; returns the target."""
    try:
        target = for_spec(spec, provider)
        validate_targets(spec, target.topology)
        locustfile_for(spec, target)
    except SpecError as exc:
        raise SpecError(exc.message, source=exc.source or spec.source, field=exc.field) from None
    return target


def locustfile_for(spec: DrillSpec, target: Target) -> Path:
    """The drill's locustfile, else the target's own; `SpecError` when there is neither."""
    if spec.load.locustfile is not None:
        return resolve_locustfile(spec.load.locustfile)
    own = target.locustfile()
    if own is None:
        raise SpecError("this target ships no load: name a locustfile", field="load.locustfile")
    return resolve_locustfile(own)


def run_classes(spec: DrillSpec) -> tuple[str, ...]:
    """`classes_of` the drill's own target (empty when it cannot be resolved: the run will
    say why)."""
    try:
        return classes_of(spec, for_spec(spec))
    except SpecError:
        return ()


def classes_of(spec: DrillSpec, target: Target) -> tuple[str, ...]:
    """The run's operation classes in report order: the target's, else the drill's
    ``load.classes`` values (first seen first), else none known ahead (the requests' names)."""
    if target.info.classes:
        return tuple(target.info.classes)
    return tuple(dict.fromkeys((spec.load.classes or {}).values()))


def load_config(spec: DrillSpec, *, host: str, record_dir: Path, target: Target) -> LoadConfig:
    """The load as the drill file asks for it: rate and users, the client's timeout and retries,
    the hot keys, and write bursts centred on every scheduled injection (and revert, with
    ``burst.at_revert``) - the instants where a DR bug loses data."""
    load = spec.load
    bursts = (spec.timeline.injection_offsets(at_revert=load.burst.at_revert)
              if load.burst.multiplier > 1 else ())
    return LoadConfig(
        locustfile=locustfile_for(spec, target), host=host, users=load.users,
        rate=load.rate, timeout_s=load.timeout, record_dir=record_dir, bursts=bursts,
        burst_multiplier=load.burst.multiplier, burst_width_s=load.burst.width,
        retries=load.retries, hot_keys=load.hot.keys, hot_share=load.hot.share,
        classes=dict(load.classes or {}) or None, workers=load.workers,
    )


def rollback_stale(runs_root: Path, *, exclude: Path) -> list[str]:
    """Revert faults left in force by earlier runs whose harness died (their ledgers)."""
    lines = []
    for run_dir, stack in stale_stacks(runs_root, exclude=exclude):
        done, failures = rollback(stack, Ledger(run_dir))
        lines += [f"rolled back {fid} left by {run_dir}" for fid in done]
        lines += [f"could not roll back {f.id} in {run_dir}: {f.reason}" for f in failures]
        if not failures and not stack.keep:
            stack.down()
            lines.append(f"stopped the stack left running by {run_dir}")
    return lines


def run_drill(spec: DrillSpec, options: RunOptions | None = None) -> RunResult:
    """Run one drill. Never raises a `DrillsError`: it is in the result."""
    return Run(spec, options or RunOptions()).execute()
