"""When a load user sends its next request: constant throughput, faster inside write bursts.

Pure (no Locust, no clock): the locustfile passes the times in, so the schedule is testable
on its own. All times are Unix seconds on one clock (``time.time()`` in the locustfile).

A user aims at ``rate`` task runs per second, as Locust's ``constant_throughput`` does: after
a task that started at ``last_start`` and ended ``now``, it waits
``max(0, 1 / rate - (now - last_start))``, so slow answers shorten the wait instead of
lowering the rate (until a task alone takes longer than the interval). `Bursts` raise that
rate by ``multiplier`` while ``now`` lies within ``width_s / 2`` of ``t0 + offset`` for any
offset (edges included): the load's start ``t0`` plus a scheduled injection's offset, so
more writes are in flight exactly when a fault lands.
"""

from __future__ import annotations

from dataclasses import dataclass

RETRY_BACKOFF_S = 0.1
RETRY_BACKOFF_MAX_S = 0.5


@dataclass(frozen=True, slots=True)
class Bursts:
    """Windows of faster pacing: ``width_s`` wide, centred on ``t0 + offset`` per offset.

    ``multiplier`` 1 (or no offsets) means no burst at all. Values are not validated here
    (see `drills.load.records.risk_problems`).
    """

    offsets: tuple[float, ...] = ()
    multiplier: float = 1.0
    width_s: float = 2.0

    @property
    def inert(self) -> bool:
        """True when these bursts never change the pace."""
        return not self.offsets or self.multiplier == 1.0

    def active(self, t: float, t0: float) -> bool:
        """True when ``t`` lies within ``width_s / 2`` of ``t0 + b`` for some offset ``b``."""
        half = self.width_s / 2.0
        return not self.inert and any(abs(t - (t0 + b)) <= half for b in self.offsets)

    def next_window(self, t: float, t0: float) -> float | None:
        """The start of the earliest window that begins after ``t``, None if there is none."""
        half = self.width_s / 2.0
        starts = [t0 + b - half for b in self.offsets if t0 + b - half > t]
        return min(starts) if starts and not self.inert else None


def wait_s(*, last_start: float, now: float, rate: float, t0: float = 0.0,
           bursts: Bursts = Bursts()) -> float:
    """Seconds to wait before the next task, for a task that started ``last_start``, ended
    ``now``, at ``rate`` runs/s (times ``bursts.multiplier`` inside a burst window).

    A wait that would sleep past the start of a burst window ends at that start (but not
    sooner than the burst's own interval allows), so a slow user joins a burst on time.
    """
    fast = rate * bursts.multiplier
    if bursts.active(now, t0):
        return max(0.0, 1.0 / fast - (now - last_start))
    target = last_start + 1.0 / rate
    window = bursts.next_window(now, t0)
    if window is not None and window < target:
        target = max(window, last_start + 1.0 / fast)
    return max(0.0, target - now)


def backoff_s(attempt: int) -> float:
    """Seconds a client waits before resending after attempt number ``attempt`` (1, 2, ...)
    ended indeterminate: 0.1 s per attempt, at most 0.5 s."""
    return min(RETRY_BACKOFF_S * attempt, RETRY_BACKOFF_MAX_S)
