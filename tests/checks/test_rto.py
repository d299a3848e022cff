"""RTO per class: synthetic outages measured against hand-made request series."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drills.checks.params import AnalysisParams
from drills.checks.rto import _describe, check_rto, judge_rto, measure_rto, measure_rtos
from drills.errors import SpecError
from drills.model import FaultRecord, Request

from ._build import T0, fault, traffic

TF = T0 + 10.0  # fault injection; baseline is [T0, TF)
END = T0 + 40.0  # the load's last second


def outage(start: float, stop: float) -> object:
    """A success predicate failing every request that starts in [start, stop)."""
    return lambda t: not (start <= t < stop)


#: The mechanism tests below use fine-grained settings (one failure is a bad bucket, buckets of
#: 16 requests); `test_default_params_ignore_one_straggler` covers the defaults.
FINE = AnalysisParams(epsilon=0.02, min_bucket_requests=16.0)


def rto_of(reqs: list[Request], op: str = "feed", **kw: object):
    kw.setdefault("params", FINE)
    return measure_rto(reqs, op=op, fault=fault("f1", TF), baseline_start=T0,
                       baseline_end=TF, **kw)  # type: ignore[arg-type]


def test_default_params_ignore_one_straggler_but_not_two():
    reqs = traffic("feed", T0, END, 80)
    late = [i for i, q in enumerate(reqs) if q.t > TF + 2][:2]
    one = list(reqs)
    one[late[0]] = Request(t=reqs[late[0]].t, duration=2.0, op="feed", ok=False)
    assert rto_of(one, params=AnalysisParams()).rto_s == 0.0
    two = list(one)
    two[late[1]] = Request(t=reqs[late[1]].t, duration=2.0, op="feed", ok=False)
    assert rto_of(two, params=AnalysisParams()).rto_s == pytest.approx(2.25)


def _thinned(fail_at: list[float]) -> list[Request]:
    """80 feed req/s, except [TF + 2, TF + 4) where only 10 req/s start (a throughput dip:
    requests slowed, e.g. CPU taken by a zone booting); requests at ``fail_at`` fail."""
    reqs = (traffic("feed", T0, TF + 2, 80) + traffic("feed", TF + 2, TF + 4, 10)
            + traffic("feed", TF + 4, END, 80))
    for at in fail_at:
        i = min(range(len(reqs)), key=lambda k: abs(reqs[k].t - at))
        reqs[i] = Request(t=reqs[i].t, duration=2.0, op="feed", ok=False)
    return reqs


def test_stragglers_forgives_one_failure_in_a_thinned_bucket_but_not_two():
    """A dip thins the buckets to a handful of requests and one of them times out: by default
    (judged by the success rate alone) that is an outage; ``stragglers: 1`` forgives it, and
    still counts two failures."""
    strict = rto_of(_thinned([TF + 3.0]), params=AnalysisParams())
    assert strict.rto_s is not None and strict.rto_s > 2.0 and strict.below_s > 0
    forgiving = AnalysisParams(stragglers=1)
    r = rto_of(_thinned([TF + 3.0]), params=forgiving)
    assert (r.rto_s, r.below_s) == (0.0, 0.0)
    two = rto_of(_thinned([TF + 3.0, TF + 3.1]), params=forgiving)
    assert two.rto_s is not None and two.rto_s > 2.0 and two.below_s > 0


def test_a_bucket_whose_requests_all_failed_is_an_outage_however_few_they_are():
    """A dead service and blocked clients: one request a bucket, and it fails. No straggler
    rule may hide that."""
    before = traffic("feed", T0, TF, 80)
    down = traffic("feed", TF, TF + 4, 4, ok=lambda t: False)  # one per 250 ms bucket
    after = traffic("feed", TF + 4, END, 80)
    r = rto_of(before + down + after, params=AnalysisParams(stragglers=3))
    assert r.rto_s == pytest.approx(4.0) and r.below_s == pytest.approx(4.0)


def test_outage_of_exactly_n_seconds_measures_n():
    r = rto_of(traffic("feed", T0, END, 80, ok=outage(TF, TF + 4.0)))
    assert r.recovered and r.rto_s == pytest.approx(4.0)
    assert r.below_s == pytest.approx(4.0)
    assert r.baseline_rate == 1.0 and r.threshold == pytest.approx(0.98)
    assert r.baseline_per_bucket == pytest.approx(20.0) and r.bucket_s == 0.25
    assert r.first_error_s == pytest.approx(0.37 / 80, abs=1e-6)
    assert r.first_success_s == pytest.approx(4.0, abs=1 / 80 + 1e-6)


@settings(max_examples=60, deadline=None)
@given(n=st.floats(0.3, 12.0), per_s=st.sampled_from([64, 80, 120, 200]),
       phase=st.floats(0.0, 0.99), lag=st.floats(0.0, 0.2))
def test_outage_of_n_seconds_is_measured_within_one_bucket(n, per_s, phase, lag):
    """Any outage starting at the fault (or a little after it) reads as N within a bucket."""
    reqs = traffic("feed", T0, END, per_s, ok=outage(TF + lag, TF + lag + n), phase=phase)
    r = rto_of(reqs)
    assert r.recovered and r.bucket_s == 0.25
    assert n + lag - r.bucket_s <= r.rto_s <= n + lag + r.bucket_s


def test_no_dip_means_rto_zero_and_a_dip_is_not_zero():
    steady = rto_of(traffic("feed", T0, END, 80))
    assert (steady.rto_s, steady.recovered, steady.below_s) == (0.0, True, 0.0)
    assert steady.first_error_s is None and steady.first_success_s is None
    dipped = rto_of(traffic("feed", T0, END, 80, ok=outage(TF + 1.0, TF + 1.3)))
    assert dipped.rto_s is not None and dipped.rto_s > 0


def test_one_failure_in_a_bucket_is_below_a_perfect_baseline():
    reqs = traffic("feed", T0, END, 80)
    worst = next(i for i, q in enumerate(reqs) if q.t > TF + 2)
    reqs[worst] = Request(t=reqs[worst].t, duration=2.0, op="feed", ok=False)
    r = rto_of(reqs)
    assert r.below_s == 0.25 and r.rto_s == pytest.approx(2.25)


def test_never_recovers_is_not_recovered():
    r = rto_of(traffic("feed", T0, END, 80, ok=outage(TF, END)))
    assert (r.recovered, r.rto_s) == (False, None)
    assert r.first_success_s is None
    # The record ends at the last request's start: the partial bucket holding it is not judged.
    assert r.below_s == pytest.approx(29.75)
    assert rto_of(traffic("feed", T0, END, 80, ok=outage(TF, END)), end=END).below_s == 30.0


def test_a_trickle_is_not_recovery():
    """After the outage only 10% of the baseline throughput comes back, all successful."""
    before = traffic("feed", T0, TF, 80)
    down = traffic("feed", TF, TF + 5, 80, ok=lambda t: False)
    trickle = traffic("feed", TF + 5, END, 8)
    r = rto_of(before + down + trickle)
    assert (r.recovered, r.rto_s) == (False, None)
    full = traffic("feed", TF + 5, END, 80)
    assert rto_of(before + down + full).rto_s == pytest.approx(5.0)
    # ... and when throughput returns after the trickle, that is the recovery time.
    late = traffic("feed", TF + 5, TF + 9, 8) + traffic("feed", TF + 9, END, 80)
    assert rto_of(before + down + late).rto_s == pytest.approx(9.0)


def test_silence_counts_as_outage():
    """Clients blocked on a dead service start no requests: empty buckets are below."""
    reqs = traffic("feed", T0, TF, 80) + traffic("feed", TF + 3, END, 80)
    r = rto_of(reqs)
    assert r.rto_s == pytest.approx(3.0) and r.below_s == pytest.approx(3.0)
    assert r.first_error_s is None  # nothing failed: nothing was even sent


def test_recovery_needs_a_whole_hold_window_before_the_end_of_record():
    reqs = traffic("feed", T0, END, 80, ok=outage(TF, END - 2.0))
    assert rto_of(reqs).recovered is False  # only 2 s of good service left: not proven
    reqs = traffic("feed", T0, END, 80, ok=outage(TF, END - 3.5))
    r = rto_of(reqs)
    assert r.recovered and r.rto_s == pytest.approx(END - 3.5 - TF)
    # An explicit end earlier than the record cuts it the same way.
    assert rto_of(reqs, end=END - 1.0).recovered is False


def test_a_flap_inside_the_hold_window_delays_recovery():
    ok = lambda t: not (TF <= t < TF + 2 or TF + 3 <= t < TF + 3.5)  # noqa: E731
    r = rto_of(traffic("feed", T0, END, 80, ok=ok))
    assert r.rto_s == pytest.approx(3.5) and r.below_s == pytest.approx(2.5)


def test_an_outage_later_than_hold_after_the_fault_is_not_rto_zero():
    r = rto_of(traffic("feed", T0, END, 80, ok=outage(TF + 5, TF + 7)))
    assert r.rto_s == pytest.approx(7.0) and r.first_error_s == pytest.approx(5.0, abs=0.02)


def test_each_fault_is_charged_only_for_outages_in_its_span():
    reqs = traffic("feed", T0, END, 80, ok=outage(TF + 10, TF + 12))
    harmless, harmful = measure_rtos(reqs, faults=[fault("late", TF + 10), fault("early", TF)],
                                     baseline_start=T0, baseline_end=TF, classes=("feed",))
    assert (harmless.fault_id, harmless.rto_s, harmless.first_error_s) == ("early", 0.0, None)
    assert (harmful.fault_id, harmful.rto_s) == ("late", pytest.approx(2.0))


def test_requests_in_flight_at_the_next_fault_are_charged_to_it_not_to_the_earlier_one():
    """A slow class measured on 1.75 s buckets: a latency fault at TF did nothing, a power cut
    at TF + 6.1 fails the requests started from 0.1 s before it for 1.5 s. The bucket that
    straddles the cut belongs to the cut: the latency fault reads 0, the cut ~1.5 s (within
    one bucket), not 7.5 s charged to the latency fault."""
    cut = TF + 6.1
    # requests started up to 1.5 s before the cut fail with it (they time out after 2 s)
    reqs = traffic("upload", T0, END, 12, ok=outage(cut - 1.5, cut + 1.5))
    wide = AnalysisParams(min_bucket_requests=20.0)
    latency, power = measure_rtos(reqs, faults=[fault("lat", TF), fault("cut", cut)],
                                  baseline_start=T0, baseline_end=TF, params=wide,
                                  classes=("upload",))
    assert latency.bucket_s == pytest.approx(1.75)
    assert (latency.fault_id, latency.rto_s) == ("lat", 0.0)
    assert power.fault_id == "cut" and 1.5 - 1e-9 <= power.rto_s <= 1.5 + 1.75


def test_lockstep_waves_are_not_an_outage_but_a_longer_silence_or_failures_are():
    """Clients in lockstep send in waves: every other 0.5 s bucket of the baseline is empty.
    That rhythm must not read as an outage (it read as "not recovered"), while a silence
    longer than any gap of the baseline, or failures, still are."""
    def waves(ok: Callable[[float], bool] = lambda t: True,
              silent: tuple[float, float] = (0.0, 0.0)) -> list[Request]:
        out: list[Request] = []
        t = T0
        while t < END:
            if not silent[0] <= t < silent[1]:
                out += [Request(t=t + k * 0.005, duration=0.01, op="feed", ok=ok(t),
                                status=200) for k in range(20)]
            t += 1.0
        return out
    params = AnalysisParams(bucket_s=0.5, min_bucket_requests=0)
    calm = rto_of(waves(), params=params)
    assert (calm.rto_s, calm.below_s, calm.recovered) == (0.0, 0.0, True)
    hush = rto_of(waves(silent=(TF, TF + 4)), params=params)
    assert hush.recovered and 4.0 <= hush.rto_s <= 5.5
    fail = rto_of(waves(ok=lambda t: not TF <= t < TF + 3), params=params)
    assert fail.recovered and 2.5 <= fail.rto_s <= 4.5  # the last failed wave at +2 s


def test_a_write_stall_hidden_by_wide_buckets_still_reads_as_its_length():
    """Uploads at 7/s are measured on 3 s buckets; a 2 s stall in which every request waits and
    then succeeds leaves no bucket under the threshold. The pauses between successful answers
    show it: RTO >= 1.5 s (it read 0 with "first error none" while the plot showed the gap)."""
    reqs = [q if not TF <= q.t < TF + 2 else
            Request(t=q.t, duration=TF + 2 - q.t + 0.01, op="upload", ok=True, status=200)
            for q in traffic("upload", T0, END, 7)]
    r = rto_of(reqs, op="upload", params=AnalysisParams())
    assert r.bucket_s >= 2.5 and r.below_s == 0
    assert r.stall_s is not None and 1.5 <= r.rto_s <= 2.5
    calm = rto_of(traffic("upload", T0, END, 7), op="upload", params=AnalysisParams())
    assert (calm.rto_s, calm.stall_s) == (0.0, None)


def test_a_lost_video_answering_404_is_data_loss_not_an_outage():
    """Views fail for 2 s at the fault; from then on a fifth of them target a video the failover
    lost and are answered 404, quickly: the service is up. The lost-writes check owns that loss;
    the view class's RTO and recovery must not fail forever because of it."""
    reqs = [q if q.t < TF + 2 or int(q.t * 10) % 5 else
            Request(t=q.t, duration=0.01, op="view", ok=False, status=404, error="http 404")
            for q in traffic("view", T0, END, 80, ok=lambda t: not TF <= t < TF + 2)]
    r = rto_of(reqs, op="view")
    assert r.recovered and 2.0 <= r.rto_s <= 2.5


def test_threshold_follows_the_objective_and_the_baseline():
    flaky = lambda t: int(t * 80) % 10 != 0  # noqa: E731 - 90% success
    loose = rto_of(traffic("feed", T0, END, 80, ok=flaky))
    assert loose.baseline_rate == pytest.approx(0.9, abs=0.01)
    assert loose.threshold == pytest.approx(loose.baseline_rate - FINE.epsilon)
    assert loose.rto_s == 0.0
    strict = rto_of(traffic("feed", T0, END, 80), objective=0.5)
    assert strict.threshold == 0.5
    half = lambda t: t < TF or int(t * 80) % 2 == 0  # noqa: E731 - 50% after the fault
    assert rto_of(traffic("feed", T0, END, 80, ok=half), objective=0.5).rto_s == 0.0
    assert rto_of(traffic("feed", T0, END, 80, ok=half)).recovered is False


def test_slow_classes_get_wider_buckets_so_chance_gaps_are_not_outages():
    rnd = random.Random(7)
    times = sorted(rnd.uniform(T0, END) for _ in range(int(4 * (END - T0))))  # ~4 req/s
    reqs = [Request(t=t, duration=0.01, op="stats", ok=True) for t in times]
    literal = rto_of(reqs, op="stats", params=AnalysisParams(min_bucket_requests=0))
    # 250 ms buckets at 4 req/s are empty by chance; gaps longer than the baseline's longest
    # still come up by chance over 30 s and read as outages: hence the wider buckets
    assert literal.below_s > 0
    r = rto_of(reqs, op="stats")
    assert r.bucket_s > 1.0 and r.baseline_per_bucket >= FINE.min_bucket_requests
    assert (r.bucket_s / 0.25).is_integer()
    assert (r.rto_s, r.below_s) == (0.0, 0.0)
    down = [q for q in reqs if not TF <= q.t < TF + 6]
    r = rto_of(down, op="stats")
    assert r.recovered and 6.0 <= r.rto_s <= 6.0 + r.bucket_s


def test_class_without_baseline_traffic_is_not_measured():
    r = rto_of(traffic("feed", TF, END, 80), op="feed")
    assert (r.measured, r.rto_s, r.recovered, r.threshold) == (False, None, False, None)
    with pytest.raises(SpecError):
        measure_rto([], op="feed", fault=fault("f", TF), baseline_start=TF, baseline_end=TF)


def test_check_rto_judges_against_objectives():
    reqs = (traffic("feed", T0, END, 80, ok=outage(TF, TF + 4))
            + traffic("upload", T0, END, 80, ok=outage(TF, TF + 2)))
    kw = dict(faults=[fault("f1", TF)], baseline_start=T0, baseline_end=TF,
              classes=("feed", "upload", "search"))
    ok = check_rto(reqs, max_rto_s={"feed": 5.0, "upload": 3.0}, **kw)  # type: ignore[arg-type]
    assert ok.passed is True
    assert ok.metrics["rto_s"] == {"feed": pytest.approx(4.0), "upload": pytest.approx(2.0)}
    assert ok.metrics["unmeasured"] == ["search"]
    assert ok.metrics["rto_by_fault"]["f1"]["feed"] == pytest.approx(4.0)
    missed = check_rto(reqs, max_rto_s={"feed": 3.0}, **kw)  # type: ignore[arg-type]
    assert missed.passed is False and "feed: RTO 4.00 s > objective 3 s" in missed.findings[0]


def test_check_rto_fails_when_a_class_never_recovers_and_is_unknown_without_faults():
    reqs = traffic("feed", T0, END, 80, ok=outage(TF, END))
    res = check_rto(reqs, faults=[fault("f1", TF)], baseline_start=T0, baseline_end=TF)
    assert res.passed is False and res.metrics["rto_s"] == {"feed": None}
    assert any("NOT RECOVERED" in f for f in res.findings)
    none = check_rto(reqs, faults=[], baseline_start=T0, baseline_end=TF)
    assert none.passed is None


def test_worst_fault_wins_per_class():
    reqs = traffic("feed", T0, END, 80, ok=lambda t: not (TF <= t < TF + 1
                                                         or TF + 10 <= t < TF + 13))
    res = check_rto(reqs, faults=[fault("a", TF), fault("b", TF + 10)], baseline_start=T0,
                    baseline_end=TF, classes=("feed",))
    assert res.metrics["rto_s"]["feed"] == pytest.approx(3.0)
    assert res.metrics["rto_by_fault"] == {"a": {"feed": pytest.approx(1.0)},
                                           "b": {"feed": pytest.approx(3.0)}}


def test_recovery_can_be_left_unjudged_for_classes_without_an_objective():
    reqs = (traffic("feed", T0, END, 80, ok=outage(TF, END))
            + traffic("upload", T0, END, 80, ok=outage(TF, TF + 2)))
    kw = dict(faults=[fault("f1", TF)], baseline_start=T0, baseline_end=TF,
              classes=("feed", "upload"), require_recovery=False)
    res = check_rto(reqs, max_rto_s={"upload": 3.0}, **kw)  # type: ignore[arg-type]
    assert res.passed is True and "feed not recovered" in res.summary
    res = check_rto(reqs, max_rto_s={"feed": 30.0}, **kw)  # type: ignore[arg-type]
    assert res.passed is False and res.findings[0] == "feed: not recovered"


# -- failback: an outage that the revert causes is measured from the revert ------------------

REV = TF + 15.0  # the fault is reverted 15 s after its injection


def rto_reverted(reqs: list[Request], reverted: float | None = REV):
    f = FaultRecord(id="f1", kind="power_down", target="dc-east", scheduled_at=TF - T0,
                    injected_at=TF, reverted_at=reverted)
    return measure_rto(reqs, op="feed", fault=f, baseline_start=T0, baseline_end=TF,
                       params=FINE)


def test_an_outage_that_begins_after_the_revert_is_failback_measured_from_the_revert():
    """Seen on docker: dc-east came back 16 s after the power cut and a write timed out while
    it rejoined; read from the injection, that 2 s hiccup was an 18 s RTO."""
    r = rto_reverted(traffic("feed", T0, END, 80, ok=outage(REV + 0.5, REV + 2.0)))
    assert r.failback and r.reverted_s == pytest.approx(15.0)
    assert r.failback_s == pytest.approx(2.0)
    assert r.rto_s == pytest.approx(2.0) and r.recovered
    assert "failback outage after the revert at +15.00 s: recovered 2.00 s" in _describe(r)
    # Without a revert on record the same dip is a late outage of the fault, read from t_f.
    late = rto_reverted(traffic("feed", T0, END, 80, ok=outage(REV + 0.5, REV + 2.0)),
                        reverted=None)
    assert not late.failback and late.rto_s == pytest.approx(17.0)


def test_a_dip_long_after_the_revert_is_not_failback():
    """Seen in a 10-minute run at 1,000 req/s: a stray dip 400 s after dc-east returned read
    as a 400 s RTO. A failback begins within failback_s of the revert; later, it is noise."""
    params = AnalysisParams(epsilon=0.02, min_bucket_requests=16.0, failback_s=10.0)
    f = FaultRecord(id="f1", kind="power_down", target="dc-east", scheduled_at=TF - T0,
                    injected_at=TF, reverted_at=TF + 5.0)

    def rto(ok: Callable[[float], bool]) -> object:
        return measure_rto(traffic("feed", T0, END, 80, ok=ok), op="feed", fault=f,
                           baseline_start=T0, baseline_end=TF, params=params)

    late = rto(outage(TF + 20.0, TF + 21.0))  # 15 s after the revert: past the 10 s window
    assert not late.failback and late.rto_s == 0.0  # type: ignore[attr-defined]
    near = rto(outage(TF + 12.0, TF + 13.0))  # 7 s after the revert: its failback (from it)
    assert near.failback and near.rto_s == pytest.approx(8.0)  # type: ignore[attr-defined]
    # the window opens at the injection outage's recovery when that came after the revert
    both = rto(lambda t: not (TF <= t < TF + 8.0 or TF + 16.0 <= t < TF + 17.0))
    assert both.failback and both.failback_s == pytest.approx(12.0)  # type: ignore[attr-defined]
    with pytest.raises(SpecError, match=r"positive number of seconds"):
        AnalysisParams(failback_s=0.0)


def test_the_rto_is_the_longer_of_the_injection_outage_and_the_failback():
    ok = lambda t: not (TF <= t < TF + 3.0 or REV <= t < REV + 1.0)  # noqa: E731
    r = rto_reverted(traffic("feed", T0, END, 80, ok=ok))
    assert r.failback and r.failback_s == pytest.approx(1.0)
    assert r.rto_s == pytest.approx(3.0)
    long_failback = lambda t: not (TF <= t < TF + 1.0 or REV <= t < REV + 6.0)  # noqa: E731
    assert rto_reverted(traffic("feed", T0, END, 80, ok=long_failback)).rto_s == \
        pytest.approx(6.0)


def test_an_outage_that_outlasts_the_fault_is_read_from_the_injection():
    r = rto_reverted(traffic("feed", T0, END, 80, ok=outage(TF, REV + 2.0)))
    assert not r.failback and r.rto_s == pytest.approx(17.0)


def test_a_failback_that_never_recovers_is_not_recovered():
    r = rto_reverted(traffic("feed", T0, END, 80, ok=outage(REV + 1.0, END)))
    assert r.failback and (r.failback_s, r.rto_s, r.recovered) == (None, None, False)
    assert "failback outage after the revert at +15.00 s: NOT RECOVERED" in _describe(r)
    verdict = judge_rto([r], max_rto_s={"feed": 5.0})
    assert verdict.passed is False and "feed: not recovered" in verdict.findings[0]
