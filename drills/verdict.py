"""From a drill's objectives and a run's records to objectives met or missed, and the metrics.

This is where the spec meets the pure checks: it chooses the parameters (baseline window, analysis
knobs, RTO targets) and turns each `CheckResult` into the objectives the drill file asked for.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from drills.checks import (
    AnalysisParams,
    check_acked_writes,
    check_counters,
    check_exposure,
    check_rpo,
    check_rto,
    check_split_brain,
    check_zero_reads,
)
from drills.checks.digest import HistoryDigest
from drills.checks.frame import RequestFrame, as_frame
from drills.journal import Judgement, Objective
from drills.model import CheckResult, FaultRecord, FinalRead, Op, Request
from drills.schedule import FaultPlan
from drills.spec import DrillSpec


def fault_plans(spec: DrillSpec) -> list[FaultPlan]:
    """The drill file's faults as the engine's schedule wants them."""
    return [
        FaultPlan(f.kind, f.target, dict(f.params), [(w.on, w.off) for w in f.windows()])
        for f in spec.timeline.all_faults
    ]


def baseline_health(
    requests: Iterable[Request], *, t0: float, baseline_s: float
) -> dict[str, float]:
    """Success rate per operation class over the baseline window ``[t0, t0 + baseline_s)``
    (classes in first-seen order)."""
    total: dict[str, int] = {}
    ok: dict[str, int] = {}
    for r in requests:
        if t0 <= r.t < t0 + baseline_s:
            total[r.op] = total.get(r.op, 0) + 1
            ok[r.op] = ok.get(r.op, 0) + int(r.ok)
    return {op: ok[op] / n for op, n in total.items()}


def params_of(spec: DrillSpec) -> AnalysisParams:
    a = spec.analysis
    return AnalysisParams(bucket_s=a.bucket, hold_s=a.hold, rho=a.rho, epsilon=a.epsilon,
                          min_bucket_requests=a.min_bucket_requests, stragglers=a.stragglers,
                          failback_s=a.failback)


def _secs(v: float | None) -> str:
    return "not recovered" if v is None else f"{v:.2f}s"


def _increments_at_risk(c: Mapping[str, CheckResult]) -> str:
    """`` (N increments at risk)`` from the exposure check (empty when it did not measure)."""
    n = c["exposure"].metrics.get("increments_at_risk")
    return "" if n is None else f" ({n} increments at risk)"


def _lost_objective(spec: DrillSpec, c: Mapping[str, CheckResult]) -> Objective:
    """Lost acknowledged writes: written keys missing from the final read plus increments
    missing from the counters (a counter below its acknowledged lower bound)."""
    allowed = spec.objectives.lost_acked_writes
    keys = c["acked_writes"].metrics.get("lost_acked_writes")
    incs = c["counters"].metrics.get("lost_increments")
    if keys is None:
        return Objective("lost_acked_writes", f"≤ {allowed}", "unknown", None)
    total = keys + (incs or 0)
    split = f" ({keys} key writes, {incs} increments)" if incs else ""
    at_risk = c["exposure"].metrics.get("writes_at_risk")  # None: exposure not measured
    if at_risk is None:
        measured = f"{total} lost{split}"
    elif total > at_risk:
        # The exposure window counts what a fault puts at risk near it; a system that loses
        # more (a replica minutes behind) lost acknowledged writes older than the window.
        measured = (f"{total} lost{split}, more than the {at_risk} at risk near the faults: "
                    f"older acknowledged writes were lost too")
    else:
        measured = f"{total} lost{split} of {at_risk} at risk"
    return Objective("lost_acked_writes", f"≤ {allowed}", measured, total <= allowed)


def _exposure_objective(spec: DrillSpec, c: Mapping[str, CheckResult]) -> Objective | None:
    wanted = spec.objectives.exposure
    if wanted is None:
        return None
    e = c["exposure"]
    n = e.metrics.get("writes_at_risk", 0)
    measured = (f"{n} writes at risk" if e.passed is not False else
                f"inconclusive: only {n} writes at risk")
    return Objective("exposure", f"≥ {wanted.min_writes_at_risk} writes at risk", measured,
                     e.passed)


def _objectives(spec: DrillSpec, c: Mapping[str, CheckResult]) -> list[Objective]:
    o = spec.objectives
    out: list[Objective] = []
    rto_s: Mapping[str, float | None] = c["rto"].metrics.get("rto_s", {})
    faults = bool(spec.timeline.all_faults)  # without a fault there is no recovery to judge
    for op, limit in (o.rto.as_mapping() if faults else {}).items():
        if op in rto_s:
            v = rto_s[op]
            met = v is not None and v <= limit
            out.append(Objective(f"rto.{op}", f"≤ {limit:g}s", _secs(v), met))
        else:
            out.append(Objective(f"rto.{op}", f"≤ {limit:g}s", "not measured", None))
    out.append(_lost_objective(spec, c))
    if o.counters == "exact":
        cm = c["counters"].metrics
        oob, checked = cm.get("counters_out_of_bounds"), cm.get("counters_checked")
        out.append(Objective(
            "counters", "acked ≤ value ≤ acked + indeterminate",
            f"{oob} of {checked} out of bounds{_increments_at_risk(c)}"
            if oob is not None else "unknown", c["counters"].passed))
    if o.zero_reads != "ignore":
        z = c["zero_reads"]
        zero, judged = z.metrics.get("zero_reads", 0), z.metrics.get("reads_judged")
        which = "reads not marked stale" if o.zero_reads == "fresh" else "every read"
        out.append(Objective("zero_reads", f"no 0 after acked increments ({which})",
                             f"{zero} zero reads" + ("" if judged is None else
                                                     f" of {judged} judged"), z.passed))
    if o.split_brain == "forbid":
        sb = c["split_brain"]
        out.append(Objective("split_brain", "none (one primary at a time, replicas converge)",
                             sb.summary, sb.passed))
    if o.recovery == "required" and faults:
        missing = [op for op, v in rto_s.items() if v is None]
        out.append(Objective("recovery", "every class recovers by itself",
                             "not recovered: " + ", ".join(missing) if missing else "all recovered",
                             None if not rto_s and spec.timeline.all_faults else not missing))
    exposure = _exposure_objective(spec, c)
    if exposure is not None:
        out.append(exposure)
    return out


def judge(
    spec: DrillSpec,
    *,
    requests: Sequence[Request] | RequestFrame,
    history: Sequence[Op] | HistoryDigest,
    faults: Sequence[FaultRecord],
    final: FinalRead | None,
    t0: float,
    preexisting: frozenset[str] = frozenset(),
    converged: bool = True,
    quiesce_s: float = 0.0,
    load_end: float | None = None,
    classes: Sequence[str] | None = None,
) -> Judgement:
    """Run every check and judge every objective of ``spec`` (see `drills.journal.Judgement`).

    ``requests`` and ``history`` are the records as lists, or as columns and a digest
    (`drills.runstore.merge_records`: the same verdict in bounded memory). ``classes`` are
    the run's operation classes (the target's, in report order); None or empty: the classes
    of ``requests`` in first-seen order. ``final`` None: the target has no
    final-read contract; the checks that need one say "not measured" (and the drill judges no
    data objective: `drills.spec.Objectives.names`).

    A check that crashes judges nothing (its objectives are unknown) and is named in
    ``Judgement.crashed``; the others judge as usual."""
    baseline_end = t0 + spec.timeline.baseline
    requests = as_frame(requests)
    history = HistoryDigest.of(history)  # paired once for every check
    include_degraded = spec.objectives.zero_reads != "fresh"
    minimum = None if spec.objectives.exposure is None else \
        spec.objectives.exposure.min_writes_at_risk
    def needs_final(name: str, run: Callable[[FinalRead], CheckResult]
                    ) -> Callable[[], CheckResult]:
        if final is None:
            return lambda: CheckResult(name=name, passed=None, summary="not measured: the "
                                       "target has no final-read contract (stack.data)")
        return lambda: run(final)

    runs: dict[str, Callable[[], CheckResult]] = {
        "rto": lambda: check_rto(
            requests, faults=faults, baseline_start=t0, baseline_end=baseline_end,
            params=params_of(spec), max_rto_s=spec.objectives.rto.as_mapping(),
            require_recovery=spec.objectives.recovery == "required", end=load_end,
            classes=classes,
        ),
        "acked_writes": needs_final("acked_writes", lambda f: check_acked_writes(
            history, final=f, preexisting=preexisting,
            allowed_lost=spec.objectives.lost_acked_writes)),
        "rpo": needs_final("rpo", lambda f: check_rpo(
            history, final=f, faults=faults, preexisting=preexisting, max_rpo_s=float("inf"))),
        "counters": needs_final("counters", lambda f: check_counters(
            history, final=f, preexisting=preexisting)),
        "zero_reads": lambda: check_zero_reads(history, include_degraded=include_degraded),
        "split_brain": needs_final("split_brain", lambda f: check_split_brain(
            history, final=f, preexisting=preexisting)),
        "exposure": lambda: check_exposure(
            history, faults=faults, window_s=spec.analysis.exposure_window, end=load_end,
            min_writes_at_risk=minimum),
    }
    # exposure runs first: the largest passing work of a long game day's judging, done before
    # the write sets and counter bounds that later checks share are built and held; results
    # keep the order above
    done = {name: _guarded(name, runs[name])
            for name in sorted(runs, key=lambda name: name != "exposure")}
    checks = {name: done[name] for name in runs}
    crashed = tuple(n for n, c in checks.items() if c.metrics.get("crashed"))
    exposure = checks["exposure"].metrics
    metrics: dict[str, Any] = {
        "rto_s": checks["rto"].metrics.get("rto_s", {}),
        "lost_acked_writes": checks["acked_writes"].metrics.get("lost_acked_writes"),
        "lost_increments": checks["counters"].metrics.get("lost_increments"),
        "rpo_s": checks["rpo"].metrics.get("rpo_s"),
        "counters_out_of_bounds": checks["counters"].metrics.get("counters_out_of_bounds"),
        "zero_reads": checks["zero_reads"].metrics.get("zero_reads"),
        "split_brain": checks["split_brain"].metrics.get("split_brain"),
        "split_brain_sources": checks["split_brain"].metrics.get("sources"),
        "divergent_keys": checks["split_brain"].metrics.get("divergent_keys"),
        "unexpected_writes": checks["acked_writes"].metrics.get("unexpected_writes"),
        "attempted_writes": checks["acked_writes"].metrics.get("attempted"),
        "acked_writes": checks["acked_writes"].metrics.get("acknowledged"),
        "writes_at_risk": exposure.get("writes_at_risk"),
        "keys_at_risk": exposure.get("keys_at_risk"),
        "increments_at_risk": exposure.get("increments_at_risk"),
        "acked_before_fault": exposure.get("acked_before"),
        "in_flight_at_fault": exposure.get("in_flight"),
        "acked_during_fault": exposure.get("acked_during"),
        "retried_writes": exposure.get("retried"),
        "degraded_reads": exposure.get("degraded_reads"),
        "requests": len(requests),
        "errors": requests.errors_count(),
        "converged": converged,
        "quiesce_s": round(quiesce_s, 2),
        "primary_after": final.primary if final is not None else None,
    }
    judged = set(spec.objectives.names(faults=bool(spec.timeline.all_faults)))
    objectives = tuple(o for o in _objectives(spec, checks)
                       if o.name in judged or o.name.startswith("rto."))
    as_expected = spec.judge({o.name: o.passed for o in objectives})
    return Judgement(objectives, metrics, tuple(checks.values()), as_expected, crashed)


def _guarded(name: str, run: Callable[[], CheckResult]) -> CheckResult:
    """Run one check; one that raises (a bug in drills) judges nothing: passed None, the
    exception in its summary and ``crashed`` in its metrics, so the others still judge and
    the engine reports a harness error (exit 3) with the journal written."""
    try:
        return run()
    except Exception as exc:  # any bug in a check must not lose the run
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return CheckResult(name=name, passed=None,
                           summary=f"the check crashed: {type(exc).__name__}: {exc}",
                           metrics={"crashed": True},
                           findings=(f"at {where.filename}:{where.lineno} in {where.name}",))
