"""Group requests into time buckets per operation class (for RTO, plots and the live display).

A bucket ``k`` of a grid with origin ``o`` and width ``w`` holds the requests whose *start*
time ``t`` lies in ``[o + k*w, o + (k+1)*w)``. Success rate ``s = ok / count``; an empty bucket
has no rate (None), never a made-up 0 or 1.

Wall-clock floats near 1.7e9 carry ~0.2 us of rounding, so a start within `EDGE_S` (10 us)
before a boundary is counted in the next bucket; no real clock resolves finer than that.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from drills.errors import SpecError
from drills.model import Request, classes_of

#: Tolerance (s) on bucket boundaries, see the module docstring.
EDGE_S = 1e-5


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bucket of one class: start time, requests, successes, success rate, p95 latency.

    ``rate`` and ``p95_s`` are None when the bucket is empty. ``p95_s`` is the nearest-rank
    95th percentile of ``duration`` over every request of the bucket, failed ones included (a
    timeout is latency the user felt).
    """

    t: float
    count: int
    ok: int
    rate: float | None
    p95_s: float | None


@dataclass(frozen=True, slots=True)
class Series:
    """The bucket series of one operation class on a grid (``origin``, ``bucket_s``)."""

    op: str
    bucket_s: float
    origin: float
    buckets: tuple[Bucket, ...]


def bucket_index(t: float, *, origin: float, width: float) -> int:
    """Index of the bucket holding start time ``t`` (negative before ``origin``)."""
    return math.floor((t - origin + EDGE_S) / width)


def complete_buckets(*, origin: float, end: float, width: float) -> int:
    """How many whole buckets fit in ``[origin, end)`` (0 if ``end <= origin``)."""
    return max(0, math.floor((end - origin + EDGE_S) / width))


def tally(
    requests: Iterable[Request], *, origin: float, width: float, n: int
) -> tuple[list[int], list[int]]:
    """Count requests and successes in buckets ``0..n-1`` of the grid; others are ignored.

    Returns two new lists of length ``n`` (counts, oks). The caller filters by class.
    """
    counts = [0] * n
    oks = [0] * n
    for r in requests:
        k = bucket_index(r.t, origin=origin, width=width)
        if 0 <= k < n:
            counts[k] += 1
            oks[k] += r.ok
    return counts, oks


def p95(durations: Sequence[float]) -> float | None:
    """Nearest-rank 95th percentile, or None for no values."""
    if not durations:
        return None
    ordered = sorted(durations)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def bucket_series(
    requests: Sequence[Request],
    *,
    op: str,
    bucket_s: float = 0.25,
    origin: float | None = None,
    end: float | None = None,
) -> Series:
    """The bucket series of class ``op``: every bucket from ``origin`` to the one holding ``end``.

    ``origin`` defaults to the earliest start of *all* ``requests`` and ``end`` to the latest,
    so every class series built from one record shares one grid (and the last bucket may be
    partial: it is shown, not judged). Empty buckets are included (count 0, rate None); no
    requests and no ``end`` give no buckets.
    Raises `SpecError` for a non-positive ``bucket_s``.
    """
    if not bucket_s > 0:
        raise SpecError(f"must be positive, got {bucket_s!r}", field="analysis.bucket_s")
    if origin is None:
        origin = min((r.t for r in requests), default=0.0)
    if end is None:
        end = max((r.t for r in requests), default=origin - bucket_s)
    n = max(0, bucket_index(end, origin=origin, width=bucket_s) + 1)
    durations: list[list[float]] = [[] for _ in range(n)]
    oks = [0] * n
    for r in requests:
        if r.op != op:
            continue
        k = bucket_index(r.t, origin=origin, width=bucket_s)
        if 0 <= k < n:
            durations[k].append(r.duration)
            oks[k] += r.ok
    buckets = tuple(
        Bucket(
            t=origin + k * bucket_s,
            count=len(durations[k]),
            ok=oks[k],
            rate=oks[k] / len(durations[k]) if durations[k] else None,
            p95_s=p95(durations[k]),
        )
        for k in range(n)
    )
    return Series(op=op, bucket_s=bucket_s, origin=origin, buckets=buckets)


def series_by_class(
    requests: Sequence[Request],
    *,
    bucket_s: float = 0.25,
    origin: float | None = None,
    end: float | None = None,
    classes: Sequence[str] | None = None,
) -> tuple[Series, ...]:
    """One `bucket_series` per class of ``classes``, all on the same grid (same defaults).

    ``classes`` None or empty: the classes of ``requests`` in first-seen order."""
    if origin is None:
        origin = min((r.t for r in requests), default=0.0)
    if end is None:
        end = max((r.t for r in requests), default=origin - bucket_s)
    return tuple(
        bucket_series(requests, op=op, bucket_s=bucket_s, origin=origin, end=end)
        for op in classes_of(requests, classes)
    )
