"""Counter bounds (views, likes), with retried increments, and zero reads (stats reads, feed
and search items, degraded reads)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from drills.checks.counters import check_counters, check_zero_reads, counter_bounds, zero_reads
from drills.model import FinalRead, Op, StoreSnapshot

from ._build import T0, attempts, feed_read, final, flatten, snap, write


def increments(f: str, video: str, acked: int, indet: int, failed: int, t: float = T0) -> list[Op]:
    """``acked`` ok, ``indet`` info (half without completion) and ``failed`` fail increments."""
    outs = ["ok"] * acked + ["info"] * indet + ["fail"] * failed
    return flatten(
        write(f, f"{video}-{f}-{i}", t + i * 0.01,
              None if o == "info" and i % 2 else t + i * 0.01 + 0.005, o, key=video)
        for i, o in enumerate(outs)
    )


COUNTS = st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 3))


@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), st.tuples(COUNTS, COUNTS), min_size=1),
       st.data())
def test_values_within_bounds_pass_and_just_outside_fail(per_video, data):
    history = flatten(increments("view", v, *views) + increments("like", v, *likes)
                      for v, (views, likes) in per_video.items())
    views = {v: data.draw(st.integers(a, a + i)) for v, ((a, i, _), _) in per_video.items()}
    likes = {v: data.draw(st.integers(a, a + i)) for v, (_, (a, i, _)) in per_video.items()}
    videos = set(per_video)
    res = check_counters(history, final=final(snap("east", videos, views=views, likes=likes)))
    assert res.passed is True and res.metrics["counters_out_of_bounds"] == 0
    video = data.draw(st.sampled_from(sorted(per_video)))
    (a, i, _), _ = per_video[video]
    too_many = {**views, video: a + i + 1}
    res = check_counters(history, final=final(snap("east", videos, views=too_many, likes=likes)))
    assert res.passed is False and res.metrics["counters_above"] == 1
    assert res.metrics["extra_increments"] == 1 and "counted twice" in res.findings[0]
    if a > 0:
        too_few = {**views, video: a - 1}
        res = check_counters(history, final=final(snap("east", videos, views=too_few,
                                                       likes=likes)))
        assert res.passed is False and res.metrics["counters_below"] == 1
        assert res.metrics["lost_increments"] == 1
        assert f"views of {video}: final {a - 1} outside [{a}, {a + i}]" in res.findings[0]


def test_the_same_op_completed_twice_counts_once():
    history = [*write("view", "x", T0, T0 + 1, "info", key="a"),
               *write("view", "x", T0 + 2, T0 + 3, "ok", key="a"),
               *write("view", "x", T0 + 4, T0 + 5, "ok", key="a")]
    (views,) = [b for b in counter_bounds(history, final=snap("east", {"a"}, views={"a": 1}))
                if b.counter == "views"]
    assert (views.low, views.high, views.within) == (1, 1, True)
    res = check_counters(history, final=final(snap("east", {"a"}, views={"a": 2})))
    assert res.passed is False


def test_retried_increments_count_once_by_their_merged_outcome():
    # x: info, info, ok -> one acked increment; y: info, fail -> one indeterminate increment.
    history = [*attempts("view", "x", [(T0, T0 + 1, "info"), (T0 + 2, T0 + 3, "info"),
                                       (T0 + 4, T0 + 5, "ok")], key="a"),
               *attempts("view", "y", [(T0, T0 + 1, "info"), (T0 + 2, T0 + 3, "fail")],
                         key="a")]
    (views,) = [b for b in counter_bounds(history, final=snap("east", {"a"}, views={"a": 1}))
                if b.counter == "views"]
    assert (views.acked, views.indeterminate, views.low, views.high) == (1, 1, 1, 2)
    for value, ok in ((0, False), (1, True), (2, True), (3, False)):
        res = check_counters(history, final=final(snap("east", {"a"}, views={"a": value})))
        assert res.passed is ok, value


def test_failed_increments_do_not_widen_the_bounds():
    history = increments("like", "a", 1, 0, 3)
    assert check_counters(history, final=final(snap("east", {"a"}, likes={"a": 1}))).passed
    assert not check_counters(history, final=final(snap("east", {"a"}, likes={"a": 2}))).passed


def test_video_without_increments_must_read_zero_unless_preexisting():
    history = increments("view", "a", 1, 0, 0)
    r = final(snap("east", {"a", "seed"}, views={"a": 1, "seed": 7}))
    res = check_counters(history, final=r)
    assert res.passed is False and "views of seed: final 7 outside [0, 0]" in res.findings[0]
    assert check_counters(history, final=r, preexisting=frozenset({"seed"})).passed is True


def test_preexisting_video_keeps_its_lower_bound_and_initial_read_gives_exact_bounds():
    history = increments("view", "seed", 3, 1, 0)
    r = final(snap("east", {"seed"}, views={"seed": 2}))
    assert check_counters(history, final=r, preexisting=frozenset({"seed"})).passed is False
    before = snap("east", {"seed"}, views={"seed": 10})
    exact = final(snap("east", {"seed"}, views={"seed": 13}))
    assert check_counters(history, final=exact, initial=before).passed is True
    over = final(snap("east", {"seed"}, views={"seed": 15}))
    assert check_counters(history, final=over, initial=before).passed is False
    assert check_counters(history, final=over, preexisting=frozenset({"seed"})).passed is True


def test_counter_of_a_video_missing_from_the_final_read_reads_zero():
    history = increments("view", "gone", 2, 0, 0)
    res = check_counters(history, final=final(snap("east", set())))
    assert res.passed is False and res.metrics["lost_increments"] == 2


def test_no_authoritative_read_means_unknown():
    res = check_counters(increments("view", "a", 1, 0, 0),
                         final=final(snap("east", reachable=False)))
    assert res.passed is None


# --- zero reads ---------------------------------------------------------------------------


def read(id: str, video: str, t: float, done: float, **seen: int) -> list[Op]:
    return write("read", id, t, done, "ok", key=video, store="west", **seen)


def test_zero_after_an_acked_increment_is_flagged():
    history = [*write("view", "v1", T0, T0 + 0.1, key="a"),
               *read("r1", "a", T0 + 0.5, T0 + 0.6, views=0, likes=0)]
    (z,) = zero_reads(history)
    assert (z.read_id, z.key, z.counter, z.acked_before, z.store) == ("r1", "a", "views", 1,
                                                                       "west")
    res = check_zero_reads(history)
    assert res.passed is False and res.metrics["zero_reads"] == 1
    assert "read r1 of a" in res.findings[0] and "saw counter views at 0" in res.findings[0]


def test_reads_that_are_correct_or_concurrent_are_not_flagged():
    history = [*write("view", "v1", T0, T0 + 0.1, key="a"),
               *write("like", "l1", T0 + 0.2, T0 + 1.0, key="a"),  # acked after r1's invoke
               *write("view", "v2", T0, T0 + 0.1, "info", key="b"),  # never acked
               *read("r1", "a", T0 + 0.5, T0 + 0.6, views=1, likes=0),
               *read("r2", "b", T0 + 0.5, T0 + 0.6, views=0)]
    assert zero_reads(history) == ()
    assert check_zero_reads(history).passed is True


def test_reads_count_only_acks_completed_before_their_invoke():
    history = [*write("like", "l1", T0, T0 + 1.0, key="a"),
               *read("early", "a", T0 + 0.5, T0 + 1.5, likes=0),
               *read("late", "a", T0 + 1.2, T0 + 1.5, likes=0)]
    assert [z.read_id for z in zero_reads(history)] == ["late"]


def test_retried_increment_counts_as_acked_from_its_first_ack():
    history = [*attempts("like", "l", [(T0, T0 + 1, "info"), (T0 + 2, T0 + 3, "ok"),
                                       (T0 + 4, T0 + 5, "ok")], key="a"),
               *read("before", "a", T0 + 2.5, T0 + 2.6, likes=0),
               *read("after", "a", T0 + 3.5, T0 + 3.6, likes=0)]
    assert [(z.read_id, z.acked_before) for z in zero_reads(history)] == [("after", 1)]


# --- zero reads in feed and search items, degraded reads ------------------------------------


ACKED = flatten([write("view", "v1", T0, T0 + 0.1, key="a"),
                 write("like", "l1", T0, T0 + 0.1, key="b"),
                 write("view", "v2", T0 + 2, T0 + 2.1, key="c")])  # acked after the reads


def test_each_item_of_a_feed_read_is_judged_like_a_stats_read():
    history = [*ACKED,
               *feed_read("f1", [("a", 0, 0), ("b", 4, 0), ("c", 0, 0), ("new", 0, 0)],
                          T0 + 1, T0 + 1.1, store="east")]
    got = [(z.read_id, z.key, z.counter, z.item, z.store) for z in zero_reads(history)]
    assert got == [("f1", "a", "views", True, "east"), ("f1", "b", "likes", True, "east")]
    res = check_zero_reads(history)
    assert res.passed is False and res.metrics["zero_reads"] == 2
    assert res.metrics["zero_read_keys"] == 2 and res.metrics["reads_judged"] == 1
    assert res.findings[0].startswith("read f1 (list item) of a invoked at")


def test_an_item_shown_twice_is_flagged_once_and_a_correct_feed_passes():
    twice = [*ACKED, *feed_read("f1", [("a", 0, 1), ("a", 0, 1)], T0 + 1, T0 + 1.1)]
    assert len(zero_reads(twice)) == 1
    good = [*ACKED, *feed_read("f2", [("a", 1, 0), ("b", 0, 1)], T0 + 1, T0 + 1.1),
            *feed_read("f3", [], T0 + 1, T0 + 1.1)]
    res = check_zero_reads(good)
    assert res.passed is True and res.metrics["reads_judged"] == 2


def test_degraded_reads_are_judged_by_default_and_skipped_when_asked():
    history = [*ACKED,
               *read("stale", "a", T0 + 1, T0 + 1.1, views=0, degraded=True),
               *feed_read("stale-feed", [("b", 0, 0)], T0 + 1, T0 + 1.1, degraded=True),
               *read("fresh", "a", T0 + 1, T0 + 1.1, views=0, degraded=False),
               *read("unknown", "a", T0 + 1, T0 + 1.1, views=0)]
    res = check_zero_reads(history)
    assert res.passed is False
    assert (res.metrics["zero_reads"], res.metrics["zero_reads_degraded"]) == (4, 2)
    assert (res.metrics["reads_judged"], res.metrics["reads_skipped_degraded"]) == (4, 0)
    assert res.summary.startswith("4 reads saw a counter at 0") and "2 of them degraded" in \
        res.summary
    fresh = check_zero_reads(history, include_degraded=False)
    assert fresh.passed is False  # a primary's read saying 0 is still wrong
    assert (fresh.metrics["zero_reads"], fresh.metrics["zero_reads_degraded"]) == (2, 0)
    assert (fresh.metrics["reads_judged"], fresh.metrics["reads_skipped_degraded"]) == (2, 2)
    assert [z.read_id for z in zero_reads(history, include_degraded=False)] == ["fresh",
                                                                                 "unknown"]
    only_stale = [*ACKED, *read("stale", "a", T0 + 1, T0 + 1.1, views=0, degraded=True)]
    assert check_zero_reads(only_stale, include_degraded=False).passed is True
    assert check_zero_reads(only_stale).passed is False


def test_keys_written_but_never_counted_are_not_counters():
    """A store holding plain written keys beside its counters (Redis: SET k:* next to INCR c:*)
    checks only the counters, and its summary says how many increments were lost."""
    history = [Op("p1", "invoke", "incr", "i1", T0, key="c:1", counter="n"),
               Op("p1", "ok", "incr", "i1", T0 + 0.01, key="c:1", counter="n"),
               Op("p1", "invoke", "incr", "i2", T0 + 0.1, key="c:1", counter="n"),
               Op("p1", "ok", "incr", "i2", T0 + 0.11, key="c:1", counter="n")]
    store = StoreSnapshot(name="east", reachable=True, role="primary",
                          keys=frozenset({"k:a", "k:b", "c:1"}), counters={"c:1": {"n": 0}})
    res = check_counters(history, final=FinalRead(primary="east", stores=(store,)))
    assert res.passed is False
    assert res.metrics["counters_checked"] == 1 and res.metrics["lost_increments"] == 2
    assert "1 of 1 counters out of bounds (1 below: 2 increments lost" in res.summary
