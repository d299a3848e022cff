"""Analysis parameters shared by the time-based checks (buckets, RTO).

One frozen record, validated on construction, so a drill file's ``analysis:`` section (parsed
by the engine) and the defaults travel the same way. Raises `SpecError` for values that would
make the measurements meaningless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from drills.errors import SpecError


@dataclass(frozen=True, slots=True)
class AnalysisParams:
    """How requests are bucketed and what counts as recovered.

    - ``bucket_s``: bucket width in seconds (requests are grouped by start time).
    - ``hold_s``: a recovery must hold this long: every bucket of ``[t, t + hold_s)`` is good.
    - ``rho``: a good bucket carries at least ``rho`` x the baseline requests per bucket (a trickle
      is not recovery).
    - ``epsilon``: slack under the baseline success rate in the threshold
      ``theta = min(objective, baseline_rate - epsilon)``.
    - ``min_bucket_requests``: the least number of requests the baseline must put in a bucket on
      average. A class slower than that is measured on wider buckets (the smallest multiple of
      ``bucket_s`` that reaches it), because at a few requests per bucket empty buckets and
      throughput dips are noise, not outages. ``0`` keeps ``bucket_s`` for every class.
    - ``stragglers``: how many failed requests a bucket that also has successes may hold
      without counting as an outage (its success rate must be under the threshold *and* it
      must hold more failures than this). A bucket whose requests all failed is always below.
      ``0`` (the default) judges by the success rate alone.
    - ``failback_s``: a *failback* outage (one the revert causes: a zone back on, a link
      healed) must begin within this long of the revert, or of the injection outage's
      recovery when that came later. A dip later than that is not this fault's doing: in a
      ten-minute settle at 1,000 req/s, a throughput dip 400 s after the revert read as a
      400 s RTO otherwise. Such a dip still shows in the run's plots and error counts.

    Defaults, chosen together: with ε = 0.05 and at least 20 baseline requests per bucket, a
    bucket at baseline throughput counts as an outage only when about two of its ~20 requests
    fail — one straggling timeout on a loaded machine is noise, not an outage, while any real
    outage (most requests failing) is far below the threshold. A bucket that a throughput dip
    has thinned to a handful of requests is judged strictly by default (one failure among ten
    is an outage: the dip is usually the fault's doing); ``stragglers: 1`` forgives it.

    Raises `SpecError` (field ``analysis.<name>``) for a non-positive bucket, hold or failback
    window, a ``rho`` or ``epsilon`` outside [0, 1], or a negative ``min_bucket_requests`` or
    ``stragglers``.
    """

    bucket_s: float = 0.25
    hold_s: float = 3.0
    rho: float = 0.5
    epsilon: float = 0.05
    min_bucket_requests: float = 20.0
    stragglers: int = 0
    failback_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("bucket_s", "hold_s", "failback_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise SpecError(f"must be a positive number of seconds, got {value!r}",
                                field=f"analysis.{name}")
        for name in ("rho", "epsilon"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise SpecError(f"must be within [0, 1], got {value!r}", field=f"analysis.{name}")
        if not (math.isfinite(self.min_bucket_requests) and self.min_bucket_requests >= 0):
            raise SpecError(f"must be >= 0, got {self.min_bucket_requests!r}",
                            field="analysis.min_bucket_requests")
        if isinstance(self.stragglers, bool) or not isinstance(self.stragglers, int) \
                or self.stragglers < 0:
            raise SpecError(f"must be a whole number >= 0, got {self.stragglers!r}",
                            field="analysis.stragglers")
