"""From a drill's objectives and a run's records to objectives met or missed, and the metrics.

This is where the spec meets the pure checks: it chooses the parameters (baseline window, analysis
knobs, RTO targets) and turns each `CheckResult` into the objectives the drill file asked for.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from drills.checks import (
    AnalysisParams,
    check_acked_writes,
    check_counters,
    check_rpo,
    check_rto,
    check_split_brain,
    check_zero_reads,
)
from drills.journal import Judgement, Objective
from drills.model import CheckResult, FaultRecord, FinalRead, Op, Request
from drills.schedule import FaultPlan
from drills.spec import DrillSpec


def fault_plans(spec: DrillSpec) -> list[FaultPlan]:
    """The drill file's faults as the engine's schedule wants them."""
    return [
        FaultPlan(f.kind, f.target, dict(f.params), [(w.on, w.off) for w in f.windows()])
        for f in spec.timeline.faults
    ]


def baseline_health(
    requests: Sequence[Request], *, t0: float, baseline_s: float
) -> dict[str, float]:
    """Success rate per operation class over the baseline window ``[t0, t0 + baseline_s)``."""
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
                          min_bucket_requests=a.min_bucket_requests, stragglers=a.stragglers)


def _secs(v: float | None) -> str:
    return "not recovered" if v is None else f"{v:.2f}s"


def _objectives(spec: DrillSpec, c: Mapping[str, CheckResult]) -> list[Objective]:
    o = spec.objectives
    out: list[Objective] = []
    rto_s: Mapping[str, float | None] = c["rto"].metrics.get("rto_s", {})
    for op, limit in o.rto.as_mapping().items():
        if op in rto_s:
            v = rto_s[op]
            met = v is not None and v <= limit
            out.append(Objective(f"rto.{op}", f"≤ {limit:g}s", _secs(v), met))
        else:
            out.append(Objective(f"rto.{op}", f"≤ {limit:g}s", "not measured", None))
    lost = c["acked_writes"].metrics.get("lost_acked_writes")
    out.append(Objective("lost_acked_writes", f"≤ {o.lost_acked_writes}",
                         "unknown" if lost is None else str(lost),
                         None if lost is None else lost <= o.lost_acked_writes))
    if o.counters == "exact":
        oob = c["counters"].metrics.get("counters_out_of_bounds")
        zero = c["zero_reads"].metrics.get("zero_reads", 0)
        passed = None if c["counters"].passed is None else bool(c["counters"].passed and not zero)
        out.append(Objective("counters", "acked ≤ value ≤ acked+indeterminate; no zero reads",
                             f"{oob} out of bounds, {zero} zero reads", passed))
    if o.split_brain == "forbid":
        sb = c["split_brain"]
        out.append(Objective("split_brain", "none (one epoch per primary, replicas converge)",
                             sb.summary, sb.passed))
    if o.recovery == "required":
        missing = [op for op, v in rto_s.items() if v is None]
        out.append(Objective("recovery", "every class recovers by itself",
                             "not recovered: " + ", ".join(missing) if missing else "all recovered",
                             None if not rto_s and spec.timeline.faults else not missing))
    return out


def judge(
    spec: DrillSpec,
    *,
    requests: Sequence[Request],
    history: Sequence[Op],
    faults: Sequence[FaultRecord],
    final: FinalRead,
    t0: float,
    preexisting: frozenset[str] = frozenset(),
    converged: bool = True,
    quiesce_s: float = 0.0,
    load_end: float | None = None,
) -> Judgement:
    """Run every check and judge every objective of ``spec`` (see `drills.journal.Judgement`)."""
    baseline_end = t0 + spec.timeline.baseline
    checks = {
        "rto": check_rto(
            requests, faults=faults, baseline_start=t0, baseline_end=baseline_end,
            params=params_of(spec), max_rto_s=spec.objectives.rto.as_mapping(),
            require_recovery=spec.objectives.recovery == "required", end=load_end,
        ),
        "acked_writes": check_acked_writes(history, final=final, preexisting=preexisting,
                                           allowed_lost=spec.objectives.lost_acked_writes),
        "rpo": check_rpo(history, final=final, faults=faults, preexisting=preexisting,
                         max_rpo_s=float("inf")),
        "counters": check_counters(history, final=final, preexisting=preexisting),
        "zero_reads": check_zero_reads(history),
        "split_brain": check_split_brain(history, final=final),
    }
    metrics: dict[str, Any] = {
        "rto_s": checks["rto"].metrics.get("rto_s", {}),
        "lost_acked_writes": checks["acked_writes"].metrics.get("lost_acked_writes"),
        "rpo_s": checks["rpo"].metrics.get("rpo_s"),
        "counters_out_of_bounds": checks["counters"].metrics.get("counters_out_of_bounds"),
        "zero_reads": checks["zero_reads"].metrics.get("zero_reads"),
        "split_brain": checks["split_brain"].metrics.get("split_brain"),
        "divergent_keys": checks["split_brain"].metrics.get("divergent_keys"),
        "unexpected_writes": checks["acked_writes"].metrics.get("unexpected_writes"),
        "attempted_uploads": checks["acked_writes"].metrics.get("attempted"),
        "acked_uploads": checks["acked_writes"].metrics.get("acknowledged"),
        "requests": len(requests),
        "errors": sum(not r.ok for r in requests),
        "converged": converged,
        "quiesce_s": round(quiesce_s, 2),
        "primary_after": final.primary,
    }
    objectives = tuple(_objectives(spec, checks))
    as_expected = spec.judge({o.name: o.passed for o in objectives})
    return Judgement(objectives, metrics, tuple(checks.values()), as_expected)
