"""The time-based measurements on a `RequestFrame`: vectorised twins of the list functions.

`drills.checks.rto` and `drills.checks.buckets` define RTO and bucket series on lists of
`Request` (readable loops: the definitions). On a long game day those loops over millions of
objects take minutes, so for a `RequestFrame` the same quantities are computed here with numpy,
in the same floating-point operations in the same order, so the results are identical (the
tests compare both on the same records). Pure: no I/O.

`ClassColumns` is one class's requests as `drills.checks.rto.measure_rto` sees them for one
fault: availability applied (a 404 is an answer), the next fault's in-flight victims left out,
sorted by start time.
"""

from __future__ import annotations

import math

import numpy as np

from drills.checks.buckets import EDGE_S, Bucket, Series, complete_buckets
from drills.checks.frame import BOOL, F64, RequestFrame
from drills.checks.silence import STALL_FACTOR, STALL_MIN_S, longest_empty_run


class ClassColumns:
    """One class's requests for one fault's measurement (module docstring)."""

    def __init__(self, t: F64, duration: F64, ok: BOOL) -> None:
        self.t, self.duration, self.ok = t, duration, ok

    @classmethod
    def of(cls, frame: RequestFrame, *, op: str, span_end: float, end: float) -> ClassColumns:
        """Class ``op`` of ``frame`` as `drills.checks.rto.measure_rto` filters it."""
        sel = frame.op == frame.code(op)
        t, d, ok = frame.t[sel], frame.duration[sel], frame.ok[sel]
        if not span_end >= end:  # a failure in flight at the next injection is its victim
            keep = ok | ~((t < span_end) & (span_end <= t + d))
            t, d, ok = t[keep], d[keep], ok[keep]
            status = frame.status[sel][keep]
        else:
            status = frame.status[sel]
        return cls(t, d, ok | (status == 404))

    def first_error_success(self, *, t_f: float, span_end: float
                            ) -> tuple[float | None, float | None]:
        """As `drills.checks.rto._first_error_success`."""
        t, ok = self.t, self.ok
        lo = int(np.searchsorted(t, t_f - EDGE_S, side="left"))
        hi = int(np.searchsorted(t, span_end - EDGE_S, side="left"))
        bad = np.flatnonzero(~ok[lo:hi])
        if not bad.size:
            return None, None
        i = lo + int(bad[0])
        first_err = float(t[i])
        after = np.flatnonzero(ok[i + 1:] & (t[i + 1:] > first_err))
        if not after.size:
            return first_err - t_f, None
        return first_err - t_f, float(t[i + 1 + int(after[0])]) - t_f

    def _window(self, start: float, end: float) -> BOOL:
        return (start - EDGE_S <= self.t) & (self.t < end - EDGE_S)

    def baseline(self, *, start: float, end: float, bucket_s: float,
                 min_bucket_requests: float) -> tuple[float, float, float] | None:
        """As `drills.checks.rto._baseline`."""
        base = self._window(start, end)
        n = int(np.count_nonzero(base))
        if not n:
            return None
        per_bucket = n * bucket_s / (end - start)
        widen = max(1, math.ceil(min_bucket_requests / per_bucket - 1e-9))
        return int(np.count_nonzero(self.ok[base])) / n, per_bucket * widen, bucket_s * widen

    def tally(self, *, origin: float, width: float, n: int,
              where: BOOL | None = None) -> tuple[list[int], list[int]]:
        """As `drills.checks.buckets.tally` (over the requests ``where`` selects, or all)."""
        t, ok = (self.t, self.ok) if where is None else (self.t[where], self.ok[where])
        return tally_columns(t, ok, origin=origin, width=width, n=n)

    def baseline_quiet(self, *, start: float, end: float, width: float) -> int:
        """As `drills.checks.silence.baseline_quiet`."""
        n = complete_buckets(origin=start, end=end, width=width)
        counts, _ = self.tally(origin=start, width=width, n=n, where=self._window(start, end))
        return longest_empty_run(counts)

    def stall(self, *, t_f: float, span_end: float, revert: float | None,
              baseline: tuple[float, float], near: float, next_fault: bool = False
              ) -> float | None:
        """As `drills.checks.silence.stall`."""
        done = np.sort(self.t[self.ok] + self.duration[self.ok])
        a, b = done[:-1], done[1:]
        gap = b - a
        base = (baseline[0] <= a) & (b < baseline[1])
        longest = float(gap[base].max()) if base.any() else 0.0
        allowed = max(STALL_MIN_S, STALL_FACTOR * longest)
        cand = (gap > allowed) & (b > t_f) & (a < span_end)
        if next_fault:
            cand &= ~(b > span_end)
        worst: float | None = None
        for x, y in zip(a[cand].tolist(), b[cand].tolist(), strict=True):
            for event in (t_f, revert):
                if event is not None and event - allowed <= x <= event + near:
                    worst = max(worst or 0.0, y - event)
                    break
        return worst


def tally_columns(t: F64, ok: BOOL, *, origin: float, width: float, n: int
                  ) -> tuple[list[int], list[int]]:
    """Counts and successes in buckets ``0..n-1`` (as `drills.checks.buckets.tally`)."""
    if n <= 0:
        return [], []
    k = np.floor((t - origin + EDGE_S) / width)
    inside = (k >= 0) & (k < n)
    idx = k[inside].astype(np.int64)
    counts = np.bincount(idx, minlength=n)
    oks = np.bincount(idx[ok[inside]], minlength=n)
    return counts.tolist(), oks.tolist()


def frame_series(frame: RequestFrame, *, op: str, bucket_s: float, origin: float,
                 end: float) -> Series:
    """As `drills.checks.buckets.bucket_series` on the frame (origin and end given)."""
    n = max(0, math.floor((end - origin + EDGE_S) / bucket_s) + 1)
    sel = frame.op == frame.code(op)
    t, d, ok = frame.t[sel], frame.duration[sel], frame.ok[sel]
    k = np.floor((t - origin + EDGE_S) / bucket_s)
    inside = (k >= 0) & (k < n)
    idx, d, ok = k[inside].astype(np.int64), d[inside], ok[inside]
    counts = np.bincount(idx, minlength=n) if n else np.zeros(0, dtype=np.int64)
    oks = np.bincount(idx[ok], minlength=n) if n else np.zeros(0, dtype=np.int64)
    # nearest-rank p95 per bucket: sort by (bucket, duration), pick rank ceil(0.95 m) - 1
    order = np.lexsort((d, idx))
    d_sorted = d[order]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])) if n else counts
    buckets = []
    for j, (c, o) in enumerate(zip(counts.tolist(), oks.tolist(), strict=True)):
        p95 = None if not c else float(d_sorted[int(starts[j]) + max(0, math.ceil(0.95 * c) - 1)])
        buckets.append(Bucket(t=origin + j * bucket_s, count=c, ok=o,
                              rate=o / c if c else None, p95_s=p95))
    return Series(op=op, bucket_s=bucket_s, origin=origin, buckets=tuple(buckets))
