"""drills.load.pacing: constant throughput, burst windows and their edges, retry backoff."""

from __future__ import annotations

import pytest

from drills.load.pacing import Bursts, backoff_s, wait_s

T0 = 1000.0
BURST = Bursts(offsets=(10.0, 30.0), multiplier=4.0, width_s=2.0)  # windows [9, 11], [29, 31]


def test_constant_throughput_subtracts_the_task_time() -> None:
    assert wait_s(last_start=5.0, now=5.0, rate=2.0) == 0.5
    assert wait_s(last_start=5.0, now=5.2, rate=2.0) == pytest.approx(0.3)
    assert wait_s(last_start=5.0, now=5.9, rate=2.0) == 0.0  # a slow task: no wait, never < 0


@pytest.mark.parametrize("bursts", [Bursts(), Bursts(offsets=(10.0,), multiplier=1.0),
                                    Bursts(offsets=(), multiplier=5.0)])
def test_multiplier_one_or_no_offsets_changes_nothing(bursts: Bursts) -> None:
    assert bursts.inert
    for now in (T0 + 8.9, T0 + 9.0, T0 + 10.0, T0 + 10.5):
        assert not bursts.active(now, T0)
        assert wait_s(last_start=now - 0.1, now=now, rate=2.0, t0=T0, bursts=bursts) == \
            wait_s(last_start=now - 0.1, now=now, rate=2.0)


@pytest.mark.parametrize(
    ("offset", "inside"),
    [(8.99, False), (9.0, True), (10.0, True), (11.0, True), (11.01, False),
     (28.5, False), (29.5, True), (20.0, False)],
)
def test_windows_are_centred_on_t0_plus_offset_edges_included(offset: float,
                                                              inside: bool) -> None:
    assert BURST.active(T0 + offset, T0) is inside


@pytest.mark.parametrize(("offset", "interval"),
                         [(9.0, 0.125), (10.0, 0.125), (11.0, 0.125), (11.01, 0.5), (20.0, 0.5),
                          (5.0, 0.5)])
def test_the_pace_inside_a_window_is_multiplied(offset: float, interval: float) -> None:
    now = T0 + offset  # a task that took no time: the wait is the interval in force
    assert wait_s(last_start=now, now=now, rate=2.0, t0=T0, bursts=BURST) == \
        pytest.approx(interval)


def test_the_window_moves_with_t0() -> None:
    assert BURST.active(T0 + 10.0, T0)
    assert not BURST.active(T0 + 10.0, T0 + 5.0)
    assert BURST.active(T0 + 15.0, T0 + 5.0)


def test_a_wait_that_would_cross_a_window_start_ends_there() -> None:
    rate = 1.0  # a 1 s interval; the window opens at T0 + 9
    # task started at 8.7, ended at 8.8: would wake at 9.7, wakes at 9.0 instead
    assert wait_s(last_start=T0 + 8.7, now=T0 + 8.8, rate=rate, t0=T0,
                  bursts=BURST) == pytest.approx(0.2)
    # ... but not before the burst's own interval (0.25 s) since the task started
    assert wait_s(last_start=T0 + 8.95, now=T0 + 8.96, rate=rate, t0=T0,
                  bursts=BURST) == pytest.approx(0.24)
    # a window that opens after the normal wake-up does not shorten the wait
    assert wait_s(last_start=T0 + 7.0, now=T0 + 7.5, rate=rate, t0=T0,
                  bursts=BURST) == pytest.approx(0.5)


def test_burst_raises_the_rate_of_a_simulated_user() -> None:
    """A user with instant tasks run through 40 s: 4x the tasks inside the windows."""
    rate, now = 2.0, T0
    starts: list[float] = []
    while now < T0 + 40.0:
        starts.append(now)
        now += wait_s(last_start=now, now=now, rate=rate, t0=T0, bursts=BURST)
    inside = sum(BURST.active(t, T0) for t in starts)
    per_second_inside = inside / 4.0
    per_second_outside = (len(starts) - inside) / 36.0
    assert per_second_outside == pytest.approx(rate, rel=0.05)
    assert per_second_inside == pytest.approx(rate * 4.0, rel=0.15)


def test_next_window() -> None:
    assert BURST.next_window(T0, T0) == T0 + 9.0
    assert BURST.next_window(T0 + 9.0, T0) == T0 + 29.0
    assert BURST.next_window(T0 + 30.0, T0) is None
    assert Bursts(offsets=(10.0,)).next_window(T0, T0) is None  # multiplier 1: no windows


def test_backoff_grows_by_a_tenth_and_is_capped() -> None:
    assert [backoff_s(a) for a in (1, 2, 3, 5, 6, 10)] == pytest.approx(
        [0.1, 0.2, 0.3, 0.5, 0.5, 0.5])
