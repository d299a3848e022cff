"""drills.load.keys: the bounded set of known keys and its never-evicted hot set."""

from __future__ import annotations

import random
from collections import Counter

from drills.load.keys import KnownKeys


def test_nothing_known_picks_nothing() -> None:
    assert KnownKeys(hot=3).pick(random.Random(1), 1.0) is None


def test_the_oldest_is_evicted_but_the_hot_set_stays() -> None:
    known = KnownKeys(limit=3, hot=2)
    for key in "abcdef":
        known.remember(key)
    assert known.hot == ("a", "b")
    assert len(known) == 5  # recent d, e, f, and the hot a, b
    rng = random.Random(7)
    assert set(known.pick(rng, 0.0) for _ in range(300)) == {"d", "e", "f"}
    known.remember("a")  # learned again: it is recent again (d goes), still hot once
    assert known.hot == ("a", "b") and len(known) == 4
    seen = Counter(known.pick(rng, 0.0) for _ in range(600))
    assert set(seen) == {"e", "f", "a"}  # the recent three, uniformly
    assert min(seen.values()) > 150


def test_hot_share_sends_that_share_to_the_hot_set() -> None:
    known = KnownKeys(limit=100, hot=2)
    for n in range(50):
        known.remember(f"v{n}")
    rng = random.Random(3)
    picks = [known.pick(rng, 0.7) for _ in range(4000)]
    hot = sum(p in ("v0", "v1") for p in picks) / len(picks)
    # 0.7 directly, plus the uniform pick landing on a hot one (2 of 50) the other 30 %
    assert abs(hot - (0.7 + 0.3 * 2 / 50)) < 0.03


def test_without_a_hot_set_the_share_is_ignored() -> None:
    known = KnownKeys(limit=10, hot=0)
    known.remember("x")
    assert known.hot == ()
    assert known.pick(random.Random(0), 1.0) == "x"
