"""Recovery time (RTO) per operation class after each fault, from the request record.

Definitions (DESIGN.md "Measurements"), for one class and a fault injected at ``t_f``:

- **Baseline**: the class's requests starting in ``[baseline_start, baseline_end)`` give the
  baseline success rate ``s_bar`` and throughput ``lam`` (requests per bucket).
- **Threshold**: ``theta = min(objective, s_bar - epsilon)``.
- **Grid**: buckets aligned on ``t_f`` (``[t_f + k*w, t_f + (k+1)*w)``), so an outage of N s
  reads as N s to within one bucket. ``w`` is ``bucket_s``, widened to the smallest multiple
  for which the baseline puts ``min_bucket_requests`` in a bucket on average: a class doing
  a few requests per bucket has empty buckets by chance, and those would read as outages.
- **Bucket states**: *below* theta if it is empty (the baseline had traffic, so silence is an
  outage: clients blocked on a dead service start no new requests; unless the baseline itself
  had empty buckets - clients in lockstep send in waves - then only a run of empty buckets
  longer than the longest one of the baseline is below, and a recovery window must carry
  ``rho`` x the baseline throughput in total rather than in every bucket), or if
  ``ok/count < theta``
  and either every request in it failed or more than ``stragglers`` did (default 0; 1 forgives
  one straggling timeout also in a bucket that a throughput dip has thinned to a handful of
  requests, where that one failure alone puts it under theta). *Good* if
  ``count >= max(1, rho*lam)`` and ``ok/count >= theta``.
  A bucket with a few requests that all succeed is neither: a trickle is not an outage and not
  a recovery.
- **End of record**: only whole buckets before ``end`` (the load's last request start by
  default) are judged; a window ``[t, t + hold)`` running past them cannot prove recovery.
- **Span**: the fault's span is ``[t_f, span_end)``, ``span_end`` being the next fault's
  injection (or the end). Only below buckets inside the span are this fault's outage, so a
  later fault's outage is not charged to an earlier fault that did nothing; a bucket that
  straddles the next injection belongs to the next fault, and a request that failed while in
  flight at the next injection (started before it, its error after) is left out of this
  fault's buckets: it is the next fault's victim (a client timeout of 1.5 s would otherwise
  charge a power cut's first failures to a latency fault injected seconds earlier).
- **RTO**: 0 if no bucket of the span is below theta. Otherwise ``t_r`` is the first bucket
  start after the first below bucket such that every bucket of ``[t_r, t_r + hold)`` is good
  (``hold`` rounded up to whole buckets; the recovery may lie past the span), and
  ``RTO = t_r - t_f``; not recovered (None) if there is none. Searching after the first below
  bucket, rather than from ``t_f``, keeps an outage that starts later than ``hold`` after the
  injection from reading as RTO 0.
- **Failback**: a fault has two events, its injection at ``t_f`` and its revert at ``t_v``
  (a zone powered back on, a link healed), and the revert can cause an outage of its own (a
  store rejoining). Only buckets that start before ``t_v`` count as the injection's outage
  above. A below bucket that starts at or after ``t_v`` and after that outage's recovery (if
  any) is a *failback* outage, measured the same way from the revert:
  ``failback = t_r' - t_v``. The class's RTO for the fault is the longer of the two, each from
  the event that caused it, so a 2 s hiccup when dc-east returns 16 s after the power cut reads
  as 2 s of failback, not as an 18 s outage (and not as nothing). A failback outage must begin
  within ``failback_s`` (30 s) of the revert, or of the injection outage's recovery when that
  came later: a dip later than that is not the revert's doing (a long settle at a high rate
  has stray dips; read as failback, one 400 s after the revert was a 400 s RTO).
- **Stall**: the pauses between successful answers are evidence too (bucket widening for a
  slow class, or requests that wait out a stall and then succeed, can leave every bucket above
  the threshold): a pause between successful answers that begins near the injection (or the
  revert) and lasts longer than 2 x the baseline's longest (and 1 s) is a stall; when the
  buckets saw no outage, or its end minus ``t_f`` exceeds theirs by more than a bucket, it is
  the RTO (see `stall`).
- **Answers**: a request answered 404 counts as available (the service answered; a key it
  lost is the lost-writes check's business, not an outage of every class that reads it).
- **First error / first success**: start of the first failed request of the class in the span,
  and of the first successful one after it, relative to ``t_f`` (start times, as buckets use).
- **Below**: seconds of below buckets in the span.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

from drills.checks.buckets import EDGE_S, complete_buckets, tally
from drills.checks.columns import ClassColumns
from drills.checks.findings import bounded
from drills.checks.frame import RequestFrame
from drills.checks.params import AnalysisParams
from drills.checks.silence import baseline_quiet, silent, stall
from drills.errors import SpecError
from drills.model import CheckResult, FaultRecord, Request, Rto, classes_of

Requests = Sequence[Request] | RequestFrame

DEFAULT_PARAMS = AnalysisParams()


def _availability(r: Request) -> Request:
    """``r`` as availability sees it: a 404 is an answer - the service is up; the key it
    lacks is data loss, judged by the lost-writes check (one root cause, one objective: a lost
    key would otherwise fail the recovery of every class that touches it, forever)."""
    return r if r.ok or r.status != 404 else replace(r, ok=True)


def _first_error_success(
    reqs: Sequence[Request], *, t_f: float, span_end: float
) -> tuple[float | None, float | None]:
    """Start (relative to t_f) of the first failure in the span and the first success after."""
    first_err: float | None = None
    for r in reqs:
        if r.t < t_f - EDGE_S:
            continue
        if first_err is None:
            if r.t >= span_end - EDGE_S:
                return None, None
            if not r.ok:
                first_err = r.t
        elif r.ok and r.t > first_err:
            return first_err - t_f, r.t - t_f
    return (None if first_err is None else first_err - t_f), None


def _recovery_index(good: Sequence[bool], *, start: int, hold: int,
                    counts: Sequence[int] | None = None, need: float = 0.0) -> int | None:
    """First index ``j > start`` with ``good[j:j+hold]`` all true (and, with ``counts``, at
    least ``need`` requests in that window), or None."""
    run = 0
    for j in range(start + 1, len(good)):
        run = run + 1 if good[j] else 0
        if run >= hold:
            k = j - hold + 1
            if counts is None or sum(counts[k:j + 1]) >= need:
                return k
    return None


def _baseline(
    reqs: Sequence[Request], *, start: float, end: float, bucket_s: float,
    min_bucket_requests: float,
) -> tuple[float, float, float] | None:
    """(success rate, requests per bucket, bucket width) of the baseline; None if no traffic.

    The width is ``bucket_s`` widened to reach ``min_bucket_requests`` (module docstring).
    """
    base = [r for r in reqs if start - EDGE_S <= r.t < end - EDGE_S]
    if not base:
        return None
    per_bucket = len(base) * bucket_s / (end - start)
    widen = max(1, math.ceil(min_bucket_requests / per_bucket - 1e-9))
    return sum(r.ok for r in base) / len(base), per_bucket * widen, bucket_s * widen


class _ClassList:
    """One class's requests for one fault's measurement, as a list: the reference that
    `drills.checks.columns.ClassColumns` computes the same way on columns."""

    def __init__(self, requests: Sequence[Request], *, op: str, span_end: float,
                 end: float) -> None:
        # a request that failed while in flight at the next fault's injection (it started in
        # this span, its error came after) is that fault's victim, not this one's outage
        self.reqs = sorted((_availability(r) for r in requests if r.op == op and (
            r.ok or span_end >= end or not r.t < span_end <= r.t + r.duration)),
            key=lambda r: r.t)

    def first_error_success(self, *, t_f: float, span_end: float
                            ) -> tuple[float | None, float | None]:
        return _first_error_success(self.reqs, t_f=t_f, span_end=span_end)

    def baseline(self, *, start: float, end: float, bucket_s: float,
                 min_bucket_requests: float) -> tuple[float, float, float] | None:
        return _baseline(self.reqs, start=start, end=end, bucket_s=bucket_s,
                         min_bucket_requests=min_bucket_requests)

    def tally(self, *, origin: float, width: float, n: int) -> tuple[list[int], list[int]]:
        return tally(self.reqs, origin=origin, width=width, n=n)

    def baseline_quiet(self, *, start: float, end: float, width: float) -> int:
        return baseline_quiet(self.reqs, start=start, end=end, width=width)

    def stall(self, *, t_f: float, span_end: float, revert: float | None,
              baseline: tuple[float, float], near: float, next_fault: bool = False
              ) -> float | None:
        return stall(self.reqs, t_f=t_f, span_end=span_end, revert=revert, baseline=baseline,
                     near=near, next_fault=next_fault)


def _class_view(requests: Requests, *, op: str, span_end: float,
                end: float) -> _ClassList | ClassColumns:
    if isinstance(requests, RequestFrame):
        return ClassColumns.of(requests, op=op, span_end=span_end, end=end)
    return _ClassList(requests, op=op, span_end=span_end, end=end)


def _latest(requests: Requests, default: float) -> float:
    """The latest start time of ``requests`` (``default`` when there is none)."""
    if isinstance(requests, RequestFrame):
        return float(requests.t.max()) if len(requests) else default
    return max((r.t for r in requests), default=default)


def measure_rto(
    requests: Requests,
    *,
    op: str,
    fault: FaultRecord,
    baseline_start: float,
    baseline_end: float,
    params: AnalysisParams = DEFAULT_PARAMS,
    objective: float = 1.0,
    span_end: float | None = None,
    end: float | None = None,
) -> Rto:
    """Measure the RTO of class ``op`` after ``fault`` (definitions in the module docstring).

    ``requests`` is the whole record (every class), a list or a `RequestFrame` (the same
    result, computed on columns); ``end`` defaults to its latest start and ``span_end`` to
    ``end``. Raises `SpecError` for an empty baseline window.
    """
    if not baseline_end > baseline_start:
        raise SpecError(f"baseline window [{baseline_start}, {baseline_end}) is empty",
                        field="baseline")
    t_f = fault.injected_at
    if end is None:
        end = _latest(requests, default=t_f)
    span_end = end if span_end is None else min(span_end, end)
    reqs = _class_view(requests, op=op, span_end=span_end, end=end)
    first_err, first_ok = reqs.first_error_success(t_f=t_f, span_end=span_end)
    base = reqs.baseline(start=baseline_start, end=baseline_end, bucket_s=params.bucket_s,
                         min_bucket_requests=params.min_bucket_requests)
    if base is None:
        return Rto(op, fault.id, None, False, first_err, first_ok, 0.0, None, None, 0.0,
                   params.bucket_s)
    rate, per_bucket, width = base
    theta = min(objective, rate - params.epsilon)
    n = complete_buckets(origin=t_f, end=end, width=width)
    # a bucket straddling the next fault's injection is the next fault's: requests in flight
    # when it hit fail because of it (with buckets widened for a slow class, charging them to
    # this fault read a 1.6 s failover as a 7 s outage of an earlier latency fault)
    cut = math.floor if span_end < end else math.ceil
    in_span = min(n, max(0, cut((span_end - t_f + (EDGE_S if cut is math.floor else -EDGE_S))
                                / width)))
    counts, oks = reqs.tally(origin=t_f, width=width, n=n)
    gaps = reqs.baseline_quiet(start=baseline_start, end=baseline_end, width=width)
    quiet = gaps > 0
    hush = silent(counts, allowed=gaps)
    below = [silence or (c > 0 and o / c < theta and (o == 0 or c - o > params.stragglers))
             for c, o, silence in zip(counts, oks, hush, strict=True)]
    if quiet:  # judge throughput over the hold window, not per (possibly empty) bucket
        good = [not silence and (c == 0 or o / c >= theta)
                for c, o, silence in zip(counts, oks, hush, strict=True)]
    else:
        good = [c >= max(1.0, params.rho * per_bucket) and o / c >= theta
                for c, o in zip(counts, oks, strict=True)]
    below_in_span = [k for k in range(in_span) if below[k]]
    hold = max(1, math.ceil(params.hold_s / width - 1e-9))
    reverted = None if fault.reverted_at is None else fault.reverted_at - t_f
    k_rev = in_span if reverted is None else \
        min(in_span, max(0, math.ceil((reverted - EDGE_S) / width)))
    active = [k for k in below_in_span if k < k_rev]
    need = params.rho * per_bucket * hold if quiet else 0.0
    window = counts if quiet else None
    j: int | None = 0
    if active:
        j = _recovery_index(good, start=active[0], hold=hold, counts=window, need=need)
    later: list[int] = []
    if j is not None:
        # a failback begins within failback_s of the revert (or of the recovery, if later)
        opens = math.inf if reverted is None else max(reverted, j * width) + params.failback_s
        later = [k for k in below_in_span if k >= max(k_rev, j) and k * width < opens]
    failback_s: float | None = None
    if later and reverted is not None:
        jf = _recovery_index(good, start=later[0], hold=hold, counts=window, need=need)
        failback_s = None if jf is None else max(0.0, jf * width - reverted)
    rto_s = None if j is None else j * width
    if later:
        rto_s = None if rto_s is None or failback_s is None else max(rto_s, failback_s)
    stalled = reqs.stall(t_f=t_f, span_end=span_end, revert=fault.reverted_at,
                    baseline=(baseline_start, baseline_end), near=params.hold_s,
                    next_fault=span_end < end)
    if rto_s is not None and stalled is not None and (rto_s == 0 or stalled > rto_s + width):
        rto_s = stalled  # the buckets missed it (within a bucket they agree: keep theirs)
    return Rto(
        op=op,
        fault_id=fault.id,
        rto_s=rto_s,
        recovered=rto_s is not None,
        first_error_s=first_err,
        first_success_s=first_ok,
        below_s=len(below_in_span) * width,
        threshold=theta,
        baseline_rate=rate,
        baseline_per_bucket=per_bucket,
        bucket_s=width,
        failback=bool(later),
        failback_s=failback_s,
        reverted_s=reverted,
        stall_s=stalled,
    )


def measure_rtos(
    requests: Requests,
    *,
    faults: Sequence[FaultRecord],
    baseline_start: float,
    baseline_end: float,
    params: AnalysisParams = DEFAULT_PARAMS,
    objectives: Mapping[str, float] | None = None,
    classes: Sequence[str] | None = None,
    end: float | None = None,
) -> tuple[Rto, ...]:
    """`measure_rto` for every fault x class; each fault's span ends at the next injection.

    ``objectives`` maps a class to its target success rate (default 1.0). ``classes`` are the
    run's operation classes (the target's); None or empty: the classes of ``requests`` in
    first-seen order. Faults are taken in injection order; the result is ordered by fault,
    then by class.
    """
    if isinstance(requests, RequestFrame):
        classes = tuple(classes) if classes else requests.classes
    else:
        classes = classes_of(requests, classes)
    ordered = sorted(faults, key=lambda f: f.injected_at)
    if end is None:
        end = _latest(requests, default=0.0)
    out: list[Rto] = []
    for i, fault in enumerate(ordered):
        span_end = ordered[i + 1].injected_at if i + 1 < len(ordered) else end
        for op in classes:
            out.append(measure_rto(
                requests, op=op, fault=fault, baseline_start=baseline_start,
                baseline_end=baseline_end, params=params,
                objective=(objectives or {}).get(op, 1.0), span_end=span_end, end=end,
            ))
    return tuple(out)


def _describe(r: Rto) -> str:
    """One finding line for one measurement."""
    head = f"fault {r.fault_id} {r.op}:"
    if not r.measured:
        return f"{head} not measured (no baseline traffic)"
    rto = f"RTO {r.rto_s:.2f} s" if r.rto_s is not None else "NOT RECOVERED by end of record"
    first_err = "none" if r.first_error_s is None else f"+{r.first_error_s:.2f} s"
    first_ok = "none" if r.first_success_s is None else f"+{r.first_success_s:.2f} s"
    failback = ""
    if r.failback:
        after = ("NOT RECOVERED" if r.failback_s is None
                 else f"recovered {r.failback_s:.2f} s after it")
        failback = f"; failback outage after the revert at +{r.reverted_s:.2f} s: {after}"
    if r.stall_s is not None:
        failback += f"; longest stall between successful answers ended +{r.stall_s:.2f} s"
    return (f"{head} {rto}; threshold {r.threshold:.3f} (baseline {r.baseline_rate:.3f}, "
            f"{r.baseline_per_bucket:.1f} req per {r.bucket_s:g} s bucket); first error "
            f"{first_err}, first success after it {first_ok}, {r.below_s:g} s below threshold"
            f"{failback}")


def _misses(
    worst: Mapping[str, float | None], *, limits: Mapping[str, float], require_recovery: bool
) -> list[str]:
    """One line per class that missed: not recovered (when required) or over its objective."""
    out: list[str] = []
    for op, v in worst.items():
        if v is None and (require_recovery or op in limits):
            out.append(f"{op}: not recovered")
        elif v is not None and op in limits and v > limits[op]:
            out.append(f"{op}: RTO {v:.2f} s > objective {limits[op]:g} s")
    return out


def judge_rto(
    rtos: Sequence[Rto],
    *,
    max_rto_s: Mapping[str, float] | None = None,
    require_recovery: bool = True,
) -> CheckResult:
    """Turn measurements into a verdict: every measured class recovered, within ``max_rto_s``.

    ``max_rto_s`` maps a class to its RTO objective (classes absent have none). With
    ``require_recovery`` false, a class that never recovered fails only if it has an
    objective (the drill's ``recovery: ignore``). Passed is None when nothing was measured
    (no fault, or no class had baseline traffic). Metrics:
    ``rto_s`` (class -> worst RTO over faults, None if some fault was not recovered),
    ``rto_by_fault`` (fault -> class -> RTO), ``below_s`` (class -> worst), ``unmeasured``.
    Evidence: every `Rto` record (measured or not), with the bucket width it used.
    """
    measured = [r for r in rtos if r.measured]
    worst: dict[str, float | None] = {}
    below: dict[str, float] = {}
    by_fault: dict[str, dict[str, float | None]] = {}
    for r in measured:
        prev = worst.get(r.op, 0.0)
        worst[r.op] = None if prev is None or r.rto_s is None else max(prev, r.rto_s)
        below[r.op] = max(below.get(r.op, 0.0), r.below_s)
        by_fault.setdefault(r.fault_id, {})[r.op] = r.rto_s
    unmeasured = sorted({r.op for r in rtos} - set(worst))
    misses = _misses(worst, limits=max_rto_s or {}, require_recovery=require_recovery)
    passed = None if not measured else not misses
    if passed is None:
        summary = "RTO not measured: " + ("no fault" if not rtos else "no baseline traffic")
    elif misses:
        summary = "RTO objective missed: " + "; ".join(misses)
    else:
        summary = "within objectives: " + ", ".join(
            f"{op} {'not recovered' if v is None else f'{v:.2f} s'}" for op, v in worst.items())
    return CheckResult(
        name="rto",
        passed=passed,
        summary=summary,
        metrics={"rto_s": worst, "rto_by_fault": by_fault, "below_s": below,
                 "unmeasured": unmeasured},
        findings=bounded([*misses, *(_describe(r) for r in rtos)]),
        evidence=tuple(rtos),
    )


def check_rto(
    requests: Requests,
    *,
    faults: Sequence[FaultRecord],
    baseline_start: float,
    baseline_end: float,
    params: AnalysisParams = DEFAULT_PARAMS,
    objectives: Mapping[str, float] | None = None,
    max_rto_s: Mapping[str, float] | None = None,
    require_recovery: bool = True,
    classes: Sequence[str] | None = None,
    end: float | None = None,
) -> CheckResult:
    """`measure_rtos` then `judge_rto`: the RTO check as one call (see both)."""
    return judge_rto(
        measure_rtos(requests, faults=faults, baseline_start=baseline_start,
                     baseline_end=baseline_end, params=params, objectives=objectives,
                     classes=classes, end=end),
        max_rto_s=max_rto_s,
        require_recovery=require_recovery,
    )
