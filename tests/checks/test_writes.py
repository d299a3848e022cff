"""The acked-writes set check and the observed RPO."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drills.checks.writes import check_acked_writes, check_rpo, write_sets
from drills.model import LostWrite, Op

from ._build import T0, fault, final, flatten, snap, write

OUTCOMES = st.sampled_from(["ok", "fail", "info", "none"])


def uploads(outs: list[str]) -> list[Op]:
    """Upload u0, u1, ... at one per second, each completing 0.1 s later with its outcome."""
    return flatten(write("upload", f"u{i}", T0 + i, None if o == "none" else T0 + i + 0.1, o)
                   for i, o in enumerate(outs))


def acked(outs: list[str]) -> set[str]:
    return {f"u{i}" for i, o in enumerate(outs) if o == "ok"}


@given(st.lists(OUTCOMES, max_size=30), st.data())
def test_acked_subset_of_final_read_passes_and_removing_any_acked_id_fails(outs, data):
    history = uploads(outs)
    others = sorted({f"u{i}" for i in range(len(outs))} - acked(outs))
    landed = set(data.draw(st.lists(st.sampled_from(others), unique=True)) if others else [])
    seeded = {"seed-1", "seed-2"}
    good = final(snap("east", acked(outs) | landed | seeded))
    res = check_acked_writes(history, final=good, preexisting=frozenset(seeded))
    assert res.passed is True and res.metrics["lost_acked_writes"] == 0
    assert res.metrics["recovered"] == len(landed)
    if acked(outs):
        gone = data.draw(st.sampled_from(sorted(acked(outs))))
        bad = final(snap("east", (acked(outs) | landed | seeded) - {gone}))
        res = check_acked_writes(history, final=bad, preexisting=frozenset(seeded))
        assert res.passed is False and res.metrics["lost_acked_writes"] == 1
        assert res.findings[0].startswith(f"lost acked write {gone}: acked at ")
        (lost,) = res.of(LostWrite)
        assert (lost.key, lost.id) == (gone, gone)
        assert lost.acked_at == T0 + int(gone[1:]) + 0.1
        assert res.evidence == (lost,) and res.findings[0] == lost.describe()


@given(st.lists(OUTCOMES, max_size=20), st.text("abcdef", min_size=1, max_size=6))
def test_a_key_never_written_is_unexpected_unless_preexisting(outs, stranger):
    history = uploads(outs)
    r = final(snap("east", acked(outs) | {stranger}))
    res = check_acked_writes(history, final=r)
    assert res.passed is False and res.metrics["unexpected_writes"] == 1
    assert any(f"unexpected key {stranger}" in f for f in res.findings)
    assert check_acked_writes(history, final=r, preexisting=frozenset({stranger})).passed


def test_sets_follow_the_definitions():
    history = uploads(["ok", "ok", "fail", "info", "none", "ok"])
    s = write_sets(history, final=snap("east", {"u0", "u2", "u3", "x"}))
    assert s.attempted == {f"u{i}" for i in range(6)}
    assert s.acked == {"u0", "u1", "u5"}
    assert (s.lost, s.unexpected, s.recovered) == ({"u1", "u5"}, {"x"}, {"u2", "u3"})
    assert s.failed_but_present == {"u2"}


def test_failed_but_present_is_reported_without_failing():
    history = uploads(["ok", "fail"])
    res = check_acked_writes(history, final=final(snap("east", {"u0", "u1"})))
    assert res.passed is True and res.metrics["failed_but_present"] == 1
    assert any("u1 answered 'fail'" in f for f in res.findings)


def test_retried_upload_acked_once_counts_once():
    history = [*write("upload", "u0", T0, T0 + 1, "info"), *write("upload", "u0", T0 + 2, T0 + 3)]
    res = check_acked_writes(history, final=final(snap("east", set())))
    assert res.metrics["lost_acked_writes"] == 1 and res.metrics["acknowledged"] == 1
    assert f"acked at {T0 + 3:.3f}" in res.findings[0]


def test_without_an_authoritative_read_the_check_cannot_decide():
    history = uploads(["ok"])
    down = final(snap("east", reachable=False), snap("west", {"u0"}))
    assert check_acked_writes(history, final=down).passed is None
    nobody = final(snap("west", {"u0"}), primary="")
    assert check_acked_writes(history, final=nobody).passed is None
    assert check_rpo(history, final=down, faults=[]).passed is None


def test_findings_are_bounded():
    outs = ["ok"] * 120
    res = check_acked_writes(uploads(outs), final=final(snap("east", set())))
    assert res.metrics["lost_acked_writes"] == 120
    assert len(res.findings) == 51 and res.findings[-1] == "... 70 more"
    assert "u0:" in res.findings[0]  # earliest ack first


# --- RPO ----------------------------------------------------------------------------------


def test_rpo_is_zero_without_loss_and_measures_back_from_the_fault():
    history = uploads(["ok"] * 10)  # acks at T0 + i + 0.1
    everything = final(snap("east", acked(["ok"] * 10)))
    res = check_rpo(history, final=everything, faults=[fault("f", T0 + 10)])
    assert (res.passed, res.metrics["rpo_s"]) == (True, 0.0)
    lost_tail = final(snap("east", {f"u{i}" for i in range(7)}))  # u7..u9 lost
    res = check_rpo(history, final=lost_tail, faults=[fault("f", T0 + 10)])
    assert res.metrics["rpo_s"] == pytest.approx(10 - 7.1)
    assert res.passed is False and res.metrics["rpo_fault"] == "f"
    loose = check_rpo(history, final=lost_tail, faults=[fault("f", T0 + 10)], max_rpo_s=3.0)
    assert loose.passed is True


def test_rpo_uses_the_first_fault_after_the_earliest_lost_ack():
    history = uploads(["ok"] * 10)
    lost_tail = final(snap("east", {f"u{i}" for i in range(7)}))
    faults = [fault("late", T0 + 20), fault("early", T0 + 3), fault("mid", T0 + 9)]
    res = check_rpo(history, final=lost_tail, faults=faults)
    assert res.metrics["rpo_fault"] == "mid"
    assert res.metrics["rpo_s"] == pytest.approx(9 - 7.1)


def test_write_acked_during_the_fault_then_lost_reports_zero_with_a_finding():
    history = uploads(["ok"] * 10)
    lost_tail = final(snap("east", {f"u{i}" for i in range(7)}))
    res = check_rpo(history, final=lost_tail, faults=[fault("f", T0 + 5)])
    assert res.metrics["rpo_s"] == 0.0 and res.passed is True
    assert sum("lost after being acked during the fault" in f for f in res.findings) == 3
    # The set check still fails on the same data.
    assert check_acked_writes(history, final=lost_tail).passed is False


def test_loss_without_any_fault_has_no_rpo():
    history = uploads(["ok"])
    res = check_rpo(history, final=final(snap("east", set())), faults=[])
    assert res.passed is None and res.metrics["rpo_s"] is None


def test_an_allowance_of_lost_writes_is_honoured_exactly():
    history = uploads(["ok"] * 5)
    two_lost = final(snap("east", {"u0", "u1", "u2"}))
    assert check_acked_writes(history, final=two_lost, allowed_lost=2).passed is True
    assert check_acked_writes(history, final=two_lost, allowed_lost=1).passed is False
    stranger = final(snap("east", {"u0", "u1", "u2", "u3", "u4", "x"}))
    assert check_acked_writes(history, final=stranger, allowed_lost=9).passed is False
