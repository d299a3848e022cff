"""The generic vocabulary and the checks' typed evidence: any counter names, any classes, and
`CheckResult.to_dict` / `from_dict` as the one way evidence is stored and read back."""

from __future__ import annotations

import json

import pytest

from drills.checks import (
    check_acked_writes,
    check_counters,
    check_rto,
    check_zero_reads,
    measure_rtos,
    series_by_class,
)
from drills.errors import SpecError
from drills.model import CheckResult, Counts, LostWrite, Op, Rto, StoreSnapshot, classes_of

from ._build import T0, fault, final, snap, traffic, write


def test_an_op_keeps_counts_and_items_hashable_and_round_trips() -> None:
    op = Op(process="p", type="ok", f="read", id="r", time=T0, key="c1",
            counts={"hits": 3, "misses": 0}, items=[("c2", {"hits": 1})])
    assert isinstance(op.counts, Counts) and op.counts == {"hits": 3, "misses": 0}
    assert op.items == (("c2", {"hits": 1}),)
    d = op.to_dict()
    assert d["counts"] == {"hits": 3, "misses": 0} and d["items"] == [["c2", {"hits": 1}]]
    back = Op.from_dict(json.loads(json.dumps(d)))
    assert back == op and hash(back) == hash(op) and len({op, back}) == 1
    assert Counts({"a": 1, "b": 2}) == Counts({"b": 2, "a": 1})
    assert hash(Counts({"a": 1, "b": 2})) == hash(Counts({"b": 2, "a": 1}))


@pytest.mark.parametrize("bad", [
    {"process": "p", "type": "ok", "f": "upload", "id": "x", "time": 1.0},
    {"process": "p", "type": "done", "f": "write", "id": "x", "time": 1.0},
    {"process": "p", "type": "invoke", "f": "incr", "id": "x", "time": 1.0, "key": "k"},
    {"process": "p", "type": "ok", "f": "read", "id": "x", "time": 1.0, "counts": {"a": "1"}},
])
def test_malformed_ops_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        Op.from_dict(bad)


def test_counters_are_judged_per_key_and_counter_for_any_names() -> None:
    history = [*write("incr", "i1", T0, T0 + 0.1, key="c1", counter="hits"),
               *write("incr", "i2", T0, T0 + 0.1, key="c1", counter="hits"),
               *write("incr", "i3", T0, T0 + 0.1, "info", key="c1", counter="errors"),
               *write("incr", "i4", T0, T0 + 0.1, key="c2", counter="errors")]
    good = final(snap("kv", {"c1", "c2"}, counters={"c1": {"hits": 2, "errors": 1},
                                                    "c2": {"errors": 1}}))
    res = check_counters(history, final=good)
    # every key of the final read with every counter name seen: c1 and c2 x hits and errors
    assert res.passed is True and res.metrics["counters_checked"] == 4
    bad = final(snap("kv", {"c1", "c2"}, counters={"c1": {"hits": 1, "errors": 1}}))
    res = check_counters(history, final=bad)
    assert res.passed is False and res.metrics["lost_increments"] == 2
    assert res.findings == (
        "counter hits of c1: final 1 outside [2, 2] (2 acked, 0 indeterminate): "
        "1 lost increments",
        "counter errors of c2: final 0 outside [1, 1] (1 acked, 0 indeterminate): "
        "1 lost increments")


def test_a_zero_read_is_one_of_counter_c_of_key_k() -> None:
    history = [*write("incr", "i1", T0, T0 + 0.1, key="c1", counter="hits"),
               *write("read", "r1", T0 + 1, T0 + 1.1, key="c1", counts={"hits": 0, "other": 0}),
               *write("read", "r2", T0 + 1, T0 + 1.1, key="c2", counts={"hits": 0})]
    res = check_zero_reads(history)
    assert res.passed is False and res.metrics["zero_reads"] == 1
    assert res.findings[0].startswith("read r1 of c1 invoked at")
    assert "saw counter hits at 0 after 1 acked increments" in res.findings[0]


def test_lost_writes_are_typed_evidence_that_round_trips() -> None:
    history = [*write("write", "w1", T0, T0 + 0.2, store="kv-east", epoch=3),
               *write("write", "w2", T0 + 1, T0 + 1.5, key="k2")]
    res = check_acked_writes(history, final=final(snap("kv-east", set())))
    assert res.evidence == (
        LostWrite(key="w1", id="w1", acked_at=T0 + 0.2, invoked_at=T0, store="kv-east",
                  epoch=3),
        LostWrite(key="k2", id="w2", acked_at=T0 + 1.5, invoked_at=T0 + 1))
    assert res.findings[:2] == tuple(w.describe() for w in res.evidence)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["evidence"][0] == {"kind": "lost_write", "key": "w1", "id": "w1",
                                "acked_at": T0 + 0.2, "invoked_at": T0, "store": "kv-east",
                                "epoch": 3}
    assert CheckResult.from_dict(d) == res


def _rto_result() -> CheckResult:
    reqs = [*traffic("get", T0, T0 + 20, 40, ok=lambda t: not T0 + 10 <= t < T0 + 12),
            *traffic("put", T0, T0 + 20, 4)]
    return check_rto(reqs, faults=[fault("f0", T0 + 10, reverted=T0 + 12)],
                     baseline_start=T0, baseline_end=T0 + 10)


def test_rto_evidence_carries_each_class_and_its_bucket_width() -> None:
    res = _rto_result()
    rtos = res.of(Rto)
    assert [(r.op, r.fault_id) for r in rtos] == [("get", "f0"), ("put", "f0")]
    assert rtos[0].bucket_s == 0.5 and rtos[1].bucket_s == 5.0  # widened for a slow class
    assert rtos[0].rto_s is not None and 2.0 <= rtos[0].rto_s <= 3.0
    back = CheckResult.from_dict(json.loads(json.dumps(res.to_dict())))
    assert back.of(Rto) == rtos and back.metrics == json.loads(json.dumps(res.metrics))


def test_classes_default_to_the_requests_in_first_seen_order() -> None:
    reqs = [*traffic("b", T0, T0 + 1, 5), *traffic("a", T0 + 0.05, T0 + 1, 5)]
    reqs.sort(key=lambda r: r.t)
    assert classes_of(reqs) == ("b", "a") and classes_of(reqs, ["a"]) == ("a",)
    assert [s.op for s in series_by_class(reqs)] == ["b", "a"]
    f0 = fault("f0", T0 + 0.5)
    assert [r.op for r in measure_rtos(reqs, faults=[f0], baseline_start=T0,
                                       baseline_end=T0 + 0.5)] == ["b", "a"]


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda d: d.__setitem__("passed", "yes"), "passed"),
    (lambda d: d["findings"].append(3), "findings[0]"),
    (lambda d: d.__setitem__("evidence", [{"kind": "gossip"}]), "evidence[0].kind"),
    (lambda d: d["evidence"][0].pop("bucket_s"), "evidence[0]"),
    (lambda d: d.pop("summary"), "summary"),
])
def test_malformed_check_results_name_the_field(mutate, field: str) -> None:
    d = json.loads(json.dumps(_rto_result().to_dict()))
    d["findings"] = []
    mutate(d)
    with pytest.raises(SpecError) as err:
        CheckResult.from_dict(d)
    assert err.value.field == field


def test_a_snapshot_round_trips_and_reads_missing_counters_as_zero() -> None:
    s = StoreSnapshot(name="kv", reachable=True, role="primary", epoch=2,
                      keys=frozenset({"a"}), counters={"a": {"hits": 4}})
    assert StoreSnapshot.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert (s.count("a", "hits"), s.count("a", "misses"), s.count("b", "hits")) == (4, 0, 0)
