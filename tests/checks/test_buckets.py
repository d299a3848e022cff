"""Bucket series per class: counts, success rates, p95 latency, empty buckets, boundaries."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drills.checks.buckets import bucket_series, p95, series_by_class
from drills.errors import SpecError
from drills.model import Request

from ._build import T0


def req(dt: float, op: str = "feed", ok: bool = True, duration: float = 0.01) -> Request:
    return Request(t=T0 + dt, duration=duration, op=op, ok=ok)


def test_counts_rates_and_latency_per_bucket():
    reqs = [req(0.01), req(0.10, ok=False, duration=1.5), req(0.20),
            req(0.60, duration=0.3), req(0.70, op="upload")]
    s = bucket_series(reqs, op="feed", bucket_s=0.25)
    assert s.origin == T0 + 0.01
    assert [(b.count, b.ok) for b in s.buckets] == [(3, 2), (0, 0), (1, 1)]
    first, empty, last = s.buckets
    assert first.rate == pytest.approx(2 / 3) and first.p95_s == 1.5
    assert empty.rate is None and empty.p95_s is None  # never a made-up 0 or 1
    assert last.rate == 1.0 and last.t == pytest.approx(T0 + 0.51)


def test_a_start_on_a_boundary_belongs_to_the_next_bucket_despite_float_rounding():
    # T0 + 0.1 * k is not exactly representable next to 1.7e9; it must still land in bucket k.
    reqs = [req(0.1 * k) for k in range(12)]
    s = bucket_series(reqs, op="feed", bucket_s=0.1)
    assert [b.count for b in s.buckets] == [1] * 12


def test_series_by_class_share_one_grid_and_keep_classes_apart():
    reqs = [req(0.0, op="feed"), req(1.0, op="upload"), req(1.1, op="upload", ok=False)]
    feed, upload = series_by_class(reqs, bucket_s=0.5, classes=("feed", "upload"))
    assert feed.origin == upload.origin == T0
    assert len(feed.buckets) == len(upload.buckets) == 3
    assert [b.count for b in feed.buckets] == [1, 0, 0]
    assert [(b.count, b.ok) for b in upload.buckets] == [(0, 0), (0, 0), (2, 1)]


def test_no_requests_gives_an_empty_series_and_bad_width_is_refused():
    assert bucket_series([], op="feed").buckets == ()
    assert len(bucket_series([], op="feed", origin=T0, end=T0 + 1).buckets) == 5
    with pytest.raises(SpecError):
        bucket_series([req(0)], op="feed", bucket_s=0)


def test_p95_is_nearest_rank():
    assert p95([]) is None
    assert p95([3.0]) == 3.0
    assert p95([float(i) for i in range(1, 101)]) == 95.0
    assert p95([float(i) for i in range(1, 21)]) == 19.0


@given(st.lists(st.tuples(st.floats(0, 20, allow_nan=False), st.booleans(),
                          st.sampled_from(["feed", "view"])), max_size=200),
       st.sampled_from([0.1, 0.25, 0.5, 1.0]))
def test_buckets_agree_with_brute_force(raw, width):
    reqs = [Request(t=T0 + dt, duration=0.01, op=op, ok=ok) for dt, ok, op in raw]
    s = bucket_series(reqs, op="feed", bucket_s=width, origin=T0, end=T0 + 20)
    assert sum(b.count for b in s.buckets) == sum(op == "feed" for _, _, op in raw)
    for k, b in enumerate(s.buckets):
        inside = [r for r in reqs if r.op == "feed"
                  and math.floor((r.t - T0 + 1e-5) / width) == k]
        assert (b.count, b.ok) == (len(inside), sum(r.ok for r in inside))
        assert b.rate == (b.ok / b.count if b.count else None)
