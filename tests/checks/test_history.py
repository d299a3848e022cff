"""Pairing a history into completions, and merging attempts per op id."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from drills.checks.history import by_id, completions, outcomes
from drills.model import Op

from ._build import T0, flatten, write


def test_pairs_each_invoke_with_its_completion_in_invoke_order():
    history = flatten([
        write("upload", "a", T0 + 1, T0 + 2, "ok", store="east", epoch=1),
        write("upload", "b", T0 + 1.5, T0 + 1.6, "fail", error="400"),
        write("view", "c", T0 + 1.7, T0 + 3, "info", key="a"),
    ])
    history.sort(key=lambda o: o.time)  # interleaved as a real history would be
    got = completions(history)
    assert [(c.id, c.type, c.invoked_at, c.completed_at) for c in got] == [
        ("a", "ok", T0 + 1, T0 + 2),
        ("b", "fail", T0 + 1.5, T0 + 1.6),
        ("c", "info", T0 + 1.7, T0 + 3),
    ]
    assert (got[0].store, got[0].epoch, got[0].key) == ("east", 1, "a")
    assert got[1].error == "400"
    assert got[2].key == "a"


def test_invoke_without_completion_is_indeterminate():
    (c,) = completions(write("like", "x", T0, None, key="v"))
    assert (c.type, c.completed_at, c.invoked_at, c.key) == ("info", None, T0, "v")


def test_reinvoke_before_completion_leaves_the_first_attempt_indeterminate():
    history = [*write("view", "x", T0, None, key="v"), *write("view", "x", T0 + 1, T0 + 2)]
    first, second = completions(history)
    assert (first.type, first.completed_at) == ("info", None)
    assert (second.type, second.invoked_at, second.completed_at) == ("ok", T0 + 1, T0 + 2)


def test_orphan_completion_is_kept_without_invoke_time():
    orphan = Op(process="p", type="ok", f="write", id="u", time=T0, key="u")
    (c,) = completions([orphan])
    assert (c.type, c.invoked_at, c.completed_at) == ("ok", None, T0)


def test_by_id_precedence_ok_over_info_over_fail():
    def merged(*outs: str) -> str:
        history = flatten(write("view", "x", T0 + i, T0 + i + 0.5, o, key="v")
                          for i, o in enumerate(outs))
        return outcomes(history)["x"].type

    assert merged("fail", "ok") == "ok"
    assert merged("ok", "fail") == "ok"
    assert merged("info", "fail") == "info"  # a later refusal cannot undo an unknown attempt
    assert merged("fail", "info") == "info"
    assert merged("fail", "fail") == "fail"
    assert merged("info", "ok", "info") == "ok"


def test_by_id_keeps_first_ack_time_and_earliest_invoke():
    history = flatten([write("like", "x", T0, T0 + 1, "info", key="v"),
                       write("like", "x", T0 + 2, T0 + 3, "ok", key="v"),
                       write("like", "x", T0 + 4, T0 + 5, "ok", key="v")])
    c = outcomes(history)["x"]
    assert (c.type, c.invoked_at, c.completed_at) == ("ok", T0, T0 + 3)


OUTCOME = st.sampled_from(["ok", "fail", "info", None])


@given(st.lists(st.lists(OUTCOME, min_size=1, max_size=4), min_size=1, max_size=12),
       st.randoms(use_true_random=False))
def test_pairing_matches_a_model_on_random_interleavings(attempts, rnd):
    """Each id's attempts, interleaved with other ids', pair up and merge by the rules."""
    per_id = []
    for n, outs in enumerate(attempts):
        ops = []
        for k, o in enumerate(outs):
            t = T0 + n + k * 0.01
            ops += write("view", f"op{n}", t, None if o is None else t + 0.005,
                         o or "ok", key="v")
        per_id.append(ops)
    history: list[Op] = []
    queues = [list(ops) for ops in per_id]
    while any(queues):  # random interleaving that keeps each id's own order
        q = rnd.choice([q for q in queues if q])
        history.append(q.pop(0))
    got = completions(history)
    assert len(got) == sum(len(outs) for outs in attempts)
    merged = by_id(got)
    for n, outs in enumerate(attempts):
        types = ["info" if o is None else o for o in outs]
        want = "ok" if "ok" in types else "info" if "info" in types else "fail"
        assert merged[f"op{n}"].type == want
        assert merged[f"op{n}"].invoked_at == T0 + n


def test_merged_gives_by_ids_outcomes_in_its_order() -> None:
    """`merged` (no mapping of every id) equals ``by_id(...).values()`` on attempts with
    retried ids, ids completed several times and ids whose hashes collide (CPython hashes
    -1 and -2 alike)."""
    import random

    from drills.checks.history import Completion, merged

    assert hash(-1) == hash(-2)
    rng = random.Random(5)
    for trial in range(200):
        attempts = [
            Completion(id=rng.choice(["a", "b", "c", "d", -1, -2, f"u{k}"]),  # type: ignore[arg-type]
                       f="incr", process="p", type=rng.choice(["ok", "fail", "info"]),
                       invoked_at=rng.choice([None, float(k)]), completed_at=float(k) + 0.5,
                       key=rng.choice([None, "k1", "k2"]), counter="views")
            for k in range(rng.randint(0, 30))]
        assert list(merged(attempts)) == list(by_id(attempts).values()), trial
