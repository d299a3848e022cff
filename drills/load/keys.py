"""The keys one load process knows, and which of them are hot.

Pure (no Locust): a locustfile keeps one `KnownKeys` per process and feeds it every key it
learns (acknowledged writes, keys seen in list reads). Increments and reads of one key then
pick their target from it. A hot set makes many concurrent writers meet on a few counters,
which is where lost or doubled increments show.
"""

from __future__ import annotations

import random


class KnownKeys:
    """Keys learned so far: at most ``limit`` recent ones (oldest evicted first), plus the
    first ``hot`` ones ever learned, which are never evicted.

    Not thread-safe; under gevent each call runs without a switch.
    """

    def __init__(self, *, limit: int = 500, hot: int = 0):
        self.limit = limit
        self.hot_limit = hot
        self._recent: dict[str, None] = {}  # insertion-ordered: oldest first
        self._hot: list[str] = []

    def __len__(self) -> int:
        return len(self._recent.keys() | set(self._hot))

    @property
    def hot(self) -> tuple[str, ...]:
        """The hot set, in the order learned."""
        return tuple(self._hot)

    def remember(self, key: str) -> None:
        """Learn ``key``: it joins the hot set while that has room, and the recent ones unless
        it is among them already (then it keeps its place in the eviction order)."""
        if len(self._hot) < self.hot_limit and key not in self._hot:
            self._hot.append(key)
        self._recent[key] = None
        if len(self._recent) > self.limit:
            del self._recent[next(iter(self._recent))]

    def pick(self, rng: random.Random, hot_share: float = 0.0) -> str | None:
        """A target: from the hot set with probability ``hot_share`` (when it has any), else
        uniformly from the recent ones; None while nothing is known."""
        if self._hot and rng.random() < hot_share:
            return rng.choice(self._hot)
        if self._recent:
            return rng.choice(list(self._recent))
        return rng.choice(self._hot) if self._hot else None
