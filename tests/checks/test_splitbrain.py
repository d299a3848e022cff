"""Split brain: same-epoch acks on two stores, stale-epoch acks, divergent replicas."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from drills.checks.splitbrain import check_split_brain, divergent_keys
from drills.model import Op

from ._build import T0, final, flatten, snap, write


def ack(id: str, t: float, done: float, store: str, epoch: int, f: str = "upload") -> list[Op]:
    return write(f, id, t, done, "ok", video=id if f == "upload" else "v", store=store,
                 epoch=epoch)


SAME = final(snap("east", {"a"}, views={"a": 1}), snap("west", {"a"}, views={"a": 1}))


def test_clean_failover_passes():
    history = [*ack("a", T0, T0 + 0.1, "east", 1), *ack("b", T0 + 1, T0 + 1.1, "east", 1),
               *ack("c", T0 + 5, T0 + 5.1, "west", 2), *ack("d", T0 + 6, T0 + 6.1, "west", 2)]
    res = check_split_brain(history, final=SAME)
    assert res.passed is True and res.metrics["split_brain"] is False
    assert res.metrics["acks_with_epoch"] == 4 and res.metrics["stores_compared"] == 2


def test_two_stores_acking_under_one_epoch_is_split_brain():
    history = [*ack("a", T0, T0 + 0.1, "east", 1), *ack("b", T0 + 1, T0 + 1.1, "west", 1)]
    res = check_split_brain(history, final=SAME)
    assert res.passed is False and res.metrics["split_brain"] is True
    assert res.metrics["epoch_conflicts"] == 1
    assert res.findings[0].startswith("epoch 1 acknowledged by 2 stores: east (first ack a")


def test_a_stale_epoch_ack_invoked_after_a_newer_ack_is_split_brain():
    history = [*ack("new", T0, T0 + 1.0, "west", 2),
               *ack("old", T0 + 1.5, T0 + 1.6, "east", 1, f="view")]
    res = check_split_brain(history, final=SAME)
    assert res.passed is False and res.metrics["stale_epoch_acks"] == 1
    assert "east acked view old under epoch 1" in res.findings[-1]
    assert "after west had acked new under epoch 2" in res.findings[-1]


def test_a_stale_ack_whose_answer_merely_arrived_late_is_not_flagged():
    # 'old' was invoked before the epoch-2 ack completed: the old primary may have accepted it
    # before the failover, its answer just arrived after.
    history = [*ack("old", T0 + 0.5, T0 + 1.6, "east", 1), *ack("new", T0, T0 + 1.0, "west", 2)]
    res = check_split_brain(history, final=SAME)
    assert res.passed is True and res.metrics["stale_epoch_acks"] == 0


def test_divergent_replicas_are_flagged_with_their_keys():
    r = final(snap("east", {"a", "b"}, views={"a": 3}, likes={"b": 1}),
              snap("west", {"a"}, views={"a": 2}, likes={"b": 1}))
    res = check_split_brain([], final=r)
    assert res.passed is False and res.metrics["split_brain"] is False
    assert res.metrics["divergent_keys"] == 2
    assert "divergent video:b: east=yes, west=no" in res.findings
    assert "divergent views:a: east=3, west=2" in res.findings


def test_missing_counter_equals_zero_when_comparing():
    assert divergent_keys([snap("e", views={"a": 0}), snap("w")]) == ()
    assert divergent_keys([snap("e", views={"a": 1}), snap("w")]) == ("views:a",)
    assert divergent_keys([snap("e", {"a"})]) == ()


def test_unreachable_store_or_missing_epochs_make_a_clean_run_undecided():
    history = ack("a", T0, T0 + 0.1, "east", 1)
    partial = final(snap("east", {"a"}), snap("west", reachable=False))
    res = check_split_brain(history, final=partial)
    assert res.passed is None and "store west unreachable" in res.findings[-1]
    assert check_split_brain(history, final=None).passed is None
    bare = write("upload", "a", T0, T0 + 0.1, "ok")
    res = check_split_brain(bare, final=SAME)
    assert res.passed is None and res.metrics["acks_without_epoch"] == 1
    # ... but evidence still fails the check.
    conflict = [*history, *ack("b", T0 + 1, T0 + 1.1, "west", 1)]
    assert check_split_brain(conflict, final=partial).passed is False


def test_reads_from_two_stores_under_one_epoch_are_not_acknowledged_writes():
    history = [*write("read", "r1", T0, T0 + 0.1, "ok", video="a", store="east", epoch=1),
               *write("read", "r2", T0, T0 + 0.1, "ok", video="a", store="west", epoch=1),
               *ack("a", T0, T0 + 0.1, "east", 1)]
    assert check_split_brain(history, final=SAME).passed is True


@given(st.lists(st.integers(1, 8), min_size=1, max_size=6), st.data())
def test_sequential_failovers_pass_and_one_foreign_ack_fails(writes_per_epoch, data):
    """Each epoch owned by one store in turn; then one store acks under another's epoch."""
    history: list[Op] = []
    t = T0
    for epoch, n in enumerate(writes_per_epoch, start=1):
        store = "east" if epoch % 2 else "west"
        for k in range(n):
            history += ack(f"e{epoch}-{k}", t, t + 0.05, store, epoch)
            t += 0.1
        t += 2.0  # failover gap
    assert check_split_brain(history, final=SAME).passed is True
    epoch = data.draw(st.integers(1, len(writes_per_epoch)))
    intruder = "west" if epoch % 2 else "east"
    when = data.draw(st.floats(T0, t))
    bad = [*history, *ack("intruder", when, when + 0.01, intruder, epoch)]
    res = check_split_brain(bad, final=SAME)
    assert res.passed is False and res.metrics["split_brain"] is True


def test_findings_cover_both_kinds_of_evidence():
    history = flatten([ack("a", T0, T0 + 0.1, "east", 1), ack("b", T0, T0 + 0.1, "west", 1),
                       ack("c", T0 + 1, T0 + 1.1, "west", 2),
                       ack("d", T0 + 2, T0 + 2.1, "east", 1)])
    res = check_split_brain(history, final=SAME)
    assert (res.metrics["epoch_conflicts"], res.metrics["stale_epoch_acks"]) == (1, 1)
    assert "1 epochs acked by several stores, 1 stale-epoch acks" in res.summary
