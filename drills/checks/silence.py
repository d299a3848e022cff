"""Silences: the evidence of an outage that buckets of success rates can miss.

Two pure measurements used by `drills.checks.rto`:

- **Stalls**: the pauses between successful answers of a class. A class measured on widened
  buckets, or whose requests wait a stall out and then succeed, can show no bucket below its
  threshold; a pause much longer than any of the baseline's, beginning near the fault, shows it.
- **Quiet baselines**: clients in lockstep send in waves, so a baseline may hold empty buckets.
  Then an empty bucket is their rhythm, not an outage; only a run of empty buckets longer than
  the baseline's longest is.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from drills.checks.buckets import EDGE_S, complete_buckets, tally
from drills.model import Request

#: A pause between two successful answers of a class longer than this many times the
#: baseline's longest pause (and than `STALL_MIN_S`), beginning near the fault's injection or
#: revert, is a stall.
STALL_FACTOR = 2.0
STALL_MIN_S = 1.0


def _ok_gaps(reqs: Sequence[Request]) -> list[tuple[float, float]]:
    """(previous, next) completion times of successive successful answers, in time order."""
    done = sorted(r.t + r.duration for r in reqs if r.ok)
    return list(itertools.pairwise(done))


def stall(reqs: Sequence[Request], *, t_f: float, span_end: float, revert: float | None,
          baseline: tuple[float, float], near: float, next_fault: bool = False) -> float | None:
    """The recovery time of the longest stall after the fault, or None.

    Buckets can hide a stall: a class measured on widened buckets, or whose requests wait out a
    stall and then succeed, shows no bucket below its threshold. So the pauses between
    successful answers are evidence too: a pause longer than `STALL_FACTOR` x the longest
    pause of the ``baseline`` window (and `STALL_MIN_S`) that begins within ``near`` seconds
    of the injection (or, for a failback stall, of the ``revert``) and ends after ``t_f`` is
    a stall - a pause anywhere else is the load's own noise (a slow class has long pauses by
    chance). Its recovery time is its end minus ``t_f`` (minus the revert, for a failback
    stall). The longest wins. With
    ``next_fault`` (``span_end`` is the next fault's injection) a pause that spans it is the
    next fault's.
    """
    base = [g for g in _ok_gaps(reqs) if baseline[0] <= g[0] and g[1] < baseline[1]]
    allowed = max(STALL_MIN_S, STALL_FACTOR * max((b - a for a, b in base), default=0.0))
    worst: float | None = None
    for a, b in _ok_gaps(reqs):
        if b - a <= allowed or b <= t_f or a >= span_end or (next_fault and b > span_end):
            continue
        for event in (t_f, revert):
            if event is not None and event - allowed <= a <= event + near:
                worst = max(worst or 0.0, b - event)
                break
    return worst


def longest_empty_run(counts: Sequence[int]) -> int:
    """The most consecutive empty buckets in ``counts``."""
    longest = run = 0
    for c in counts:
        run = run + 1 if c == 0 else 0
        longest = max(longest, run)
    return longest


def baseline_quiet(reqs: Sequence[Request], *, start: float, end: float, width: float) -> int:
    """The longest run of empty buckets of ``width`` in the baseline (0: none). Clients in
    lockstep send in waves, so gaps that long are their rhythm, not an outage."""
    n = complete_buckets(origin=start, end=end, width=width)
    counts, _ = tally([r for r in reqs if start - EDGE_S <= r.t < end - EDGE_S],
                      origin=start, width=width, n=n)
    return longest_empty_run(counts)


def silent(counts: Sequence[int], *, allowed: int) -> list[bool]:
    """Per bucket: empty, in a run of empty buckets longer than ``allowed``."""
    out = [False] * len(counts)
    k = 0
    while k < len(counts):
        if counts[k]:
            k += 1
            continue
        j = k
        while j < len(counts) and not counts[j]:
            j += 1
        if j - k > allowed:
            out[k:j] = [True] * (j - k)
        k = j
    return out
