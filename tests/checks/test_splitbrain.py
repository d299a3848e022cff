"""Split brain: from the history (overlapping acks, vanished reads), from the epochs (same-epoch
acks on two stores, stale-epoch acks), and divergent replicas."""

from __future__ import annotations

import itertools

from hypothesis import assume, given
from hypothesis import strategies as st

from drills.checks.splitbrain import check_split_brain, divergent_keys
from drills.model import FinalRead, Op

from ._build import T0, feed_read, final, flatten, snap, stats_read, write


def ack(id: str, t: float, done: float, store: str, epoch: int, f: str = "upload") -> list[Op]:
    return write(f, id, t, done, "ok", key=id if f == "upload" else "v", store=store,
                 epoch=epoch)


SAME = final(snap("east", {"a"}, views={"a": 1}), snap("west", {"a"}, views={"a": 1}))


def test_clean_failover_passes():
    history = [*ack("a", T0, T0 + 0.1, "east", 1), *ack("b", T0 + 1, T0 + 1.1, "east", 1),
               *ack("c", T0 + 5, T0 + 5.1, "west", 2), *ack("d", T0 + 6, T0 + 6.1, "west", 2)]
    after = final(snap("west", {"a", "b", "c", "d"}), snap("east", {"a", "b", "c", "d"}))
    res = check_split_brain(history, final=after)
    assert res.passed is True and res.metrics["split_brain"] is False
    assert res.metrics["acks_with_epoch"] == 4 and res.metrics["stores_compared"] == 2
    assert res.metrics["sources"] == [] and res.metrics["history_evidence"] == 0


def test_two_stores_acking_under_one_epoch_is_split_brain():
    history = [*ack("a", T0, T0 + 0.1, "east", 1), *ack("b", T0 + 1, T0 + 1.1, "west", 1)]
    both = final(snap("east", {"a", "b"}), snap("west", {"a", "b"}))  # only the epochs tell
    res = check_split_brain(history, final=both)
    assert res.passed is False and res.metrics["split_brain"] is True
    assert res.metrics["epoch_conflicts"] == 1 and res.metrics["sources"] == ["epochs"]
    assert res.metrics["epoch_evidence"] == 1 and res.metrics["history_evidence"] == 0
    assert res.summary.startswith("split brain (history: none; epochs: 1 epochs acked")
    assert res.findings[0].startswith("epoch 1 acknowledged by 2 stores: east (first ack a")


def test_a_stale_epoch_ack_invoked_after_a_newer_ack_is_split_brain():
    history = [*ack("new", T0, T0 + 1.0, "west", 2),
               *ack("old", T0 + 1.5, T0 + 1.6, "east", 1, f="view")]
    res = check_split_brain(history, final=SAME)
    assert res.passed is False and res.metrics["stale_epoch_acks"] == 1
    assert "east acked incr old under epoch 1" in res.findings[-1]
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
    assert "divergent key:b: east=yes, west=no" in res.findings
    assert "divergent counter:a/views: east=3, west=2" in res.findings


def test_missing_counter_equals_zero_when_comparing():
    assert divergent_keys([snap("e", views={"a": 0}), snap("w")]) == ()
    assert divergent_keys([snap("e", views={"a": 1}), snap("w")]) == ("counter:a/views",)
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
    history = [*write("read", "r1", T0, T0 + 0.1, "ok", key="a", store="east", epoch=1),
               *write("read", "r2", T0, T0 + 0.1, "ok", key="a", store="west", epoch=1),
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


# --- history evidence: no epoch needed ----------------------------------------------------


def _bare(ops: list[Op]) -> list[Op]:
    """The same history as stores that report no epoch would leave it."""
    return [Op(**{**o.to_dict(), "epoch": None}) if o.epoch is not None else o for o in ops]


def _inc(id: str, video: str, t: float, done: float, store: str, epoch: int,
         f: str = "view") -> list[Op]:
    return write(f, id, t, done, "ok", key=video, store=store, epoch=epoch)


#: east is primary (epoch 1) until the fault at T0+3; west's first ack is at T0+5.1 (epoch 2).
#: east's last writes e3 and ve2 were invoked before that but answered late; nothing is lost.
FAILOVER = flatten([
    ack("e1", T0, T0 + 0.1, "east", 1), ack("e2", T0 + 1, T0 + 1.1, "east", 1),
    _inc("ve1", "e1", T0 + 1.5, T0 + 1.6, "east", 1),
    ack("e3", T0 + 2.9, T0 + 5.5, "east", 1), _inc("ve2", "e1", T0 + 2.95, T0 + 5.6, "east", 1),
    ack("w1", T0 + 5, T0 + 5.1, "west", 2), ack("w2", T0 + 6.3, T0 + 6.4, "west", 2),
    _inc("vw1", "e1", T0 + 6.5, T0 + 6.6, "west", 2),
    stats_read("r-west", "e1", T0 + 7, T0 + 7.1, store="west", views=3),
    # west keeps acknowledging every 0.3 s from T0+6.8 (it is the primary in force)
    *(ack(f"wc{k}", T0 + 6.75 + 0.3 * k, T0 + 6.8 + 0.3 * k, "west", 2) for k in range(9)),
])
SURVIVED = {"e1", "e2", "e3", "w1", "w2", *(f"wc{k}" for k in range(9))}
AFTER = final(snap("west", SURVIVED, views={"e1": 3}), snap("east", SURVIVED, views={"e1": 3}))

#: ... but east, deposed without knowing it, keeps acknowledging (each write after waiting
#: 0.45 s for a replica that no longer pulls) and serving while west acknowledges.
DEPOSED = flatten([
    ack("d1", T0 + 7, T0 + 7.45, "east", 1), ack("d2", T0 + 8, T0 + 8.45, "east", 1),
    _inc("dv1", "e1", T0 + 7.5, T0 + 7.95, "east", 1),
    _inc("dv2", "e1", T0 + 7.7, T0 + 8.15, "east", 1),
    stats_read("r-d1", "d1", T0 + 8.5, T0 + 8.6, store="east", views=0),
    feed_read("r-feed", [("e1", 5, 0), ("d2", 0, 0)], T0 + 8.7, T0 + 8.8, store="east"),
])


def test_a_correct_failover_gives_no_history_evidence_with_or_without_epochs():
    res = check_split_brain(FAILOVER, final=AFTER)
    assert res.passed is True and res.metrics["history_evidence"] == 0
    bare = check_split_brain(_bare(FAILOVER), final=AFTER)
    assert bare.metrics["history_evidence"] == 0 and bare.metrics["split_brain"] is False
    assert bare.passed is None  # no epoch at all: (a)/(b) could not be judged


def test_the_old_primarys_unreplicated_tail_is_lost_writes_not_split_brain():
    # e4 was acked by east before the failover and never reached west: RPO, not split brain;
    # so was a read east served of it before west's first ack.
    tail = [*FAILOVER, *ack("e4", T0 + 2.5, T0 + 2.6, "east", 1),
            *stats_read("r-e4", "e4", T0 + 2.7, T0 + 2.8, store="east", views=0)]
    res = check_split_brain(tail, final=AFTER)
    assert res.passed is True and res.metrics["history_evidence"] == 0


def test_an_indeterminate_write_that_vanished_is_not_evidence():
    unsure = [*FAILOVER,
              *write("upload", "x1", T0 + 7, T0 + 9, "info", store="east", error="timeout"),
              *write("upload", "x2", T0 + 7, None),
              *write("upload", "x3", T0 + 7, T0 + 7.1, "fail", store="east"),
              *write("view", "x4", T0 + 7, T0 + 9, "info", key="e1", store="east")]
    res = check_split_brain(unsure, final=AFTER)
    assert res.passed is True and res.metrics["history_evidence"] == 0


def test_a_deposed_primary_is_caught_by_the_history_alone():
    res = check_split_brain(_bare([*FAILOVER, *DEPOSED]), final=AFTER)
    m = res.metrics
    assert res.passed is False and m["split_brain"] is True and m["sources"] == ["history"]
    assert (m["overlapping_acks"], m["suspect_increments"], m["vanished_reads"]) == (4, 2, 2)
    assert (m["history_evidence"], m["epoch_evidence"]) == (6, 0)
    assert res.summary == ("split brain (history: 4 acks (2 suspect increments) by east and "
                           "2 reads from east after west took over; epochs: none)")
    assert res.findings[0] == (
        "east acked write d1 (invoked at 1700000007.000, acked at 1700000007.450) after west "
        "had acked write wc2 at 1700000007.400, which survived: absent from west's final state")
    assert "east acked incr dv1 of e1" in res.findings[1]
    assert ("suspect increment, counter views of e1 ended at 3, below its lower bound 5"
            in res.findings[1])
    assert res.findings[4].startswith("read r-d1 served by east (invoked at 1700000008.500)")
    assert "showed d1: absent from west's final state" in res.findings[4]
    assert "showed d2: absent" in res.findings[5]


def test_a_stale_failback_is_lost_writes_not_split_brain():
    """west acknowledged while east was down; east came back and took over without catching
    up, so west's writes vanished. The two never acknowledged at once: not split brain."""
    outage = [*ack("e1", T0, T0 + 0.05, "east", 1),
              *(o for k in range(8) for o in ack(f"e-{k}", T0 + 0.1 * k, T0 + 0.1 * k + 0.05,
                                                  "east", 1)),
              *(o for k in range(10) for o in ack(f"w-{k}", T0 + 3 + 0.2 * k,
                                                   T0 + 3.05 + 0.2 * k, "west", 2)),
              *(o for k in range(8) for o in ack(f"e2-{k}", T0 + 9 + 0.1 * k,
                                                  T0 + 9.05 + 0.1 * k, "east", 3))]
    kept = {"e1", *(f"e-{k}" for k in range(8)), *(f"e2-{k}" for k in range(8))}
    res = check_split_brain(_bare(outage), final=final(snap("east", kept), snap("west", kept)))
    assert res.metrics["history_evidence"] == 0 and res.metrics["split_brain"] is False


def test_with_epochs_both_sources_find_the_deposed_primary():
    res = check_split_brain([*FAILOVER, *DEPOSED], final=AFTER)
    assert res.metrics["sources"] == ["epochs", "history"]
    assert res.metrics["epoch_evidence"] == 4  # d1, d2, dv1, dv2 under the stale epoch 1
    assert "; epochs: 0 epochs acked by several stores, 4 stale-epoch acks)" in res.summary


def test_increments_that_landed_are_not_suspect():
    merged = final(snap("west", SURVIVED | {"d1", "d2"}, views={"e1": 5}),
                   snap("east", SURVIVED | {"d1", "d2"}, views={"e1": 5}))
    res = check_split_brain(_bare([*FAILOVER, *DEPOSED]), final=merged)
    assert res.metrics["history_evidence"] == 0 and res.metrics["split_brain"] is False


def test_reads_from_the_winner_or_before_it_took_over_are_not_vanished_reads():
    reads = [*FAILOVER,
             *stats_read("r1", "gone", T0 + 8, T0 + 8.1, store="west", views=0),  # the winner
             *stats_read("r2", "gone", T0 + 4, T0 + 4.1, store="east", views=0),  # before
             *stats_read("r3", "gone", T0 + 8, T0 + 8.1, store="east", outcome="fail"),
             *feed_read("r4", [("e1", 3, 0), ("e2", 0, 0)], T0 + 8, T0 + 8.1, store="east")]
    assert check_split_brain(reads, final=AFTER).metrics["vanished_reads"] == 0
    gone = [*reads, *feed_read("r5", [("e1", 3, 0), ("gone", 0, 0)], T0 + 8, T0 + 8.1,
                               store="east")]
    res = check_split_brain(gone, final=AFTER)
    assert res.metrics["vanished_reads"] == 1 and res.passed is False


def test_sources_name_every_kind_of_evidence_found():
    torn = final(snap("west", SURVIVED, views={"e1": 3}),
                 snap("east", SURVIVED | {"d1"}, views={"e1": 3}))
    res = check_split_brain([*FAILOVER, *DEPOSED], final=torn)
    assert res.metrics["sources"] == ["divergence", "epochs", "history"]
    assert res.summary.endswith("; divergence: 1 divergent keys)")
    only = check_split_brain(FAILOVER, final=torn)
    assert only.metrics["sources"] == ["divergence"] and only.metrics["split_brain"] is False
    assert only.summary.startswith("replicas diverged after quiesce (history: none;")


def test_without_a_reachable_primary_the_history_is_not_evaluated():
    no_winner = FinalRead(primary=None, stores=AFTER.stores)
    res = check_split_brain(_bare([*FAILOVER, *DEPOSED]), final=no_winner)
    assert res.metrics["history_evidence"] == 0 and res.passed is None
    assert "no reachable primary at the final read: history evidence not evaluated" in res.findings
    res = check_split_brain([*FAILOVER, *DEPOSED], final=no_winner)
    assert res.passed is False and "(history: not evaluated; epochs: " in res.summary


@given(st.lists(st.integers(1, 6), min_size=2, max_size=6), st.data())
def test_handovers_with_late_answers_are_clean_and_one_vanished_ack_is_not(per_epoch, data):
    """Stores take turns; each one's last ack may answer after the next one's first ack (it was
    invoked before). Everything survives: no history evidence. Then a store other than the
    winner acks an upload invoked after the winner's first surviving ack, and it vanishes."""
    history: list[Op] = []
    t, videos = T0, set()
    for epoch, n in enumerate(per_epoch, start=1):
        store = "east" if epoch % 2 else "west"
        for k in range(n):
            late = 3.0 if k == n - 1 and data.draw(st.booleans()) else 0.05
            history += [Op(**{**o.to_dict(), "epoch": None})
                        for o in ack(f"e{epoch}-{k}", t, t + late, store, epoch)]
            videos.add(f"e{epoch}-{k}")
            t += 0.1
        t += 1.0  # the handover: the next store's first ack comes 1 s after this one's last invoke
    winner = "east" if len(per_epoch) % 2 else "west"
    loser = "west" if winner == "east" else "east"
    after = final(snap(winner, videos), snap(loser, videos))
    assert check_split_brain(history, final=after).metrics["history_evidence"] == 0
    acks = sorted(o.time for o in history if o.type == "ok" and o.store == winner)
    pairs = [a for a, b in itertools.pairwise(acks) if b - a <= 1.0]
    assume(pairs)
    x = data.draw(st.sampled_from(pairs))
    bad = [*history, *write("upload", "lost", x - 0.005, x + 0.001, "ok", store=loser)]
    res = check_split_brain(bad, final=after)
    assert res.metrics["overlapping_acks"] == 1 and res.passed is False


def test_sorting_by_time_breaks_ties_by_id_as_the_pair_sort_does() -> None:
    """`_by_time` (no (time, id) pair per ack) orders as sorting on that pair does, with many
    equal times, runs of them, missing times (read as 0) and repeated ids."""
    import random

    from drills.checks.history import Completion
    from drills.checks.splitbrain import _acked_at, _by_time

    rng = random.Random(11)
    for trial in range(300):
        acks = [Completion(id=str(rng.randint(0, 30)), f="write", process="p", type="ok",
                           invoked_at=0.0,
                           completed_at=rng.choice([1.0, 2.0, 2.0, 3.0, 3.0, 3.0, None, 0.0]))
                for _ in range(rng.randint(0, 40))]
        assert _by_time(acks, _acked_at) == sorted(
            acks, key=lambda c: (c.completed_at or 0.0, c.id)), trial
