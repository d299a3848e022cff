"""Exposure: what each fault put at risk, unions over faults, and the inconclusive verdict."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drills.checks.exposure import check_exposure, measure_exposure
from drills.errors import SpecError
from drills.model import Op

from ._build import T0, attempts, fault, flatten, stats_read, write

W = 2.0  # window_s
F1 = fault("f1", T0 + 10, reverted=T0 + 20)


def drill() -> list[Op]:
    """One of each category around F1 (injected T0+10, reverted T0+20, window 2 s)."""
    return flatten([
        write("upload", "u0", T0 + 7.8, T0 + 7.9),  # acked just before the window: not at risk
        write("upload", "u1", T0 + 7.9, T0 + 8.0),  # acked on the window's first instant
        write("view", "v1", T0 + 9.4, T0 + 9.5, key="a"),  # acked before
        write("upload", "u3", T0 + 9.0, T0 + 9.99),  # acked before, so not in flight
        write("upload", "u2", T0 + 9.8, T0 + 10.0),  # in flight, then acked on t_f: during
        write("like", "l1", T0 + 9.9, None, key="a"),  # in flight, never completed
        write("view", "v2", T0 + 15, T0 + 15.1, key="a"),  # acked during
        write("upload", "u4", T0 + 21.5, T0 + 21.99),  # acked before t_r + w
        write("upload", "u5", T0 + 21.5, T0 + 22.0),  # acked on t_r + w: not at risk
        write("upload", "u7", T0 + 12, T0 + 12.5, "fail"),  # refused: nothing at risk
        attempts("like", "l2", [(T0 + 11, T0 + 12, "info"), (T0 + 13, T0 + 13.1, "ok")],
                 key="a"),  # retried and acked during
        [Op(process="p1", type="invoke", f="write", id="u6", time=T0 + 16, key="u6",
            attempt=2),  # an earlier attempt's lines were lost: attempt 2 says it was retried
         Op(process="p1", type="fail", f="write", id="u6", time=T0 + 16.2, key="u6")],
        write("view", "v8", T0 + 17, T0 + 17.5, "info", key="a"),  # sent twice, no attempt
        write("view", "v8", T0 + 18, T0 + 18.2, "fail", key="a"),  # numbers: retried
        attempts("view", "v9", [(T0 + 1, T0 + 1.5, "info"), (T0 + 2, T0 + 2.1, "ok")],
                 key="a"),  # retried long before the fault: not retried for it
        stats_read("r1", "a", T0 + 11.9, T0 + 12, degraded=True, views=1),
        stats_read("r2", "a", T0 + 11.9, T0 + 12, degraded=False, views=1),
        stats_read("r3", "a", T0 + 8.9, T0 + 9, degraded=True, views=1),  # before t_f
        stats_read("r4", "a", T0 + 11.9, T0 + 12, outcome="fail", degraded=True),
        stats_read("r5", "a", T0 + 21.9, T0 + 22.0, degraded=True, views=1),  # on t_r + w
    ])


def test_each_category_on_a_hand_made_history():
    (p,) = measure_exposure(drill(), faults=[F1], window_s=W).faults
    assert (p.start, p.end) == (T0 + 10, T0 + 20)
    assert p.acked_before == {"u1", "v1", "u3"}
    assert p.in_flight == {"u2", "l1"}
    assert p.acked_during == {"u2", "v2", "l2", "u4"}
    assert p.retried == {"l2", "u6", "v8"}
    assert p.degraded_reads == {"r1"}
    assert p.at_risk == {"u1", "v1", "u3", "u2", "l1", "v2", "l2", "u4"}
    assert p.keys_at_risk == {"u1", "u3", "u2", "u4"}
    assert p.increments_at_risk == {"v1", "l1", "v2", "l2"}


def test_metrics_and_findings_of_the_measured_only_check():
    res = check_exposure(drill(), faults=[F1], window_s=W)
    assert res.name == "exposure" and res.passed is None
    assert res.summary.startswith("8 writes at risk (4 key writes, 4 increments over 1 faults: "
                                  "3 acked before, 2 in flight, 4 acked during; 3 retried, "
                                  "1 degraded reads)")
    m = res.metrics
    assert (m["writes_at_risk"], m["keys_at_risk"], m["increments_at_risk"]) == (8, 4, 4)
    assert (m["acked_before"], m["in_flight"], m["acked_during"]) == (3, 2, 4)
    assert (m["retried"], m["degraded_reads"], m["min_writes_at_risk"]) == (3, 1, None)
    assert m["per_fault"] == [{"fault": "f1", "kind": "power_down", "target": "dc-east",
                               "acked_before": 3, "in_flight": 2, "acked_during": 4,
                               "retried": 3, "degraded_reads": 1, "writes_at_risk": 8}]
    (line,) = res.findings
    assert line.startswith("fault f1 (power_down on dc-east) injected at 1700000010.000, "
                           "reverted at 1700000020.000: 3 acked before")
    assert line.endswith("8 writes at risk (4 key writes, 4 increments)")


def test_window_edges_are_half_open():
    t_f = T0 + 100.0
    history = flatten([
        write("upload", "edge-lo", t_f - 3, t_f - W),  # [t_f - w, ...: in
        write("upload", "below", t_f - 3, t_f - W - 0.001),  # out
        write("upload", "at-tf", t_f - 1, t_f),  # acked on t_f: during, not before; in flight
        write("upload", "inv-tf", t_f, t_f + 0.5),  # invoked on t_f: not in flight
        write("upload", "end-in", t_f + 1, t_f + W - 0.001),  # t_r = t_f: [t_f, t_f + w)
        write("upload", "end-out", t_f + 1, t_f + W),  # out
        attempts("view", "retry-lo", [(t_f - W, t_f - W + 0.1, "info"),
                                      (t_f + 30, t_f + 30.1, "fail")], key="a"),
        attempts("view", "retry-hi", [(t_f + W, t_f + W + 0.1, "info"),
                                      (t_f + 30, t_f + 30.1, "fail")], key="a"),
    ])
    (p,) = measure_exposure(history, faults=[fault("f", t_f)], window_s=W).faults
    assert p.end == t_f  # never reverted and no end: t_r = t_f
    assert p.acked_before == {"edge-lo"}
    assert p.acked_during == {"at-tf", "end-in", "inv-tf"}
    assert p.in_flight == {"at-tf"}
    assert p.retried == {"retry-lo"}


def test_a_fault_never_reverted_runs_to_the_end_of_the_record():
    history = write("upload", "late", T0 + 30, T0 + 31)
    never = fault("f", T0 + 10)
    assert measure_exposure(history, faults=[never], window_s=W).writes_at_risk == frozenset()
    e = measure_exposure(history, faults=[never], window_s=W, end=T0 + 40)
    assert e.writes_at_risk == {"late"} and e.faults[0].end == T0 + 40
    assert "never reverted, measured to 1700000040.000" in check_exposure(
        history, faults=[never], window_s=W, end=T0 + 40).findings[0]


def test_an_ack_counts_once_at_its_first_acknowledgement():
    # acked before the fault, answered again (a duplicate ok) during it: acked before only.
    history = attempts("upload", "u", [(T0 + 8.5, T0 + 9, "ok"), (T0 + 10.5, T0 + 11, "ok")])
    (p,) = measure_exposure(history, faults=[F1], window_s=W).faults
    assert (p.acked_before, p.acked_during, p.retried) == ({"u"}, frozenset(), {"u"})


def test_overlapping_faults_are_a_union_not_a_sum():
    f2 = fault("f2", T0 + 15, kind="partition", reverted=T0 + 18, target="store-west")
    history = flatten([
        write("upload", "a", T0 + 9, T0 + 9.5),  # f1 before
        write("upload", "b", T0 + 13, T0 + 14),  # f1 during, f2 before
        write("view", "c", T0 + 14.5, T0 + 16, key="a"),  # f1 during, f2 in flight + during
        write("like", "d", T0 + 30, T0 + 31, key="a"),  # neither
    ])
    e = measure_exposure(history, faults=[f2, F1], window_s=W)
    assert [p.fault.id for p in e.faults] == ["f1", "f2"]  # by injection time
    assert [len(p.at_risk) for p in e.faults] == [3, 2]
    assert e.writes_at_risk == {"a", "b", "c"}
    assert (e.keys_at_risk, e.increments_at_risk) == ({"a", "b"}, {"c"})
    assert e.acked_during == {"b", "c"} and e.acked_before == {"a", "b"}
    assert e.in_flight == {"c"}
    res = check_exposure(history, faults=[F1, f2], window_s=W)
    assert res.metrics["writes_at_risk"] == 3
    assert [d["writes_at_risk"] for d in res.metrics["per_fault"]] == [3, 2]
    assert len(res.findings) == 2


def test_enough_exposure_passes_too_little_is_inconclusive():
    history = drill()
    ok = check_exposure(history, faults=[F1], window_s=W, min_writes_at_risk=8)
    assert ok.passed is True and ok.summary.endswith("at least 8 needed")
    short = check_exposure(history, faults=[F1], window_s=W, min_writes_at_risk=9)
    assert short.passed is False
    assert short.summary.startswith("inconclusive: only 8 writes at risk, 9 needed")
    assert short.metrics["min_writes_at_risk"] == 9


def test_no_fault_puts_nothing_at_risk():
    history = drill()
    res = check_exposure(history, faults=[], window_s=W)
    assert res.passed is None and res.metrics["writes_at_risk"] == 0
    assert res.metrics["per_fault"] == [] and res.findings == ()
    res = check_exposure(history, faults=[], window_s=W, min_writes_at_risk=1)
    assert res.passed is False and res.summary.startswith("inconclusive: only 0 writes")
    assert check_exposure(history, faults=[], window_s=W, min_writes_at_risk=0).passed is True


def test_a_quiet_fault_is_inconclusive_even_with_a_busy_drill():
    busy = flatten(write("upload", f"u{i}", T0 + i, T0 + i + 0.1) for i in range(50))
    quiet = fault("f", T0 + 100, reverted=T0 + 110)
    res = check_exposure(busy, faults=[quiet], window_s=W, min_writes_at_risk=1)
    assert res.passed is False and res.metrics["writes_at_risk"] == 0


@pytest.mark.parametrize("window", [-0.1, float("nan"), float("inf")])
def test_a_meaningless_window_is_refused(window):
    with pytest.raises(SpecError, match="window_s"):
        measure_exposure([], faults=[F1], window_s=window)


@given(st.lists(st.tuples(st.floats(0, 40), st.floats(0, 3), st.booleans()), max_size=25),
       st.lists(st.tuples(st.floats(0, 40), st.floats(0, 10)), min_size=1, max_size=3))
def test_totals_are_the_union_of_the_faults(writes, faults):
    history = flatten(write("upload", f"u{i}", T0 + t, T0 + t + d if done else None)
                      for i, (t, d, done) in enumerate(writes))
    fs = [fault(f"f{i}", T0 + t, reverted=T0 + t + d) for i, (t, d) in enumerate(faults)]
    e = measure_exposure(history, faults=fs, window_s=W)
    assert e.writes_at_risk == frozenset().union(*(p.at_risk for p in e.faults))
    assert len(e.writes_at_risk) <= sum(len(p.at_risk) for p in e.faults)
    for p in e.faults:
        assert p.at_risk == p.acked_before | p.in_flight | p.acked_during
        assert p.keys_at_risk == p.at_risk and not p.increments_at_risk


def test_ids_whose_hashes_collide_are_not_taken_for_retries() -> None:
    """Retries are found by hashing ids; two ids that share a hash (CPython hashes -1 and -2
    alike) are only candidates: each invoked once is no retry, an id invoked twice is."""
    from drills.checks.exposure import _retries
    from drills.checks.history import completions

    assert hash(-1) == hash(-2)
    ops = flatten([
        write("upload", -1, T0 + 1, T0 + 1.1),  # type: ignore[arg-type]
        write("upload", -2, T0 + 2, T0 + 2.1),  # type: ignore[arg-type]
        attempts("view", "twice", [(T0 + 3, T0 + 3.1, "info"), (T0 + 4, T0 + 4.1, "ok")],
                 key="a"),
    ])
    assert _retries(completions(ops)) == {"twice": [T0 + 3, T0 + 4]}
